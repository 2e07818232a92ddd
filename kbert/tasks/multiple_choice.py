"""Multiple choice: score each `[CLS] context [SEP] choice [SEP]`, softmax over choices.

Inputs are the encoder's int tensors with a choices axis, `[batch, choices, seq]`; the
model folds choices into the batch, scores each pooled output with one unit, and returns
`{"logits": [batch, choices]}` (as Hugging Face's BertForMultipleChoice).

Example:
    >>> model = MultipleChoice.from_pretrained("model_dir")                     # doctest: +SKIP
    >>> model.choose(["The sky is"], [["blue", "a sandwich"]])                  # doctest: +SKIP
    [0]
"""

from __future__ import annotations

import json

import keras
import numpy as np
from keras import ops

from kbert.data.task_files import TaskFileError, TaskRows, where
from kbert.tasks import metrics as task_metrics
from kbert.tasks.base import (ENCODER_INPUTS, TaskModel, classifier_layers, encoder_input_layers,
                              sentence_pooling)
from kbert.tasks.preprocessing import Encoded, encode_windows
from kbert.tasks.task_data import ColumnAdapter


@keras.saving.register_keras_serializable(package="kbert")
class FoldChoices(keras.layers.Layer):
    """[batch, choices, seq] -> [batch * choices, seq]."""

    def call(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[-1]))

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])


@keras.saving.register_keras_serializable(package="kbert")
class UnfoldChoices(keras.layers.Layer):
    """Scores [batch * choices, 1] -> [batch, choices], given the [batch, choices, seq] ids."""

    def call(self, scores, ids):
        return ops.reshape(scores, (ops.shape(ids)[0], ops.shape(ids)[1]))

    def compute_output_shape(self, scores_shape, ids_shape):
        return (ids_shape[0], ids_shape[1])


@keras.saving.register_keras_serializable(package="kbert")
class MultipleChoice(TaskModel):
    """`{"logits": [batch, choices]}` from `[batch, choices, seq]` int inputs.

    Args:
        encoder: a `BertEncoder`.
        preprocessor: a `TextPreprocessor` (optional).
        dropout: on the pooled output (default: the encoder's hidden dropout).
    """

    task_name = "multiple_choice"

    def __init__(self, encoder, preprocessor=None, dropout: float | None = None, **kwargs):
        # === Layers ===
        fold = FoldChoices(name="fold_choices")
        pool = sentence_pooling(encoder)
        dropout_layer, head = classifier_layers(encoder, 1, dropout)
        unfold = UnfoldChoices(dtype="float32", name="unfold_choices")
        # === Functional model ===
        inputs = encoder_input_layers(extra_dims=1)
        pooled = pool(encoder({k: fold(inputs[k]) for k in ENCODER_INPUTS}))
        logits = unfold(head(dropout_layer(pooled)), inputs["token_ids"])
        super().__init__(inputs=inputs, outputs={"logits": logits}, **kwargs)
        # === Config ===
        self._keep_settings(encoder, preprocessor, dropout=dropout)
        self.classifier = head

    def get_config(self):
        return self._task_config(dropout=self.dropout)

    def example_inputs(self, batch_size: int = 1, seq_length: int = 8, num_choices: int = 2):
        ids = np.ones((batch_size, num_choices, seq_length), "int32")
        return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": ids}

    def default_loss(self):
        return {"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    def default_metrics(self):
        return {"logits": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def _is_raw(self, x) -> bool:
        return isinstance(x, (tuple, list)) and len(x) == 2 and bool(x[0]) and isinstance(
            x[0][0], str) and isinstance(x[1][0], (list, tuple))

    def encode_raw(self, x):
        contexts, choices = x
        counts = {len(c) for c in choices}
        if len(counts) != 1:
            raise ValueError(f"every example needs the same number of choices, got {counts}")
        n = counts.pop()
        pairs = encode_windows(self.preprocessor, [c for c in contexts for _ in range(n)],
                               [choice for row in choices for choice in row])
        group = lambda rows: [rows[i:i + n] for i in range(0, len(rows), n)]  # noqa: E731
        return Encoded(group(pairs.token_ids), group(pairs.segment_ids),
                       np.arange(len(contexts)), np.zeros(len(contexts), "int64"),
                       len(contexts), pairs.truncated)

    def label_arrays(self, y, encoded):
        return {"logits": np.asarray(y, "int32")}

    def choose(self, contexts, choices, batch_size: int = 32) -> list[int]:
        return [int(np.argmax(r)) for r in self.predict_windows(
            (list(contexts), [list(c) for c in choices]), batch_size)[0]["logits"]]


def _choices(value):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = value.split("|")
    return [str(v) for v in value]


class MultipleChoiceAdapter(ColumnAdapter):
    """Rows with a context, a list of choices (JSON list, or `a|b|c` in CSV/TSV) and the
    index of the right one."""

    monitor = "accuracy"
    required_fields = ("text", "text_pair", "label")

    def check(self, rows: TaskRows) -> None:
        for row, line in zip(rows.rows, rows.lines):
            n = len(_choices(row[self.columns.text_pair]))
            try:
                label = int(row[self.columns.label])
            except (TypeError, ValueError):
                label = -1
            if not 0 <= label < n:
                raise TaskFileError(f"{where(rows.path, line, self.columns.label)}: label "
                                    f"{row[self.columns.label]!r} is not a choice index "
                                    f"0..{n - 1}")

    def inputs(self, rows: TaskRows):
        return ([str(t) for t in rows.column(self.columns.text)],
                [_choices(v) for v in rows.column(self.columns.text_pair)])

    def labels(self, rows: TaskRows):
        return [int(v) for v in rows.column(self.columns.label)]

    def build_model(self, encoder, preprocessor, **settings):
        return MultipleChoice(encoder, preprocessor=preprocessor)

    def evaluate(self, model, rows: TaskRows, batch_size: int = 32):
        outputs, encoded = model.predict_windows(self.inputs(rows), batch_size)
        pred = np.asarray([int(np.argmax(r)) for r in outputs["logits"]])
        gold = np.asarray(self.labels(rows))
        result = {"accuracy": task_metrics.accuracy(gold, pred),
                  "macro_f1": task_metrics.macro_f1(gold, pred),
                  "examples": encoded.num_examples, "windows": encoded.num_windows,
                  "truncated": int(encoded.truncated), "skipped": dict(rows.skipped)}
        return result, [{"line": ln, "label": int(g), "prediction": int(p)}
                        for ln, g, p in zip(rows.lines, gold, pred)]
