"""Raw strings to encoder inputs: an in-graph Keras layer, and host-side windowing.

`TextPreprocessor` maps a batch of strings (or string pairs) to the encoder's int inputs
inside the graph: the model family's tokenizer (WordPiece for BERT and DistilBERT,
byte-level BPE for RoBERTa, SentencePiece for ALBERT), longest-first truncation for pairs
(as Hugging Face tokenizers do), the family's packing, segment ids, padding mask, padded to
the batch's longest row. It maps a `tf.data` pipeline or runs eagerly.

Packing per family (`PACKING`; a fifth family is one more entry):
    BERT, DistilBERT, ALBERT:  [CLS] A [SEP] B [SEP]      segment ids 0 ... 0 1 ... 1
    RoBERTa:                   <s> A </s></s> B </s>      segment ids all 0 (one type)

`encode_windows` is the host-side path for inputs longer than `max_seq_length`: every text
becomes one or more overlapping windows (nothing is dropped), each remembering the example
it came from, so window logits can be aggregated back per example.

Example:
    >>> pre = TextPreprocessor("vocab.txt", max_seq_length=16)          # doctest: +SKIP
    >>> pre(["hello world"])["token_ids"].numpy()                       # doctest: +SKIP
    array([[ 101, 7592, 2088,  102]], dtype=int32)
    >>> pre({"text": ["a question"], "text_pair": ["a context"]})       # doctest: +SKIP
    >>> TextPreprocessor("roberta_dir", family="roberta")               # doctest: +SKIP
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import tempfile

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from kbert import text as text_utils
from kbert.tokenizers import BertTokenizer, load_vocab, to_lists
from kbert.tokenizers.families import (TOKENIZER_FILES, files_beside, load_family_tokenizer,
                                       tokenizer_files)

TOKENIZE_CHUNK = 2048
# Tokenizer files kept in a layer's config as base64 text (the others are UTF-8 text).
BINARY_FILES = ("spiece.model",)


@dataclasses.dataclass(frozen=True)
class PackingFormat:
    """How a family lays out one text or a pair, and cuts text into words.

    Attributes:
        pair_separators: separators between A and B (RoBERTa's `</s></s>`: 2).
        pair_segment_ids: whether B gets segment id 1 (False: one token type, RoBERTa).
        word_prefix: put before a pre-split word when it is tokenized alone (RoBERTa's
            " ", as Hugging Face's `add_prefix_space=True` for words).
        word_split: how a context is cut into words with character offsets for question
            answering: "bert" (whitespace and punctuation), "whitespace" (SentencePiece:
            pieces never cross a space), "bpe" (GPT-2's pre-tokens, leading space kept).
    """
    pair_separators: int = 1
    pair_segment_ids: bool = True
    word_prefix: str = ""
    word_split: str = "bert"


PACKING = {"bert": PackingFormat(), "distilbert": PackingFormat(),
           "albert": PackingFormat(word_split="whitespace"),
           "roberta": PackingFormat(pair_separators=2, pair_segment_ids=False, word_prefix=" ",
                                    word_split="bpe")}
WORDPIECE_FAMILIES = ("bert", "distilbert")


def read_tokenizer_files(family: str, files) -> dict[str, str]:
    """{file name: contents} of `family`'s tokenizer files (a directory, its first file, or
    the list), binary files as base64: what a preprocessor's config stores."""
    if isinstance(files, (str, os.PathLike)):
        files = os.fspath(files)
        files = (tokenizer_files(family, files) if os.path.isdir(files)
                 else files_beside(family, files))
    contents = {}
    for name, path in zip(TOKENIZER_FILES[family], files):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{family} tokenizer file not found: {path}")
        with open(path, "rb") as f:
            data = f.read()
        contents[name] = (base64.b64encode(data).decode("ascii") if name in BINARY_FILES
                          else data.decode("utf-8"))
    return contents


def write_tokenizer_files(contents: dict[str, str], directory: str) -> list[str]:
    """Write {file name: contents} (see `read_tokenizer_files`) into `directory`; the paths."""
    paths = []
    for name, value in contents.items():
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(value) if name in BINARY_FILES else value.encode("utf-8"))
        paths.append(path)
    return paths


def make_tokenizer(vocabulary, lower_case: bool = True, normalization: str = "exact",
                   family: str = "bert"):
    """The family's tokenizer from a vocab.txt path or a list of tokens (WordPiece), or
    {file name: contents} (`read_tokenizer_files`) for any family."""
    if isinstance(vocabulary, (str, os.PathLike)):
        return BertTokenizer(os.fspath(vocabulary), lower_case=lower_case,
                             normalization=normalization)
    with tempfile.TemporaryDirectory(prefix="kbert_vocab_") as tmp:
        if isinstance(vocabulary, dict):
            write_tokenizer_files(vocabulary, tmp)
            files = tokenizer_files(family, tmp)   # in the family's order
            if family in WORDPIECE_FAMILIES:
                return BertTokenizer(files[0], lower_case=lower_case,
                                     normalization=normalization)
            return load_family_tokenizer(family, files, lower_case=lower_case)
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


def _bpe_words(texts: list[str]) -> list[list[str]]:
    """GPT-2's pre-tokens of each text (" world", ","), which join back to the text."""
    from keras_hub.src.tokenizers.byte_pair_tokenizer import split_strings_for_bpe
    if not texts:
        return []
    words = to_lists(split_strings_for_bpe(tf.constant(texts)))
    return [[w.decode("utf-8") for w in row] for row in words]


def split_words_with_offsets(context: str) -> list[tuple[int, int]]:
    """Character spans of BERT's words (whitespace dropped, each punctuation character and
    CJK ideograph a word of its own).

    Example:
        >>> s = "Hi, Bob!"
        >>> [s[a:b] for a, b in split_words_with_offsets(s)]
        ['Hi', ',', 'Bob', '!']
    """
    spans, start = [], None
    for i, ch in enumerate(context):
        if text_utils.is_whitespace(ch) or text_utils.is_control(ch):
            if start is not None:
                spans.append((start, i))
                start = None
        elif text_utils.is_punctuation(ch) or text_utils.is_cjk(ch):
            if start is not None:
                spans.append((start, i))
                start = None
            spans.append((i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(context)))
    return spans


def _spans_of_fragments(fragments: list[str]) -> list[tuple[int, int]]:
    """Character spans of consecutive fragments, leading whitespace left out of each
    (a fragment of whitespace only keeps its span)."""
    spans, position = [], 0
    for fragment in fragments:
        stripped = len(fragment) - len(fragment.lstrip())
        start = position + (stripped if stripped < len(fragment) else 0)
        position += len(fragment)
        spans.append((start, position))
    return spans


@keras.saving.register_keras_serializable(package="kbert")
class TextPreprocessor(keras.layers.Layer):
    """Strings (or string pairs) to `token_ids`, `segment_ids`, `padding_mask` in-graph.

    Args:
        vocabulary: the tokenizer's vocabulary, stored in the config so a saved model needs
            no side file: for WordPiece (BERT, DistilBERT) a vocab.txt path or the list of
            tokens; for any family a directory holding its tokenizer files, its first file
            (`vocab.json` with `merges.txt` beside it, `spiece.model`), or
            {file name: contents} as `read_tokenizer_files` gives.
        lower_case: uncased normalisation (must match the vocabulary; BPE has none).
        max_seq_length: rows are at most this long, special tokens included; longer
            inputs are truncated here (longest-first for pairs) — use `encode_windows` to
            keep everything.
        normalization: WordPiece only: "exact" (Hugging Face ids) or "fast"
            (LiteRT-convertible ops).
        family: "bert", "distilbert", "roberta" or "albert": the tokenizer and the
            packing (`PACKING`).

    Example:
        >>> pre = TextPreprocessor(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi"])
        >>> pre(tf.constant(["hi hi"]))["token_ids"].numpy().tolist()
        [[2, 5, 5, 3]]
        >>> pre.pack([5], [5, 5])
        ([2, 5, 3, 5, 5, 3], [0, 0, 0, 1, 1, 1])
    """

    def __init__(self, vocabulary, lower_case: bool = True, max_seq_length: int = 128,
                 normalization: str = "exact", family: str = "bert", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if family not in PACKING:
            raise ValueError(f"unknown model family {family!r}; choose one of {sorted(PACKING)}")
        self.packing = PACKING[family]
        if normalization != "exact" and family not in WORDPIECE_FAMILIES:
            raise ValueError(f"normalization={normalization!r} is a WordPiece option; the "
                             f"{family} tokenizer has one normalisation")
        if max_seq_length < 2 + self.packing.pair_separators:
            raise ValueError(f"max_seq_length must be >= {2 + self.packing.pair_separators}, "
                             f"got {max_seq_length}")
        if isinstance(vocabulary, (str, os.PathLike)):
            path = os.fspath(vocabulary)
            if family in WORDPIECE_FAMILIES:
                vocabulary = load_vocab(os.path.join(path, TOKENIZER_FILES[family][0])
                                        if os.path.isdir(path) else path)
            else:
                vocabulary = read_tokenizer_files(family, path)
        elif family not in WORDPIECE_FAMILIES and not isinstance(vocabulary, dict):
            raise ValueError(f"a {family} preprocessor takes its tokenizer files "
                             f"({', '.join(TOKENIZER_FILES[family])}): a directory, a path "
                             "or {file name: contents}")
        self.vocabulary = dict(vocabulary) if isinstance(vocabulary, dict) else list(vocabulary)
        self.family = family
        self.lower_case = bool(lower_case)
        self.max_seq_length = int(max_seq_length)
        self.normalization = normalization
        self.tokenizer = make_tokenizer(self.vocabulary, self.lower_case, normalization, family)
        self.cls_id, self.sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        self.built = True

    def num_special_tokens(self, pair: bool = False) -> int:
        """Special tokens a row holds: 2 for one text; 3 for a pair (RoBERTa: 4)."""
        return 2 + (self.packing.pair_separators if pair else 0)

    # ------------------------------------------------------------------ in-graph
    def call(self, inputs):
        texts, pairs = _split_inputs(inputs)
        segments = [self.tokenizer.tokenize(tf.reshape(texts, [-1]))]
        if pairs is not None:
            segments.append(self.tokenizer.tokenize(tf.reshape(pairs, [-1])))
        budget = self.max_seq_length - self.num_special_tokens(pairs is not None)
        trimmed = [tf.cast(s, tf.int64) for s in _trim_in_graph(segments, budget)]
        extra = self.packing.pair_separators - 1
        if pairs is not None and extra:
            seps = tf.fill([trimmed[1].nrows(), extra], tf.constant(self.sep_id, tf.int64))
            trimmed[1] = tf.concat([tf.RaggedTensor.from_tensor(seps), trimmed[1]], axis=1)
        ids, segment_ids = tf_text.combine_segments(trimmed, self.cls_id, self.sep_id)
        if not self.packing.pair_segment_ids:
            segment_ids = tf.zeros_like(segment_ids)
        return {"token_ids": tf.cast(ids.to_tensor(0), tf.int32),
                "segment_ids": tf.cast(segment_ids.to_tensor(0), tf.int32),
                "padding_mask": tf.cast(tf.ones_like(ids).to_tensor(0), tf.int32)}

    def compute_output_spec(self, inputs):
        # Three distinct tensors: a shared one would make a functional model wire all three
        # outputs to the same value.
        return {name: keras.KerasTensor((None, None), dtype="int32", name=name)
                for name in ("token_ids", "segment_ids", "padding_mask")}

    # ------------------------------------------------------------------ host side
    def tokenize_lists(self, texts) -> list[list[int]]:
        """Piece ids per text (Python lists), tokenized in chunks in-graph."""
        texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]
        out: list[list[int]] = []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            out.extend(to_lists(self.tokenizer.tokenize(texts[start:start + TOKENIZE_CHUNK])))
        return out

    def tokenize_words(self, words) -> list[list[int]]:
        """Piece ids per pre-split word, each tokenized as a word of a sentence (RoBERTa:
        with a leading space), so its first piece is a word start."""
        return self.tokenize_lists([self.packing.word_prefix + str(w) for w in words])

    def context_words(self, contexts) -> list[list[tuple[str, int, int]]]:
        """Per context, its words as (text to tokenize, character start, end): tokenizing
        the words one by one gives the context's own pieces, each piece knowing where it
        came from (question-answering offsets)."""
        contexts = [str(c) for c in contexts]
        split = self.packing.word_split
        if split == "bpe":
            return [[(f, a, b) for f, (a, b) in zip(fragments, _spans_of_fragments(fragments))]
                    for fragments in _bpe_words(contexts)]
        out = []
        for c in contexts:
            spans = ([m.span() for m in re.finditer(r"\S+", c)] if split == "whitespace"
                     else split_words_with_offsets(c))
            out.append([(c[a:b], a, b) for a, b in spans])
        return out

    def piece_spans(self, word: str, start: int, end: int, pieces: list) -> list:
        """Character spans of a `context_words` word's pieces. WordPiece words (punctuation
        already apart) give every piece the word's span; BPE and SentencePiece pieces get
        their own, from their lengths (bytes of a BPE symbol; characters of a piece without
        its "▁"), so an answer may end inside "numbers." — or the word's span when
        normalisation changed the word's length."""
        if self.family in WORDPIECE_FAMILIES or not pieces:
            return [(start, end)] * len(pieces)
        vocab = self.tokenizer.vocab
        if self.packing.word_split == "bpe":
            # Byte offsets in the word's UTF-8 -> character offsets (`word` starts at
            # end - len(word): its leading space is outside the span).
            lengths = [len(vocab[p]) for p in pieces]
            char_of = [i for i, ch in enumerate(word) for _ in ch.encode("utf-8")] + [len(word)]
            origin = end - len(word)
        else:
            lengths = [len(vocab[p]) - vocab[p].startswith("\u2581") for p in pieces]
            char_of, origin = list(range(len(word) + 1)), start
        if sum(lengths) != len(char_of) - 1:
            return [(start, end)] * len(pieces)
        bounds = np.cumsum([0] + lengths)
        return [(max(origin + char_of[a], start), origin + char_of[b])
                for a, b in zip(bounds[:-1], bounds[1:])]

    def pack(self, first: list, second: list | None = None) -> tuple[list, list]:
        """(token ids, segment ids) of one row in the family's layout, from piece ids."""
        ids = [self.cls_id] + list(first) + [self.sep_id]
        segments = [0] * len(ids)
        if second is not None:
            tail = [self.sep_id] * (self.packing.pair_separators - 1) + list(second) + [
                self.sep_id]
            ids += tail
            segments += [int(self.packing.pair_segment_ids)] * len(tail)
        return ids, segments

    def write_tokenizer_files(self, directory: str) -> list[str]:
        """Write the tokenizer's files (`vocab.txt`, or the family's) into `directory`."""
        if isinstance(self.vocabulary, dict):
            return write_tokenizer_files(self.vocabulary, directory)
        path = os.path.join(directory, "vocab.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in self.vocabulary))
        return [path]

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.vocabulary, lower_case=self.lower_case,
                      max_seq_length=self.max_seq_length, normalization=self.normalization,
                      family=self.family)
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


def _python_where(condition, x, y):
    return x if condition else y


def _kept_lengths(na, nb, budget: int, where=_python_where, minimum=min):
    """Pieces Hugging Face's (Rust) longest_first keeps of a pair of `na`, `nb` pieces: the
    shorter keeps at most half the budget (rounded down), the longer the rest; equal
    lengths count the second as the longer. Ints, or tensors with `where=tf.where,
    minimum=tf.minimum`."""
    over = na + nb > budget
    a_longer = na > nb
    short = minimum(where(a_longer, nb, na), budget // 2)
    long = budget - short
    return (where(over, where(a_longer, long, short), na),
            where(over, where(a_longer, short, long), nb))


def _trim_in_graph(segments: list, budget: int) -> list:
    """Ragged piece ids cut to `budget` pieces in all, longest-first for a pair."""
    segments = [s.with_row_splits_dtype(tf.int64) for s in segments]
    lengths = [s.row_lengths() for s in segments]
    if len(segments) == 1:
        keep = [tf.minimum(lengths[0], budget)]
    else:
        keep = list(_kept_lengths(lengths[0], lengths[1], budget, tf.where, tf.minimum))
    return [tf.ragged.boolean_mask(s, tf.ragged.range(n) < k[:, None])
            for s, n, k in zip(segments, lengths, keep)]


def trim_longest_first(a: list, b: list, budget: int) -> tuple[list, list]:
    """Hugging Face's longest_first truncation of a pair to `budget` pieces in all (the
    fast tokenizers' rule: the longer piece list gets the odd piece).

    Example:
        >>> trim_longest_first([1] * 5, [2] * 5, 7)
        ([1, 1, 1], [2, 2, 2, 2])
    """
    na, nb = _kept_lengths(len(a), len(b), budget)
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
    a_pieces = preprocessor.tokenize_lists(texts)
    token_ids, segment_ids, index, starts, truncated = [], [], [], [], 0

    def add(i, start, first, second=None):
        ids, segments = preprocessor.pack(first, second)
        token_ids.append(ids)
        segment_ids.append(segments)
        index.append(i)
        starts.append(start)

    if pairs is not None:
        b_pieces = preprocessor.tokenize_lists(pairs)
        budget = max_len - preprocessor.num_special_tokens(pair=True)
        for i, (a, b) in enumerate(zip(a_pieces, b_pieces)):
            ta, tb = trim_longest_first(a, b, budget)
            truncated += (len(ta), len(tb)) != (len(a), len(b))
            add(i, 0, ta, tb)
    else:
        window = max_len - preprocessor.num_special_tokens()
        stride = stride or max(window // 2, 1)
        for i, a in enumerate(a_pieces):
            if long_inputs == "truncate" or len(a) <= window:
                offsets = [0]
                truncated += len(a) > window
            else:
                offsets = window_starts(len(a), window, min(stride, window))
            for s in offsets:
                add(i, s, a[s:s + window])
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
