"""Accuracy and macro-F1 of a `.tflite` classifier on labelled texts.

Labels, max length, casing and vocabulary come from the metadata inside the `.tflite`.
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
from kbert.export.metadata import read_tflite_metadata
from kbert.export.runtime import LiteRTClassifier
from kbert.export.verify import text_signature_logits
from kbert.tokenizers import BertTokenizer


def tokenizer_from_metadata(meta: dict) -> BertTokenizer:
    """kbert's tokenizer for the vocabulary and casing a `.tflite` carries."""
    with tempfile.TemporaryDirectory(prefix="kbert_vocab_") as tmp:
        vocab = os.path.join(tmp, "vocab.txt")
        with open(vocab, "w", encoding="utf-8") as f:
            f.write("\n".join(meta["vocab"]) + "\n")
        return BertTokenizer(vocab, lower_case=meta["do_lower_case"])


def evaluate_tflite(path, texts, labels, use_strings=False, num_threads=2, batch_size=32,
                    max_seq_length=None) -> dict:
    """Scores of the `.tflite` at `path` on `(texts, label names)`."""
    meta = read_tflite_metadata(path)
    y = label_ids(labels, meta["labels"], "--test_file")
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
