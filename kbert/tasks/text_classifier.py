"""Sequence classification and regression on the [CLS] pooled output (encoders without a
pooler, e.g. DistilBERT: a pre-classifier dense on [CLS], see `sentence_pooling`).

Example:
    >>> model = TextClassifier.from_pretrained("model_dir", num_classes=2,
    ...                                        label_names=["neg", "pos"])   # doctest: +SKIP
    >>> model.compile(num_train_steps=100)                                    # doctest: +SKIP
    >>> model.fit(["good", "bad"], ["pos", "neg"], epochs=2)                  # doctest: +SKIP
    >>> model.classify(["really good"])                                        # doctest: +SKIP
    [('pos', 0.93)]
"""

from __future__ import annotations

import keras
import numpy as np

from kbert.tasks.base import (TaskModel, classifier_layers, encoder_input_layers,
                              sentence_pooling)
from kbert.tasks.preprocessing import aggregate_windows, encode_windows


@keras.saving.register_keras_serializable(package="kbert")
class TextClassifier(TaskModel):
    """Classifies a text or a text pair (`[CLS] A [SEP] B [SEP]`); regression when
    `num_classes=1`.

    Inputs: the encoder's int dict. Output: `{"logits": [batch, num_classes]}` (float32).

    Args:
        encoder: a `BertEncoder`.
        num_classes: number of classes; 1 means regression (mean squared error).
        preprocessor: a `TextPreprocessor` for raw strings (optional).
        label_names: class names, index = class id (stored with the model).
        dropout: dropout on the pooled output (default: the encoder's hidden dropout).
            Encoders without a pooler get a "pre_classifier" dense on the first token
            (`kbert.tasks.base.sentence_pooling`), as Hugging Face's DistilBERT/RoBERTa heads.
        aggregation: "mean" or "max" over the windows of a long input.
        stride: pieces between window starts for long inputs (default: half a window).
        long_inputs: "windows" (default) or "truncate" (counted).
    """

    task_name = "classification"

    def __init__(self, encoder, num_classes: int, preprocessor=None, label_names=None,
                 dropout: float | None = None, aggregation: str = "mean",
                 stride: int | None = None, long_inputs: str = "windows", **kwargs):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if label_names is not None and len(label_names) != num_classes:
            raise ValueError(f"{len(label_names)} label_names for {num_classes} classes")
        if aggregation not in ("mean", "max"):
            raise ValueError(f"aggregation must be 'mean' or 'max', got {aggregation!r}")
        # === Layers ===
        pool = sentence_pooling(encoder)
        dropout_layer, head = classifier_layers(encoder, num_classes, dropout)

        # === Functional model ===
        inputs = encoder_input_layers()
        pooled = pool(encoder(inputs))
        logits = head(dropout_layer(pooled))
        super().__init__(inputs=inputs, outputs={"logits": logits}, **kwargs)

        # === Config ===
        self._keep_settings(encoder, preprocessor, num_classes=int(num_classes),
                            label_names=list(label_names) if label_names is not None else None,
                            dropout=dropout, aggregation=aggregation, stride=stride,
                            long_inputs=long_inputs)
        self.classifier = head

    @property
    def is_regression(self) -> bool:
        return self.num_classes == 1

    def get_config(self):
        return self._task_config(num_classes=self.num_classes, label_names=self.label_names,
                                 dropout=self.dropout, aggregation=self.aggregation,
                                 stride=self.stride, long_inputs=self.long_inputs)

    # ------------------------------------------------------------------ compile defaults
    def default_loss(self):
        if self.is_regression:
            return {"logits": keras.losses.MeanSquaredError()}
        return {"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    def default_metrics(self):
        if self.is_regression:
            return {"logits": [keras.metrics.MeanAbsoluteError(name="mae")]}
        return {"logits": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    # ------------------------------------------------------------------ raw inputs
    def encode_raw(self, x):
        texts, pairs = (x if isinstance(x, (tuple, list)) and len(x) == 2
                        and not isinstance(x[0], (str, bytes)) else (x, None))
        return encode_windows(self.preprocessor, texts, pairs, stride=self.stride,
                              long_inputs=self.long_inputs)

    def label_ids(self, y) -> np.ndarray:
        """Class ids (or float targets) from label names, ids or numbers."""
        y = list(y)
        if self.is_regression:
            return np.asarray(y, "float32").reshape(-1, 1)
        if self.label_names is not None and y and isinstance(y[0], str):
            index = {name: i for i, name in enumerate(self.label_names)}
            unknown = sorted({v for v in y if v not in index})
            if unknown:
                raise ValueError(f"unknown label(s): {', '.join(map(repr, unknown[:5]))}")
            return np.asarray([index[v] for v in y], "int32")
        return np.asarray(y, "int32")

    def label_arrays(self, y, encoded):
        return {"logits": self.label_ids(y)[encoded.example_index]}

    def predict_logits(self, x, batch_size: int = 32):
        """Per-example logits for raw inputs, windows aggregated (`aggregation`), plus the
        `Encoded` rows (window and truncation counts)."""
        rows, encoded = self.predict_windows(x, batch_size)
        window_logits = np.stack(rows["logits"]).astype("float64")
        return aggregate_windows(window_logits, encoded.example_index, encoded.num_examples,
                                 self.aggregation), encoded

    def predict(self, x, batch_size=None, **kwargs):
        """Keras `predict`; raw strings give `{"logits": per-example logits}`."""
        if self._is_raw(x):
            return {"logits": self.predict_logits(x, batch_size or 32)[0]}
        return super().predict(x, batch_size=batch_size, **kwargs)

    def classify(self, x, batch_size: int = 32):
        """[(label name or id, probability)] per raw input; [value] for regression."""
        logits = self.predict_logits(x, batch_size)[0]
        if self.is_regression:
            return [float(v) for v in logits[:, 0]]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        best = probs.argmax(axis=1)
        names = self.label_names or list(range(self.num_classes))
        return [(names[b], float(p[b])) for b, p in zip(best, probs)]
