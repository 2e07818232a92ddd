"""SentencePiece (ALBERT): learn a `spiece.model` with `sentencepiece`, tokenize in-graph with
tensorflow-text.

Tokenizing is TensorFlow ops: ALBERT's text normalisation (`` and '' to ", NFKD, accents
stripped, lower-cased — as Hugging Face's `AlbertTokenizerFast`) as TF string ops, then
tensorflow-text's `FastSentencepieceTokenizer`, whose op converts to LiteRT with the
tensorflow-text custom ops (`tensorflow_text.tflite_registrar`). The normalisation ops
(`NormalizeUTF8`, regex replace) are not LiteRT builtins: a `.tflite` with the tokenizer
inside takes raw text already normalised (`albert_normalize` on the app side), or needs
Flex ops. Ids equal `AlbertTokenizerFast` on every line of the embedded corpus.

`learn_sentencepiece` trains a unigram model with ALBERT's layout (`<pad>`=0, `<unk>`=1,
`[CLS]`=2, `[SEP]`=3, `[MASK]`=4) and `split_digits`: digits are pieces of their own, so a
digit run has one segmentation (with multi-digit pieces "9"+"99" and "99"+"9" score the
same, and the C++ and Rust Viterbi break that tie differently).

Example:
    >>> learn_sentencepiece(["data/corpus"], 8000, "/tmp/sp")                     # doctest: +SKIP
    >>> tokenizer = SentencePieceTokenizer("/tmp/sp/spiece.model")               # doctest: +SKIP
    >>> tokenizer.tokenize(["Hello world"]).to_list()                           # doctest: +SKIP
    [[2712, 126]]
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Sequence

import tensorflow as tf
import tensorflow_text as tf_text

from kbert import fileio
from kbert.tokenizers.base import (PieceTokenizer, as_ragged_ids, as_string_batch,
                                   group_into_words)

MODEL_FILE = "spiece.model"
SPECIAL_TOKENS = {"pad": "<pad>", "unk": "<unk>", "cls": "[CLS]", "sep": "[SEP]",
                  "mask": "[MASK]"}
WORD_START_PREFIX = "\u2581"  # "▁": SentencePiece's mark of a preceding space
# Unicode White_Space less \v and \f, which SentencePiece's nmt_nfkc rule deletes.
_WHITESPACE = r"[\t\n\r\x{85}\p{Z}]"


def albert_normalize(texts: tf.Tensor, lower_case: bool = True,
                     keep_accents: bool = False) -> tf.Tensor:
    """ALBERT's normalisation before SentencePiece, as TensorFlow string ops.

    Example:
        >>> albert_normalize(tf.constant(["Naïve ``Café''"])).numpy()[0].decode()
        'naive "cafe"'
    """
    texts = tf.strings.regex_replace(texts, "``|''", '"')
    if not keep_accents:
        texts = tf_text.normalize_utf8(texts, "NFKD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
    if lower_case:
        texts = tf.strings.lower(texts, encoding="utf-8")
    return tf.strings.regex_replace(texts, _WHITESPACE, " ")


def load_sentencepiece_vocab(path: str) -> list[str]:
    """The pieces of a `spiece.model`, by id; errors name the file."""
    if not os.path.isfile(path):
        raise ValueError(f"SentencePiece model file not found: {path}")
    import sentencepiece as spm
    processor = spm.SentencePieceProcessor()
    try:
        processor.Load(path)
    except (OSError, RuntimeError) as e:
        raise ValueError(f"{path} is not a SentencePiece model: {e}") from e
    pieces = [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]
    missing = [t for t in SPECIAL_TOKENS.values() if t not in set(pieces)]
    if missing:
        raise ValueError(f"SentencePiece model {path} lacks special piece(s): "
                         f"{' '.join(missing)}")
    return pieces


class SentencePieceTokenizer(PieceTokenizer):
    """ALBERT's SentencePiece tokenizer as TensorFlow ops.

    Args:
        model_file: a `spiece.model`.
        lower_case: lower-case before SentencePiece (ALBERT: True).
        keep_accents: keep accents (ALBERT: False, they are stripped after NFKD).

    Attributes as `kbert`'s other tokenizers: `vocab`, `vocab_size`, `cls_id`, `sep_id`,
    `pad_id`, `unk_id`, `mask_id`, `word_start`; `vocab_hash()` hashes the model file.

    Example:
        >>> tok = SentencePieceTokenizer("spiece.model")                   # doctest: +SKIP
        >>> tok.tokenize_words(["Hello world"]).to_list()                  # doctest: +SKIP
        [[[2712], [126]]]
    """

    special_tokens = tuple(SPECIAL_TOKENS.values())
    roles = SPECIAL_TOKENS
    word_start_prefix = WORD_START_PREFIX

    def __init__(self, model_file: str, lower_case: bool = True, keep_accents: bool = False):
        super().__init__(name="sentencepiece_tokenizer")
        self.model_file = model_file
        self.lower_case = bool(lower_case)
        self.keep_accents = bool(keep_accents)
        self._keep_files(load_sentencepiece_vocab(model_file), [model_file])
        with open(model_file, "rb") as f:
            self._tokenizer = tf_text.FastSentencepieceTokenizer(f.read())
        self._is_word_start = tf.constant(self.word_start, tf.bool)
        logging.info("SentencePieceTokenizer: %d pieces from %s", self.vocab_size, model_file)

    def tokenize(self, texts) -> tf.RaggedTensor:
        """Piece ids `[batch, (pieces)]` int32, without `[CLS]`/`[SEP]`."""
        texts = albert_normalize(as_string_batch(texts), self.lower_case, self.keep_accents)
        return tf.cast(self._tokenizer.tokenize(texts), tf.int32)

    def tokenize_words(self, texts) -> tf.RaggedTensor:
        """Ids `[batch, (words), (pieces)]`: a word starts at each "▁" piece. Flattening
        the word axis gives exactly `tokenize(texts)`."""
        pieces = self.tokenize(texts)
        starts = tf.gather(self._is_word_start, pieces.flat_values)
        # A text's first piece starts a word even without "▁" (e.g. after stripping).
        first = tf.equal(tf.ragged.range(pieces.row_lengths()).flat_values, 0)
        return group_into_words(pieces, tf.logical_or(starts, first))

    def detokenize(self, ids) -> tf.Tensor:
        """Pieces back to (normalised) text."""
        return self._tokenizer.detokenize(as_ragged_ids(ids))

    def __repr__(self) -> str:
        return (f"SentencePieceTokenizer(model_file={self.model_file!r}, "
                f"lower_case={self.lower_case}, vocab_size={self.vocab_size})")


def learn_sentencepiece(inputs: Sequence[str], vocab_size: int, output_dir: str,
                        lower_case: bool = True, model_type: str = "unigram") -> str:
    """Learn a SentencePiece model from text files or directories (*.txt), normalised as the
    tokenizer will normalise them, and write `output_dir/spiece.model` atomically.

    Returns the model's path. The text is normalised first (`albert_normalize`), so the
    pieces fit what `SentencePieceTokenizer` feeds the model.
    """
    import sentencepiece as spm
    from kbert.text import iter_lines, list_text_files
    files = list_text_files(inputs)
    if vocab_size < 16:
        raise ValueError(f"vocab_size must be at least 16, got {vocab_size}")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        lines = [line for line in iter_lines(files) if line.strip()]
        normalized = albert_normalize(tf.constant(lines or [""]), lower_case).numpy()
        with open(corpus, "wb") as f:
            for line in normalized:
                f.write(line + b"\n")
        prefix = os.path.join(tmp, "spiece")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, vocab_size=vocab_size, model_type=model_type,
            pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
            control_symbols=[SPECIAL_TOKENS[r] for r in ("cls", "sep", "mask")],
            split_digits=True, character_coverage=0.9995, minloglevel=2)
        os.makedirs(output_dir, exist_ok=True)
        final = os.path.join(output_dir, MODEL_FILE)
        with open(prefix + ".model", "rb") as f:
            fileio.atomic_write_bytes(final, f.read())
    logging.info("learned a %d-piece SentencePiece model from %d files: %s", vocab_size,
                 len(files), final)
    return final
