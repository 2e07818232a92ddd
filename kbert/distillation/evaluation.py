"""Accuracy and macro-F1 of a classifier on labelled texts (Keras model or `.tflite`).

Example:
    >>> import numpy as np
    >>> scores(np.array([0, 1, 1]), np.array([0, 1, 0]))
    {'examples': 3, 'accuracy': 0.6666666666666666, 'macro_f1': 0.6666666666666666}
"""

from __future__ import annotations

import numpy as np

from kbert.tasks.metrics import accuracy, macro_f1


def scores(labels, predictions, num_classes: int | None = None) -> dict:
    classes = None if num_classes is None else np.arange(num_classes)
    return {"examples": int(len(labels)), "accuracy": accuracy(labels, predictions),
            "macro_f1": macro_f1(labels, predictions, classes)}
