"""The settings an app needs, stored inside the `.tflite` (and read back).

Metadata buffers: `kbert_metadata` (UTF-8 JSON: labels, max length, lower-casing, kbert
version, mode, signatures, input/output names, the model family and its tokenizer's special
tokens with their ids) and the family's tokenizer files: `kbert_vocab` (`vocab.txt`, BERT and
DistilBERT) or `kbert_tokenizer:<file>` (RoBERTa's `vocab.json` + `merges.txt`, ALBERT's
`spiece.model`), byte for byte, so an app can build the same tokenizer from the one file.

An app-ready file (`app=True`, see `kbert.export.app_metadata`) carries the standard TFLite
Model Metadata instead of kbert's tokenizer buffers: the tokenizer files, `labels.txt` and
`kbert_metadata.json` (the same JSON) are its associated files; `kbert_metadata` stays.

Example:
    >>> data = embed_metadata(data, info, mode="full_int8", signatures=["serving_default"])  # doctest: +SKIP
    >>> read_tflite_metadata("model.tflite")["labels"][:2]                                 # doctest: +SKIP
    ['computers', 'science']
"""

from __future__ import annotations

import json
import os
import tempfile

import kbert
from kbert.export import app_metadata, flatbuffer
from kbert.export.signatures import APP_INPUTS, APP_OUTPUTS, ID_INPUTS, OUTPUTS

METADATA_NAME = "kbert_metadata"
VOCAB_NAME = "kbert_vocab"
FILE_PREFIX = "kbert_tokenizer:"
JSON_FILE = "kbert_metadata.json"   # kbert's metadata as an associated file (app-ready)
# Tokenizer algorithm per family, and the special tokens an app packs a text with.
TOKENIZER_TYPES = {"bert": "wordpiece", "distilbert": "wordpiece",
                   "roberta": "byte_level_bpe", "albert": "sentencepiece"}
SPECIALS = ("cls", "sep", "pad", "unk", "mask")


def _tokenizer_files(info) -> list:
    files = list(getattr(info, "tokenizer_files", ()) or ())
    return files or ([info.vocab_file] if info.vocab_file else [])


def _buffer_name(info, path: str) -> str:
    return VOCAB_NAME if TOKENIZER_TYPES[info.family] == "wordpiece" else \
        FILE_PREFIX + os.path.basename(path)


def tokenizer_metadata(info, tokenizer=None, app: bool = False) -> dict:
    """What an app needs to tokenize like kbert: the algorithm, the files (metadata buffer
    names; associated file names in an app-ready file), casing, and special tokens with
    their ids (from `tokenizer`, when given)."""
    found = {"type": TOKENIZER_TYPES[info.family], "family": info.family,
             "lower_case": bool(info.do_lower_case),
             "files": {os.path.basename(p): os.path.basename(p) if app else
                       _buffer_name(info, p) for p in _tokenizer_files(info)},
             "packing": "cls pieces sep; token_type_ids all 0"}
    if app:
        found["files_are"] = "TFLite Model Metadata associated files (zip archive at the end)"
    if TOKENIZER_TYPES[info.family] == "wordpiece":
        found.update(vocab="vocab.txt" if app else VOCAB_NAME, cls="[CLS]", sep="[SEP]", pad="[PAD]", unk="[UNK]",
                     mask="[MASK]")
    if tokenizer is not None:
        for name in SPECIALS:
            token_id = int(getattr(tokenizer, f"{name}_id"))
            found[name], found[f"{name}_id"] = tokenizer.vocab[token_id], token_id
    return found


def build_metadata(info, mode: str, signatures, extra: dict | None = None,
                   tokenizer=None, app: bool = False) -> dict:
    if app:
        return {**build_metadata(info, mode, signatures, extra, tokenizer),
                "profile": "app", "inputs": {"serving_default": list(APP_INPUTS)},
                "outputs": list(APP_OUTPUTS),
                "tokenizer": tokenizer_metadata(info, tokenizer, app=True)}
    return {
        "kbert_version": kbert.__version__,
        "task": info.task,
        "family": info.family,
        "labels": list(info.labels),
        "max_seq_length": int(info.max_seq_length),
        "do_lower_case": bool(info.do_lower_case),
        "mode": mode,
        "signatures": list(signatures),
        "inputs": {"serving_default": list(ID_INPUTS), "serving_strings": ["text"]},
        "outputs": list(OUTPUTS),
        "tokenizer": tokenizer_metadata(info, tokenizer),
        **(extra or {}),
    }


