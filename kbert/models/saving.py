"""Model directories: `config.json` + `vocab.txt` + `model.weights.h5`, written atomically.

`config.json` holds the `BertConfig` fields at top level (readable by Google/Hugging Face
tools) and a `kbert` section with the serialized Keras model, so `load` rebuilds any kbert
model (encoder, pre-trainer, task models) without being told what it is.

Example:
    >>> from kbert.configs import BertConfig
    >>> from kbert.models import BertEncoder
    >>> encoder = BertEncoder(BertConfig.named("tiny", vocab_size=100))
    >>> save_pretrained(encoder, "/tmp/kbert_doc_model")
    >>> type(load("/tmp/kbert_doc_model")).__name__
    'BertEncoder'
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import keras

from kbert import outputs

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
WEIGHTS_FILE = "model.weights.h5"
FORMAT_VERSION = 1
MODEL_KIND = "model"
# config.json fields a BERT-family model directory must hold at top level.
REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                   "intermediate_size", "max_position_embeddings")


def _example_inputs(model):
    if hasattr(model, "example_inputs"):
        return model.example_inputs()
    import numpy as np
    ids = np.ones((1, 8), "int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": ids}


def save_model_weights(model, path: str) -> None:
    """`model.save_weights` without the optimizer's slots (a compiled model's `.weights.h5`
    would otherwise carry Adam's two moments: three times the size)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        model.save_weights(path)
        return
    from keras.src.saving import saving_lib
    saving_lib.save_weights_only(model, path, objects_to_skip=[optimizer])


def _as_file_list(vocab_file) -> list:
    """`vocab_file` as a list: None, one path, or several (RoBERTa's vocab.json + merges.txt)."""
    return [vocab_file] if isinstance(vocab_file, (str, os.PathLike)) else \
        [path for path in (vocab_file or ()) if path]


def write_model_files(model, directory: str, vocab_file=None,
                      do_lower_case: bool = True, extra: dict | None = None) -> None:
    """Write config.json, model.weights.h5 and the tokenizer file(s) into an existing
    `directory`. `vocab_file`: `vocab.txt`, or a list of files copied under their own names."""
    vocab_files = _as_file_list(vocab_file)
    for path in vocab_files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"vocab_file not found: {path}")
    config = model.config.to_dict() if hasattr(model, "config") else {}
    config["kbert"] = {
        "format_version": FORMAT_VERSION,
        "class_name": type(model).__name__,
        "model": keras.saving.serialize_keras_object(model),
        "do_lower_case": bool(do_lower_case),
        **(extra or {}),
    }
    # h5py may crash the interpreter when the disk fills mid-write: check the room first.
    outputs.require_free_space(directory, _weights_file_size(model) + sum(
        os.path.getsize(path) for path in vocab_files) + 2 ** 16)
    save_model_weights(model, os.path.join(directory, WEIGHTS_FILE))
    # What `load` checks: a damaged or truncated weights file is refused, not half-read.
    config["kbert"]["weights_sha256"] = file_sha256(os.path.join(directory, WEIGHTS_FILE))
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    for path in vocab_files:
        name = VOCAB_FILE if len(vocab_files) == 1 and str(path).endswith(".txt") \
            else os.path.basename(path)
        shutil.copyfile(path, os.path.join(directory, name))
    if not vocab_files:
        logging.warning("saving %s without a vocabulary", directory)


def _weights_file_size(model) -> int:
    """A generous estimate of `model.weights.h5`'s size (data plus HDF5 overhead)."""
    import numpy as np
    return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize + 2048
               for w in model.weights)


def require_room_for_weights(model, directory: str) -> None:
    """OSError(ENOSPC) naming both sizes when `directory` cannot hold `model`'s weights
    (h5py can crash the interpreter on a disk that fills during a write)."""
    outputs.require_free_space(directory, _weights_file_size(model) + 2 ** 16)


def file_sha256(path: str) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_pretrained(model, directory: str, vocab_file=None,
                    do_lower_case: bool = True, extra: dict | None = None,
                    overwrite: bool = False, inputs=(), replace_own: bool = True) -> None:
    """Write `model` to `directory` atomically (see `kbert.outputs.replace_directory`).

    `vocab_file`: the tokenizer file (`vocab.txt`), or a list of them (RoBERTa's
    `vocab.json` + `merges.txt`), copied under their own names. kbert's own earlier model
    directory there is replaced (as Keras' `save` does; commands pass `replace_own=False`
    so that their users must say `--overwrite`); a directory kbert did not write is refused
    (`kbert.outputs.OutputError`) unless `overwrite`, and then only kbert's files are placed
    beside the ones there. `inputs` (and the tokenizer files) may not overlap it.
    """
    vocab_files = _as_file_list(vocab_file)
    for path in vocab_files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"vocab_file not found: {path}")
    with outputs.replace_directory(directory, MODEL_KIND, [*vocab_files, *inputs],
                                   overwrite=overwrite, replace_own=replace_own) as tmp:
        write_model_files(model, tmp, vocab_files, do_lower_case, extra)


