r"""Time one model in a fresh process (so its peak memory is its own) and print JSON.

    python -m export.latency_probe --model=m.tflite --threads=1 --inputs=inputs.npz

Used by `kbert.export.benchmark`; `--inputs` is an .npz of `input_ids`/`attention_mask`
arrays, one row per example (`lengths` gives each row's real length). Reports latency p50 /
p90 (ms) at batch 1 over the rows at their real lengths and over `--runs` calls at the
fixed length, the resident memory before loading the model and the peak after.
"""

from __future__ import annotations

import json
import sys
import time

from absl import app, flags

flags.DEFINE_string("model", None, "A .tflite or .onnx file.")
flags.DEFINE_integer("threads", 1, "Threads.", lower_bound=1)
flags.DEFINE_string("inputs", None, "An .npz of inputs (see the module docstring).")
flags.DEFINE_integer("runs", 50, "Timed calls at the fixed length.", lower_bound=1)
flags.DEFINE_integer("warmup", 5, "Untimed calls first.", lower_bound=0)
FLAGS = flags.FLAGS


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _runner(path, threads):
    import numpy as np
    if path.endswith(".onnx"):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run(ids, mask):
            feed = {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64),
                    "token_type_ids": np.zeros_like(ids, np.int64)}
            return session.run(None, {k: feed[k] for k in names})
        return run
    from ai_edge_litert import interpreter as litert
    with open(path, "rb") as f:
        data = f.read()
    if b"FastWordpiece" in data or b"FastBertNormalize" in data:
        import tensorflow_text as tf_text
        interpreter = litert.InterpreterWithCustomOps(
            custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
            model_content=data, num_threads=threads)
    else:
        interpreter = litert.Interpreter(model_content=data, num_threads=threads)
    del data
    runner = interpreter.get_signature_runner("serving_default")

    def run(ids, mask):
        return runner(input_ids=ids.astype(np.int32), attention_mask=mask.astype(np.int32),
                      token_type_ids=np.zeros_like(ids, np.int32))
    return run


def _percentiles(times):
    import numpy as np
    ms = np.array(times) * 1000.0
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "n": len(times)}


def main(argv) -> int:
    import numpy as np
    inputs = np.load(FLAGS.inputs)
    ids, mask, lengths = inputs["input_ids"], inputs["attention_mask"], inputs["lengths"]
    fixed = inputs["fixed_ids"]
    if FLAGS.model.endswith(".onnx"):
        import onnxruntime  # noqa: F401  (imported before the baseline, like LiteRT below)
    else:
        import ai_edge_litert.interpreter  # noqa: F401
        with open(FLAGS.model, "rb") as f:
            if b"FastWordpiece" in f.read():  # its custom ops come with TensorFlow
                import tensorflow_text  # noqa: F401
    baseline = _rss_mb("VmRSS")
    run = _runner(FLAGS.model, FLAGS.threads)
    for _ in range(FLAGS.warmup):
        run(fixed, np.ones_like(fixed))
    fixed_times = []
    for _ in range(FLAGS.runs):
        start = time.perf_counter()
        run(fixed, np.ones_like(fixed))
        fixed_times.append(time.perf_counter() - start)
    real_times = []
    for row, length in zip(range(len(ids)), lengths):
        start = time.perf_counter()
        run(ids[row:row + 1, :length], mask[row:row + 1, :length])
        real_times.append(time.perf_counter() - start)
    print(json.dumps({"fixed": _percentiles(fixed_times), "real": _percentiles(real_times),
                      "fixed_length": int(fixed.shape[1]),
                      "real_length_mean": float(np.mean(lengths)),
                      "baseline_rss_mb": baseline, "peak_rss_mb": _rss_mb("VmHWM"),
                      "model_rss_mb": _rss_mb("VmHWM") - baseline}))
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
