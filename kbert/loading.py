"""`kbert.load`: any kbert model directory, task models included.

`kbert.models` (encoders and pre-trainers) knows nothing of `kbert.tasks` (the heads built on
them); this module knows both, so it is where a directory of either kind is rebuilt.

Example:
    >>> import kbert
    >>> model = kbert.load("runs/fortunes_minilm/model")    # doctest: +SKIP
    >>> type(model).__name__                                # doctest: +SKIP
    'TextClassifier'
"""

from __future__ import annotations


def load(directory: str):
    """Rebuild the model saved in `directory` (an encoder, a pre-trainer or a task model)
    and load its weights; ValueError / FileNotFoundError name what is wrong."""
    import kbert.tasks  # noqa: F401  (registers the task classes for deserialization)
    from kbert.models import saving
    return saving.load(directory)
