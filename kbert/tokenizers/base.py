"""The interface every kbert tokenizer offers (WordPiece today; byte-level BPE and
SentencePiece are to sit beside it behind the same methods).

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
    hold) and implement `vocab`, `tokenize` and `detokenize`.
    """

    special_tokens: tuple[str, ...] = ()

    @property
    def vocab(self) -> list:
        """The tokens, index = id."""
        raise NotImplementedError

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
