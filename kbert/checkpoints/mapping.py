"""One name map from checkpoint tensors onto kbert's variables, and its careful application.

The canonical names are Hugging Face's `BertModel` / `BertForPreTraining` state-dict keys
without the `bert.` prefix (`embeddings.word_embeddings.weight`,
`encoder.layer.0.attention.self.query.weight`, `cls.predictions.bias`, ...), with tensors in
PyTorch layout (a linear `weight` is [out, in]). Google's TF1 names are renamed onto these by
`google_to_canonical`, so both formats share `weight_targets` and `assign_weights`.

Example:
    >>> canonical_huggingface_name("bert.encoder.layer.0.output.LayerNorm.gamma")
    'encoder.layer.0.output.LayerNorm.weight'
    >>> google_to_canonical("bert/encoder/layer_0/attention/self/query/kernel")
    ('encoder.layer.0.attention.self.query.weight', True)
    >>> google_to_canonical("cls/seq_relationship/output_weights")  # already [2, hidden]
    ('cls.seq_relationship.weight', False)
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
from typing import Iterable, Mapping

import numpy as np

# Tensors a checkpoint may carry that hold no learned state of their own:
# constant buffers, and the MLM decoder that BERT ties to the input embedding.
BUFFER_NAMES = ("embeddings.position_ids", "embeddings.token_type_ids")
TIED_COPIES = {
    "cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
HEAD_PREFIXES = ("cls.predictions.", "cls.seq_relationship.")
HEAD_CHOICES = ("auto", "encoder", "pretraining")
_MAX_LISTED = 20


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not describe a kbert model; names the file."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not match the model: lists every offending tensor.

    Attributes: `missing`, `unexpected` (lists of names), `mismatched` (name -> (found,
    expected) shapes), `invalid` (names of tensors with NaN/Inf).
    """

    def __init__(self, source, missing=(), unexpected=(), mismatched=None, invalid=(),
                 origin=None, hint=""):
        self.source = source
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.mismatched = dict(sorted((mismatched or {}).items()))
        self.invalid = sorted(invalid)
        origin = origin or {}

        def named(name):
            return f"{name} ({origin[name]})" if name in origin and origin[name] != name else name

        parts = [f"checkpoint {source} does not match the model:"]
        for title, names in (("missing tensors", self.missing),
                             ("unexpected tensors", self.unexpected),
                             ("tensors with NaN or Inf", self.invalid)):
            if names:
                parts.append(f"  {len(names)} {title}: " + _listing([named(n) for n in names]))
        if self.mismatched:
            shown = [f"{named(n)} has shape {list(found)}, model expects {list(expected)}"
                     for n, (found, expected) in self.mismatched.items()]
            parts.append(f"  {len(shown)} tensors with wrong shapes: " + _listing(shown))
        if hint:
            parts.append("  " + hint)
        super().__init__("\n".join(parts))


def _listing(items):
    text = ", ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        text += f", ... and {len(items) - _MAX_LISTED} more"
    return text


# ------------------------------------------------------------------------------ names
def canonical_huggingface_name(name: str) -> str:
    """A Hugging Face key in canonical form: no `bert.` prefix, LayerNorm `weight`/`bias`.

    Old PyTorch files (converted from TF) call the LayerNorm parameters `gamma`/`beta`.
    """
    if name.startswith("bert."):
        name = name[len("bert."):]
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
    return re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)


# Google name (after `bert/` is dropped) -> canonical name, for the leaves that do not follow
# the generic rule "/ -> ., layer_N -> layer.N, kernel|gamma -> weight, beta -> bias".
_GOOGLE_SPECIAL = {
    "embeddings/word_embeddings": "embeddings.word_embeddings.weight",
    "embeddings/position_embeddings": "embeddings.position_embeddings.weight",
    "embeddings/token_type_embeddings": "embeddings.token_type_embeddings.weight",
    "cls/predictions/output_bias": "cls.predictions.bias",
    # Stored [2, hidden] (out, in) by google-research/bert: PyTorch layout already.
    "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
    "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
}
_GOOGLE_LEAVES = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias"}

# Training state in google-research/bert checkpoints, not part of the model.
_GOOGLE_TRAINING_STATE = re.compile(
    r"(^|/)(adam_m|adam_v|global_step|good_steps|current_loss_scale)$"
    r"|^AdamWeightDecayOptimizer|^LAMB")


def is_google_training_state(name: str) -> bool:
    """True for optimizer slots and counters (`.../adam_m`, `global_step`, ...)."""
    return bool(_GOOGLE_TRAINING_STATE.search(name))


def google_to_canonical(name: str) -> tuple[str, bool]:
    """Google TF1 variable name -> (canonical name, whether to transpose to PyTorch layout).

    Names that follow no BERT rule still get a canonical-looking name, so they are reported
    as unexpected tensors rather than silently dropped.
    """
    short = name[len("bert/"):] if name.startswith("bert/") else name
    if short in _GOOGLE_SPECIAL:
        return _GOOGLE_SPECIAL[short], False
    parts = short.split("/")
    parts = [re.sub(r"^layer_(\d+)$", r"layer.\1", p) for p in parts]
    leaf = parts[-1]
    transpose = leaf == "kernel"
    parts[-1] = _GOOGLE_LEAVES.get(leaf, leaf)
    return ".".join(parts), transpose


