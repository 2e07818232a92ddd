"""WordPiece vocabularies and the in-graph BERT tokenizer (tensorflow-text Fast* ops).

The tokenizer runs as TensorFlow ops, so it works inside `tf.data` and `tf.function`:
- `normalization="exact"` (default): google-research/bert's normalisation written as TF
  string ops (`bert_normalize`), then tensorflow-text's `FastWordpieceTokenizer`; gives
  Hugging Face `BertTokenizerFast`'s ids (every line of the embedded corpus checked).
- `normalization="fast"`: tensorflow-text's `FastBertTokenizer` end to end; its ops run in
  LiteRT (tensorflow-text custom ops), but it normalises with NFKC case folding, so rare
  compatibility characters ("²", "ß", "ﬁ", full-width letters) get other ids.

`learn_vocabulary` learns a WordPiece vocabulary with tensorflow-text's learner, from words
normalised exactly as the tokenizer will normalise them.

Example:
    >>> tokenizer = BertTokenizer("vocab.txt")                  # doctest: +SKIP
    >>> tokenizer.tokenize(["Hello, world!"]).to_list()         # doctest: +SKIP
    [[7592, 1010, 2088, 999]]
"""

from __future__ import annotations

import collections
import collections.abc
import logging
import os
from typing import Iterable, Sequence

import tensorflow as tf
import tensorflow_text as tf_text

from kbert import fileio, text
from kbert.tokenizers.base import (Tokenizer, as_ragged_ids, as_string_batch, group_into_words,
                                   token_list_hash)

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
_DELIMITERS = r"[\s\p{Zs}\x{2028}\x{2029}]+|" + _KEEP_DELIMITERS


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
        content = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"vocabulary file {path} is not valid UTF-8 (line {line})") from e
    tokens = content.split("\n")
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
    return token_list_hash(tokens)


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


class BertTokenizer(Tokenizer):
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

    special_tokens = SPECIAL_TOKENS

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
        self._keep_vocab(load_vocab(vocab_file), {"pad": "[PAD]", "unk": "[UNK]",
                                                  "cls": "[CLS]", "sep": "[SEP]",
                                                  "mask": "[MASK]"})
        # True for "##" continuation pieces: the pieces that do not start a word.
        self._is_suffix = tf.constant(
            [t.startswith(SUFFIX_INDICATOR) and len(t) > len(SUFFIX_INDICATOR)
             for t in self._vocab], dtype=tf.bool)
        if normalization == "fast":
            self._tokenizer = tf_text.FastBertTokenizer(
                vocab=list(self._vocab), suffix_indicator=SUFFIX_INDICATOR,
                max_bytes_per_word=self.max_bytes_per_word, token_out_type=tf.int32,
                unknown_token="[UNK]", support_detokenization=True,
                lower_case_nfd_strip_accents=self.lower_case)
        else:
            self._tokenizer = tf_text.FastWordpieceTokenizer(
                vocab=list(self._vocab), suffix_indicator=SUFFIX_INDICATOR,
                max_bytes_per_word=self.max_bytes_per_word, token_out_type=tf.int32,
                unknown_token="[UNK]", no_pretokenization=False, support_detokenization=True)
        logging.info("BertTokenizer: %d tokens from %s (lower_case=%s, normalization=%s)",
                     self.vocab_size, vocab_file, self.lower_case, normalization)

    # ------------------------------------------------------------------ tokenizing
    def tokenize(self, texts) -> tf.RaggedTensor:
        """Word-piece ids `[batch, (pieces)]` int32, without [CLS]/[SEP]."""
        texts = as_string_batch(texts)
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
        return group_into_words(pieces, tf.logical_not(tf.gather(self._is_suffix,
                                                                 pieces.flat_values)))

    def detokenize(self, ids) -> tf.Tensor:
        """Join word-pieces back into text (`##` pieces glued, words space-separated).

        `ids` is `[batch, (pieces)]`; returns a `[batch]` string tensor. Not lossless:
        the text comes back normalized (lower-cased, punctuation split off).
        """
        return self._tokenizer.detokenize(as_ragged_ids(ids))

    def __repr__(self) -> str:
        return (f"BertTokenizer(vocab_file={self.vocab_file!r}, lower_case={self.lower_case}, "
                f"normalization={self.normalization!r}, vocab_size={self.vocab_size})")


