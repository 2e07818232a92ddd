"""WordPiece vocabularies and the in-graph BERT tokenizer (tensorflow-text Fast* ops).

The tokenizer runs as TensorFlow ops (`FastBertNormalizer` + `FastWordpieceTokenizer`), so it
works inside `tf.data`, inside a `tf.function` and, through tensorflow-text's LiteRT custom
ops, inside a `.tflite` model.

Example:
    >>> tokenizer = BertTokenizer("vocab.txt")                  # doctest: +SKIP
    >>> tokenizer.tokenize(["Hello, world!"]).to_list()         # doctest: +SKIP
    [[7592, 1010, 2088, 999]]
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Iterable, Sequence

import tensorflow as tf
import tensorflow_text as tf_text

from kbert import fileio

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SUFFIX_INDICATOR = "##"

# BERT's word splitting (google-research/bert BasicTokenizer): whitespace separates words
# and is dropped; every punctuation character and every CJK ideograph is a word of its own.
# Same classes as tensorflow-text's BertTokenizer; RE2 syntax.
_CJK_RANGES = (r"[\x{4E00}-\x{9FFF}]|[\x{3400}-\x{4DBF}]|[\x{20000}-\x{2A6DF}]"
               r"|[\x{2A700}-\x{2B73F}]|[\x{2B740}-\x{2B81F}]|[\x{2B820}-\x{2CEAF}]"
               r"|[\x{F900}-\x{FAFF}]|[\x{2F800}-\x{2FA1F}]")
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
_KEEP_DELIMITERS = _PUNCTUATION + "|" + _CJK_RANGES
_DELIMITERS = r"[\s\p{Zs}]+|" + _KEEP_DELIMITERS


# --------------------------------------------------------------------------- vocabulary files
def load_vocab(path: str) -> list[str]:
    """Read a Google-style `vocab.txt` (one token per line, line number = id).

    Raises ValueError naming the file if it is missing, empty, or lacks a special token.

    Example:
        >>> load_vocab("vocab.txt")[:2]                          # doctest: +SKIP
        ['[PAD]', '[unused0]']
    """
    if not os.path.isfile(path):
        raise ValueError(f"vocabulary file not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"vocabulary file {path} is not valid UTF-8 (line {line})") from e
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the final newline
    tokens = [t.rstrip("\r") for t in tokens]
    if not tokens:
        raise ValueError(f"vocabulary file {path} is empty")
    for number, token in enumerate(tokens, start=1):
        if token.strip() == "" or token != token.strip():
            raise ValueError(
                f"vocabulary file {path}, line {number}: token {token!r} is empty or "
                "has surrounding whitespace")
    missing = [s for s in SPECIAL_TOKENS if s not in set(tokens)]
    if missing:
        raise ValueError(f"vocabulary file {path} lacks special token(s): {' '.join(missing)}")
    seen = {}
    for number, token in enumerate(tokens, start=1):
        if token in seen:
            raise ValueError(f"vocabulary file {path}, line {number}: token {token!r} repeats "
                             f"line {seen[token]}")
        seen[token] = number
    return tokens


def vocab_hash(path_or_tokens: str | Sequence[str]) -> str:
    """A stable sha256 hex digest of a vocabulary's token list (order matters).

    Accepts a vocab.txt path or the list of tokens; both give the same digest.

    Example:
        >>> vocab_hash(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])[:12]
        'cc75ba7f9a12'
    """
    tokens = load_vocab(path_or_tokens) if isinstance(path_or_tokens, str) else path_or_tokens
    digest = hashlib.sha256()
    for token in tokens:
        digest.update(token.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def write_vocab(tokens: Sequence[str], path: str) -> None:
    """Write tokens one per line (atomically); the result reads back with `load_vocab`."""
    tokens = list(tokens)
    missing = [s for s in SPECIAL_TOKENS if s not in set(tokens)]
    if missing:
        raise ValueError(f"vocabulary for {path} lacks special token(s): {' '.join(missing)}")
    bad = [t for t in tokens if not t or t != t.strip() or "\n" in t]
    if bad:
        raise ValueError(f"vocabulary for {path} has invalid tokens: {bad[:5]!r}")
    fileio.atomic_write_text(path, "".join(t + "\n" for t in tokens))


# --------------------------------------------------------------------------- in-graph normalisation
_CJK_GROUP = "([" + _CJK_RANGES.replace("[", "").replace("]", "").replace("|", "") + "])"
_PRINTABLE_ASCII = r"[\x20-\x7e]*"


def _normalize_non_ascii(texts: tf.Tensor, lower_case: bool) -> tf.Tensor:
    """google-research/bert normalisation as TF string ops (see `kbert.text.basic_tokenize`)."""
    texts = tf.strings.regex_replace(texts, r"[\t\n\r\p{Zs}]", " ")
    texts = tf.strings.regex_replace(texts, r"[^\t\n\r\PC]|\x{FFFD}", "")  # control, U+FFFD
    texts = tf.strings.regex_replace(texts, _CJK_GROUP, r" \1 ")
    if lower_case:
        texts = tf.strings.lower(texts, encoding="utf-8")
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
    return texts


def bert_normalize(texts: tf.Tensor, lower_case: bool = True) -> tf.Tensor:
    """In-graph BERT normalisation of a 1-D string tensor (punctuation is not split here).

    Same characters out as `kbert.text.basic_tokenize` (up to whitespace): control characters
    and U+FFFD removed, Unicode spaces turned into " ", CJK ideographs spaced, and when
    `lower_case` lower-cased (ICU full case mapping) with accents stripped (NFD, drop Mn).
    Printable-ASCII strings take a short cut (plain lower-casing).

    Example:
        >>> bert_normalize(tf.constant(["Crème Brûlée", "OK"])).numpy().tolist()
        [b'creme brulee', b'ok']
    """
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    is_other = tf.cast(tf.logical_not(tf.strings.regex_full_match(texts, _PRINTABLE_ASCII)),
                       tf.int32)
    ascii_texts, other_texts = tf.dynamic_partition(texts, is_other, 2)
    ascii_index, other_index = tf.dynamic_partition(tf.range(tf.size(texts)), is_other, 2)
    if lower_case:
        ascii_texts = tf.strings.lower(ascii_texts)
    other_texts = _normalize_non_ascii(other_texts, lower_case)
    return tf.dynamic_stitch([ascii_index, other_index], [ascii_texts, other_texts])


# --------------------------------------------------------------------------- the tokenizer
NORMALIZATIONS = ("exact", "fast")


class BertTokenizer(tf.Module):
    """BERT WordPiece tokenizer built from tensorflow-text's fast in-graph ops.

    Args:
        vocab_file: path of a vocab.txt (one token per line).
        lower_case: lower-case and strip accents (uncased BERT) before WordPiece.
        normalization: `"exact"` (default) normalises exactly like google-research/bert
            (and Hugging Face's BertTokenizer) with TF string ops, then runs
            `FastWordpieceTokenizer`; `"fast"` uses tensorflow-text's `FastBertTokenizer`
            end to end, whose ops also run in LiteRT (tensorflow-text custom ops), but whose
            normaliser applies NFKC case folding: it differs on compatibility characters
            ("²" -> "2", "ﬁ" -> "fi", full-width letters, "ß" -> "ss") and splits words at
            control characters instead of deleting them.
        max_bytes_per_word: longer words become `[UNK]` (Google BERT: 100 characters).

    Example:
        >>> tok = BertTokenizer("vocab.txt")                                 # doctest: +SKIP
        >>> tok.tokenize(["un-want-ed"]).to_list()                           # doctest: +SKIP
        [[4895, 1011, 2215, 1011, 3968]]
        >>> tok.tokenize_words(["unaffable running"]).to_list()             # doctest: +SKIP
        [[[14477, 20961, 3468], [2770]]]
    """

    def __init__(self, vocab_file: str, lower_case: bool = True, normalization: str = "exact",
                 max_bytes_per_word: int = 100):
        super().__init__(name="bert_tokenizer")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, "
                             f"got {normalization!r}")
        self.vocab_file = vocab_file
        self.lower_case = bool(lower_case)
        self.normalization = normalization
        self.max_bytes_per_word = int(max_bytes_per_word)
        self.vocab = load_vocab(vocab_file)
        self.vocab_size = len(self.vocab)
        self._ids = {token: i for i, token in enumerate(self.vocab)}
        self.pad_id = self._ids["[PAD]"]
        self.unk_id = self._ids["[UNK]"]
        self.cls_id = self._ids["[CLS]"]
        self.sep_id = self._ids["[SEP]"]
        self.mask_id = self._ids["[MASK]"]
        # True for "##" continuation pieces: the pieces that do not start a word.
        self._is_suffix = tf.constant(
            [t.startswith(SUFFIX_INDICATOR) and len(t) > len(SUFFIX_INDICATOR)
             for t in self.vocab], dtype=tf.bool)
        if normalization == "fast":
            self._tokenizer = tf_text.FastBertTokenizer(
                vocab=self.vocab, suffix_indicator=SUFFIX_INDICATOR,
                max_bytes_per_word=self.max_bytes_per_word, token_out_type=tf.int32,
                unknown_token="[UNK]", support_detokenization=True,
                lower_case_nfd_strip_accents=self.lower_case)
        else:
            self._tokenizer = tf_text.FastWordpieceTokenizer(
                vocab=self.vocab, suffix_indicator=SUFFIX_INDICATOR,
                max_bytes_per_word=self.max_bytes_per_word, token_out_type=tf.int32,
                unknown_token="[UNK]", no_pretokenization=False, support_detokenization=True)
        logging.info("BertTokenizer: %d tokens from %s (lower_case=%s, normalization=%s)",
                     self.vocab_size, vocab_file, self.lower_case, normalization)

    # ------------------------------------------------------------------ lookups
    def token_to_id(self, token: str) -> int:
        """The id of `token`, or `unk_id` if it is not in the vocabulary."""
        return self._ids.get(token, self.unk_id)

    def id_to_token(self, token_id: int) -> str:
        return self.vocab[token_id]

    # ------------------------------------------------------------------ tokenizing
    @staticmethod
    def _as_strings(texts) -> tf.Tensor:
        if isinstance(texts, (str, bytes)):
            raise TypeError("tokenize takes a batch of texts (a list or 1-D tensor), not one "
                            "string; wrap it in a list")
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank != 1:
            raise ValueError(f"texts must be a 1-D batch of strings, got shape {texts.shape}")
        return texts

    def tokenize(self, texts) -> tf.RaggedTensor:
        """Word-piece ids `[batch, (pieces)]` int32, without [CLS]/[SEP]."""
        texts = self._as_strings(texts)
        if self.normalization == "exact":
            texts = bert_normalize(texts, self.lower_case)
        return self._tokenizer.tokenize(texts)

    def tokenize_words(self, texts) -> tf.RaggedTensor:
        """Word-piece ids `[batch, (words), (pieces)]` int32: BERT's words kept together.

        A word is what google-research/bert's BasicTokenizer yields (punctuation characters
        are words of their own), so this is what whole-word masking needs. Flattening the
        word axis gives exactly `tokenize(texts)`.
        """
        pieces = self.tokenize(texts)
        ids = pieces.flat_values
        starts = tf.logical_not(tf.gather(self._is_suffix, ids))
        word_starts = tf.cast(tf.reshape(tf.where(starts), [-1]), tf.int64)
        words = tf.RaggedTensor.from_row_starts(ids, word_starts, validate=False)
        words_per_text = tf.reduce_sum(
            tf.cast(pieces.with_flat_values(starts), tf.int64), axis=1)
        return tf.RaggedTensor.from_row_lengths(words, words_per_text, validate=False)

    def detokenize(self, ids) -> tf.Tensor:
        """Join word-pieces back into text (`##` pieces glued, words space-separated).

        `ids` is `[batch, (pieces)]`; returns a `[batch]` string tensor. Not lossless:
        the text comes back normalized (lower-cased, punctuation split off).
        """
        if not isinstance(ids, (tf.Tensor, tf.RaggedTensor)):
            ids = tf.ragged.constant(ids, dtype=tf.int32)
        return self._tokenizer.detokenize(ids)

    def __repr__(self) -> str:
        return (f"BertTokenizer(vocab_file={self.vocab_file!r}, lower_case={self.lower_case}, "
                f"normalization={self.normalization!r}, vocab_size={self.vocab_size})")
