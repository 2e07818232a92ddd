"""Byte-level BPE (RoBERTa, GPT-2): `vocab.json` + `merges.txt`, learned or loaded, in-graph.

Tokenizing runs as TensorFlow ops (keras-hub's `BytePairTokenizer`: GPT-2's pre-tokenizing
regex in RE2, the byte-to-unicode map, and a `tf.while_loop` applying merges by rank), so
it works inside `tf.data` and `tf.function`. Its ids equal Hugging Face's
`RobertaTokenizerFast` on every line of the embedded corpus and on the edge cases of
`tests/` (runs of spaces, newlines, tabs, no-break and ideographic spaces, emoji, accents,
contractions). It cannot go into a `.tflite` without Flex (Select TF) ops: the regex split,
string lookups and the merge loop have no LiteRT builtin or tensorflow-text custom op;
tokenize on the app side, or in `tf.data` before the model.

`learn_bpe` learns a vocabulary from text files with the `tokenizers` package (the same
trainer Hugging Face uses), with RoBERTa's special tokens first.

Example:
    >>> learn_bpe(["data/corpus"], 2000, "/tmp/bpe")                     # doctest: +SKIP
    >>> tokenizer = ByteLevelBPETokenizer("/tmp/bpe/vocab.json", "/tmp/bpe/merges.txt")  # doctest: +SKIP
    >>> tokenizer.tokenize(["Hello world"]).to_list()                    # doctest: +SKIP
    [[43, 1176, 295]]
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Sequence

import tensorflow as tf

from kbert import fileio
from kbert.tokenizers.base import PieceTokenizer, as_ragged_ids, as_string_batch

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
# RoBERTa's special tokens, in the order its vocabulary starts with them.
SPECIAL_TOKENS = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>",
                  "mask": "<mask>"}
WORD_START_PREFIX = "\u0120"  # "Ġ": the byte-level form of a leading space


def load_bpe_vocab(path: str) -> list[str]:
    """The tokens of a `vocab.json` (token -> id), listed by id; errors name the file.

    Example:
        >>> load_bpe_vocab("roberta-base/vocab.json")[:3]                # doctest: +SKIP
        ['<s>', '<pad>', '</s>']
    """
    if not os.path.isfile(path):
        raise ValueError(f"BPE vocabulary file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            mapping = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" (line {e.lineno}, column {e.colno})" if hasattr(e, "lineno") else ""
        raise ValueError(f"BPE vocabulary file {path} is not valid JSON{where}") from e
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError(f"BPE vocabulary file {path} must be a non-empty JSON object "
                         f"mapping tokens to ids")
    ids = sorted(mapping.values())
    if ids != list(range(len(ids))):
        raise ValueError(f"BPE vocabulary file {path}: ids must be 0..{len(ids) - 1} without "
                         f"gaps or repeats")
    tokens = [""] * len(ids)
    for token, i in mapping.items():
        tokens[i] = token
    missing = [t for t in SPECIAL_TOKENS.values() if t not in mapping]
    if missing:
        raise ValueError(f"BPE vocabulary file {path} lacks special token(s): {' '.join(missing)}")
    return tokens


def load_merges(path: str) -> list[str]:
    """The merge rules of a `merges.txt` ("a b" per line, best first; a `#version` header
    line is skipped); errors name the file and line."""
    if not os.path.isfile(path):
        raise ValueError(f"BPE merges file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = []
    for number, line in enumerate(lines, start=1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        if len(line.split(" ")) != 2:
            raise ValueError(f"BPE merges file {path}, line {number}: expected two symbols "
                             f"separated by one space, got {line!r}")
        merges.append(line)
    return merges


class ByteLevelBPETokenizer(PieceTokenizer):
    """RoBERTa's byte-level BPE tokenizer as TensorFlow ops.

    Args:
        vocab_file: `vocab.json` (token -> id).
        merges_file: `merges.txt` (merge rules, best first).

    Attributes: `vocab` (tokens by id), `vocab_size`, `cls_id` (`<s>`), `sep_id` (`</s>`),
    `pad_id`, `unk_id`, `mask_id`, `word_start` (per id: True when the token starts a
    word, i.e. begins with "Ġ" or is not a continuation); `vocab_hash()` hashes both files
    (the merges matter as much as the tokens).

    Example:
        >>> tok = ByteLevelBPETokenizer("vocab.json", "merges.txt")       # doctest: +SKIP
        >>> tok.tokenize_words(["Hello world!"]).to_list()                # doctest: +SKIP
        [[[31414], [232], [328]]]
    """

    special_tokens = tuple(SPECIAL_TOKENS.values())
    roles = SPECIAL_TOKENS
    word_start_prefix = WORD_START_PREFIX

    def __init__(self, vocab_file: str, merges_file: str):
        super().__init__(name="byte_level_bpe_tokenizer")
        import keras_hub
        self.vocab_file = vocab_file
        self.merges_file = merges_file
        self._keep_files(load_bpe_vocab(vocab_file), [vocab_file, merges_file])
        merges = load_merges(merges_file)
        self._tokenizer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=dict(self._ids), merges=merges, dtype="int32")
        # keras-hub turns ragged results into Python lists when called eagerly: a graph
        # function keeps them tensors everywhere (eager, tf.function, tf.data).
        strings = tf.TensorSpec([None], tf.string)
        self._bpe = tf.function(self._tokenizer.tokenize, input_signature=[strings])
        logging.info("ByteLevelBPETokenizer: %d tokens, %d merges from %s", self.vocab_size,
                     len(merges), vocab_file)

    def tokenize(self, texts) -> tf.RaggedTensor:
        """BPE ids `[batch, (pieces)]` int32, without `<s>`/`</s>`."""
        return self._bpe(as_string_batch(texts))

    def tokenize_words(self, texts) -> tf.RaggedTensor:
        """Ids `[batch, (words), (pieces)]`: the words are GPT-2's pre-tokens (" hello",
        ",", " world"), so whole-word and n-gram masking can keep them together.
        Flattening the word axis gives exactly `tokenize(texts)`."""
        from keras_hub.src.tokenizers.byte_pair_tokenizer import split_strings_for_bpe
        words = split_strings_for_bpe(as_string_batch(texts))  # [batch, (words)] strings
        pieces = self._bpe(words.flat_values)  # [words, (pieces)]
        return words.with_flat_values(pieces)

    def detokenize(self, ids) -> tf.Tensor:
        """Ids back to text (lossless for byte-level BPE)."""
        return tf.function(self._tokenizer.detokenize)(as_ragged_ids(ids))

    def __repr__(self) -> str:
        return (f"ByteLevelBPETokenizer(vocab_file={self.vocab_file!r}, "
                f"merges_file={self.merges_file!r}, vocab_size={self.vocab_size})")


def learn_bpe(inputs: Sequence[str], vocab_size: int, output_dir: str,
              min_frequency: int = 2) -> tuple[str, str]:
    """Learn a byte-level BPE vocabulary from text files or directories (*.txt) and write
    `vocab.json` + `merges.txt` into `output_dir` (each atomically); returns their paths.

    RoBERTa's special tokens take ids 0-4 (`<s> <pad> </s> <unk> <mask>`); the 256 byte
    symbols follow, so every text can be tokenized.
    """
    try:
        from tokenizers import ByteLevelBPETokenizer as Trainer
    except ImportError as e:  # pragma: no cover - install_requires has it
        raise ImportError("learning a BPE vocabulary needs the `tokenizers` package") from e
    from kbert.text import list_text_files
    files = list_text_files(inputs)
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (256 "
                         f"bytes + {len(SPECIAL_TOKENS)} special tokens), got {vocab_size}")
    trainer = Trainer()
    trainer.train(files, vocab_size=vocab_size, min_frequency=min_frequency,
                  special_tokens=list(SPECIAL_TOKENS.values()), show_progress=False)
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        trainer.save_model(tmp)
        paths = []
        for name in (VOCAB_FILE, MERGES_FILE):
            with open(os.path.join(tmp, name), "rb") as f:
                final = os.path.join(output_dir, name)
                fileio.atomic_write_bytes(final, f.read())
                paths.append(final)
    logging.info("learned %d BPE tokens from %d files into %s", trainer.get_vocab_size(),
                 len(files), output_dir)
    return paths[0], paths[1]
