r"""Convert a fine-tuned kbert model directory into a verified `.tflite`.

    python -m export.tflite --model_dir=runs/fortunes/model --mode=full_int8 \
        --train_file=data/tasks/fortunes/train.jsonl \
        --validation_file=data/tasks/fortunes/validation.jsonl --output=fortunes.tflite

By default (`--signature=app`) the file is what MediaPipe Tasks' `TextClassifier` loads
unchanged on Android, iOS, the web and Python: one signature taking the `ids`, `mask` and
`segment_ids` of one text, probabilities out, and TFLite Model Metadata holding the
tokenizer (WordPiece or SentencePiece) and the labels (docs/EDGE.md). `--signature=ids`
gives a batched `serving_default` (logits and probabilities; any family, RoBERTa too);
`--signature=strings` (or `--with_tokenizer`) adds `serving_strings`, tensorflow-text's
tokenizer inside as LiteRT custom ops.

Modes: fp32, fp16, dynamic_int8, full_int8 (calibrated on --representative_file, default
--train_file), qat (fake-quant fine-tuning on it, then conversion). The result holds only
LiteRT builtin ops (plus tensorflow-text's custom ops with --with_tokenizer), carries its
vocabulary, labels and settings inside (`python -m export.metadata model.tflite` prints
them), and reaches --output only after it ran in LiteRT on held-out examples and matched
the Keras model (fp32: 1e-4; quantized: ≥99% top-1 agreement, ≤1 point accuracy drop;
--min_agreement / --max_accuracy_drop lower the bars explicitly). Bad input or a failed
verification: one line on stderr, exit status 2, nothing written.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from export import flags as export_flags

FLAGS = flags.FLAGS
export_flags.define_tflite_flags(FLAGS)


def run(fv) -> dict:
    from kbert.export.labelled import read_labelled_file
    from kbert.export.pipeline import ExportSettings, export_tflite
    from kbert.export.verify import Thresholds
    export_flags.require(fv, "model_dir", "output", "validation_file")
    signature = fv.signature
    if fv.with_tokenizer and not fv["signature"].present:
        signature = "strings"
    settings = ExportSettings(
        mode=fv.mode, with_tokenizer=fv.with_tokenizer, signature=signature,
        max_seq_length=fv.max_seq_length,
        num_calibration_examples=fv.num_calibration_examples,
        num_verification_examples=fv.num_verification_examples,
        thresholds=Thresholds(fv.fp32_tolerance, fv.min_agreement, fv.max_accuracy_drop),
        qat_epochs=fv.qat_epochs, qat_learning_rate=fv.qat_learning_rate,
        overwrite=fv.overwrite)
    if settings.thresholds.lowered():
        print("tflite: verification bars changed: " + ", ".join(settings.thresholds.lowered()),
              file=sys.stderr)
    representative = None
    source = fv.representative_file or fv.train_file
    if fv.mode in ("full_int8", "qat"):
        if not source:
            raise ValueError(f"--mode={fv.mode} needs --representative_file (or --train_file)")
        representative = read_labelled_file(
            source, fv.text_column, fv.label_column if fv.mode == "qat" else None,
            quoting=fv.quoting)
    validation = read_labelled_file(fv.validation_file, fv.text_column, fv.label_column,
                                    quoting=fv.quoting)
    report = export_tflite(fv.model_dir, fv.output, settings, representative, validation,
                           log=lambda m: print(f"tflite: {m}", flush=True),
                           inputs=[fv.validation_file, fv.representative_file, fv.train_file])
    summary = {k: v for k, v in report.items() if k != "ops"}
    print(json.dumps(summary, indent=1, sort_keys=True))
    kind = ("app-ready: MediaPipe's TextClassifier loads it" if settings.app
            else f"--signature={settings.signature}")
    print(f"tflite: wrote {fv.output} ({report['bytes'] / 1e6:.2f} MB, {fv.mode}, {kind})")
    return report


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    return export_flags.run_command("tflite", lambda: run(FLAGS))


if __name__ == "__main__":
    app.run(main)