# ---------------------------------------------------------------------------- targets
@dataclasses.dataclass(frozen=True)
class Target:
    """Where a canonical tensor goes: a Keras variable, transposed first if `transpose`."""
    variable: object
    transpose: bool = False

    @property
    def expected_shape(self) -> tuple:
        shape = tuple(self.variable.shape)
        return shape[::-1] if self.transpose else shape


def _dense(targets, name, layer):
    targets[f"{name}.weight"] = Target(layer.kernel, transpose=True)
    targets[f"{name}.bias"] = Target(layer.bias)


def _layer_norm(targets, name, layer):
    targets[f"{name}.weight"] = Target(layer.gamma)
    targets[f"{name}.bias"] = Target(layer.beta)


def is_pretrainer(model) -> bool:
    return hasattr(model, "mlm_head") and hasattr(model, "encoder")


def weight_targets(model) -> dict[str, Target]:
    """Canonical name -> `Target` for every variable of a built BertEncoder / BertPretrainer.

    Every family uses BERT's names; a variable shared by several layers (ALBERT) is named
    once, after the first layer that holds it. Optional parts (segment embedding, ALBERT's
    `encoder.embedding_hidden_mapping_in` projection, pooler, sentence head) have names only
    when the model has them.

    Example:
        >>> from kbert.configs import BertConfig
        >>> from kbert.models import BertEncoder
        >>> targets = weight_targets(BertEncoder(BertConfig.named("tiny", vocab_size=100)))
        >>> targets["encoder.layer.1.intermediate.dense.weight"].expected_shape
        (512, 128)
    """
    encoder = model.encoder if is_pretrainer(model) else model
    targets: dict[str, Target] = {}
    embeddings = encoder.embeddings
    targets["embeddings.word_embeddings.weight"] = Target(embeddings.token_embedding.embeddings)
    targets["embeddings.position_embeddings.weight"] = Target(
        embeddings.position_embedding.embeddings)
    if embeddings.segment_embedding is not None:
        targets["embeddings.token_type_embeddings.weight"] = Target(
            embeddings.segment_embedding.embeddings)
    _layer_norm(targets, "embeddings.LayerNorm", embeddings.layer_norm)
    if getattr(encoder, "embedding_projection", None) is not None:
        _dense(targets, "encoder.embedding_hidden_mapping_in", encoder.embedding_projection)
    for i, block in enumerate(encoder.transformer_layers):
        prefix = f"encoder.layer.{i}"
        attention = block.attention
        _dense(targets, f"{prefix}.attention.self.query", attention.query)
        _dense(targets, f"{prefix}.attention.self.key", attention.key)
        _dense(targets, f"{prefix}.attention.self.value", attention.value)
        _dense(targets, f"{prefix}.attention.output.dense", attention.output_dense)
        _layer_norm(targets, f"{prefix}.attention.output.LayerNorm", block.attention_layer_norm)
        _dense(targets, f"{prefix}.intermediate.dense", block.feed_forward.intermediate_dense)
        _dense(targets, f"{prefix}.output.dense", block.feed_forward.output_dense)
        _layer_norm(targets, f"{prefix}.output.LayerNorm", block.feed_forward_layer_norm)
    if encoder.pooler is not None:
        _dense(targets, "pooler.dense", encoder.pooler)
    if is_pretrainer(model):
        _dense(targets, "cls.predictions.transform.dense", model.mlm_head.transform_dense)
        _layer_norm(targets, "cls.predictions.transform.LayerNorm", model.mlm_head.layer_norm)
        targets["cls.predictions.bias"] = Target(model.mlm_head.output_bias)
        if model.nsp_head is not None:
            _dense(targets, "cls.seq_relationship", model.nsp_head.dense)
    targets = _first_name_per_variable(targets)
    n_variables = len(model.weights)
    if len(targets) != n_variables:  # a kbert layer gained a variable the map does not know
        raise AssertionError(f"name map covers {len(targets)} of {n_variables} variables of "
                             f"{type(model).__name__}; update kbert/checkpoints/mapping.py")
    return targets


def _first_name_per_variable(targets: dict[str, Target]) -> dict[str, Target]:
    """Drop later names of a variable already named (layers shared across depths)."""
    seen, unique = set(), {}
    for name, target in targets.items():
        if id(target.variable) not in seen:
            seen.add(id(target.variable))
            unique[name] = target
    return unique


# ----------------------------------------------------------------------------- models
def has_pretraining_heads(names: Iterable[str]) -> bool:
    return any(n.startswith(HEAD_PREFIXES) for n in names)


