"""Import Hugging Face BERT, RoBERTa, ALBERT and DistilBERT directories (`config.json` +
safetensors or PyTorch weights).

Reads `model.safetensors` (or a sharded `model.safetensors.index.json`) with `safetensors`,
else `pytorch_model.bin` (or its index) with `torch.load(weights_only=True)`. Keys may carry
the model prefix (BertForPreTraining, RobertaForMaskedLM, ...) or not (BertModel); each
family's names are renamed onto BERT's by `kbert.checkpoints.families`; LayerNorm
`gamma`/`beta` of old files are understood. With pre-training head tensors the result is a
`BertPretrainer` (with a sentence head when the checkpoint has one: NSP, ALBERT's SOP),
else a `BertEncoder`. A checkpoint of another `model_type` is refused naming the supported
ones.

Example:
    >>> model = import_huggingface("all-MiniLM-L6-v2/")          # doctest: +SKIP
    >>> type(model).__name__                                      # doctest: +SKIP
    'BertEncoder'
"""

from __future__ import annotations

import json
import logging
import os
from typing import Iterable

import numpy as np

from kbert.checkpoints.families import to_canonical
from kbert.checkpoints.mapping import (CheckpointError, canonical_huggingface_name,
                                       load_into_new_model)
from kbert.configs import BertConfig, huggingface_values

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
PYTORCH_FILE = "pytorch_model.bin"
INDEX_SUFFIX = ".index.json"
_UNSUPPORTED_WEIGHTS = ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index")

# Hugging Face activation names that are the same function as one of kbert's.
_ACTIVATION_ALIASES = {"gelu_pytorch_tanh": "gelu_new", "gelu_fast": "gelu_new"}


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON (line {e.lineno}): {e.msg}") from e


def is_huggingface_directory(directory: str) -> bool:
    """True when `directory` has `config.json` and Hugging Face PyTorch/safetensors weights."""
    if not os.path.isfile(os.path.join(directory, CONFIG_FILE)):
        return False
    return any(os.path.isfile(os.path.join(directory, name))
               for name in (SAFETENSORS_FILE, SAFETENSORS_FILE + INDEX_SUFFIX,
                            PYTORCH_FILE, PYTORCH_FILE + INDEX_SUFFIX))


# ----------------------------------------------------------------------------- config
def read_huggingface_config(directory: str) -> BertConfig:
    """`config.json` as a BertConfig, refusing what kbert's BERT cannot represent.

    Example:
        >>> read_huggingface_config("all-MiniLM-L6-v2/").hidden_size  # doctest: +SKIP
        384
    """
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"no {CONFIG_FILE} in {directory}")
    values = _read_json(path)
    if not isinstance(values, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    values = huggingface_values({"model_type": "bert", **values}, source=path)
    position_type = values.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise CheckpointError(f"{path}: position_embedding_type {position_type!r} is not "
                              f"supported; kbert's BERT has absolute position embeddings")
    for flag in ("is_decoder", "add_cross_attention"):
        if values.get(flag):
            raise CheckpointError(f"{path}: {flag}=true is not supported (encoder only)")
    act = values.get("hidden_act", "gelu")
    if isinstance(act, str) and act in _ACTIVATION_ALIASES:
        values = {**values, "hidden_act": _ACTIVATION_ALIASES[act]}
    return BertConfig.from_dict(values, source=path)


def huggingface_do_lower_case(directory: str) -> bool | None:
    """Whether the tokenizer lower-cases, from `tokenizer_config.json` or `tokenizer.json`;
    None when neither says."""
    path = os.path.join(directory, "tokenizer_config.json")
    if os.path.isfile(path):
        value = _read_json(path).get("do_lower_case")
        if isinstance(value, bool):
            return value
    path = os.path.join(directory, "tokenizer.json")
    if os.path.isfile(path):
        normalizer = _read_json(path).get("normalizer") or {}
        if isinstance(normalizer.get("lowercase"), bool):
            return normalizer["lowercase"]
    return None


# ---------------------------------------------------------------------------- tensors
def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        from safetensors import safe_open
    except ImportError as e:
        raise CheckpointError(f"reading {path} needs the `safetensors` package") from e
    tensors, bfloat16 = {}, []
    try:
        with safe_open(path, framework="np") as f:
            for name in f.keys():
                if f.get_slice(name).get_dtype() == "BF16":
                    bfloat16.append(name)  # numpy has no bfloat16: read through TensorFlow
                else:
                    tensors[name] = f.get_tensor(name)
        if bfloat16:
            with safe_open(path, framework="tf") as f:
                for name in bfloat16:
                    tensors[name] = f.get_tensor(name).numpy().astype(np.float32)
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    except Exception as e:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {e}") from e
    return tensors


def _read_pytorch(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:
        raise CheckpointError(f"reading {path} needs PyTorch; convert it to safetensors or "
                              f"install torch") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {name!r} is a {type(value).__name__}, "
                                  f"not a tensor")
        if value.is_floating_point() and value.dtype != torch.float32:
            value = value.float()
        tensors[name] = value.numpy()
    return tensors


def _read_sharded(index_path: str, read_one) -> dict[str, np.ndarray]:
    index = _read_json(index_path)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index_path} has no 'weight_map'")
    directory = os.path.dirname(index_path)
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = os.path.join(directory, shard)
        if not os.path.isfile(shard_path):
            raise CheckpointError(f"shard {shard} listed in {index_path} is missing")
        tensors.update(read_one(shard_path))
    return tensors


