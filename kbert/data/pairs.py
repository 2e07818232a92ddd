"""Sentence pairs for next-sentence prediction, built as google-research/bert does.

For each document: sentences are gathered into a chunk until a target length is reached
(`max_seq_length - 3`, or with probability `short_seq_prob` a random shorter one); A is the
first `a_end` sentences of the chunk, B is the rest (IsNext) or, half of the time, a run of
sentences from another document (NotNext; the sentences not used are put back). The longer
of A and B then loses a token from a random end until the pair fits. Two deliberate
differences keep NotNext at 50% (see `create_pairs_from_document`).

Each pair keeps its provenance (document and sentence ranges of A and B), so a test can
check that an IsNext pair never crosses a document and a NotNext B never comes from A's
document.

Example:
    >>> import random
    >>> docs = [TokenizedDocument(0, [Sentence([5, 6], [True, True]), Sentence([7], [True])]),
    ...         TokenizedDocument(1, [Sentence([8, 9], [True, False])])]
    >>> pairs = create_pairs_from_document(docs, 0, max_num_tokens=8, short_seq_prob=0.0,
    ...                                    rng=random.Random(0))
    >>> [(p.tokens_a, p.tokens_b, p.b_document, p.is_random_next) for p in pairs]
    [([5, 6], [8, 9], 1, True), ([5, 6], [7], 0, False)]
"""

from __future__ import annotations

import dataclasses
import random
from typing import Sequence

import numpy as np


@dataclasses.dataclass
class Sentence:
    """Word-piece ids of one sentence; `word_starts[i]` is True where a word begins."""

    ids: list[int]
    word_starts: list[bool]

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass
class TokenizedDocument:
    """A document's non-empty sentences; `document_id` is its index in the corpus."""

    document_id: int
    sentences: list[Sentence]


@dataclasses.dataclass
class SentencePair:
    """A and B (ids and word starts), the NSP label and where A and B came from.

    `a_sentences`/`b_sentences` are half-open sentence ranges `(start, end)` within
    `a_document`/`b_document` (before truncation).
    """

    tokens_a: list[int]
    starts_a: list[bool]
    tokens_b: list[int]
    starts_b: list[bool]
    is_random_next: bool
    a_document: int
    b_document: int
    a_sentences: tuple[int, int]
    b_sentences: tuple[int, int]


def tokenize_documents(documents: Sequence, tokenizer, first_document_id: int = 0,
                       document_ids: Sequence[int] | None = None,
                       batch_size: int = 2048) -> list[TokenizedDocument]:
    """Tokenize `Document`s (or lists of sentence strings) with `tokenizer.tokenize_words`.

    Sentences that give no tokens are dropped, then documents left empty (as google does).
    `document_ids` (default: consecutive from `first_document_id`) label the documents.
    """
    texts: list[str] = []
    owner: list[int] = []
    for index, document in enumerate(documents):
        sentences = getattr(document, "sentences", document)
        texts.extend(sentences)
        owner.extend([index] * len(sentences))
    if document_ids is None:
        document_ids = range(first_document_id, first_document_id + len(documents))
    result = [TokenizedDocument(int(i), []) for i in document_ids]
    for begin in range(0, len(texts), batch_size):
        batch = texts[begin:begin + batch_size]
        words = tokenizer.tokenize_words(batch)
        pieces = words.flat_values.numpy().tolist()
        word_splits = words.values.row_splits.numpy()
        sentence_splits = words.row_splits.numpy()
        starts = np.zeros(len(pieces) + 1, dtype=bool)
        starts[word_splits[:-1]] = True
        starts = starts[:len(pieces)].tolist()
        for offset in range(len(batch)):
            lo = int(word_splits[sentence_splits[offset]])
            hi = int(word_splits[sentence_splits[offset + 1]])
            if hi > lo:
                result[owner[begin + offset]].sentences.append(
                    Sentence(pieces[lo:hi], starts[lo:hi]))
    return [d for d in result if d.sentences]


