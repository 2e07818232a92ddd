"""The interface every kbert tokenizer offers (WordPiece, byte-level BPE and SentencePiece
sit behind the same methods), and what their implementations share.

A tokenizer is built from a vocabulary file, tokenizes in-graph (TensorFlow ops, so it runs
inside `tf.data`, `tf.function` and exported models), names its special tokens, and hashes
its vocabulary so that records, checkpoints and models can say which vocabulary made them.

Example:
    >>> token_list_hash(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])[:12]
    'cc75ba7f9a12'
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import tensorflow as tf


def files_hash(paths: Sequence[str]) -> str:
    """sha256 of the files' bytes, in order: the `vocab_hash` of a multi-file tokenizer."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return digest.hexdigest()


def as_string_batch(texts) -> tf.Tensor:
    """A 1-D string tensor of `texts`; one bare string or another rank is refused."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("tokenize takes a batch of texts (a list or 1-D tensor), not one "
                        "string; wrap it in a list")
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    if texts.shape.rank != 1:
        raise ValueError(f"texts must be a 1-D batch of strings, got shape {texts.shape}")
    return texts


def as_ragged_ids(ids):
    """`ids` as a tensor: tensors pass through, nested lists become an int32 ragged one."""
    if not isinstance(ids, (tf.Tensor, tf.RaggedTensor)):
        ids = tf.ragged.constant(ids, dtype=tf.int32)
    return ids


def group_into_words(pieces: tf.RaggedTensor, starts: tf.Tensor) -> tf.RaggedTensor:
    """Ids `[batch, (words), (pieces)]` from ids `[batch, (pieces)]` and, per piece of
    `pieces.flat_values`, whether it starts a word (each text's first piece must)."""
    ids = pieces.flat_values
    word_starts = tf.cast(tf.reshape(tf.where(starts), [-1]), tf.int64)
    words = tf.RaggedTensor.from_row_starts(ids, word_starts, validate=False)
    words_per_text = tf.reduce_sum(tf.cast(pieces.with_flat_values(starts), tf.int64), axis=1)
    return tf.RaggedTensor.from_row_lengths(words, words_per_text, validate=False)


def token_list_hash(tokens: Sequence[str]) -> str:
    """A stable sha256 hex digest of a vocabulary's token list (order matters)."""
    digest = hashlib.sha256()
    for token in tokens:
        digest.update(token.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


class Tokenizer(tf.Module):
    """Base class: vocabulary file in, in-graph `tokenize`, special tokens, `vocab_hash`.

    Subclasses set `special_tokens` (the tokens every vocabulary of the algorithm must
    hold), call `_keep_vocab` and implement `tokenize` and `detokenize`.
    """

    special_tokens: tuple[str, ...] = ()

    def _keep_vocab(self, vocab: list, roles: dict[str, str]) -> None:
        """Keep `vocab` (tokens by id), `vocab_size`, the token -> id lookup and, per
        `roles` (role -> token, e.g. {"cls": "[CLS]"}), the attribute `<role>_id`."""
        # A plain list attribute would be wrapped and tracked by tf.Module (slow for 30k
        # tokens, and pointless: the vocabulary lives in the lookup ops).
        object.__setattr__(self, "_vocab", vocab)
        self.vocab_size = len(vocab)
        object.__setattr__(self, "_ids", {token: i for i, token in enumerate(vocab)})
        for role, token in roles.items():
            setattr(self, f"{role}_id", self._ids[token])

    @property
    def vocab(self) -> list:
        """The tokens, index = id."""
        return self._vocab

    def token_to_id(self, token: str) -> int:
        """The id of `token`, or `unk_id` if it is not in the vocabulary."""
        return self._ids.get(token, self.unk_id)

    def id_to_token(self, token_id: int) -> str:
        return self._vocab[token_id]

    def tokenize(self, texts) -> tf.RaggedTensor:
        """Ids `[batch, (pieces)]` int32 of a 1-D batch of strings, no special tokens added."""
        raise NotImplementedError

    def detokenize(self, ids) -> tf.Tensor:
        """Text `[batch]` of ids `[batch, (pieces)]`."""
        raise NotImplementedError

    def special_token_ids(self) -> dict[str, int]:
        """{special token: id} of this vocabulary."""
        index = {token: i for i, token in enumerate(self.vocab)}
        return {token: index[token] for token in self.special_tokens}

    def vocab_hash(self) -> str:
        """`token_list_hash` of this tokenizer's vocabulary."""
        return token_list_hash(self.vocab)


class PieceTokenizer(Tokenizer):
    """Base of the tokenizers whose word-first pieces carry a prefix (byte-level BPE "Ġ",
    SentencePiece "▁") and whose `vocab_hash` hashes their files.

    Subclasses set `roles` (role -> special token) and `word_start_prefix`, and call
    `_keep_files(vocab, files)`.
    """

    roles: dict[str, str] = {}
    word_start_prefix = ""

    def _keep_files(self, vocab: list, files: Sequence[str]) -> None:
        self._keep_vocab(vocab, self.roles)
        self._files_hash = files_hash(files)

    def vocab_hash(self) -> str:
        """sha256 of the tokenizer's files (`files_hash`)."""
        return self._files_hash

    @property
    def special_ids(self) -> list[int]:
        return sorted(self._ids[t] for t in self.roles.values())

    @property
    def word_start(self) -> list[bool]:
        """Per id: does the token begin a word (`word_start_prefix`, or a special token)?"""
        return [t.startswith(self.word_start_prefix) or t in self.roles.values()
                for t in self._vocab]
