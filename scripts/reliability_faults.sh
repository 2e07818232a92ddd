#!/bin/bash
# The fault table of issue 7 (BUILD_NOTES.md): runs each fault against a kbert checkout and
# prints what happened. Needs root (tmpfs mounts stand for a full / read-only disk) and the
# fixtures below; run once on an old checkout and once on this one to compare.
#
#   sudo scripts/run bash scripts/reliability_faults.sh /path/to/kbert TAG
#
# Run it in kbert's environment (`scripts/run`); the fixtures (a tiny Hugging Face BERT, records,
# a micro config) are made under /tmp/kbert_exp by the tests' helpers of *this* checkout.
CODE=$1; TAG=$2; E=/tmp/kbert_exp; W=$E/$TAG; rm -rf $W; mkdir -p $W
export PYTHONPATH=$CODE TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1
cd $CODE
mkdir -p /tmp/kbert_full
VOCAB=$(python -c "from tests.harness import gt_vocab_file; print(gt_vocab_file())")
if [ ! -d $E/hf ]; then python - <<'PY'
import json, pathlib
from tests.harness import make_workspace
from tests.test_checkpoints import random_hf_model, write_vocab
random_hf_model().save_pretrained("/tmp/kbert_exp/hf")
write_vocab("/tmp/kbert_exp/hf/vocab.txt")
json.dump({"do_lower_case": True}, open("/tmp/kbert_exp/hf/tokenizer_config.json", "w"))
make_workspace(pathlib.Path("/tmp/kbert_exp"))
PY
fi
say() { echo "[$TAG] $*"; }
last() { grep -v "^\s*$" | grep -iv "warning\|^I0000\|^W0000" | tail -${1:-2} | cut -c1-220; }

