r"""Pre-training throughput (sequences/s) of kbert beside keras-hub and Hugging Face (PyTorch).

One shared configuration (default: BERT "mini" — 4 layers, hidden 256, 4 heads,
intermediate 1024, vocab 30522 — at sequence 128, batch 16, 20 masked positions), all on
this machine's CPU in one run:

* kbert: the real pre-training step of `kbert.training.loop.PretrainingLoop` (MLM + NSP,
  AdamW with weight decay, global-norm clipping), with and without `jit_compile`.
* keras-hub: `BertMaskedLM` on `BertBackbone` of the same size, `train_on_batch` with
  AdamW (Keras's default `jit_compile="auto"`, i.e. XLA); masked LM only, no NSP head.
* Hugging Face: `BertForPreTraining` (MLM + NSP) in PyTorch, AdamW, `torch.set_num_threads`
  = the CPU cores TensorFlow may use.

Every model sees the same batch each step (identical data for all three). All systems are
built and warmed up first, then timed in `--rounds` interleaved rounds (each round times
every system once over `--steps` steps, in a rotating order), so that background load hits
them alike. It prints, per system, the median sequences/s with its min–max spread, and the
per-round ratios kbert/keras-hub and kbert/PyTorch (median and spread).

Each round also measures this CPU's matrix-multiply roof with TensorFlow (a 2048 x 2048
float32 and bfloat16 `tf.linalg.matmul`, best of a few, in GFLOP/s) and prints kbert's share
of it: model FLOPs per step / step time / roof (the fp32 roof for `--precision=float32`, the
bf16 roof for `mixed_bfloat16`, and then also the fp32 roof's share, issue 17's
yardstick whatever precision the step runs in). Model FLOPs are counted analytically
(`step_flops`):

    6 x (B*S*L*(4H^2 + 2HI)  +  B*P*(H^2 + HV)  +  B*(H^2 + 2H))  +  3 x B*L*4*S^2*H

i.e. 2 FLOPs per multiply-add forward and twice that backward (6 = 2 + 4) for every weight
in a matmul — per layer Q, K, V, output (4H^2) and the feed-forward (2HI) on all B*S
tokens, the MLM transform and vocabulary projection on the B*P masked positions, pooler and
NSP on B rows — plus the attention scores QK^T and the weighted sum PV (2*S^2*H each
forward per sequence and layer, x3 for training). Embedding look-ups, LayerNorm, softmax,
GELU, dropout and the optimizer are not counted (they are not matmuls). keras-hub's share
uses the same count less the pooler and NSP terms (it has no NSP head).

After the rounds it measures the step's *matmul floor* (`matmul_floor`): the same step's
matmuls alone, forward and backward, at their shapes, in one graph of nothing else. Its
share of the roof is the most any implementation using these matmul kernels can reach at
this size (small matmuls run below the 2048^3 roof), and each system's step time over the
floor says how much of the step is not matmul.

`--precision=mixed_bfloat16` sets that Keras policy for kbert and keras-hub alike (PyTorch
stays float32; skip it with `--skip=torch`).

`--xla_fusion` is `trainers.pretrain`'s flag of the same name (`kbert.training.xla_fusion`):
`auto` (the trainer's default: XLA fuses the element-wise ops under mixed_bfloat16 without
a GPU) | `none` | `elementwise`. It sets TensorFlow's process-wide `TF_XLA_FLAGS`, so it
holds for keras-hub as well, whose step XLA compiles whole anyway; to compare kbert with
and without it, run the benchmark twice, interleaving the processes.

    python benchmarks/pretrain_throughput.py                 # defaults
    python benchmarks/pretrain_throughput.py --rounds=3 --steps=30 --batch_size=32 --size=tiny
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kbert import console  # noqa: E402

console.quiet_tensorflow()

import numpy as np  # noqa: E402


def synthetic_batch(batch, seq, predictions, vocab, seed=0):
    """google-research/bert features; the masked positions hold [MASK] (id 103)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab, size=(batch, seq), dtype=np.int32)
    ids[:, 0] = 101
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq), predictions, replace=False)
                                  for _ in range(batch)]), axis=1).astype(np.int32)
    labels = np.take_along_axis(ids, positions, axis=1).astype(np.int32)
    np.put_along_axis(ids, positions, 103, axis=1)
    segments = np.zeros_like(ids)
    segments[:, seq // 2:] = 1
    return {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": segments,
            "masked_lm_positions": positions, "masked_lm_ids": labels,
            "masked_lm_weights": np.ones((batch, predictions), np.float32),
            "next_sentence_labels": rng.integers(0, 2, size=(batch,), dtype=np.int32)}


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (speed figures differ from machine to machine)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def window(step, steps):
    """Seconds per step over one window of `steps` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def summary(values):
    """`median (min–max, ±half-range/median %)` of a list of numbers."""
    median = statistics.median(values)
    low, high = min(values), max(values)
    spread = 100.0 * (high - low) / 2 / median if median else 0.0
    return median, f"{median:8.2f} ({low:.2f}–{high:.2f}, ±{spread:.0f}%)"


# ------------------------------------------------------------------------------- roof
def step_flops(batch, seq, predictions, layers, hidden, intermediate, vocab, nsp=True):
    """Training FLOPs of one BERT pre-training step (see the module docstring).

    Example:
        >>> step_flops(1, 1, 1, 1, 1, 1, 1, nsp=False)  # 6*(1*(4+2) + 1*(1+1)) + 3*4
        60
    """
    dense = batch * seq * layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    dense += batch * predictions * (hidden * hidden + hidden * vocab)
    if nsp:
        dense += batch * (hidden * hidden + 2 * hidden)
    attention = batch * layers * 4 * seq * seq * hidden
    return 6 * dense + 3 * attention


def gemm_roof(dtype, n=2048, repeats=4):
    """Best GFLOP/s of an n x n x n TensorFlow matmul in `dtype` on this CPU."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.linalg.matmul(x, y)[0, :1],
                                                            tf.float32)))
    float(matmul(a, b))   # trace + warm
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        float(matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


# ------------------------------------------------------------------------------- kbert
def kbert_step(args, features, jit_compile):
    import tensorflow as tf

    from kbert.configs import BertConfig
    from kbert.models import BertEncoder, BertPretrainer
    from kbert.training.distribution import create_strategy
    from kbert.training.loop import LoopSettings, PretrainingLoop
    from kbert.training.optimizers import create_optimizer
    from kbert.training.xla_fusion import elementwise_fusion_in_force

    strategy = create_strategy("one_device")
    config = BertConfig.named(args.size, vocab_size=args.vocab_size)
    with strategy.scope():
        model = BertPretrainer(BertEncoder(config))
        model(model.example_inputs(), training=False)
        optimizer = create_optimizer("adamw", 1e-4, weight_decay=0.01, clip_norm=1.0,
                                     model=model, gradients_reduced=True,
                                     compiled_update=elementwise_fusion_in_force()
                                     and not jit_compile)   # as trainers.pretrain
    output_dir = tempfile.mkdtemp(prefix="kbert_bench_")
    loop = PretrainingLoop(strategy, model, optimizer,
                           LoopSettings(output_dir, jit_compile=jit_compile))
    dataset = tf.data.Dataset.from_tensors(features).repeat()
    iterator = iter(strategy.distribute_datasets_from_function(lambda _: dataset))
    train_step = loop.make_train_step()

    def step():
        terms = train_step(iterator)
        float(terms["mlm_loss_sum"])   # the loop reads the loss every step too
    return step, lambda: shutil.rmtree(output_dir, ignore_errors=True)


# ------------------------------------------------------------------------------- keras-hub
def keras_hub_step(args, features):
    import keras
    import keras_hub

    hidden, layers = _size(args.size)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=args.vocab_size, num_layers=layers, num_heads=max(1, hidden // 64),
        hidden_dim=hidden, intermediate_dim=4 * hidden, max_sequence_length=512)
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01, global_clipnorm=1.0))
    x = {"token_ids": features["input_ids"], "padding_mask": features["input_mask"],
         "segment_ids": features["segment_ids"],
         "mask_positions": features["masked_lm_positions"]}
    y = features["masked_lm_ids"]
    weights = features["masked_lm_weights"]

    def step():
        model.train_on_batch(x, y, sample_weight=weights)
    return step


