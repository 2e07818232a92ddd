"""RoBERTa's FULL-SENTENCES inputs: whole sentences packed contiguously, across documents.

Liu et al. (2019), section 4.2: "Each input is packed with full sentences sampled
contiguously from one or more documents, such that the total length is at most 512 tokens.
Inputs may cross document boundaries. When we reach the end of one document, we begin
sampling sentences from the next document and add an extra separator token between
documents." No sentence-pair label: the objective is masked LM only. A sentence longer than
a whole input is cut into input-sized pieces.

Example:
    >>> from kbert.data.pairs import Sentence, TokenizedDocument
    >>> docs = [TokenizedDocument(0, [Sentence([5, 6], [True, True]), Sentence([7], [True])]),
    ...         TokenizedDocument(1, [Sentence([8, 9], [True, False])])]
    >>> [p.ids for p in pack_full_sentences(docs, max_num_tokens=6, separator_id=2)]
    [[5, 6, 7, 2, 8, 9]]
    >>> [p.ids for p in pack_full_sentences(docs, max_num_tokens=4, separator_id=2)]
    [[5, 6, 7], [8, 9]]
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Sequence

from kbert.data.pairs import TokenizedDocument


@dataclasses.dataclass
class PackedSequence:
    """Token ids of one input (without `<s>`/`</s>` around it) and their word starts;
    `documents` lists the documents it draws from, in order."""

    ids: list[int]
    word_starts: list[bool]
    documents: list[int]


def pack_full_sentences(documents: Sequence[TokenizedDocument], max_num_tokens: int,
                        separator_id: int, order: Iterable[int] | None = None
                        ) -> Iterator[PackedSequence]:
    """Pack the sentences of `documents` (in `order`, default as given) into sequences of
    at most `max_num_tokens` ids, with `separator_id` between documents.

    A separator that would end or begin a sequence is dropped (the input's own `</s>`
    and `<s>` already bound it).
    """
    if max_num_tokens < 1:
        raise ValueError(f"max_num_tokens must be positive, got {max_num_tokens}")
    ids: list[int] = []
    starts: list[bool] = []
    sources: list[int] = []

    def flush():
        nonlocal ids, starts, sources
        while ids and ids[-1] == separator_id and starts[-1] is None:
            ids.pop()
            starts.pop()
        if ids:
            packed = PackedSequence(ids, [bool(s) for s in starts], sources)
            ids, starts, sources = [], [], []
            return packed
        ids, starts, sources = [], [], []
        return None

    for index in (range(len(documents)) if order is None else order):
        document = documents[index]
        if ids:  # a document boundary inside the sequence: the extra separator
            if len(ids) + 1 < max_num_tokens:
                ids.append(separator_id)
                starts.append(None)  # marks the separator (a word start when emitted)
            else:
                packed = flush()
                if packed:
                    yield packed
        for sentence in document.sentences:
            pieces = [(sentence.ids[i:i + max_num_tokens],
                       sentence.word_starts[i:i + max_num_tokens])
                      for i in range(0, len(sentence.ids), max_num_tokens)]
            for piece_ids, piece_starts in pieces:
                if len(ids) + len(piece_ids) > max_num_tokens:
                    packed = flush()
                    if packed:
                        yield packed
                ids.extend(piece_ids)
                starts.extend(piece_starts)
                if not sources or sources[-1] != document.document_id:
                    sources.append(document.document_id)
    packed = flush()
    if packed:
        yield packed
