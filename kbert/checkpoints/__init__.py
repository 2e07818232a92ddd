"""Import pre-trained BERT weights: Hugging Face directories and Google TF1 checkpoints.

Both formats share one name map (`kbert.checkpoints.mapping`); a checkpoint that does not
fit the model exactly (missing, extra or wrongly shaped tensors) is refused with an error
that lists them.

Example:
    >>> from kbert.checkpoints import import_checkpoint
    >>> model = import_checkpoint("all-MiniLM-L6-v2/")           # doctest: +SKIP
    >>> model = import_checkpoint("uncased_L-12_H-768_A-12/")    # doctest: +SKIP
"""

from __future__ import annotations

import os

from kbert.checkpoints.google import import_google, is_google_checkpoint
from kbert.checkpoints.huggingface import import_huggingface, is_huggingface_directory
from kbert.checkpoints.mapping import CheckpointError, CheckpointMismatchError

HUGGINGFACE = "huggingface"
GOOGLE = "google"


def detect_format(path: str) -> str:
    """"huggingface" or "google" for a checkpoint path; CheckpointError naming it otherwise.

    Example:
        >>> detect_format("uncased_L-12_H-768_A-12/")                # doctest: +SKIP
        'google'
    """
    if os.path.isdir(path) and is_huggingface_directory(path):
        return HUGGINGFACE
    if is_google_checkpoint(path):
        return GOOGLE
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    raise CheckpointError(
        f"{path} is neither a Hugging Face BERT directory (config.json + model.safetensors "
        f"or pytorch_model.bin) nor a Google BERT checkpoint (bert_config.json + *.ckpt.index)")


def import_checkpoint(path: str, **kwargs):
    """Import either format, detected from the files (see `import_huggingface`,
    `import_google` for the keyword arguments)."""
    if detect_format(path) == HUGGINGFACE:
        return import_huggingface(path, **kwargs)
    return import_google(path, **kwargs)


__all__ = ["CheckpointError", "CheckpointMismatchError", "detect_format", "import_checkpoint",
           "import_google", "import_huggingface"]
