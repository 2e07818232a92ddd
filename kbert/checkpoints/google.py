"""Import original Google BERT TF1 checkpoints (`bert_model.ckpt*` + `bert_config.json`).

Variable names (`bert/encoder/layer_0/attention/self/query/kernel`, `cls/predictions/...`)
are renamed onto the canonical Hugging Face names by `mapping.google_to_canonical`, kernels
transposed to PyTorch layout, then the shared `mapping.assign_weights` fills the model.
Optimizer state (`adam_m`, `adam_v`, `global_step`) is skipped deliberately.

google-research/bert's `modeling.gelu` is the tanh approximation, so a `bert_config.json`
saying `"hidden_act": "gelu"` imports as `gelu_approximate` (pass `hidden_act="gelu"` for
the exact erf form, as Hugging Face's converter does).

Example:
    >>> model = import_google("uncased_L-12_H-768_A-12/")          # doctest: +SKIP
    >>> model = import_google("pretrain_out/model.ckpt-100000")    # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from typing import Iterable

import numpy as np

from kbert.checkpoints.mapping import (CheckpointError, google_to_canonical,
                                       is_google_training_state, load_into_new_model)
from kbert.configs import BertConfig

CONFIG_FILE = "bert_config.json"
DEFAULT_PREFIX = "bert_model.ckpt"
GOOGLE_GELU = "gelu_approximate"
_SUFFIX = re.compile(r"\.(index|meta|data-\d+-of-\d+)$")
# Google's release directories: uncased_L-12_H-768_A-12, wwm_cased_L-24_H-1024_A-16, ...
_RELEASE_NAME = re.compile(
    r"^(?:wwm_)?(uncased|cased|multi_cased|multilingual|chinese)_L-\d+_H-\d+_A-\d+$")


def _checkpoint_prefixes(directory: str) -> list[str]:
    return sorted(p[:-len(".index")] for p in glob.glob(os.path.join(directory, "*.index")))


def is_google_checkpoint(path: str) -> bool:
    """True for a TF checkpoint prefix/file, or a directory holding `bert_config.json` and
    a checkpoint."""
    if os.path.isdir(path):
        return (os.path.isfile(os.path.join(path, CONFIG_FILE))
                and bool(_checkpoint_prefixes(path)))
    return os.path.isfile(_SUFFIX.sub("", path) + ".index")


def find_google_checkpoint(path: str) -> tuple[str, str]:
    """(checkpoint prefix, directory) for a directory, a prefix, or one checkpoint file."""
    if os.path.isdir(path):
        prefixes = _checkpoint_prefixes(path)
        preferred = os.path.join(path, DEFAULT_PREFIX)
        if preferred in prefixes:
            return preferred, path
        if len(prefixes) == 1:
            return prefixes[0], path
        import tensorflow as tf
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest, path
        if not prefixes:
            raise CheckpointError(f"no TensorFlow checkpoint (*.index) in {path}")
        raise CheckpointError(f"several checkpoints in {path} "
                              f"({[os.path.basename(p) for p in prefixes]}); pass one prefix")
    prefix = _SUFFIX.sub("", path)
    if not os.path.isfile(prefix + ".index"):
        raise CheckpointError(f"TensorFlow checkpoint not found: {path} "
                              f"(no file {prefix}.index)")
    return prefix, os.path.dirname(prefix) or "."


def read_google_config(path: str, hidden_act: str | None = None) -> BertConfig:
    """`bert_config.json` as a BertConfig; "gelu" means Google's tanh GELU (see module doc)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{CONFIG_FILE} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON (line {e.lineno}): {e.msg}") from e
    if not isinstance(values, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    if hidden_act is not None:
        values = {**values, "hidden_act": hidden_act}
    elif values.get("hidden_act", "gelu") == "gelu":
        logging.info("%s: hidden_act 'gelu' is google-research/bert's tanh approximation; "
                     "importing as %r", path, GOOGLE_GELU)
        values = {**values, "hidden_act": GOOGLE_GELU}
    return BertConfig.from_dict(values, source=path)


def google_do_lower_case(directory: str) -> bool | None:
    """Casing from Google's release names (`uncased_L-12_H-768_A-12` → True,
    `cased_…`/`multi_cased_…` → False), as google-research/bert's own check; else None."""
    name = os.path.basename(os.path.normpath(os.path.abspath(directory)))
    match = _RELEASE_NAME.match(name)
    if not match:
        return None
    return match.group(1) in ("uncased", "multilingual", "chinese")


def read_google_tensors(prefix: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Canonical name -> array (PyTorch layout), and canonical name -> Google name."""
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except Exception as e:  # TF raises DataLossError, NotFoundError, ...
        raise CheckpointError(f"cannot read TensorFlow checkpoint {prefix}: "
                              f"{type(e).__name__}: {e}") from e
    tensors, origin, skipped = {}, {}, 0
    for name in sorted(shapes):
        if is_google_training_state(name):
            skipped += 1
            continue
        canonical, transpose = google_to_canonical(name)
        if canonical in tensors:
            raise CheckpointError(f"{prefix} holds both {origin[canonical]!r} and {name!r} "
                                  f"(the same tensor {canonical!r})")
        value = np.asarray(reader.get_tensor(name))
        if transpose and value.ndim == 2:
            value = value.T
        tensors[canonical], origin[canonical] = value, name
    if skipped:
        logging.info("skipped %d optimizer variables (adam_m, adam_v, global_step) in %s",
                     skipped, prefix)
    return tensors, origin


def import_google(path: str, heads: str = "auto", hidden_act: str | None = None,
                  config_file: str | None = None, allow_missing: Iterable[str] = (),
                  ignore_unexpected: Iterable[str] = (), **encoder_kwargs):
    """A kbert model holding the weights of a Google BERT TF1 checkpoint.

    Args:
        path: a directory with `bert_config.json` and `bert_model.ckpt.*` (or one other
            checkpoint), or a checkpoint prefix such as `out/model.ckpt-1000`.
        heads: "auto", "encoder" or "pretraining" (see `import_huggingface`).
        hidden_act: override the config's activation; by default "gelu" becomes
            "gelu_approximate", the function google-research/bert computes.
        config_file: the config, if not `bert_config.json` beside the checkpoint.
        allow_missing, ignore_unexpected: fnmatch patterns over canonical (Hugging Face)
            names, as in `import_huggingface`.
        **encoder_kwargs: passed to `BertEncoder`.

    Example:
        >>> encoder = import_google("uncased_L-2_H-128_A-2/", heads="encoder")  # doctest: +SKIP
    """
    if not os.path.exists(path) and not os.path.isfile(_SUFFIX.sub("", path) + ".index"):
        raise CheckpointError(f"Google BERT checkpoint not found: {path}")
    prefix, directory = find_google_checkpoint(path)
    config = read_google_config(config_file or os.path.join(directory, CONFIG_FILE), hidden_act)
    tensors, origin = read_google_tensors(prefix)
    logging.info("importing %d tensors from %s", len(tensors), prefix)
    return load_into_new_model(config, tensors, prefix, heads=heads, allow_missing=allow_missing,
                               ignore_unexpected=ignore_unexpected, origin=origin,
                               **encoder_kwargs)
