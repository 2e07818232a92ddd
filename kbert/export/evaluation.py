"""Accuracy and macro-F1 of a `.tflite` classifier on labelled texts.

Labels, max length, casing, model family and tokenizer files come from the metadata inside the `.tflite`.
Through `serving_default`, texts are tokenized by kbert's tokenizer and long texts are read
as overlapping windows whose logits are averaged (as `trainers.finetune` scores); through
`serving_strings` (the tokenizer inside the model, as an app calls it) a text is cut at the
model's length.

Example:
    >>> evaluate_tflite("fortunes.tflite", texts, labels)["accuracy"]    # doctest: +SKIP
    0.715
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from kbert.distillation.evaluation import scores
from kbert.export.labelled import label_ids, windowed_logits
from kbert.export.metadata import read_tflite_metadata, write_tokenizer_files
from kbert.export.runtime import LiteRTClassifier
from kbert.export.signatures import STRINGS_SIGNATURE
from kbert.export.task_model import ExportError
from kbert.export.verify import text_signature_logits
from kbert.tokenizers.families import load_family_tokenizer


def tokenizer_from_metadata(meta: dict):
    """kbert's tokenizer (the model family's) for the tokenizer files and casing a `.tflite`
    carries (`read_tflite_metadata`)."""
    with tempfile.TemporaryDirectory(prefix="kbert_tokenizer_") as tmp:
        family = meta.get("family", "bert")
        return load_family_tokenizer(family, write_tokenizer_files(meta, tmp),
                                     lower_case=meta["do_lower_case"])


def evaluate_tflite(path, texts, labels, use_strings=False, num_threads=2, batch_size=32,
                    max_seq_length=None) -> dict:
    """Scores of the `.tflite` at `path` on `(texts, label names)`."""
    meta = read_tflite_metadata(path)
    if use_strings and STRINGS_SIGNATURE not in meta.get("signatures", []):
        raise ExportError(f"--use_strings_signature: {path} has no {STRINGS_SIGNATURE} "
                          f"signature (a {meta.get('family', 'bert')} model exported without "
                          f"--with_tokenizer); evaluate through serving_default instead")
    y = label_ids(labels, meta["labels"], "--test_file")
    if max_seq_length and max_seq_length > meta["max_seq_length"]:
        raise ExportError(f"--max_seq_length={max_seq_length} exceeds the {path}'s input "
                          f"length {meta['max_seq_length']}")
    runner = LiteRTClassifier(path, num_threads=num_threads)
    if use_strings:
        logits = text_signature_logits(runner, list(texts), batch_size)
    else:
        logits = windowed_logits(lambda ids, mask, types: runner.classify_ids(
            ids, mask, types)["logits"], tokenizer_from_metadata(meta), list(texts),
            max_seq_length or meta["max_seq_length"], batch_size)
    result = scores(y, np.argmax(logits, -1), len(meta["labels"]))
    result.update(mode=meta.get("mode"), tflite=os.path.abspath(path),
                  bytes=os.path.getsize(path),
                  signature="serving_strings" if use_strings else "serving_default",
                  long_inputs="truncated" if use_strings else "windows (mean logits)")
    return result
