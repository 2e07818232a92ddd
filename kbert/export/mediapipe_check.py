"""Run kbert's app-ready `.tflite` in MediaPipe Tasks' `TextClassifier` (the `mediapipe` wheel:
the same C++ core as Android's `tasks-text`, iOS's `MediaPipeTasksText` and the web's
`@mediapipe/tasks-text`), and read the token ids MediaPipe's own tokenizer gives a text.

MediaPipe exposes no tokenizer API, so `mediapipe_token_ids` asks the classifier: it builds a
probe `.tflite` with the same metadata (tokenizer unit and file) whose "scores" are its
`ids` input, `[1, length]` static (MediaPipe then truncates and pads as it does for any
static BERT model); category `i`'s score is the id at position `i`.

Example:
    >>> scores = mediapipe_scores("model.tflite", ["a fortune"])           # doctest: +SKIP
    >>> mediapipe_token_ids("wordpiece", "vocab.txt", ["Café"], 16)        # doctest: +SKIP
    [[101, 7668, 102]]
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from kbert.export import app_metadata


def text_classifier(model_path: str | None = None, model_content: bytes | None = None):
    """MediaPipe's `TextClassifier` on a `.tflite` (use it as a context manager)."""
    from mediapipe.tasks.python.core import base_options
    from mediapipe.tasks.python.text import text_classifier as mp_text
    options = mp_text.TextClassifierOptions(base_options=base_options.BaseOptions(
        model_asset_path=model_path, model_asset_buffer=model_content))
    return mp_text.TextClassifier.create_from_options(options)


def category_scores(result, num_labels: int):
    """(scores by label index, category names by index) of one classification result."""
    scores = np.zeros(num_labels, np.float32)
    names = [""] * num_labels
    for category in result.classifications[0].categories:
        scores[category.index] = category.score
        names[category.index] = category.category_name
    return scores, names


def mediapipe_scores(model_path: str, texts, num_labels: int | None = None):
    """`(scores [texts, labels], category names)` from MediaPipe's TextClassifier."""
    rows, names = [], None
    with text_classifier(model_path) as classifier:
        for text in texts:
            result = classifier.classify(text)
            count = num_labels or len(result.classifications[0].categories)
            scores, names = category_scores(result, count)
            rows.append(scores)
    return np.stack(rows) if rows else np.zeros((0, num_labels or 0), np.float32), names


def _probe_model(length: int) -> bytes:
    """A `.tflite` taking ids/mask/segment_ids `[1, length]` whose output is `ids` as
    float32 (exact for ids below 2**24)."""
    import tensorflow as tf

    specs = [tf.TensorSpec([1, length], tf.int32, name) for name in app_metadata.INPUT_NAMES]
    module = tf.Module()
    module.probe = tf.function(lambda ids, mask, segment_ids: {
        "probabilities": tf.cast(ids * mask, tf.float32)}, input_signature=specs)
    with tempfile.TemporaryDirectory(prefix="kbert_probe_") as saved:
        tf.saved_model.save(module, saved, signatures={"serving_default": module.probe})
        return tf.lite.TFLiteConverter.from_saved_model(saved).convert()


def mediapipe_token_ids(tokenizer_type: str, tokenizer_file: str, texts,
                        length: int = 128) -> list:
    """The ids MediaPipe's BERT preprocessor feeds a model for each text (`[CLS] ... [SEP]`,
    truncated to `length`), with the tokenizer unit kbert writes for `tokenizer_file`."""
    data = _probe_model(length)
    name = os.path.basename(tokenizer_file)
    with open(tokenizer_file, "rb") as f:
        tokenizer_bytes = f.read()
    metadata = app_metadata.build_model_metadata(
        "token id probe", "Outputs its ids input.", "1", "kbert",
        app_metadata.input_order(data), tokenizer_type, name, length)
    labels = "".join(f"position_{i}\n" for i in range(length)).encode()
    data = app_metadata.populate(data, metadata, {name: tokenizer_bytes,
                                                  app_metadata.LABELS_FILE: labels})
    with tempfile.TemporaryDirectory(prefix="kbert_probe_") as tmp:
        path = os.path.join(tmp, "probe.tflite")
        with open(path, "wb") as f:
            f.write(data)
        scores, _ = mediapipe_scores(path, list(texts), length)
    found = []
    for row in scores.astype(np.int64):
        # [CLS] ... [SEP] then zeros ([PAD] ids masked to 0).
        end = len(row)
        while end > 0 and row[end - 1] == 0:
            end -= 1
        found.append(row[:end].tolist())
    return found