def embed_metadata(data: bytes, info, mode: str, signatures, extra: dict | None = None,
                   tokenizer=None, app: bool = False) -> bytes:
    """`data` with kbert's metadata and the family's tokenizer files inside (`app`: as TFLite
    Model Metadata, see the module docstring). The metadata records `weights_sha256`
    (`flatbuffer.weights_sha256`), checked by every reader."""
    extra = {**(extra or {}), "weights_sha256": flatbuffer.weights_sha256(data)}
    found = build_metadata(info, mode, signatures, extra, tokenizer, app=app)
    text = json.dumps(found, indent=1, sort_keys=True).encode()
    if app:
        return _embed_app_metadata(data, info, found, text)
    entries = {METADATA_NAME: text}
    for path in _tokenizer_files(info):
        with open(path, "rb") as f:
            entries[_buffer_name(info, path)] = f.read()
    return flatbuffer.add_metadata(data, entries)


def _embed_app_metadata(data: bytes, info, found: dict, text: bytes) -> bytes:
    files = {}
    for path in _tokenizer_files(info):
        with open(path, "rb") as f:
            files[os.path.basename(path)] = f.read()
    if not files:
        raise ValueError("an app-ready .tflite needs the model's tokenizer files")
    data = flatbuffer.add_metadata(app_metadata.strip_archive(data), {METADATA_NAME: text})
    standard = app_metadata.classifier_metadata(
        data, found, next(iter(files)),
        extra_files=[(JSON_FILE, "kbert's metadata (JSON): labels, max length, casing, "
                                 "tokenizer, mode, verification; `python -m export.metadata "
                                 "FILE` prints it")])
    labels = "".join(f"{label}\n" for label in found["labels"]).encode()
    return app_metadata.populate(data, standard, {**files, app_metadata.LABELS_FILE: labels,
                                                  JSON_FILE: text})


def write_tokenizer_files(found: dict, directory: str) -> list:
    """Write the tokenizer files a `.tflite` carries (`read_tflite_metadata`'s
    `tokenizer_files`) into `directory`; their paths, in the family's order."""
    from kbert.tokenizers.families import tokenizer_files
    paths = tokenizer_files(found.get("family", "bert"), directory)
    for path in paths:
        name = os.path.basename(path)
        if name not in found["tokenizer_files"]:
            raise ValueError(f"this .tflite carries no {name} (its tokenizer files: "
                             f"{', '.join(found['tokenizer_files']) or 'none'})")
        with open(path, "wb") as f:
            f.write(found["tokenizer_files"][name])
    return paths


def _token_list(found: dict) -> list:
    with tempfile.TemporaryDirectory(prefix="kbert_tokenizer_") as tmp:
        paths = write_tokenizer_files(found, tmp)
        if found.get("family") == "roberta":
            from kbert.tokenizers.bpe import load_bpe_vocab
            return list(load_bpe_vocab(paths[0]))
        from kbert.tokenizers.sentencepiece import load_sentencepiece_vocab
        return list(load_sentencepiece_vocab(paths[0]))


def read_tflite_metadata(path_or_bytes) -> dict:
    """kbert's metadata of a `.tflite` (path or bytes), with `vocab` as a token list and
    `tokenizer_files` as {file name: bytes}. A truncated or damaged file (its weights no
    longer match the `weights_sha256` export.tflite recorded) is a ValueError naming it."""
    data = path_or_bytes
    name = "this .tflite"
    if isinstance(path_or_bytes, str):
        name = path_or_bytes
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    try:
        buffers = flatbuffer.read_metadata_buffers(data)
        if METADATA_NAME not in buffers:
            raise ValueError("holds no kbert metadata (not written by export.tflite)")
        found = json.loads(buffers[METADATA_NAME].decode("utf-8"))
        recorded = found.get("weights_sha256")
        if recorded and flatbuffer.weights_sha256(data) != recorded:
            raise ValueError("is damaged: its weights no longer match the checksum "
                             "export.tflite recorded (weights_sha256); export it again")
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    found.setdefault("family", "bert")   # files written before families
    files = {name[len(FILE_PREFIX):]: bytes(value) for name, value in buffers.items()
             if name.startswith(FILE_PREFIX)}
    if found.get("profile") == "app":
        packed = app_metadata.associated_files(data)
        files = {name: packed[name] for name in found["tokenizer"]["files"] if name in packed}
        if "vocab.txt" in files:
            found["vocab"] = files["vocab.txt"].decode("utf-8").splitlines()
    if VOCAB_NAME in buffers:
        files["vocab.txt"] = bytes(buffers[VOCAB_NAME])
        found["vocab"] = buffers[VOCAB_NAME].decode("utf-8").splitlines()
    found["tokenizer_files"] = files
    if "vocab" not in found and files:
        found["vocab"] = _token_list(found)
    return found