def read_directory_config(directory: str) -> dict:
    """The parsed `config.json` of a model directory, with errors naming the path."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"model directory not found: {directory}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"not a kbert model directory (no {CONFIG_FILE}): {directory}")
    with open(path, encoding="utf-8") as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON (line {e.lineno}): {e.msg}") from e
    if not isinstance(config, dict) or "kbert" not in config:
        raise ValueError(f"{path} has no 'kbert' section; convert foreign checkpoints with "
                         f"`python -m kbert.convert --source {directory} --output DIR`")
    section = config["kbert"]
    for field in ("class_name", "model"):
        if not isinstance(section, dict) or field not in section:
            raise ValueError(f"{path}: the 'kbert' section lacks {field!r}")
    if any(f in config for f in REQUIRED_FIELDS):   # a model with a BertConfig
        from kbert.configs import BertConfig
        missing = [f for f in REQUIRED_FIELDS if f not in config]
        if missing:
            raise ValueError(f"{path}: missing config field {missing[0]!r}")
        BertConfig.from_dict(config, source=path)   # ConfigError naming the field
    return config


def _check_vocabulary(directory: str, config: dict) -> None:
    """A vocab.txt whose size differs from vocab_size fails later with an index error."""
    path = os.path.join(directory, VOCAB_FILE)
    if not os.path.isfile(path) or "vocab_size" not in config:
        return
    with open(path, "rb") as f:   # a size check: the tokenizer validates the tokens
        size = len(f.read().decode("utf-8", errors="replace").rstrip("\n").split("\n"))
    check_vocab_size(size, config["vocab_size"], path, os.path.join(directory, CONFIG_FILE))


def load(directory: str):
    """Rebuild the model saved in `directory` and load its weights. Task models need their
    classes registered: `kbert.load` (kbert/loading.py) imports `kbert.tasks` first."""
    import kbert.models  # noqa: F401  (registers every kbert class for deserialization)
    config = read_directory_config(directory)
    _check_vocabulary(directory, config)
    weights = os.path.join(directory, WEIGHTS_FILE)
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"model directory has no {WEIGHTS_FILE}: {directory}")
    expected = config["kbert"].get("weights_sha256")   # directories before it have none
    if expected and file_sha256(weights) != expected:
        raise ValueError(f"{weights} does not match the checksum in "
                         f"{os.path.join(directory, CONFIG_FILE)} ({os.path.getsize(weights)} "
                         f"bytes): the file is damaged or truncated")
    try:
        model = keras.saving.deserialize_keras_object(config["kbert"]["model"])
        model(_example_inputs(model))
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{os.path.join(directory, CONFIG_FILE)}: the 'kbert' model section "
                         f"does not rebuild a model ({_first_line(e)})") from e
    try:
        model.load_weights(weights)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{weights} cannot be read into the model ({_first_line(e)}); "
                         "the file is damaged or belongs to another model") from e
    return model


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_tokenizer(directory: str):
    """The tokenizer matching a model directory: its family's files (`vocab.txt`;
    RoBERTa's `vocab.json` + `merges.txt`; ALBERT's `spiece.model`) and casing.

    A tokenizer whose size differs from the model's `vocab_size` is refused with both."""
    from kbert.tokenizers.families import load_family_tokenizer, tokenizer_files
    config = read_directory_config(directory)
    family = config.get("family", "bert")
    files = tokenizer_files(family, directory)
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model directory has no {os.path.basename(path)}: "
                                    f"{directory}")
    tokenizer = load_family_tokenizer(family, files,
                                      lower_case=config["kbert"].get("do_lower_case", True))
    check_vocab_size(tokenizer.vocab_size, config.get("vocab_size"), files[0],
                     os.path.join(directory, CONFIG_FILE))
    return tokenizer


def check_vocab_size(tokenizer_size: int, model_size: int | None, path: str,
                     config_path: str | None = None) -> None:
    """Refuse a tokenizer file that does not fit the model, naming both sizes.

    Example:
        >>> check_vocab_size(100, 120, "vocab.txt")
        Traceback (most recent call last):
        ...
        ValueError: vocab.txt has 100 tokens but the model's vocab_size is 120
    """
    if model_size is not None and tokenizer_size != model_size:
        where = f" ({config_path} says vocab_size {model_size})" if config_path else ""
        raise ValueError(f"{path} has {tokenizer_size} tokens but the model's vocab_size "
                         f"is {model_size}{where}")


def load_initial_weights(model, source: str, config) -> None:
    """Initialise a `BertPretrainer` (built) from a model directory or a checkpoint prefix.

    A kbert model directory must hold the same model config (encoder weights are taken; a
    saved pre-trainer gives its heads too); a `tf.train.Checkpoint` prefix written by the
    pre-training loop must match every object. Raises ValueError naming `source`.

    Example:
        >>> load_initial_weights(pretrainer, "runs/a/pretrained_model", config)  # doctest: +SKIP
    """
    import tensorflow as tf

    if os.path.isdir(source):
        saved = load(source)
        encoder = getattr(saved, "encoder", saved)
        if encoder.config.to_dict() != config.to_dict():
            changed = sorted(k for k, v in encoder.config.to_dict().items()
                             if config.to_dict().get(k) != v)
            raise ValueError(f"{source} has a different model config ({', '.join(changed)})")
        model.encoder.set_weights(encoder.get_weights())
        if saved is not encoder:
            model.set_weights(saved.get_weights())
    else:
        status = tf.train.Checkpoint(model=model).restore(source).expect_partial()
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise ValueError(f"{source} does not match the model: {e}") from e
    logging.info("initialised weights from %s", source)


def float32_copy(pretrainer, config):
    """`pretrainer` rebuilt with float32 compute (same weights), for a model directory."""
    from kbert.models.encoder import BertEncoder
    from kbert.models.pretrainer import BertPretrainer
    copy = BertPretrainer(BertEncoder(config, dtype="float32"),
                          sentence_objective=pretrainer.sentence_objective)
    copy(copy.example_inputs())
    copy.set_weights(pretrainer.get_weights())
    return copy