def read_huggingface_tensors(directory: str) -> tuple[dict[str, np.ndarray], str]:
    """All tensors of a Hugging Face directory under their original keys, and the file
    they came from (safetensors preferred over PyTorch pickles)."""
    for name, reader, sharded in (
            (SAFETENSORS_FILE, _read_safetensors, False),
            (SAFETENSORS_FILE + INDEX_SUFFIX, _read_safetensors, True),
            (PYTORCH_FILE, _read_pytorch, False),
            (PYTORCH_FILE + INDEX_SUFFIX, _read_pytorch, True)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            tensors = _read_sharded(path, reader) if sharded else reader(path)
            return tensors, path
    others = [n for n in _UNSUPPORTED_WEIGHTS if os.path.isfile(os.path.join(directory, n))]
    found = f"; found only {others}, which kbert does not read" if others else ""
    raise CheckpointError(f"no {SAFETENSORS_FILE} or {PYTORCH_FILE} in {directory}{found}")


def canonical_tensors(tensors: dict[str, np.ndarray], source: str,
                      family: str = "bert") -> dict[str, np.ndarray]:
    """Rename a family's keys to the canonical form; two keys that collide are an error."""
    renamed, origin = {}, {}
    for name, value in tensors.items():
        canonical = canonical_huggingface_name(to_canonical(name, family))
        if canonical in renamed:
            raise CheckpointError(f"{source} holds both {origin[canonical]!r} and {name!r} "
                                  f"(the same tensor {canonical!r})")
        renamed[canonical], origin[canonical] = value, name
    return renamed


# ----------------------------------------------------------------------------- import
def import_huggingface(directory: str, heads: str = "auto", hidden_act: str | None = None,
                       allow_missing: Iterable[str] = (), ignore_unexpected: Iterable[str] = (),
                       **encoder_kwargs):
    """A kbert model holding the weights of a Hugging Face BERT directory.

    Args:
        directory: holds `config.json` and `model.safetensors` / `pytorch_model.bin`.
        heads: "auto" (BertPretrainer if the checkpoint has pre-training heads, else
            BertEncoder), "encoder" or "pretraining".
        hidden_act: override the config's activation (e.g. "gelu_approximate" to match
            keras-hub's BERT); None keeps `config.json`'s.
        allow_missing: fnmatch patterns of variables that may stay at their initial values
            (e.g. ["pooler.*"] for a checkpoint saved without a pooler). Logged.
        ignore_unexpected: fnmatch patterns of checkpoint tensors to drop (e.g.
            ["classifier.*"]). Logged.
        **encoder_kwargs: passed to `BertEncoder` (`output_hidden_states`, `dtype`, ...).

    Raises `CheckpointError` (or `CheckpointMismatchError`, listing the tensors) naming
    the file; `ConfigError` for an invalid `config.json`.

    Example:
        >>> encoder = import_huggingface("all-MiniLM-L6-v2/")           # doctest: +SKIP
    """
    if not os.path.isdir(directory):
        raise CheckpointError(f"Hugging Face model directory not found: {directory}")
    config = read_huggingface_config(directory)
    if hidden_act is not None:
        config = config.replace(hidden_act=hidden_act)
    tensors, source = read_huggingface_tensors(directory)
    tensors = canonical_tensors(tensors, source, config.family)
    if (config.family != "bert" and config.use_pooler
            and not any(n.startswith("pooler.") for n in tensors)):
        # RobertaForMaskedLM / AlbertForMaskedLM are saved without the pooler.
        logging.info("%s has no pooler: building the %s encoder without one", source,
                     config.family)
        config = config.replace(use_pooler=False)
    logging.info("importing %d tensors from %s", len(tensors), source)
    return load_into_new_model(config, tensors, source, heads=heads,
                               allow_missing=allow_missing,
                               ignore_unexpected=ignore_unexpected, **encoder_kwargs)
