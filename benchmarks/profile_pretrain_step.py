r"""Where a pre-training step's time goes: TensorFlow profiler op-type totals, kbert beside keras-hub.

Builds, at one size and sequence length (default: mini, 4 layers x 256, and seq 128,
batch 16, 20 masked positions), the same two steps `benchmarks/pretrain_throughput.py`
times — kbert's `PretrainingLoop` train step (MLM + NSP, AdamW, clipping; graph mode, no
XLA) and keras-hub's `BertMaskedLM.train_on_batch` (AdamW, compiled with
`jit_compile=False` so that its ops are visible one by one; XLA would fuse them into
clusters) — warms each up, then records `--steps` steps of each under
`tf.profiler.experimental.start/stop` into a temporary logdir. The trace (`*.xplane.pb`)
is parsed offline: every TensorFlow op executed on the host's `tf_Compute` threads is put
in one bucket by its type and name (dense MatMul, attention BatchMatMul, the MLM head's
vocabulary matmul, softmax, dropout, LayerNorm, GELU, transpose/reshape, gather/embedding,
optimizer update, ...). It prints, per system, ms per step and % of the summed op time per
bucket, and the profiled wall time per step (ops on two inter-op threads may overlap, so
the op sum can exceed it; the profiler itself adds overhead, so wall times here are not
throughput figures).

    python benchmarks/profile_pretrain_step.py                     # mini, seq 128
    python benchmarks/profile_pretrain_step.py --size=base --batch_size=8 --steps=1
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_throughput as bench  # noqa: E402  (sets the backend, quiets TensorFlow)

MATMUL_TYPES = {"MatMul", "_MklMatMul", "_FusedMatMul", "_MklFusedMatMul", "_MklNativeMatMul",
                "_MklNativeFusedMatMul"}
BATCH_MATMUL_TYPES = {"BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "_MklBatchMatMul",
                      "_MklBatchMatMulV2", "_MklNativeBatchMatMulV2", "Einsum", "_MklEinsum",
                      "_MklFusedBatchMatMulV2"}
LAYOUT_TYPES = {"Transpose", "_MklTranspose", "Reshape", "ExpandDims", "Squeeze", "ConcatV2",
                "Split", "SplitV", "Slice", "StridedSlice", "StridedSliceGrad", "Pack", "Unpack",
                "Identity", "Shape", "BroadcastTo", "ConjugateTranspose", "Tile"}
GATHER_TYPES = {"GatherV2", "ResourceGather", "GatherNd", "UnsortedSegmentSum", "ScatterNd",
                "TensorScatterAdd", "ResourceScatterAdd", "OneHot"}
XLA_TYPES = {"_XlaRun", "_XlaCompile", "XlaLaunch", "_XlaMerge"}
READ_TYPES = {"ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp",
              "AssignSubVariableOp", "VarHandleOp", "Const", "NoOp", "_Arg", "_Retval"}


def bucket(name, op_type):
    """One bucket for an op, by its full name and type (first rule that fits).

    Example:
        >>> bucket("gradient_tape/m/encoder/layer_0/attention/MatMul_1", "BatchMatMulV2")
        'attention batch matmul'
    """
    lower = name.lower()
    if op_type in XLA_TYPES:
        return "XLA fused clusters"
    if re.match(r"^(adamw?|adam_w|optimizer|sgd|lamb)(_\d+)?/|/(adamw?|adam_w)(_\d+)?/", lower) or \
            "clip_by_global_norm" in lower or "global_norm" in lower or \
            op_type.startswith("ResourceApply"):
        return "optimizer update (+clip)"
    if op_type in MATMUL_TYPES or op_type in BATCH_MATMUL_TYPES:
        if "mlm_head" in lower or "masked_lm_head" in lower or "lm_head" in lower:
            if "transform" not in lower and "dense" not in lower:
                return "MLM vocab matmul"
        if op_type in BATCH_MATMUL_TYPES and not re.search(r"dense|einsum_dense", lower):
            return "attention batch matmul"
        return "dense matmul"
    if op_type in GATHER_TYPES or "embedding" in lower and op_type not in LAYOUT_TYPES:
        return "gather/embedding"
    if "dropout" in lower or op_type in {"RandomUniform", "StatelessRandomUniformV2",
                                         "StatelessRandomGetKeyCounter", "SelectV2", "Select"}:
        return "dropout"
    if op_type in {"LogSoftmax", "SparseSoftmaxCrossEntropyWithLogits", "ArgMax"} or \
            re.search(r"loss|cross_entropy|accuracy|sparse_categorical", lower):
        return "loss/metrics"
    if "softmax" in lower or op_type in {"Softmax", "_MklSoftmax"}:
        return "softmax"
    if "layer_norm" in lower or "layernorm" in lower or "layer_normalization" in lower:
        return "layer norm"
    if "gelu" in lower or op_type in {"Erf", "Erfc"}:
        return "gelu"
    if op_type in LAYOUT_TYPES:
        return "transpose/reshape/layout"
    if op_type in READ_TYPES:
        return "variable reads/consts"
    if op_type in {"BiasAdd", "BiasAddGrad", "_MklBiasAddGrad"}:
        return "bias add"
    return "other elementwise"


DEBUG = collections.Counter()


def op_totals(logdir):
    """{bucket: total µs} and {op type: total µs} over the op events of the trace in logdir."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    buckets, types = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute") and not line.name.startswith("tf_numa"):
                continue
            for event in line.events:
                meta = plane.event_metadata[event.metadata_id]
                op_type = meta.display_name
                if not op_type or ":" not in meta.name:
                    continue
                name = meta.name.rsplit(":", 1)[0]
                micros = event.duration_ps / 1e6
                buckets[bucket(name, op_type)] += micros
                types[op_type] += micros
                if os.environ.get("PROFILE_DEBUG") == bucket(name, op_type):
                    DEBUG[(op_type, re.sub(r"_\d+", "", name))] += micros
    return buckets, types


