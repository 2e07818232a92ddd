"""From tokenized documents to masked `[CLS] A [SEP] B [SEP]` examples (NSP or SOP pairs), or
RoBERTa's packed `<s> sentences </s>`, one chunk at a time.

A *chunk* is a fixed group of documents and the unit of work: its examples depend only on
(`random_seed`, chunk id, its documents, settings), never on which process or machine
builds it. NotNext segments are drawn from the other documents of the same chunk.

Example:
    >>> examples = create_chunk_examples(0, tokenized_docs, vocab, settings)  # doctest: +SKIP
    >>> examples[0].input_ids[0] == vocab.index("[CLS]")                      # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Iterable, Iterator, Sequence

from kbert.data import records
from kbert.data.masking import StaticMasker
from kbert.data.packing import PackedSequence, pack_full_sentences
from kbert.data.pairs import SentencePair, TokenizedDocument, create_pairs_from_document
from kbert.data.settings import PretrainingDataSettings


def derive_seed(random_seed: int, *parts) -> int:
    """A 64-bit seed from the user's seed and a path of names/ids (stable across processes).

    Example:
        >>> derive_seed(12345, "chunk", 3) == derive_seed(12345, "chunk", 3)
        True
        >>> derive_seed(12345, "chunk", 3) == derive_seed(12345, "chunk", 4)
        False
    """
    text = ":".join(str(p) for p in (random_seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


@dataclasses.dataclass
class PretrainingExample:
    """One example before padding, with the pair it came from (for provenance checks)."""

    input_ids: list[int]
    segment_ids: list[int]
    masked_lm_positions: list[int]
    masked_lm_ids: list[int]
    is_random_next: bool
    pair: SentencePair | None   # None for a packed (FULL-SENTENCES) sequence
    original_ids: list[int]

    def serialize(self, max_seq_length: int, max_predictions_per_seq: int) -> bytes:
        return records.serialize_example(
            self.input_ids, self.segment_ids, self.masked_lm_positions, self.masked_lm_ids,
            self.is_random_next, max_seq_length, max_predictions_per_seq)


def _masked_example(ids: list[int], segment_ids: list[int], starts: list[bool],
                    is_random_next: bool, pair, masker: StaticMasker | None,
                    rng: random.Random) -> PretrainingExample:
    if masker is None:
        return PretrainingExample(ids, segment_ids, [], [], is_random_next, pair, ids)
    masked = masker.mask(ids, starts, rng)
    return PretrainingExample(masked.input_ids, segment_ids, masked.positions, masked.labels,
                              is_random_next, pair, ids)


def build_example(pair: SentencePair, cls_id: int, sep_id: int, masker: StaticMasker | None,
                  rng: random.Random) -> PretrainingExample:
    """`[CLS] A [SEP] B [SEP]` with segment ids 0/1, masked unless `masker` is None."""
    ids = [cls_id, *pair.tokens_a, sep_id, *pair.tokens_b, sep_id]
    segment_ids = [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
    starts = [True, *pair.starts_a, True, *pair.starts_b, True]
    return _masked_example(ids, segment_ids, starts, pair.is_random_next, pair, masker, rng)


def build_packed_example(packed: PackedSequence, cls_id: int, sep_id: int,
                         masker: StaticMasker | None, rng: random.Random) -> PretrainingExample:
    """RoBERTa's `<s> sentences </s>` (one segment, label 0), masked unless `masker` is
    None; `pair` is None."""
    ids = [cls_id, *packed.ids, sep_id]
    starts = [True, *packed.word_starts, True]
    return _masked_example(ids, [0] * len(ids), starts, False, None, masker, rng)


def _special_ids(vocab_or_tokenizer) -> tuple[int, int]:
    if hasattr(vocab_or_tokenizer, "cls_id"):
        return vocab_or_tokenizer.cls_id, vocab_or_tokenizer.sep_id
    return vocab_or_tokenizer.index("[CLS]"), vocab_or_tokenizer.index("[SEP]")


def make_masker(vocab_or_tokenizer, settings: PretrainingDataSettings) -> StaticMasker | None:
    """The static masker of `settings` for a WordPiece vocabulary (list of tokens) or any
    kbert tokenizer; None with dynamic masking (records stay unmasked)."""
    if settings.dynamic_masking:
        return None
    options = dict(masked_lm_prob=settings.masked_lm_prob,
                   do_whole_word_mask=settings.do_whole_word_mask,
                   max_ngram=settings.max_ngram)
    if hasattr(vocab_or_tokenizer, "vocab"):
        return StaticMasker.for_tokenizer(vocab_or_tokenizer, settings.max_predictions_per_seq,
                                          **options)
    return StaticMasker(vocab_or_tokenizer, settings.max_predictions_per_seq, **options)


def create_chunk_examples(chunk_id: int, documents: Sequence[TokenizedDocument],
                          vocab_or_tokenizer, settings: PretrainingDataSettings,
                          masker: StaticMasker | None = None) -> list[PretrainingExample]:
    """All examples of one chunk: `dupe_factor` passes over its documents, then shuffled.

    `vocab_or_tokenizer`: a WordPiece vocabulary (list of tokens) or a kbert tokenizer
    (its `cls_id`/`sep_id` and special tokens). `settings.sentence_objective` picks the
    examples: NSP pairs, SOP pairs (`sentence_order=True`), or with "none" RoBERTa's
    FULL-SENTENCES sequences packed across the chunk's documents in a new order per pass.
    `masker` (default: `make_masker(vocab_or_tokenizer, settings)`) may be passed in.
    """
    rng = random.Random(derive_seed(settings.random_seed, "chunk", chunk_id))
    if masker is None:
        masker = make_masker(vocab_or_tokenizer, settings)
    cls_id, sep_id = _special_ids(vocab_or_tokenizer)
    examples: list[PretrainingExample] = []
    for _ in range(settings.dupe_factor):
        if settings.sentence_objective == "none":
            order = list(range(len(documents)))
            rng.shuffle(order)
            for packed in pack_full_sentences(documents, settings.max_num_tokens, sep_id,
                                              order):
                examples.append(build_packed_example(packed, cls_id, sep_id, masker, rng))
            continue
        for index in range(len(documents)):
            for pair in create_pairs_from_document(
                    documents, index, settings.max_num_tokens, settings.short_seq_prob, rng,
                    sentence_order=settings.sentence_objective == "sop"):
                examples.append(build_example(pair, cls_id, sep_id, masker, rng))
    rng.shuffle(examples)
    return examples


# Documents are shuffled in windows of this many chunks (documents_per_chunk each), so a
# stream of any length is cut into chunks holding one window in memory; a corpus of up to
# one window is shuffled as a whole, exactly as before streaming (issue 19).
SHUFFLE_WINDOW_CHUNKS = 64


def stream_chunks(documents: Iterable, settings: PretrainingDataSettings) -> Iterator[list]:
    """Chunks of `(document id, document)` from a stream: each window of
    `SHUFFLE_WINDOW_CHUNKS * documents_per_chunk` documents in a seeded order, cut into
    `documents_per_chunk` pieces (a last piece of one document joins the one before it).

    Example:
        >>> s = PretrainingDataSettings(documents_per_chunk=4)
        >>> [len(c) for c in stream_chunks("abcdefghi", s)]
        [4, 5]
    """
    size = settings.documents_per_chunk
    window_size = size * SHUFFLE_WINDOW_CHUNKS
    pending: list | None = None
    window: list = []
    number = 0

    def cut(window, number):
        names = ("documents",) if number == 0 else ("documents", number)
        random.Random(derive_seed(settings.random_seed, *names)).shuffle(window)
        return [window[i:i + size] for i in range(0, len(window), size)]

    for document_id, document in enumerate(documents):
        window.append((document_id, document))
        if len(window) == window_size:
            for chunk in cut(window, number):
                if pending is not None:
                    yield pending
                pending = chunk
            window, number = [], number + 1
    for chunk in cut(window, number) if window else []:
        if pending is not None and len(chunk) < 2:
            pending.extend(chunk)
            continue
        if pending is not None:
            yield pending
        pending = chunk
    if pending is not None:
        yield pending


def plan_chunks(num_documents: int, settings: PretrainingDataSettings) -> list[list[int]]:
    """Document ids of each chunk, as `stream_chunks` cuts a stream of `num_documents`.

    Example:
        >>> s = PretrainingDataSettings(documents_per_chunk=4)
        >>> [len(c) for c in plan_chunks(9, s)]
        [4, 5]
    """
    return [[i for i, _ in chunk]
            for chunk in stream_chunks(range(num_documents), settings)]


def chunks_of_shard(num_chunks: int, shard: int, num_output_shards: int) -> list[int]:
    """Chunk ids written to output shard `shard` (round robin)."""
    return list(range(shard, num_chunks, num_output_shards))


def shards_of_worker(num_output_shards: int, shard_index: int, num_shards: int) -> list[int]:
    """Output shards that worker `shard_index` of `num_shards` machines writes."""
    return list(range(shard_index, num_output_shards, num_shards))
