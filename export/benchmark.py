r"""Edge benchmark of a teacher and its students in every conversion mode, beside ONNX
Runtime: size, latency p50/p90 (batch 1, length 128 and the test set's real lengths, 1 and
2 threads), peak resident memory, test accuracy. Markdown table + PNG plot.

    python -m export.benchmark --teacher_model=runs/road/teacher/model \
        --student_model=runs/road/student/model \
        --train_file=data/tasks/fortunes/train.jsonl \
        --validation_file=data/tasks/fortunes/validation.jsonl \
        --test_file=data/tasks/fortunes/test.jsonl --output_dir=runs/edge_benchmark
"""

from __future__ import annotations

import sys

from absl import app, flags

from export import flags as export_flags

export_flags.define_benchmark_flags()
FLAGS = flags.FLAGS


def run(fv) -> dict:
    from kbert import outputs
    from kbert.export.labelled import read_labelled_file
    export_flags.require(fv, "train_file", "validation_file", "test_file", "output_dir")
    models = {}
    if fv.teacher_model:
        models["teacher"] = fv.teacher_model
    for i, directory in enumerate(fv.student_model):
        models["student" if len(fv.student_model) == 1 else f"student{i + 1}"] = directory
    if not models:
        raise ValueError("give --teacher_model and/or --student_model")
    read = lambda path: read_labelled_file(path, fv.text_column, fv.label_column,
                                                quoting=fv.quoting)  # noqa: E731
    modes = {name: (fv.teacher_modes or fv.modes) if name == "teacher" else fv.modes
             for name in models}
    inputs = [*models.values(), fv.train_file, fv.validation_file, fv.test_file]
    outputs.check_output(fv.output_dir, "benchmark", inputs, fv.overwrite, flag="--output_dir")
    splits = read(fv.train_file), read(fv.validation_file), read(fv.test_file)
    # Everything (models, report, plot) is measured in a staging directory that becomes
    # --output_dir at the end: a killed or failed benchmark leaves the previous one whole.
    with outputs.replace_directory(fv.output_dir, "benchmark", inputs, fv.overwrite,
                                   flag="--output_dir") as staging:
        result = _benchmark(fv, models, modes, staging, splits)
    print(result["table"])
    return result


def _benchmark(fv, models, modes, output_dir, splits) -> dict:
    from kbert.export.benchmark import benchmark_directories
    from kbert.export.verify import Thresholds
    return benchmark_directories(
        models, modes, output_dir, *splits,
        onnx_peer=[n for n in models if n.startswith("student")] if fv.onnx_peer else [],
        threads=tuple(int(t) for t in fv.threads), repeats=fv.repeats, runs=fv.runs,
        num_latency_examples=fv.num_latency_examples,
        # Measure every mode; each one's agreement / accuracy drop is in the table (the
        # shipping bars are export.tflite's).
        thresholds=Thresholds(min_agreement=0.0, max_accuracy_drop=100.0),
        log=lambda m: print(f"benchmark: {m}", flush=True))


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    return export_flags.run_command("benchmark", lambda: run(FLAGS))


if __name__ == "__main__":
    sys.exit(app.run(main))
