"""Task models for fine-tuning with Keras `fit`, and their raw-string preprocessing.

Example:
    >>> from kbert.tasks import TextClassifier                              # doctest: +SKIP
    >>> model = TextClassifier.from_pretrained("model_dir", num_classes=3)  # doctest: +SKIP
"""

from kbert.tasks.batching import BucketedBatches, EpochSetter, default_buckets
from kbert.tasks.optimization import fine_tuning_optimizer
from kbert.tasks.preprocessing import (Encoded, TextPreprocessor, aggregate_windows,
                                       encode_windows, window_starts)
from kbert.tasks.text_classifier import TextClassifier

__all__ = ["BucketedBatches", "Encoded", "EpochSetter", "TextClassifier", "TextPreprocessor",
           "aggregate_windows", "default_buckets", "encode_windows", "fine_tuning_optimizer",
           "window_starts"]