# ------------------------------------------------------------------------------- PyTorch
def torch_step(args, features, threads):
    import torch
    from transformers import BertConfig as HFConfig
    from transformers import BertForPreTraining

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hidden, layers = _size(args.size)
    config = HFConfig(vocab_size=args.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                      max_position_embeddings=512)
    model = BertForPreTraining(config).train()
    decay = [p for n, p in model.named_parameters() if "LayerNorm" not in n and "bias" not in n]
    no_decay = [p for n, p in model.named_parameters() if "LayerNorm" in n or "bias" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    ids = torch.from_numpy(features["input_ids"]).long()
    labels = torch.full_like(ids, -100)
    positions = torch.from_numpy(features["masked_lm_positions"]).long()
    labels.scatter_(1, positions, torch.from_numpy(features["masked_lm_ids"]).long())
    inputs = dict(input_ids=ids, attention_mask=torch.from_numpy(features["input_mask"]).long(),
                  token_type_ids=torch.from_numpy(features["segment_ids"]).long(),
                  labels=labels,
                  next_sentence_label=torch.from_numpy(features["next_sentence_labels"]).long())

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()
    return step


def _size(name):
    from kbert.configs import NAMED_SIZES
    layers, hidden = NAMED_SIZES[name]
    return hidden, layers


def matmul_floor(args, dtype="float32", repeats=3):
    """Seconds per step of the step's matmuls alone, at their shapes: for every dense layer
    the forward product and both backward products (dX = dY W^T, dW = X^T dY), the
    attention products QK^T and PV with their four backward products, the masked-LM
    transform and vocabulary projection, the pooler. One TensorFlow graph of nothing else:
    one layer's products (each on its own operands, so that no two are the same
    computation that Grappler would merge) run `layers` times in a `tf.while_loop`. The
    time a step that did no element-wise work, no data movement and no optimizer would
    take with this CPU's matmul kernels. Best of `repeats`."""
    import tensorflow as tf

    hidden, layers = _size(args.size)
    heads = max(1, hidden // 64)
    batch, seq, preds, vocab = args.batch_size, args.seq_length, args.predictions, args.vocab_size
    tokens, inner = batch * seq, 4 * hidden
    rng = tf.random.Generator.from_seed(0)

    def tensor(*shape):
        return tf.cast(rng.normal(shape) * 0.01, dtype)

    def dense_operands(rows, k, n):
        return tensor(rows, k), tensor(k, n), tensor(rows, n)

    layer_dense = [dense_operands(tokens, hidden, hidden) for _ in range(4)] + [
        dense_operands(tokens, hidden, inner), dense_operands(tokens, inner, hidden)]
    head_dense = [dense_operands(batch * preds, hidden, hidden),
                  dense_operands(batch * preds, hidden, vocab),
                  dense_operands(batch, hidden, hidden)]
    q, k, v, d_context = (tensor(batch, heads, seq, hidden // heads) for _ in range(4))
    probs, d_scores = tensor(batch, heads, seq, seq), tensor(batch, heads, seq, seq)
    mm = tf.linalg.matmul

    def touch(products):
        return tf.add_n([tf.cast(tf.reshape(p, [-1])[0], tf.float32) for p in products])

    def dense_products(operands):
        out = []
        for x, w, dy in operands:
            out += [mm(x, w), mm(dy, w, transpose_b=True), mm(x, dy, transpose_a=True)]
        return out

    @tf.function
    def products():
        total = tf.constant(0.0)
        for _ in tf.range(layers):
            total += touch(dense_products(layer_dense) + [
                mm(q, k, transpose_b=True), mm(probs, v),                  # forward
                mm(d_context, v, transpose_b=True),                        # d probs
                mm(probs, d_context, transpose_a=True),                    # dV
                mm(d_scores, k), mm(d_scores, q, transpose_a=True)])       # dQ, dK
        return total + touch(dense_products(head_dense))

    float(products())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        float(products())
        best = min(best, time.perf_counter() - start)
    return best


def model_flops(args, nsp):
    """`step_flops` for the benchmark's configuration."""
    hidden, layers = _size(args.size)
    return step_flops(args.batch_size, args.seq_length, args.predictions, layers, hidden,
                      4 * hidden, args.vocab_size, nsp=nsp)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="mini")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--vocab_size", type=int, default=30522)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds; each times every system over --steps steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="CPU threads for PyTorch (TensorFlow uses all cores)")
    parser.add_argument("--skip", default="", help="comma list of systems to skip: "
                        "kbert,kbert_xla,keras_hub,torch")
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_bfloat16"],
                        help="Keras dtype policy for kbert and keras-hub")
    parser.add_argument("--xla_fusion", default="auto",
                        choices=["auto", "none", "elementwise"],
                        help="trainers.pretrain's --xla_fusion, for the whole process")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    from kbert.training import xla_fusion
    args.xla_fusion = xla_fusion.apply_xla_fusion(args.xla_fusion, args.precision)
    console.import_tensorflow()
    import keras
    keras.mixed_precision.set_global_policy(args.precision)
    skip = set(filter(None, args.skip.split(",")))
    features = synthetic_batch(args.batch_size, args.seq_length, args.predictions,
                               args.vocab_size)
    print(f"config: size={args.size} batch={args.batch_size} seq={args.seq_length} "
          f"predictions={args.predictions} vocab={args.vocab_size} cpus={os.cpu_count()} "
          f"torch_threads={args.threads} rounds={args.rounds} steps={args.steps} "
          f"precision={args.precision} xla_fusion={args.xla_fusion} "
          f"load={os.getloadavg()[0]:.2f} cpu={cpu_name()}", flush=True)
    builders = {
        "torch": lambda: (torch_step(args, features, args.threads),),
        "kbert": lambda: kbert_step(args, features, jit_compile=False),
        "keras_hub": lambda: (keras_hub_step(args, features),),
        "kbert_xla": lambda: kbert_step(args, features, jit_compile=True),
    }
    systems, cleanups = {}, []
    for name, build in builders.items():
        if name in skip:
            continue
        step, *cleanup = build()
        for _ in range(args.warmup):
            step()
        systems[name] = step
        cleanups.extend(cleanup)
    # Interleaved: every round times each system once, in an order that rotates, so that
    # background load hits them alike; ratios are taken within a round.
    per_round = {name: [] for name in systems}
    roofs = {"float32": [], "bfloat16": []}
    names = list(systems)
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            per_round[name].append(args.batch_size / window(systems[name], args.steps))
        for dtype in roofs:
            roofs[dtype].append(gemm_roof(dtype))
        print(f"round {round_index + 1}: " + ", ".join(
            f"{name} {per_round[name][-1]:.1f}" for name in names) + " sequences/s; roof "
            f"fp32 {roofs['float32'][-1]:.0f}, bf16 {roofs['bfloat16'][-1]:.0f} GFLOP/s",
            flush=True)
    results = {}
    for name in names:
        results[name], text = summary(per_round[name])
        print(f"{name:>10}: {text} sequences/s, median of {args.rounds} rounds", flush=True)
    ratios = {}
    for ours in ("kbert", "kbert_xla"):
        for peer in ("keras_hub", "torch"):
            if ours in per_round and peer in per_round:
                values = [a / b for a, b in zip(per_round[ours], per_round[peer])]
                ratios[f"{ours}/{peer}"], text = summary(values)
                print(f"{ours}/{peer}: {text}x (per-round ratios)", flush=True)
    roof_dtype = "bfloat16" if args.precision == "mixed_bfloat16" else "float32"
    for dtype, values in roofs.items():
        print(f"{dtype} GEMM roof: {summary(values)[1]} GFLOP/s (2048^2 TensorFlow matmul)")
    shares, fp32_shares = {}, {}
    for name in names:
        if name == "torch":
            continue
        flops = model_flops(args, nsp=name != "keras_hub")

        def share_of(dtype):   # per round: achieved GFLOP/s over that round's roof
            return summary([flops * seq_s / args.batch_size / 1e9 / roof
                            for seq_s, roof in zip(per_round[name], roofs[dtype])])

        shares[name], text = share_of(roof_dtype)
        print(f"{name} share of the {roof_dtype} roof: {text} "
              f"({flops / 1e9:.2f} GFLOP per step)", flush=True)
        if roof_dtype != "float32":   # issue 17's yardstick is the fp32 roof, whatever the step
            fp32_shares[name], text = share_of("float32")
            print(f"{name} share of the float32 roof: {text}", flush=True)
    floor = matmul_floor(args, "bfloat16" if roof_dtype == "bfloat16" else "float32")
    flops = model_flops(args, nsp=True)
    floor_share = flops / floor / 1e9 / statistics.median(roofs[roof_dtype])
    print(f"matmul floor (the step's matmuls alone): {1000 * floor:.1f} ms per step, "
          f"{args.batch_size / floor:.2f} sequences/s = {floor_share:.2f} of the {roof_dtype} "
          "roof: no implementation with these matmul kernels reaches a higher share", flush=True)
    for name in names:
        if name != "torch":
            print(f"{name} step / matmul floor: {args.batch_size / floor / results[name]:.2f}x "
                  "(1.00 = nothing but matmuls)", flush=True)
    for cleanup in cleanups:
        cleanup()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "sequences_per_second": results,
                       "rounds": per_round, "ratios": ratios, "roofs": roofs,
                       "roof_shares": shares, "fp32_roof_shares": fp32_shares or shares,
                       "matmul_floor_s": floor,
                       "matmul_floor_share": floor_share}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