def to_lists(ragged: tf.RaggedTensor) -> list:
    """Nested Python lists of a (possibly multiply) ragged tensor's values.

    Same result as `ragged.to_list()`, which is slow for ragged rank 2 in TF 2.21
    (about 7 ms per row).

    Example:
        >>> to_lists(tf.ragged.constant([[[1, 2], [3]], []]))
        [[[1, 2], [3]], []]
    """
    if not isinstance(ragged, tf.RaggedTensor):
        return ragged.numpy().tolist()
    values = ragged.flat_values.numpy().tolist()
    for splits in reversed(ragged.nested_row_splits):
        bounds = splits.numpy().tolist()
        values = [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return values


# --------------------------------------------------------------------------- learning a vocabulary
def split_words(texts, lower_case: bool = True) -> tf.RaggedTensor:
    """In-graph BERT words `[batch, (words)]` (strings), as `kbert.text.basic_tokenize`.

    Example:
        >>> split_words(tf.constant(["Don't stop"])).to_list()
        [[b'don', b"'", b't', b'stop']]
    """
    normalized = bert_normalize(texts, lower_case)
    return tf_text.regex_split(normalized, _DELIMITERS, _KEEP_DELIMITERS)


def count_words(texts: Iterable[str], lower_case: bool = True,
                batch_size: int = 4096) -> collections.Counter:
    """Counts of BERT words (normalised as the tokenizer does) over an iterable of strings."""
    counts: collections.Counter = collections.Counter()
    split = tf.function(lambda batch: split_words(batch, lower_case).flat_values,
                        input_signature=[tf.TensorSpec([None], tf.string)])
    batch: list[str] = []
    for line in texts:
        batch.append(line)
        if len(batch) == batch_size:
            counts.update(split(tf.constant(batch)).numpy().tolist())
            batch = []
    if batch:
        counts.update(split(tf.constant(batch)).numpy().tolist())
    return collections.Counter({w.decode("utf-8"): c for w, c in counts.items()})


def _texts_of(source) -> Iterable[str]:
    if isinstance(source, collections.abc.Iterator):   # lines, streamed
        return source
    if isinstance(source, (str, os.PathLike)):
        return text.iter_lines(os.fspath(source))
    source = list(source)
    if source and all(isinstance(s, (str, os.PathLike)) for s in source):
        return text.iter_lines([os.fspath(s) for s in source])
    if not all(isinstance(d, (list, tuple)) for d in source):
        raise TypeError("source must be a path, a list of paths, or a list of documents "
                        "(each a list of strings)")
    return (line for document in source for line in document)


# The learner aims within 5% below the size asked for; below MIN_VOCAB_FRACTION of it the
# corpus is too small for the vocabulary wanted.
VOCAB_SLACK = 0.05
MIN_VOCAB_FRACTION = 0.5


def learn_vocabulary(source, vocab_size: int, lower_case: bool = True,
                     reserved_tokens: Sequence[str] = SPECIAL_TOKENS,
                     num_unused_tokens: int = 0, min_count: int = 2,
                     max_unique_chars: int = 1000, max_token_length: int = 50,
                     min_fraction: float = MIN_VOCAB_FRACTION) -> list[str]:
    """Learn a WordPiece vocabulary (tensorflow-text's learner) from text.

    A corpus too small for `vocab_size` gives fewer tokens: a warning names both numbers,
    and below `min_fraction` of `vocab_size` it is a ValueError.

    Args:
        source: a file or directory path, a list of paths, a list of documents
            (lists of strings), or an iterator of lines (read once, streamed; e.g.
            `kbert.corpus.CorpusDocuments(files).lines()`).
        vocab_size: the largest vocabulary wanted (the learner aims within 5% below it).
        lower_case: normalise as an uncased tokenizer would (must match the tokenizer).
        reserved_tokens: placed first; must include `[PAD] [UNK] [CLS] [SEP] [MASK]`.
        num_unused_tokens: `[unused0]`... tokens after the reserved ones, room for tokens
            added at fine-tuning time (Google's vocabularies have 994).
        min_count: the smallest frequency threshold the learner may search down to.
        max_unique_chars: alphabet size; words with rarer characters are not counted.
        max_token_length: longer words are not counted.

    Returns:
        The tokens, specials first ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4 by default),
        then `[unusedN]`, single characters (plain and `##`), then word-pieces by frequency.

    Example:
        >>> tokens = learn_vocabulary("data/corpus", vocab_size=8000)   # doctest: +SKIP
        >>> write_vocab(tokens, "/tmp/vocab.txt")                      # doctest: +SKIP
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    missing = [s for s in SPECIAL_TOKENS if s not in reserved_tokens]
    if missing:
        raise ValueError(f"reserved_tokens lacks special token(s): {' '.join(missing)}")
    reserved = list(reserved_tokens) + [f"[unused{i}]" for i in range(num_unused_tokens)]
    if vocab_size <= len(reserved):
        raise ValueError(f"vocab_size ({vocab_size}) must exceed the {len(reserved)} "
                         "reserved tokens")
    counts = count_words(_texts_of(source), lower_case=lower_case)
    if not counts:
        raise ValueError("no words found in the vocabulary source")
    logging.info("learn_vocabulary: %d distinct words, %d in all", len(counts),
                 sum(counts.values()))
    params = learner.Params(
        upper_thresh=None, lower_thresh=min_count, num_iterations=4, max_input_tokens=-1,
        max_token_length=max_token_length, max_unique_chars=max_unique_chars,
        vocab_size=vocab_size, slack_ratio=VOCAB_SLACK, include_joiner_token=True, joiner="##",
        reserved_tokens=reserved)
    words = learner.get_input_words(list(counts.items()), reserved, max_token_length)
    words = learner.filter_input_words(
        words, learner.get_allowed_chars(words, max_unique_chars), -1)
    tokens = _search_threshold(learner, words, params, min_count, max(counts.values()),
                               num_reserved=len(reserved))
    if tokens[:len(reserved)] != reserved:  # the learner keeps reserved tokens first
        raise RuntimeError("WordPiece learner did not keep the reserved tokens first")
    if len(tokens) < min_fraction * vocab_size:
        raise ValueError(f"the text gives a vocabulary of only {len(tokens)} tokens, less "
                         f"than {min_fraction:.0%} of the {vocab_size} asked for: give more "
                         f"text or ask for at most {len(tokens)}")
    if len(tokens) < (1 - VOCAB_SLACK) * vocab_size:
        logging.warning("the text gives a vocabulary of %d tokens, fewer than the %d asked "
                        "for", len(tokens), vocab_size)
    return tokens


def _is_single_character(token: str) -> bool:
    """"a", or "##a" for a character that can follow another inside a word (punctuation
    and CJK ideographs are words of their own, so "##!" never occurs): the pieces that
    keep every word tokenizable."""
    if len(token) == 1:
        return True
    if token.startswith(SUFFIX_INDICATOR) and len(token) == len(SUFFIX_INDICATOR) + 1:
        char = token[-1]
        return not (text.is_punctuation(char) or text.is_cjk(char))
    return False


def keep_first_pieces(tokens: Sequence[str], size: int, num_reserved: int) -> list[str]:
    """The first `size` of a learned vocabulary, keeping every reserved and single-character
    token ("a", and "##a" unless "a" is punctuation or a CJK ideograph), in order: only the
    rarest other pieces are dropped.

    The learner lists "##a" pieces of characters never seen inside a word last (count 1),
    so cutting the list short would drop them and turn every word with such a character
    after its first into [UNK] (a Korean corpus, with ~700 syllables, lost 5.7% of its
    held-out pieces that way).

    Example:
        >>> keep_first_pieces(["[PAD]", "a", "b", "ab", "ba", "##a", "##b", "##!"], 6, 1)
        ['[PAD]', 'a', 'b', 'ab', '##a', '##b']
    """
    tokens = list(tokens)
    kept = [i < num_reserved or _is_single_character(t) for i, t in enumerate(tokens)]
    room = size - sum(kept)
    if room < 0:
        return tokens[:size]
    out = []
    for token, keep in zip(tokens, kept):
        if keep:
            out.append(token)
        elif room > 0:
            out.append(token)
            room -= 1
    return out


def _search_threshold(learner, words, params, lower: int, upper: int,
                      num_reserved: int = 0) -> list[str]:
    """Find the frequency threshold whose vocabulary is within 5% below `vocab_size`.

    The vocabulary shrinks as the threshold rises, roughly as a power law, so instead of
    tensorflow-text's bisection (one full learning pass per step, ~log2(max count) steps)
    this steps by interpolation in log-log space inside the bracket (usually 3-5 passes).
    """
    import math

    target_size, slack = params.vocab_size, params.slack_ratio * params.vocab_size
    aim = target_size - slack / 2
    below = None   # (threshold, size > target_size): threshold too low
    above = None   # (threshold, size <= target_size): threshold high enough
    best = None            # the largest vocabulary that fits
    smallest_over = None   # the smallest vocabulary that does not
    lo, hi = max(1, lower), max(1, lower, upper)
    while lo <= hi:
        if below and above and above[1] < below[1]:
            fraction = (math.log(aim) - math.log(below[1])) / (
                math.log(above[1]) - math.log(below[1]))
            guess = math.exp(math.log(below[0]) + fraction * (
                math.log(above[0]) - math.log(below[0])))
        else:
            guess = math.sqrt(lo * hi)
        threshold = min(hi, max(lo, int(round(guess))))
        tokens = learner.learn_with_thresh(words, threshold, params)
        logging.info("threshold %d -> %d tokens", threshold, len(tokens))
        if len(tokens) <= target_size:
            if best is None or len(tokens) > len(best):
                best = tokens
            if target_size - len(tokens) <= slack:
                return tokens
            above, hi = (threshold, len(tokens)), threshold - 1
        else:
            if smallest_over is None or len(tokens) < len(smallest_over):
                smallest_over = tokens
            below, lo = (threshold, len(tokens)), threshold + 1
    if smallest_over is not None:
        # No threshold lands in the window: drop the rarest pieces of the next larger
        # vocabulary (every single character, plain and "##", is kept, so every word
        # stays tokenizable).
        logging.info("no threshold gives %d-%d tokens; keeping the first %d of %d",
                     int(target_size - slack), target_size, target_size, len(smallest_over))
        return keep_first_pieces(smallest_over, target_size, num_reserved)
    return best