def truncate_seq_pair(tokens_a: list, starts_a: list, tokens_b: list, starts_b: list,
                      max_num_tokens: int, rng: random.Random) -> None:
    """Shorten the longer of A and B from a random end until `len(A) + len(B)` fits (in place)."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        if len(tokens_a) > len(tokens_b):
            tokens, starts = tokens_a, starts_a
        else:
            tokens, starts = tokens_b, starts_b
        if rng.random() < 0.5:
            del tokens[0]
            del starts[0]
        else:
            tokens.pop()
            starts.pop()


def _random_other_document(num_documents: int, document_index: int, rng: random.Random) -> int:
    # google tries 10 draws and may still return A's own document; we never do.
    other = rng.randint(0, num_documents - 2)
    return other + 1 if other >= document_index else other


def create_pairs_from_document(documents: Sequence[TokenizedDocument], document_index: int,
                               max_num_tokens: int, short_seq_prob: float,
                               rng: random.Random,
                               sentence_order: bool = False) -> list[SentencePair]:
    """google-research/bert's `create_instances_from_document`, without the masking.

    Two deliberate changes keep the NotNext share at exactly 50% in expectation (google's
    forced NotNext for one-sentence chunks gives 56% on the embedded corpus):
    a chunk is closed only once it holds two sentences (or the document ends), and a
    document's last sentence left alone is paired, on the coin's IsNext side, with the
    sentence before it. A one-sentence document yields no pair (it still serves as B).
    NotNext segments always come from a document other than `document_index`.

    `sentence_order=True` makes ALBERT's sentence-order pairs instead: B is always the
    text that follows A in the same document, and on the coin's other side A and B are
    swapped (`is_random_next` then means "swapped", label 1, as google-research/albert).
    """
    document = documents[document_index].sentences
    if len(document) < 2 or (len(documents) < 2 and not sentence_order):
        return []
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    def concat(sentences):
        return ([t for s in sentences for t in s.ids],
                [w for s in sentences for w in s.word_starts])

    pairs: list[SentencePair] = []
    chunk_start = 0
    current_length = 0
    i = 0
    while i < len(document):
        current_length += len(document[i])
        at_end = i == len(document) - 1
        if at_end or (current_length >= target_seq_length and i > chunk_start):
            chunk_length = i + 1 - chunk_start
            if chunk_length >= 2:
                a_range = (chunk_start, chunk_start + rng.randint(1, chunk_length - 1))
            else:  # the document's last sentence, alone
                a_range = (chunk_start, chunk_start + 1)
            coin = rng.random() < 0.5
            is_random_next = coin and not sentence_order
            if is_random_next:
                tokens_a, starts_a = concat(document[a_range[0]:a_range[1]])
                target_b_length = target_seq_length - len(tokens_a)
                b_index = _random_other_document(len(documents), document_index, rng)
                other = documents[b_index].sentences
                random_start = rng.randint(0, len(other) - 1)
                b_end = random_start + 1
                b_length = len(other[random_start])
                while b_length < target_b_length and b_end < len(other):
                    b_length += len(other[b_end])
                    b_end += 1
                tokens_b, starts_b = concat(other[random_start:b_end])
                b_document, b_range = documents[b_index].document_id, (random_start, b_end)
                # The sentences of the chunk not used for A are put back.
                i = a_range[1] - 1
            else:
                if chunk_length == 1:
                    a_range = (chunk_start - 1, chunk_start)
                b_range = (a_range[1], i + 1)
                tokens_a, starts_a = concat(document[a_range[0]:a_range[1]])
                tokens_b, starts_b = concat(document[b_range[0]:b_range[1]])
                b_document = documents[document_index].document_id
                if sentence_order and coin:  # SOP: the same two segments, swapped
                    tokens_a, starts_a, tokens_b, starts_b = tokens_b, starts_b, tokens_a, starts_a
                    a_range, b_range, is_random_next = b_range, a_range, True
            truncate_seq_pair(tokens_a, starts_a, tokens_b, starts_b, max_num_tokens, rng)
            assert tokens_a and tokens_b, "truncation left an empty segment"
            pairs.append(SentencePair(
                tokens_a, starts_a, tokens_b, starts_b, is_random_next,
                documents[document_index].document_id, b_document, a_range, b_range))
            chunk_start = i + 1
            current_length = 0
        i += 1
    return pairs
