"""Tokenized documents streamed from text in bounded pools: what `raw_text_dataset` pairs.

Documents come from a `DocumentStream` (plain text, or with `kbert.corpus.CorpusDocuments`
MediaWiki dumps and JSON lines too), one pass per epoch; every `hold_out_every`-th is held
out (or kept alone), then each input pipeline takes every n-th. They are tokenized
`pool_documents` at a time, and NotNext segments are drawn within a pool (as
create_pretraining_data draws them within a chunk, and google-research/bert within each
shard's run), so memory holds one pool, never the corpus. A corpus of at most one pool
(a last pool of one document joins the one before) is read and tokenized once and kept:
its pairs are those of the whole-corpus algorithm, as before streaming.

Example:
    >>> pools = TextPools(DocumentStream(files), tokenizer)           # doctest: +SKIP
    >>> pools.check("nsp", "a.txt")                                   # doctest: +SKIP
    >>> [len(pool) for pool in pools]                                 # doctest: +SKIP
    [10000, 10000, 2345]
"""

from __future__ import annotations

import itertools
import re
from typing import Iterator

from kbert.data.corpus import DocumentStream, pair_reason_text
from kbert.data.pairs import TokenizedDocument, tokenize_documents
from kbert.data.settings import PretrainingDataError

POOL_DOCUMENTS = 10_000


class TextPools:
    """Iterable of pools (lists of `TokenizedDocument`), one pass over the text each time."""

    def __init__(self, stream: DocumentStream, tokenizer,
                 pool_documents: int = POOL_DOCUMENTS, hold_out_every: int = 0,
                 held_out: bool = False, num_pipelines: int = 1, pipeline_id: int = 0):
        if pool_documents < 2:
            raise ValueError(f"pool_documents={pool_documents} must be at least 2")
        self.stream, self.tokenizer, self.pool_documents = stream, tokenizer, pool_documents
        self.hold_out_every, self.held_out = hold_out_every, held_out
        self.num_pipelines, self.pipeline_id = num_pipelines, pipeline_id
        self._kept: list[list[TokenizedDocument]] | None = None

    def _selected(self):
        kept = 0
        for index, document in enumerate(self.stream):
            if self.hold_out_every and (index % self.hold_out_every == 0) != self.held_out:
                continue
            if kept % self.num_pipelines == self.pipeline_id:
                yield document
            kept += 1

    def _raw_pools(self) -> Iterator[tuple[list, bool]]:
        """(documents of a pool, whether it is the last)."""
        documents = self._selected()
        pending = None
        while batch := list(itertools.islice(documents, self.pool_documents)):
            if pending is not None and len(batch) < 2:
                pending.extend(batch)
                continue
            if pending is not None:
                yield pending, False
            pending = batch
        if pending is not None:
            yield pending, True

    def check(self, objective: str, where: str) -> None:
        """Before any work: PretrainingDataError when the text gives nothing to train on
        (no text at all; objective "none": no tokens; "nsp"/"sop": no pool with a sentence
        pair), naming `where` and counting documents and sentences. Reads pools until one
        is usable: bounded memory; a corpus of one pool is kept for the passes."""
        documents = sentences = single = 0
        for number, (pool, last) in enumerate(self._raw_pools()):
            tokenized = tokenize_documents(pool, self.tokenizer)
            documents += len(pool)
            sentences += sum(len(d.sentences) for d in pool)
            single += sum(len(d.sentences) < 2 for d in pool)
            if _usable(tokenized, objective):
                if number == 0 and last:
                    self._kept = [tokenized]
                return
        if not self.stream.num_documents:
            raise self.stream.empty_error()
        if objective == "none":
            raise PretrainingDataError(f"{where}: no text to pre-train on")
        raise PretrainingDataError(
            f"{where} gives no sentence pair (input pipeline {self.pipeline_id} of "
            f"{self.num_pipelines}): {pair_reason_text(documents, sentences, single)}")

    def __iter__(self) -> Iterator[list[TokenizedDocument]]:
        if self._kept is not None:
            yield from self._kept
            return
        for pool, _ in self._raw_pools():
            tokenized = tokenize_documents(pool, self.tokenizer)
            if tokenized:
                yield tokenized


def data_error_in(error: BaseException) -> str | None:
    """The PretrainingDataError message inside a TensorFlow error: a file found damaged
    while a pass streams it (past the first pool) reaches the training loop wrapped by
    tf.data's generator; None for any other error.

    Example:
        >>> data_error_in(ValueError("x")) is None
        True
    """
    import tensorflow as tf
    if not isinstance(error, tf.errors.OpError):
        return None
    found = re.search(r"PretrainingDataError: (.+)", str(error))
    return found.group(1).strip() if found else None


def _usable(tokenized: list[TokenizedDocument], objective: str) -> bool:
    if objective == "none":
        return bool(tokenized)
    has_pair = any(len(d.sentences) >= 2 for d in tokenized)
    return has_pair and (objective == "sop" or len(tokenized) >= 2)
