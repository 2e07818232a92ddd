"""Model configurations: one dataclass, named sizes, families, JSON in the Google/Hugging
Face format.

Field names follow Google's `bert_config.json` (and Hugging Face's `config.json`), so a
config file from either loads directly. RoBERTa, ALBERT and DistilBERT are BERT's layers
under other values of a few fields (`FAMILIES`): a fifth family is one more entry there and
a name map in `kbert.checkpoints.families`.

Example:
    >>> cfg = BertConfig.named("tiny", vocab_size=30522)
    >>> cfg.num_hidden_layers, cfg.hidden_size
    (2, 128)
    >>> BertConfig.from_json(cfg.to_json()) == cfg
    True
    >>> albert = BertConfig.named("base", family="albert")
    >>> albert.embedding_size, albert.share_layers, albert.vocab_size
    (128, 'all', 30000)
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


# What each family changes from BERT's defaults (Hugging Face's defaults for that family).
FAMILIES = {
    "bert": {},
    # Liu et al. 2019: byte-level BPE vocabulary, one token type, positions counted after
    # the padding index (ids 0 and 1 unused), LayerNorm eps 1e-5.
    "roberta": dict(vocab_size=50265, type_vocab_size=1, position_offset=2,
                    max_position_embeddings=514, layer_norm_eps=1e-5),
    # Lan et al. 2019: factorized embeddings (E=128), every layer shared, tanh GELU, no
    # dropout (v2), SentencePiece vocabulary of 30k.
    "albert": dict(vocab_size=30000, embedding_size=128, share_layers="all",
                   hidden_act="gelu_new", hidden_dropout_prob=0.0,
                   attention_probs_dropout_prob=0.0),
    # Sanh et al. 2019: half of BERT's layers, no token types, no pooler.
    "distilbert": dict(type_vocab_size=0, use_pooler=False),
}
# Which layers `share_layers` makes one set of weights for all blocks.
SHARE_LAYERS = ("none", "all", "attention", "feed_forward")
# Pre-training's sentence objectives, and the one each family pre-trains with unless told.
SENTENCE_OBJECTIVES = ("nsp", "sop", "none")
DEFAULT_SENTENCE_OBJECTIVE = {"bert": "nsp", "albert": "sop", "roberta": "none",
                              "distilbert": "none"}


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
    # --- family options (BERT's values by default) ---
    family: str = "bert"
    embedding_size: int | None = None  # token embedding width; None = hidden_size (ALBERT: E)
    share_layers: str = "none"  # cross-layer sharing: none, all, attention, feed_forward
    position_offset: int = 0  # RoBERTa: 2 (padding index + 1), positions count real tokens
    use_pooler: bool = True  # DistilBERT: False (no [CLS] pooler, no sentence head)

    def __post_init__(self):
        self.validate()

    # ----------------------------------------------------------------- validation
    def validate(self, source: str | None = None) -> None:
        where = f" in {source}" if source else ""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size",
                     "embedding_size", "position_offset"):
            value = getattr(self, name)
            if value is None and name == "embedding_size":
                continue
            lowest = 0 if name in ("type_vocab_size", "position_offset") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
                kind = "a non-negative" if lowest == 0 else "a positive"
                raise ConfigError(f"{name}{where} must be {kind} integer, got {value!r}")
        if self.family not in FAMILIES:
            raise ConfigError(f"family{where} must be one of {sorted(FAMILIES)}, "
                              f"got {self.family!r}")
        if self.share_layers not in SHARE_LAYERS:
            raise ConfigError(f"share_layers{where} must be one of {SHARE_LAYERS}, "
                              f"got {self.share_layers!r}")
        if not isinstance(self.use_pooler, bool):
            raise ConfigError(f"use_pooler{where} must be true or false, got {self.use_pooler!r}")
        if self.max_sequence_length < 1:
            raise ConfigError(f"position_offset{where} ({self.position_offset}) leaves no "
                              f"positions of max_position_embeddings "
                              f"({self.max_position_embeddings})")
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

    @property
    def embedding_width(self) -> int:
        """Width of the token embedding: `embedding_size` if factorized, else hidden_size."""
        return self.embedding_size or self.hidden_size

    @property
    def max_sequence_length(self) -> int:
        """Longest input: the position table less RoBERTa's offset (514 - 2 = 512)."""
        return self.max_position_embeddings - self.position_offset

    # ----------------------------------------------------------------- construction
    @classmethod
    def named(cls, size: str, family: str = "bert", **overrides: Any) -> "BertConfig":
        """A named size (`tiny, mini, small, medium, base, large`) of a family, heads =
        hidden/64. DistilBERT has half the layers of the BERT of that size."""
        if size not in NAMED_SIZES:
            raise ConfigError(f"unknown model size {size!r}; choose one of {sorted(NAMED_SIZES)}")
        if family not in FAMILIES:
            raise ConfigError(f"unknown model family {family!r}; choose one of "
                              f"{sorted(FAMILIES)}")
        layers, hidden = NAMED_SIZES[size]
        if family == "distilbert":
            layers = max(1, layers // 2)
        values = dict(FAMILIES[family], family=family, hidden_size=hidden,
                      num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                      intermediate_size=4 * hidden)
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
        """Build from a dict; keys of other tools (`architectures`, ...) are ignored unless
        `strict`. Google's files and Hugging Face's `config.json` of every family (told by
        its `model_type`) are understood; fields a dict leaves out take its family's
        defaults."""
        where = f" in {source}" if source else ""
        if not isinstance(values, dict):
            raise ConfigError(f"config{where} must be a JSON object, got {type(values).__name__}")
        if "model_type" in values and "family" not in values:
            values = huggingface_values(values, source)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if strict and unknown:
            raise ConfigError(f"unknown config keys{where}: {unknown}")
        kwargs = {k: v for k, v in values.items() if k in known}
        try:
            config = cls.__new__(cls)
            family = FAMILIES.get(kwargs.get("family", "bert"), {})
            merged = {**cls().to_dict(), **family, **kwargs}
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


# Hugging Face `config.json` keys of DistilBERT, renamed to BERT's.
_DISTILBERT_KEYS = {"dim": "hidden_size", "n_layers": "num_hidden_layers",
                    "n_heads": "num_attention_heads", "hidden_dim": "intermediate_size",
                    "dropout": "hidden_dropout_prob",
                    "attention_dropout": "attention_probs_dropout_prob",
                    "activation": "hidden_act"}


def huggingface_values(values: dict, source: str | None = None) -> dict:
    """A Hugging Face `config.json` dict in kbert's fields, its `model_type` naming the family.

    Refuses, naming the key, what the shared layers cannot represent (ALBERT layer groups,
    DistilBERT sinusoidal positions) and every `model_type` outside `FAMILIES`.

    Example:
        >>> huggingface_values({"model_type": "distilbert", "dim": 64, "n_layers": 2})
        {'family': 'distilbert', 'hidden_size': 64, 'num_hidden_layers': 2}
    """
    where = f"{source}: " if source else ""
    model_type = values.get("model_type", "bert")
    if model_type not in FAMILIES:
        raise ConfigError(f"{where}model_type {model_type!r} is not supported; supported "
                          f"model types: {', '.join(sorted(FAMILIES))}")
    values = {k: v for k, v in values.items() if k != "model_type"}
    out = {"family": model_type}
    if model_type == "roberta":
        out["position_offset"] = int(values.get("pad_token_id", 1)) + 1
    elif model_type == "albert":
        for key in ("num_hidden_groups", "inner_group_num"):
            if values.get(key, 1) != 1:
                raise ConfigError(f"{where}{key}={values[key]} is not supported; kbert shares "
                                  f"one group of one layer (every released ALBERT)")
    elif model_type == "distilbert":
        if values.get("sinusoidal_pos_embds"):
            raise ConfigError(f"{where}sinusoidal_pos_embds=true is not supported; kbert's "
                              f"DistilBERT has learned position embeddings")
        values = {_DISTILBERT_KEYS.get(k, k): v for k, v in values.items()}
    out.update(values)
    return out
