r"""Score a `.tflite` classifier on a labelled CSV / TSV / JSONL file.

    python -m export.evaluate --tflite=fortunes.tflite \
        --test_file=data/tasks/fortunes/test.jsonl --output_json=fortunes_test.json

Labels, max length, casing and vocabulary come from the metadata inside the `.tflite`;
texts are tokenized by kbert's tokenizer (as in training) and run through the
`serving_default` signature — a text longer than the model's length as overlapping windows
whose logits are averaged, as trainers.finetune scores — or with --use_strings_signature
through the in-graph tokenizer (long texts cut). Accuracy and macro-F1 go to stdout and (atomically) to --output_json.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from export import flags as export_flags

export_flags.define_evaluate_flags()
FLAGS = flags.FLAGS


def run(fv) -> dict:
    from kbert import outputs
    from kbert.export.evaluation import evaluate_tflite
    from kbert.export.labelled import read_labelled_rows
    export_flags.require(fv, "tflite", "test_file")
    if not os.path.isfile(fv.tflite):
        raise FileNotFoundError(f"--tflite not found: {fv.tflite}")
    inputs = [fv.tflite, fv.test_file]
    if fv.output_json:   # before the work: an output that is an input, foreign or unwritable
        outputs.check_output(fv.output_json, "scores", inputs, fv.overwrite, is_file=True,
                             flag="--output_json")
    rows = read_labelled_rows(fv.test_file, fv.text_column, fv.label_column, fv.quoting)
    texts = [str(t) for t in rows.column(fv.text_column)]
    result = evaluate_tflite(fv.tflite, texts, rows.column(fv.label_column),
                             fv.use_strings_signature, fv.num_threads, fv.eval_batch_size,
                             fv.max_seq_length)
    result["test_file"] = os.path.abspath(fv.test_file)
    result["skipped"] = dict(rows.skipped)   # null or empty texts, as fine-tuning skips them
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if fv.output_json:
        outputs.write_text(fv.output_json, text + "\n", "scores", inputs=inputs,
                           overwrite=fv.overwrite, flag="--output_json")
    return result


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    return export_flags.run_command("evaluate", lambda: run(FLAGS))


if __name__ == "__main__":
    sys.exit(app.run(main))
