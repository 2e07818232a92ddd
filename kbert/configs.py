"""Model configurations: one dataclass, named sizes, JSON in the Google/Hugging Face format.

Field names follow Google's `bert_config.json` (and Hugging Face's `config.json`), so a
config file from either loads directly.

Example:
    >>> cfg = BertConfig.named("tiny", vocab_size=30522)
    >>> cfg.num_hidden_layers, cfg.hidden_size
    (2, 128)
    >>> BertConfig.from_json(cfg.to_json()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

ACTIVATIONS = ("gelu", "gelu_new", "gelu_approximate", "relu", "tanh")

# Turc et al. 2019 ("Well-Read Students Learn Better") compact sizes, plus BERT base/large.
# name: (num_hidden_layers, hidden_size)
NAMED_SIZES = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field (and file, if any)."""


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Architecture of a BERT encoder.

    Example:
        >>> BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2,
        ...            num_attention_heads=2, intermediate_size=256).head_size
        32
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02

    def __post_init__(self):
        self.validate()

    # ----------------------------------------------------------------- validation
    def validate(self, source: str | None = None) -> None:
        where = f" in {source}" if source else ""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name}{where} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size{where} ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{name}{where} must be in [0, 1), got {value!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"hidden_act{where} must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        for name in ("layer_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name}{where} must be a positive number, got {value!r}")

    # ----------------------------------------------------------------- properties
    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ----------------------------------------------------------------- construction
    @classmethod
    def named(cls, size: str, **overrides: Any) -> "BertConfig":
        """A named size (`tiny, mini, small, medium, base, large`), heads = hidden/64."""
        if size not in NAMED_SIZES:
            raise ConfigError(f"unknown model size {size!r}; choose one of {sorted(NAMED_SIZES)}")
        layers, hidden = NAMED_SIZES[size]
        values = dict(hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None, strict: bool = False) -> "BertConfig":
        """Build from a dict; keys of other tools (`architectures`, `model_type`, ...) are
        ignored unless `strict`. Hugging Face's `layer_norm_eps` and Google's files are
        both understood."""
        where = f" in {source}" if source else ""
        if not isinstance(values, dict):
            raise ConfigError(f"config{where} must be a JSON object, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if strict and unknown:
            raise ConfigError(f"unknown config keys{where}: {unknown}")
        kwargs = {k: v for k, v in values.items() if k in known}
        try:
            config = cls.__new__(cls)
            defaults = cls()
            merged = {**defaults.to_dict(), **kwargs}
            for k, v in merged.items():
                object.__setattr__(config, k, v)
            config.validate(source)
        except ConfigError:
            raise
        except Exception as e:  # pragma: no cover - defensive
            raise ConfigError(f"invalid config{where}: {e}") from e
        return config

    @classmethod
    def from_json(cls, text_or_path: str, strict: bool = False) -> "BertConfig":
        """Parse JSON text, or read a JSON file when given an existing path."""
        source = None
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            source = text_or_path
            if not os.path.isfile(text_or_path):
                raise ConfigError(f"config file not found: {text_or_path}")
            with open(text_or_path, encoding="utf-8") as f:
                text = f.read()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"config{' ' + source if source else ''} is not valid JSON "
                f"(line {e.lineno}, column {e.colno}): {e.msg}") from e
        return cls.from_dict(values, source=source, strict=strict)

    def save(self, path: str) -> None:
        """Write `config.json` atomically."""
        from kbert import fileio
        fileio.atomic_write_text(path, self.to_json() + "\n")
