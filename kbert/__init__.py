"""kbert: the BERT family on Keras 3 / TensorFlow, from raw text to `.tflite`.

Example:
    >>> import kbert
    >>> cfg = kbert.BertConfig.named("tiny", vocab_size=100)
    >>> encoder = kbert.models.BertEncoder(cfg)   # doctest: +SKIP
    >>> kbert.save_pretrained(encoder, "out/model"); kbert.load("out/model")  # doctest: +SKIP
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from kbert.configs import BertConfig, ConfigError  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name):
    # TensorFlow-heavy pieces load on first use, so `import kbert.configs` stays light.
    if name == "load":
        from kbert.loading import load
        return load
    if name in ("load_tokenizer", "save_pretrained"):
        from kbert.models import saving
        return getattr(saving, name)
    if name == "import_checkpoint":
        from kbert.checkpoints import import_checkpoint
        return import_checkpoint
    if name == "models":
        import kbert.models as models
        return models
    raise AttributeError(f"module 'kbert' has no attribute {name!r}")


__all__ = ["BertConfig", "ConfigError", "import_checkpoint", "load", "load_tokenizer", "save_pretrained"]
