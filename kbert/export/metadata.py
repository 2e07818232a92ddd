"""The settings an app needs, stored inside the `.tflite` (and read back).

Two metadata buffers: `kbert_metadata` (UTF-8 JSON: labels, max length, lower-casing,
kbert version, mode, signatures, input/output names) and `kbert_vocab` (`vocab.txt`).

Example:
    >>> data = embed_metadata(data, info, mode="full_int8", signatures=["serving_default"])  # doctest: +SKIP
    >>> read_tflite_metadata("model.tflite")["labels"][:2]                                 # doctest: +SKIP
    ['computers', 'science']
"""

from __future__ import annotations

import json

import kbert
from kbert.export import flatbuffer
from kbert.export.signatures import ID_INPUTS, OUTPUTS

METADATA_NAME = "kbert_metadata"
VOCAB_NAME = "kbert_vocab"


def build_metadata(info, mode: str, signatures, extra: dict | None = None) -> dict:
    return {
        "kbert_version": kbert.__version__,
        "task": info.task,
        "labels": list(info.labels),
        "max_seq_length": int(info.max_seq_length),
        "do_lower_case": bool(info.do_lower_case),
        "mode": mode,
        "signatures": list(signatures),
        "inputs": {"serving_default": list(ID_INPUTS), "serving_strings": ["text"]},
        "outputs": list(OUTPUTS),
        "tokenizer": {"type": "wordpiece", "vocab": VOCAB_NAME, "cls": "[CLS]",
                      "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]"},
        **(extra or {}),
    }


def embed_metadata(data: bytes, info, mode: str, signatures, extra: dict | None = None) -> bytes:
    """`data` with kbert's metadata (and vocabulary, when `info.vocab_file`) inside."""
    entries = {METADATA_NAME: json.dumps(build_metadata(info, mode, signatures, extra),
                                         indent=1, sort_keys=True).encode()}
    if info.vocab_file:
        with open(info.vocab_file, "rb") as f:
            entries[VOCAB_NAME] = f.read()
    return flatbuffer.add_metadata(data, entries)


def read_tflite_metadata(path_or_bytes) -> dict:
    """kbert's metadata of a `.tflite` (path or bytes), with `vocab` as a token list."""
    data = path_or_bytes
    if isinstance(path_or_bytes, str):
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    buffers = flatbuffer.read_metadata_buffers(data)
    if METADATA_NAME not in buffers:
        raise ValueError("this .tflite holds no kbert metadata (not written by export.tflite)")
    found = json.loads(buffers[METADATA_NAME].decode("utf-8"))
    if VOCAB_NAME in buffers:
        found["vocab"] = buffers[VOCAB_NAME].decode("utf-8").splitlines()
    return found