def build_model(config, pretraining: bool, sentence_head: bool = True, **encoder_kwargs):
    """A freshly built BertEncoder, or a BertPretrainer around one (with the family's
    sentence head, or masked LM only), ready to receive weights."""
    from kbert.models import BertEncoder, BertPretrainer
    encoder = BertEncoder(config, **encoder_kwargs)
    if not pretraining:
        return encoder
    model = BertPretrainer(encoder, sentence_objective=None if sentence_head else "none")
    model(model.example_inputs())
    return model


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def assign_weights(model, tensors: Mapping[str, np.ndarray], source: str,
                   allow_missing: Iterable[str] = (), ignore_unexpected: Iterable[str] = (),
                   origin: Mapping[str, str] | None = None) -> list[str]:
    """Copy canonical `tensors` into `model`, or raise before changing anything.

    Every variable must receive a tensor of the right shape, every tensor must have a home.
    Exceptions are deliberate only: constant buffers (`embeddings.position_ids`) are skipped,
    tied copies (`cls.predictions.decoder.*`) must equal what they are tied to,
    `allow_missing` / `ignore_unexpected` are fnmatch patterns the caller asked for.
    Returns the names left at their initial values (allowed missing), which are logged.

    Example:
        >>> assign_weights(encoder, tensors, "model.safetensors")  # doctest: +SKIP
        []
    """
    allow_missing, ignore_unexpected = tuple(allow_missing), tuple(ignore_unexpected)
    targets = weight_targets(model)
    missing, unexpected, invalid, mismatched = [], [], [], {}
    for name in tensors:
        if name in targets or name in BUFFER_NAMES or name in TIED_COPIES:
            continue
        if _matches(name, ignore_unexpected):
            logging.info("ignoring %s from %s (ignore_unexpected)", name, source)
        else:
            unexpected.append(name)
    left_at_init = []
    for name, target in targets.items():
        if name not in tensors:
            (left_at_init if _matches(name, allow_missing) else missing).append(name)
            continue
        value = tensors[name]
        if tuple(value.shape) != target.expected_shape:
            mismatched[name] = (tuple(value.shape), target.expected_shape)
        elif not np.all(np.isfinite(value)):
            invalid.append(name)
    hints = []
    for copy, original in TIED_COPIES.items():
        if copy in tensors and original in tensors and not np.array_equal(
                np.asarray(tensors[copy], np.float32), np.asarray(tensors[original], np.float32)):
            unexpected.append(copy)
            hints.append(f"{copy} differs from {original}, which kbert ties it to")
    if missing or unexpected or mismatched or invalid:
        if any(n.startswith("pooler.") for n in missing):
            hints.append("a checkpoint saved without a pooler loads with "
                         "allow_missing=['pooler.*']")
        if any(n.startswith(HEAD_PREFIXES) for n in missing):
            hints.append("to load only the encoder, use heads='encoder'")
        if unexpected and not any(n in TIED_COPIES for n in unexpected):
            hints.append("tensors kbert has no place for (e.g. a task head) can be dropped "
                         "deliberately with ignore_unexpected=['classifier.*']")
        hint = f"({'; '.join(hints)})" if hints else ""
        raise CheckpointMismatchError(source, missing, unexpected, mismatched, invalid,
                                      origin=origin, hint=hint)
    for name, target in targets.items():
        if name in tensors:
            value = np.asarray(tensors[name], dtype=np.float32)
            target.variable.assign(value.T if target.transpose else value)
    if left_at_init:
        logging.warning("%d variables not in %s are left at their initial values: %s",
                        len(left_at_init), source, _listing(left_at_init))
    return left_at_init


def load_into_new_model(config, tensors: Mapping[str, np.ndarray], source: str,
                        heads: str = "auto", allow_missing: Iterable[str] = (),
                        ignore_unexpected: Iterable[str] = (), origin=None, **encoder_kwargs):
    """Build the kbert model the tensors describe and fill it (see `assign_weights`).

    `heads`: "auto" (a BertPretrainer when the checkpoint has `cls.*` head tensors, else a
    BertEncoder), "encoder" (drop the heads deliberately) or "pretraining" (require them).
    """
    if heads not in HEAD_CHOICES:
        raise ValueError(f"heads must be one of {HEAD_CHOICES}, got {heads!r}")
    found_heads = has_pretraining_heads(tensors)
    pretraining = heads == "pretraining" or (heads == "auto" and found_heads)
    if not pretraining and found_heads:
        dropped = [n for n in tensors if n.startswith("cls.")]
        logging.info("heads='encoder': dropping %d head tensors of %s", len(dropped), source)
        tensors = {n: v for n, v in tensors.items() if not n.startswith("cls.")}
    # A masked-LM-only checkpoint (RobertaForMaskedLM, DistilBertForMaskedLM) has no
    # sentence head; BERT's pre-training checkpoints must have theirs.
    sentence_head = config.family == "bert" or any(
        n.startswith("cls.seq_relationship.") for n in tensors)
    model = build_model(config, pretraining, sentence_head, **encoder_kwargs)
    assign_weights(model, tensors, source, allow_missing, ignore_unexpected, origin)
    return model