def profile(step, steps):
    """Run `steps` profiled steps; ({bucket: µs}, {type: µs}, wall seconds per step)."""
    import tensorflow as tf

    logdir = tempfile.mkdtemp(prefix="kbert_profile_")
    try:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        buckets, types = op_totals(logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return ({k: v / steps for k, v in buckets.items()},
            {k: v / steps for k, v in types.items()}, wall)


def keras_hub_eager_ops_step(args, features):
    """keras-hub's step as `pretrain_throughput.keras_hub_step`, but jit_compile=False."""
    import keras
    step = bench.keras_hub_step(args, features)
    model = step.__closure__[[c.cell_contents.__class__.__name__ for c in step.__closure__]
                             .index("BertMaskedLM")].cell_contents
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01,
                                                   global_clipnorm=1.0), jit_compile=False)
    return step


def table(results, top_types=12):
    """Print the bucket table (ms/step and %) for each system side by side."""
    names = list(results)
    rows = sorted({b for r in results.values() for b in r[0]},
                  key=lambda b: -max(r[0].get(b, 0) for r in results.values()))
    print(f"{'op bucket':<28}" + "".join(f"{n + ' ms':>14}{'%':>7}" for n in names))
    for row in rows:
        line = f"{row:<28}"
        for n in names:
            total = sum(results[n][0].values())
            ms = results[n][0].get(row, 0.0) / 1000
            line += f"{ms:14.2f}{100 * ms * 1000 / total:7.1f}"
        print(line)
    line = f"{'sum of op time':<28}"
    for n in names:
        line += f"{sum(results[n][0].values()) / 1000:14.2f}{100.0:7.1f}"
    print(line)
    line = f"{'profiled wall per step':<28}"
    for n in names:
        line += f"{results[n][2] * 1000:14.2f}{'':>7}"
    print(line)
    for n in names:
        types = sorted(results[n][1].items(), key=lambda kv: -kv[1])[:top_types]
        print(f"{n} top op types (ms/step): " + ", ".join(
            f"{t} {v / 1000:.2f}" for t, v in types))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="mini")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--vocab_size", type=int, default=30522)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps per system")
    parser.add_argument("--skip", default="", help="comma list: kbert,keras_hub")
    parser.add_argument("--order", default="kbert,keras_hub",
                        help="which system is built and profiled first")
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_bfloat16"],
                        help="Keras dtype policy for kbert and keras-hub")
    parser.add_argument("--xla_fusion", default="none",
                        choices=["auto", "none", "elementwise"],
                        help="trainers.pretrain's --xla_fusion (default none: every op "
                             "visible; with it, fused chains show as _XlaRun)")
    args = parser.parse_args(argv)
    from kbert.training import xla_fusion
    args.xla_fusion = xla_fusion.apply_xla_fusion(args.xla_fusion, args.precision)
    bench.console.import_tensorflow()
    import keras
    keras.mixed_precision.set_global_policy(args.precision)
    features = bench.synthetic_batch(args.batch_size, args.seq_length, args.predictions,
                                     args.vocab_size)
    print(f"config: size={args.size} batch={args.batch_size} seq={args.seq_length} "
          f"predictions={args.predictions} vocab={args.vocab_size} steps={args.steps} "
          f"precision={args.precision} xla_fusion={args.xla_fusion} "
          f"load={os.getloadavg()[0]:.2f}", flush=True)
    skip = set(filter(None, args.skip.split(",")))
    builders = {"kbert": lambda: bench.kbert_step(args, features, jit_compile=False)[0],
                "keras_hub": lambda: keras_hub_eager_ops_step(args, features)}
    results = {}
    for name in args.order.split(","):
        build = builders[name]
        if name in skip:
            continue
        step = build()
        for _ in range(args.warmup):
            step()
        results[name] = profile(step, args.steps)
    table(results)
    for (op_type, name), micros in DEBUG.most_common(25):
        print(f"debug {op_type} {name} {micros / 1000:.1f} ms")
    return results


if __name__ == "__main__":
    main()
