"""Int8 token-embedding tables for quantized exports (one scale per vocabulary row).

The token-embedding table is most of a small student's bytes (13,067 x 384 floats = 20 MB of
the 27 MB fortunes student). Quantized exports store it as int8 with one float scale per row
(symmetric, max |value| / 127), looked up as `gather(int8) -> cast -> * gather(scale)`; a
per-row scale keeps every token's vector at its own resolution, where one scale for the
whole table would flatten rare tokens with small vectors. Inside the `.tflite` that is
GATHER on an int8 constant, CAST and MUL — LiteRT builtins that need no calibration.

Example:
    >>> with int8_token_embeddings(model):                  # doctest: +SKIP
    ...     data = converter.convert(module, "dynamic_int8")
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from kbert.layers import BertEmbeddings


def quantize_rows(table: np.ndarray):
    """`(int8 table, float32 scale per row)`, symmetric per row.

    Example:
        >>> q, s = quantize_rows(np.array([[0.5, -1.0], [0.0, 0.0]], np.float32))
        >>> q.tolist(), [round(float(x), 4) for x in s]
        ([[64, -127], [0, 0]], [0.0079, 1.0])
    """
    table = np.asarray(table, np.float32)
    peak = np.max(np.abs(table), axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    quantized = np.clip(np.round(table / scale[:, None]), -127, 127).astype(np.int8)
    return quantized, scale


class Int8Lookup:
    """Stands in for a `keras.layers.Embedding` while a model is traced for export."""

    def __init__(self, table: np.ndarray):
        self.quantized, self.scale = quantize_rows(table)

    def __call__(self, token_ids):
        rows = tf.cast(tf.gather(tf.constant(self.quantized), token_ids), tf.float32)
        return rows * tf.expand_dims(tf.gather(tf.constant(self.scale), token_ids), -1)


def _embedding_layers(model):
    """Every `BertEmbeddings` layer inside `model` (nested included), once."""
    seen = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, BertEmbeddings):
            seen.setdefault(id(layer), layer)
    return list(seen.values())


@contextlib.contextmanager
def int8_token_embeddings(model):
    """Trace `model` with int8 token-embedding tables; the model is restored on exit."""
    swapped = []
    try:
        for layer in _embedding_layers(model):
            original = layer.token_embedding
            table = np.asarray(original.embeddings.numpy(), np.float32)
            object.__setattr__(layer, "token_embedding", Int8Lookup(table))
            swapped.append((layer, original))
        yield len(swapped)
    finally:
        for layer, original in swapped:
            object.__setattr__(layer, "token_embedding", original)
