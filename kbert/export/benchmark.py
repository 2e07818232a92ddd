"""Edge benchmark: size, latency p50/p90 (batch 1; fixed length and real lengths; 1 and 2
threads), peak resident memory and accuracy of `.tflite` and ONNX models, measured in
fresh processes, interleaved and repeated; a Markdown table and a PNG plot.

Example:
    >>> inputs = write_probe_inputs("inputs.npz", tokenizer, texts, 128)      # doctest: +SKIP
    >>> rows = measure([Entry("student int8", "s.tflite", 0.91)], "inputs.npz")  # doctest: +SKIP
    >>> print(markdown_table(rows))                                           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np


@dataclasses.dataclass
class Entry:
    name: str
    path: str
    accuracy: float | None = None
    runtime: str = "LiteRT"
    results: dict = dataclasses.field(default_factory=dict)
    inputs: str | None = None  # this model's probe inputs (its own vocabulary's ids)

    @property
    def size_mb(self) -> float:
        return os.path.getsize(self.path) / 1e6


def write_probe_inputs(path, tokenizer, texts, max_seq_length, fixed_length=128, seed=0):
    """An .npz for `export.latency_probe`: the texts at their real lengths, plus one fixed
    row of `fixed_length` random ids."""
    from kbert.export.labelled import encode_texts
    ids, mask, _ = encode_texts(tokenizer, texts, max_seq_length)
    rng = np.random.default_rng(seed)
    # Ids past BERT's [unusedN] rows; a small (learned or pruned) vocabulary: its upper half.
    low = min(1000, tokenizer.vocab_size // 2)
    fixed = rng.integers(low, tokenizer.vocab_size, size=(1, fixed_length)).astype(np.int32)
    fixed[0, 0], fixed[0, -1] = tokenizer.cls_id, tokenizer.sep_id
    np.savez(path, input_ids=ids, attention_mask=mask, lengths=mask.sum(1), fixed_ids=fixed)
    return path


def probe(path, inputs, threads, runs=50, cwd=None) -> dict:
    """One measurement of one model in a fresh Python process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(threads))
    done = subprocess.run(
        [sys.executable, "-m", "export.latency_probe", f"--model={path}", f"--inputs={inputs}",
         f"--threads={threads}", f"--runs={runs}"], capture_output=True, text=True, env=env,
        cwd=cwd, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"latency probe failed on {path}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(entries, inputs, threads=(1, 2), repeats=3, runs=50, cwd=None, log=None) -> list:
    """Interleaved rounds (every entry and thread count once per round), `repeats` rounds;
    each entry's `results[threads]` gets medians and min–max spreads over the rounds."""
    raw = {(i, t): [] for i in range(len(entries)) for t in threads}
    for round_index in range(repeats):
        for i, entry in enumerate(entries):
            for t in threads:
                raw[(i, t)].append(probe(entry.path, entry.inputs or inputs, t, runs, cwd))
        if log:
            log(f"benchmark round {round_index + 1}/{repeats} done")
    for i, entry in enumerate(entries):
        for t in threads:
            found = raw[(i, t)]

            def stat(key, sub):
                values = [r[key][sub] for r in found]
                return {"median": float(np.median(values)), "min": float(np.min(values)),
                        "max": float(np.max(values))}
            entry.results[t] = {
                "fixed_p50": stat("fixed", "p50"), "fixed_p90": stat("fixed", "p90"),
                "real_p50": stat("real", "p50"), "real_p90": stat("real", "p90"),
                "peak_rss_mb": float(np.median([r["peak_rss_mb"] for r in found])),
                "model_rss_mb": float(np.median([r["model_rss_mb"] for r in found])),
                "fixed_length": found[0]["fixed_length"],
                "real_length_mean": found[0]["real_length_mean"]}
    return entries


def _ms(stat):
    return f"{stat['median']:.1f} ({stat['min']:.1f}–{stat['max']:.1f})"


def markdown_table(entries, threads=(1, 2)) -> str:
    """One row per model: size, accuracy, p50/p90 at the fixed and real lengths per thread
    count (median of rounds, min–max in brackets), memory."""
    head = ["model", "runtime", "size MB", "test acc", "top-1 agree"]
    length = entries[0].results[threads[0]]["fixed_length"] if entries else 128
    for t in threads:
        head += [f"p50 ms L{length} {t}t", f"p90 ms L{length} {t}t", f"p50 ms real {t}t"]
    head += ["model RSS MB", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        agreement = getattr(e, "agreement", None)
        cells = [e.name, e.runtime, f"{e.size_mb:.2f}",
                 "–" if e.accuracy is None else f"{e.accuracy:.4f}",
                 "–" if agreement is None else f"{agreement:.3f}"]
        for t in threads:
            r = e.results[t]
            cells += [_ms(r["fixed_p50"]), _ms(r["fixed_p90"]), _ms(r["real_p50"])]
        first = e.results[threads[0]]
        cells += [f"{first['model_rss_mb']:.0f}", f"{first['peak_rss_mb']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(entries, path, threads=1) -> None:
    """Accuracy against p50 latency (L=128, `threads`), marker area ∝ file size."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from kbert.fileio import atomic_path
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for e in entries:
        if e.accuracy is None:
            continue
        x = e.results[threads]["fixed_p50"]["median"]
        ax.scatter([x], [e.accuracy], s=max(20.0, 8.0 * e.size_mb), alpha=0.6)
        ax.annotate(f"{e.name} ({e.size_mb:.1f} MB)", (x, e.accuracy), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    length = entries[0].results[threads]["fixed_length"] if entries else 128
    ax.set_xlabel(f"latency p50, batch 1, length {length}, {threads} thread(s) [ms]")
    ax.set_ylabel("test accuracy")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.set_title("accuracy vs latency (marker area ∝ file size)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def to_json(entries) -> list:
    return [{"name": e.name, "runtime": e.runtime, "file": os.path.basename(e.path),
             "bytes": os.path.getsize(e.path),
             "accuracy": e.accuracy, "results": {str(t): r for t, r in e.results.items()}}
            for e in entries]


def _accuracy_of(path, texts, labels):
    from kbert.export.evaluation import evaluate_tflite
    return evaluate_tflite(path, texts, labels)["accuracy"]


def benchmark_directories(models: dict, modes, output_dir, representative, validation, test,
                          onnx_peer=("student",), threads=(1, 2), repeats=3, runs=50,
                          num_latency_examples=100, with_tokenizer=False, thresholds=None,
                          log=print, cwd=None) -> dict:
    """Export every model directory (`name -> dir`) in every mode (`modes`: a list, or a
    dict name -> list), score each on `test`,
    add the ONNX Runtime peer (fp32 + dynamic int8) for the names in `onnx_peer`, measure
    all, write `report.md`, `results.json` and `latency_accuracy.png` to `output_dir`.

    `representative`, `validation`, `test` are `(texts, labels)`. A mode whose export fails
    (verification, Flex ops) is reported in `failures` and left out of the table."""
    from kbert.export.pipeline import ExportSettings, export_tflite
    from kbert.export.task_model import ExportError, load_task_model, task_tokenizer
    from kbert.export.verify import Thresholds
    from kbert.fileio import atomic_write_text
    from kbert.export.onnx_peer import export_onnx, quantize_onnx_dynamic
    os.makedirs(output_dir, exist_ok=True)
    entries, failures, exports = [], {}, {}
    for name, directory in models.items():
        # Each model's own tokenizer: a pruned student has other ids than its teacher.
        _, info = load_task_model(directory)
        tokenizer = task_tokenizer(info)
        inputs = write_probe_inputs(os.path.join(output_dir, f"probe_inputs_{name}.npz"),
                                    tokenizer, test[0][:num_latency_examples],
                                    info.max_seq_length,
                                    fixed_length=min(128, info.max_seq_length))
        for mode in (modes[name] if isinstance(modes, dict) else modes):
            path = os.path.join(output_dir, f"{name}_{mode}.tflite")
            log(f"export {name} {mode}")
            try:
                report = export_tflite(directory, path, ExportSettings(
                    mode=mode, with_tokenizer=with_tokenizer, overwrite=True,
                    thresholds=thresholds or Thresholds()), representative, validation,
                    log=lambda m: None)
            except ExportError as e:
                failures[f"{name} {mode}"] = str(e)
                log(f"  failed: {e}")
                continue
            exports[f"{name} {mode}"] = report["verification"]
            entry = Entry(f"{name} {mode}", path, _accuracy_of(path, *test), inputs=inputs)
            entry.agreement = report["verification"]["top1_agreement"]
            entries.append(entry)
        if name in onnx_peer and info.family != "bert":
            failures[f"{name} onnx"] = (f"the ONNX Runtime peer is built for BERT classifiers "
                                        f"(BertForSequenceClassification); {name} is "
                                        f"{info.family}")
            log(f"  no ONNX peer: {failures[f'{name} onnx']}")
        elif name in onnx_peer:
            model, info = load_task_model(directory)
            fp32 = os.path.join(output_dir, f"{name}_ort_fp32.onnx")
            int8 = os.path.join(output_dir, f"{name}_ort_dynamic_int8.onnx")
            log(f"export {name} to ONNX")
            diff = export_onnx(model, fp32)
            exports[f"{name} onnx"] = {"max_abs_logit_diff_vs_keras": diff}
            quantize_onnx_dynamic(fp32, int8)
            for label, path in (("fp32", fp32), ("dynamic_int8", int8)):
                entries.append(Entry(f"{name} {label}", path,
                                     _onnx_accuracy(path, tokenizer, *test,
                                                    info.max_seq_length, info.labels),
                                     runtime="ONNX Runtime", inputs=inputs))
    log(f"measuring {len(entries)} models × {len(threads)} thread counts × {repeats} rounds")
    measure(entries, None, threads, repeats, runs, cwd=cwd, log=log)
    table = markdown_table(entries, threads)
    plot(entries, os.path.join(output_dir, "latency_accuracy.png"))
    result = {"entries": to_json(entries), "failures": failures, "exports": exports,
              "table": table}
    atomic_write_text(os.path.join(output_dir, "report.md"), table + "\n")
    atomic_write_text(os.path.join(output_dir, "results.json"), json.dumps(result, indent=1) + "\n")
    return result


def _onnx_accuracy(path, tokenizer, texts, labels, max_seq_length, label_names):
    import onnxruntime as ort
    from kbert.export.labelled import label_ids, windowed_logits
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def predict(ids, mask, types):
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return session.run(None, {k: v.astype(np.int64) for k, v in feed.items()
                                  if k in names})[0]
    predicted = windowed_logits(predict, tokenizer, texts, max_seq_length).argmax(-1)
    return float(np.mean(predicted == label_ids(labels, label_names)))
