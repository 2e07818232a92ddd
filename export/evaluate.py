r"""Score a `.tflite` classifier on a labelled CSV / TSV / JSONL file.

    python -m export.evaluate --tflite=fortunes.tflite \
        --test_file=data/tasks/fortunes/test.jsonl --output_json=fortunes_test.json

Labels, max length, casing and vocabulary come from the metadata inside the `.tflite`;
texts are tokenized by kbert's tokenizer (as in training) and run through the
`serving_default` signature, or with --use_strings_signature through the in-graph
tokenizer. Accuracy and macro-F1 go to stdout and (atomically) to --output_json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from absl import app, flags

from export import flags as export_flags

export_flags.define_evaluate_flags()
FLAGS = flags.FLAGS


def evaluate_tflite(path, texts, labels, use_strings=False, num_threads=2, batch_size=32,
                    max_seq_length=None) -> dict:
    """Scores of the `.tflite` at `path` on `(texts, label names)`."""
    import numpy as np

    from kbert.distillation.evaluation import scores
    from kbert.export.labelled import label_ids
    from kbert.export.metadata import read_tflite_metadata
    from kbert.export.runtime import LiteRTClassifier
    from kbert.export.verify import text_signature_logits, tflite_logits
    from kbert.tokenizers import BertTokenizer
    meta = read_tflite_metadata(path)
    y = label_ids(labels, meta["labels"], "--test_file")
    runner = LiteRTClassifier(path, num_threads=num_threads)
    if use_strings:
        logits = text_signature_logits(runner, list(texts), batch_size)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            vocab = os.path.join(tmp, "vocab.txt")
            with open(vocab, "w", encoding="utf-8") as f:
                f.write("\n".join(meta["vocab"]) + "\n")
            tokenizer = BertTokenizer(vocab, lower_case=meta["do_lower_case"])
        logits = tflite_logits(runner, tokenizer, list(texts),
                               max_seq_length or meta["max_seq_length"], batch_size)
    result = scores(y, np.argmax(logits, -1), len(meta["labels"]))
    result.update(mode=meta.get("mode"), tflite=os.path.abspath(path),
                  bytes=os.path.getsize(path), signature=("serving_strings" if use_strings
                                                          else "serving_default"))
    return result


def run(fv) -> dict:
    from kbert.export.labelled import read_labelled_file
    from kbert.fileio import atomic_write_text
    export_flags.require(fv, "tflite", "test_file")
    if not os.path.isfile(fv.tflite):
        raise FileNotFoundError(f"--tflite not found: {fv.tflite}")
    texts, labels = read_labelled_file(fv.test_file, fv.text_column, fv.label_column)
    result = evaluate_tflite(fv.tflite, texts, labels, fv.use_strings_signature,
                             fv.num_threads, fv.eval_batch_size, fv.max_seq_length)
    result["test_file"] = os.path.abspath(fv.test_file)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if fv.output_json:
        atomic_write_text(fv.output_json, text + "\n")
    return result


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    return export_flags.run_command("evaluate", lambda: run(FLAGS))


if __name__ == "__main__":
    sys.exit(app.run(main))