# 1 convert into its own source
cp -r $E/hf $W/hf_same
timeout 300 python -m kbert.convert --source $W/hf_same --output $W/hf_same > $W/1.log 2>&1; rc=$?
say "1 convert same dir: exit $rc; files now: $(ls $W/hf_same | tr '\n' ' ')"; last 1 < $W/1.log
# 2 convert into a user's directory
mkdir -p $W/user/sub; echo mine > $W/user/notes.txt; echo x > $W/user/sub/x.txt
timeout 300 python -m kbert.convert --source $E/hf --output $W/user > $W/2.log 2>&1; rc=$?
say "2 convert into dir with notes.txt, sub/: exit $rc; files now: $(ls $W/user | tr '\n' ' ')"; last 1 < $W/2.log
# 3 disk full during convert (tmpfs 400k: a first convert fits, the second does not)
umount /tmp/kbert_full 2>/dev/null; mount -t tmpfs -o size=400k tmpfs /tmp/kbert_full
timeout 300 python -m kbert.convert --source $E/hf --output /tmp/kbert_full/m > $W/3a.log 2>&1; rc1=$?
timeout 300 python -m kbert.convert --source $E/hf --output /tmp/kbert_full/m > $W/3.log 2>&1; rc=$?
say "3 convert on a full disk: first exit $rc1, second exit $rc; left: $(ls -a /tmp/kbert_full/m 2>&1| tr '\n' ' ') / $(ls -a /tmp/kbert_full | tr '\n' ' ')"; last 2 < $W/3.log
python -c "import kbert; kbert.load('/tmp/kbert_full/m'); print('[$TAG] 3 previous output loads')" 2>&1 | tail -1
# 4 read-only output location
mount -o remount,ro /tmp/kbert_full
timeout 300 python -m kbert.convert --source $E/hf --output /tmp/kbert_full/m2 > $W/4.log 2>&1; rc=$?
say "4 convert into a read-only place: exit $rc"; last 2 < $W/4.log
umount /tmp/kbert_full
# 5 paragraph-per-line corpus
python - > $W/para.txt <<'PY'
import re
text = open('data/corpus/python_docs_03.txt').read()
docs = [" ".join(d.split("\n")) for d in re.split(r"\n\s*\n", text) if d.strip()][:120]
print("\n\n".join(d for d in docs if len(d.split(". ")) > 1))
PY
timeout 300 python -m trainers.create_pretraining_data --input_file=$W/para.txt --vocab_file=$VOCAB --output_dir=$W/para_records --max_seq_length=64 --max_predictions_per_seq=8 --dupe_factor=1 > $W/5.log 2>&1; rc=$?
say "5 create_pretraining_data, paragraph per line: exit $rc"; last 1 < $W/5.log
PRE="python -m trainers.pretrain --vocab_file=$VOCAB --bert_config_file=$E/micro.json --max_seq_length=64 --max_predictions_per_seq=8 --train_batch_size=8 --num_train_steps=6 --num_warmup_steps=1 --log_every_steps=1 --save_checkpoints_steps=3 --eval_steps=0"
timeout 60 $PRE --input_file=$W/para.txt --raw_text --sentence_splitting=never --output_dir=$W/p6 > $W/6.log 2>&1; rc=$?
[ $rc = 2 ] || timeout 60 $PRE --input_file=$W/para.txt --raw_text --output_dir=$W/p6 > $W/6.log 2>&1; rc=$?
say "6 pretrain --raw_text, paragraph per line (60 s limit; 124 = still running): exit $rc; steps logged: $(grep -c 'step [0-9]*/6 |' $W/6.log)"; last 1 < $W/6.log
# 7 records directory without manifest (what a kill during creation leaves)
cp -r $E/records $W/nomanifest; rm $W/nomanifest/manifest.json $W/nomanifest/.kbert-output.json 2>/dev/null
timeout 120 $PRE --input_file=$W/nomanifest --output_dir=$W/p7 > $W/7.log 2>&1; rc=$?
say "7 pretrain on shards without manifest: exit $rc; steps: $(grep -c 'step [0-9]*/6 |' $W/7.log)"; last 1 < $W/7.log
# 8 damaged newest checkpoint
timeout 300 $PRE --input_file=$E/records --output_dir=$W/p8 > $W/8a.log 2>&1
f=$W/p8/checkpoints/ckpt-6.data-00000-of-00001; head -c $(( $(stat -c %s $f) / 2 )) $f > $f.tmp && mv $f.tmp $f
timeout 300 ${PRE/num_train_steps=6/num_train_steps=9} --input_file=$E/records --output_dir=$W/p8 > $W/8.log 2>&1; rc=$?
say "8 resume with ckpt-6 truncated: exit $rc"; grep -i "damaged\|IndexError\|resuming" $W/8.log | cut -c1-220 | tail -2
# 9 vocab.txt shorter than vocab_size
cp -r /tmp/kbert_exp/$TAG/p8/pretrained_model $W/m9 2>/dev/null || cp -r $W/p8/pretrained_model $W/m9
head -n 30000 $W/m9/vocab.txt > $W/m9/v && mv $W/m9/v $W/m9/vocab.txt
python -c "import kbert; kbert.load('$W/m9'); kbert.load_tokenizer('$W/m9'); print('[$TAG] 9 short vocab.txt: loaded without error')" 2>&1 | grep -v "^\s*$" | tail -1 | cut -c1-220
# 10 pretrain onto a full disk
mount -t tmpfs -o size=2m tmpfs /tmp/kbert_full
timeout 300 $PRE --input_file=$E/records --output_dir=/tmp/kbert_full/run > $W/10.log 2>&1; rc=$?
say "10 pretrain, checkpoint onto a full disk: exit $rc"; last 2 < $W/10.log
umount /tmp/kbert_full
# 11 learn_vocab_size too big
head -n 300 data/corpus/python_docs_03.txt > $W/small.txt
timeout 300 ${PRE/--vocab_file=$VOCAB/} --input_file=$W/small.txt --raw_text --learn_vocab_size=8000 --model_size=tiny --bert_config_file= --output_dir=$W/p11 --num_train_steps=1 > $W/11.log 2>&1; rc=$?
say "11 --learn_vocab_size=8000 on 300 lines: exit $rc; vocab lines: $(wc -l < $W/p11/vocab.txt 2>/dev/null)"; last 1 < $W/11.log
# 12 create_pretraining_data onto a full disk
mount -t tmpfs -o size=200k tmpfs /tmp/kbert_full
head -n 3000 data/corpus/python_docs_03.txt > $W/c12.txt
timeout 300 python -m trainers.create_pretraining_data --input_file=$W/c12.txt --vocab_file=$VOCAB --output_dir=/tmp/kbert_full/data --max_seq_length=64 --max_predictions_per_seq=8 --dupe_factor=3 > $W/12.log 2>&1; rc=$?
say "12 create_pretraining_data onto a 200 KiB disk: exit $rc; left: $(ls -a /tmp/kbert_full | tr '\n' ' ')"; last 2 < $W/12.log
umount /tmp/kbert_full
