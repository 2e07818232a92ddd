"""Raw strings to encoder inputs: an in-graph Keras layer, and host-side windowing.

`TextPreprocessor` maps a batch of strings (or string pairs) to the encoder's int inputs
inside the graph (tensorflow-text ops): WordPiece, longest-first truncation for pairs (as
Hugging Face tokenizers do), `[CLS] A [SEP] B [SEP]` packing, segment ids, padding mask,
padded to the batch's longest row. It maps a `tf.data` pipeline or runs eagerly.

`encode_windows` is the host-side path for inputs longer than `max_seq_length`: every text
becomes one or more overlapping windows (nothing is dropped), each remembering the example
it came from, so window logits can be aggregated back per example.

Example:
    >>> pre = TextPreprocessor("vocab.txt", max_seq_length=16)          # doctest: +SKIP
    >>> pre(["hello world"])["token_ids"].numpy()                       # doctest: +SKIP
    array([[ 101, 7592, 2088,  102]], dtype=int32)
    >>> pre({"text": ["a question"], "text_pair": ["a context"]})       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from kbert.tokenizers import BertTokenizer, load_vocab, to_lists

TOKENIZE_CHUNK = 2048


def make_tokenizer(vocabulary, lower_case: bool = True,
                   normalization: str = "exact") -> BertTokenizer:
    """A `BertTokenizer` from a vocab.txt path or a list of tokens."""
    if isinstance(vocabulary, (str, os.PathLike)):
        return BertTokenizer(os.fspath(vocabulary), lower_case=lower_case,
                             normalization=normalization)
    with tempfile.TemporaryDirectory(prefix="kbert_vocab_") as tmp:
        path = os.path.join(tmp, "vocab.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in vocabulary))
        return BertTokenizer(path, lower_case=lower_case, normalization=normalization)


def _split_inputs(inputs):
    """(texts, pairs or None) from a string batch, a (text, pair) tuple, or a dict."""
    if isinstance(inputs, dict):
        return inputs["text"], inputs.get("text_pair")
    if isinstance(inputs, (tuple, list)) and len(inputs) == 2 and not isinstance(
            inputs[0], (str, bytes)):
        return inputs[0], inputs[1]
    return inputs, None


@keras.saving.register_keras_serializable(package="kbert")
class TextPreprocessor(keras.layers.Layer):
    """Strings (or string pairs) to `token_ids`, `segment_ids`, `padding_mask` in-graph.

    Args:
        vocabulary: a vocab.txt path or the list of tokens (stored in the config as a list,
            so a saved model needs no side file).
        lower_case: uncased normalisation (must match the vocabulary).
        max_seq_length: rows are at most this long, `[CLS]`/`[SEP]` included; longer
            inputs are truncated here (longest-first for pairs) — use `encode_windows` to
            keep everything.
        normalization: "exact" (Hugging Face ids) or "fast" (LiteRT-convertible ops).

    Example:
        >>> pre = TextPreprocessor(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi"])
        >>> pre(["hi hi"])["token_ids"].numpy().tolist()
        [[2, 5, 5, 3]]
    """

    def __init__(self, vocabulary, lower_case: bool = True, max_seq_length: int = 128,
                 normalization: str = "exact", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if max_seq_length < 3:
            raise ValueError(f"max_seq_length must be >= 3, got {max_seq_length}")
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = load_vocab(os.fspath(vocabulary))
        self.vocabulary = list(vocabulary)
        self.lower_case = bool(lower_case)
        self.max_seq_length = int(max_seq_length)
        self.normalization = normalization
        self.tokenizer = make_tokenizer(self.vocabulary, self.lower_case, normalization)
        self.cls_id, self.sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        self.built = True

    # ------------------------------------------------------------------ in-graph
    def call(self, inputs):
        texts, pairs = _split_inputs(inputs)
        segments = [self.tokenizer.tokenize(tf.reshape(texts, [-1]))]
        if pairs is not None:
            segments.append(self.tokenizer.tokenize(tf.reshape(pairs, [-1])))
        budget = self.max_seq_length - 1 - len(segments)
        # Round-robin allocation == Hugging Face's longest_first (ties trim the second).
        trimmed = tf_text.RoundRobinTrimmer(budget).trim(segments)
        ids, segment_ids = tf_text.combine_segments(trimmed, self.cls_id, self.sep_id)
        token_ids = tf.cast(ids.to_tensor(0), tf.int32)
        return {"token_ids": token_ids,
                "segment_ids": tf.cast(segment_ids.to_tensor(0), tf.int32),
                "padding_mask": tf.cast(tf.ones_like(ids).to_tensor(0), tf.int32)}

    def compute_output_spec(self, inputs):
        # Three distinct tensors: a shared one would make a functional model wire all three
        # outputs to the same value.
        return {name: keras.KerasTensor((None, None), dtype="int32", name=name)
                for name in ("token_ids", "segment_ids", "padding_mask")}

    # ------------------------------------------------------------------ host side
    def tokenize_lists(self, texts) -> list[list[int]]:
        """Word-piece ids per text (Python lists), tokenized in chunks in-graph."""
        texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]
        out: list[list[int]] = []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            out.extend(to_lists(self.tokenizer.tokenize(texts[start:start + TOKENIZE_CHUNK])))
        return out

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.vocabulary, lower_case=self.lower_case,
                      max_seq_length=self.max_seq_length, normalization=self.normalization)
        return config


def _ones_like(rows):
    return [_ones_like(r) if r and isinstance(r[0], list) else [1] * len(r) for r in rows]


def encoder_features(token_ids: list, segment_ids: list) -> dict:
    """The encoder's named inputs as lists of rows (a padding mask of ones per token);
    rows may be nested one level deeper (multiple choice)."""
    return {"token_ids": token_ids, "segment_ids": segment_ids,
            "padding_mask": _ones_like(token_ids)}


class EncoderRows:
    """What every encoded-rows class shares: its `token_ids` / `segment_ids` (lists of
    rows), counted and turned into the encoder's feature dict."""

    @property
    def num_windows(self) -> int:
        return len(self.token_ids)

    def features(self) -> dict:
        return encoder_features(self.token_ids, self.segment_ids)


@dataclasses.dataclass
class Encoded(EncoderRows):
    """Encoder rows (Python lists) and where they came from.

    `example_index[i]` is the example row `i` belongs to; `window_start[i]` the offset of
    its first piece in that example's (second, for pairs) segment; `truncated` the number
    of examples that lost pieces (only with `long_inputs="truncate"` or for pairs).
    """
    token_ids: list
    segment_ids: list
    example_index: np.ndarray
    window_start: np.ndarray
    num_examples: int
    truncated: int = 0


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of `window` pieces every `stride` covering `length` pieces.

    Example:
        >>> window_starts(10, 4, 3)
        [0, 3, 6]
        >>> window_starts(3, 4, 3)
        [0]
    """
    if stride <= 0:
        raise ValueError(f"stride must be > 0, got {stride}")
    starts = [0]
    while starts[-1] + window < length:
        starts.append(starts[-1] + stride)
    return starts


def trim_longest_first(a: list, b: list, budget: int) -> tuple[list, list]:
    """Hugging Face's longest_first truncation of a pair to `budget` pieces in all."""
    na, nb = len(a), len(b)
    while na + nb > budget:
        if na > nb:
            na -= 1
        else:
            nb -= 1
    return a[:na], b[:nb]


def encode_windows(preprocessor: TextPreprocessor, texts, pairs=None, stride: int | None = None,
                   long_inputs: str = "windows") -> Encoded:
    """Encode texts (and pairs) into rows of at most `max_seq_length`, keeping everything.

    Single texts longer than the window become overlapping windows `stride` pieces apart
    (`long_inputs="windows"`) or are cut and counted (`"truncate"`); pairs are truncated
    longest-first and counted.
    """
    if long_inputs not in ("windows", "truncate"):
        raise ValueError(f"long_inputs must be 'windows' or 'truncate', got {long_inputs!r}")
    max_len = preprocessor.max_seq_length
    cls, sep = preprocessor.cls_id, preprocessor.sep_id
    a_pieces = preprocessor.tokenize_lists(texts)
    token_ids, segment_ids, index, starts, truncated = [], [], [], [], 0
    if pairs is not None:
        b_pieces = preprocessor.tokenize_lists(pairs)
        for i, (a, b) in enumerate(zip(a_pieces, b_pieces)):
            ta, tb = trim_longest_first(a, b, max_len - 3)
            truncated += (len(ta), len(tb)) != (len(a), len(b))
            token_ids.append([cls] + ta + [sep] + tb + [sep])
            segment_ids.append([0] * (len(ta) + 2) + [1] * (len(tb) + 1))
            index.append(i)
            starts.append(0)
    else:
        window = max_len - 2
        stride = stride or max(window // 2, 1)
        for i, a in enumerate(a_pieces):
            if long_inputs == "truncate" or len(a) <= window:
                offsets = [0]
                truncated += len(a) > window
            else:
                offsets = window_starts(len(a), window, min(stride, window))
            for s in offsets:
                piece = a[s:s + window]
                token_ids.append([cls] + piece + [sep])
                segment_ids.append([0] * (len(piece) + 2))
                index.append(i)
                starts.append(s)
    return Encoded(token_ids, segment_ids, np.asarray(index, "int64"),
                   np.asarray(starts, "int64"), len(a_pieces), truncated)


def aggregate_windows(window_logits: np.ndarray, example_index: np.ndarray, num_examples: int,
                      how: str = "mean") -> np.ndarray:
    """Per-example logits from per-window logits (`mean` or `max` over an example's windows).

    Example:
        >>> aggregate_windows(np.array([[1., 0.], [3., 2.], [5., 5.]]), np.array([0, 0, 1]), 2)
        array([[2., 1.],
               [5., 5.]])
    """
    if how not in ("mean", "max"):
        raise ValueError(f"aggregation must be 'mean' or 'max', got {how!r}")
    out = np.full((num_examples,) + window_logits.shape[1:],
                  -np.inf if how == "max" else 0.0, dtype="float64")
    if how == "max":
        np.maximum.at(out, example_index, window_logits)
        return out
    np.add.at(out, example_index, window_logits)
    counts = np.bincount(example_index, minlength=num_examples).reshape(
        (-1,) + (1,) * (window_logits.ndim - 1))
    return out / np.maximum(counts, 1)
