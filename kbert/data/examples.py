"""From tokenized documents to masked `[CLS] A [SEP] B [SEP]` examples, one chunk at a time.

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
from typing import Sequence

from kbert.data import records
from kbert.data.masking import StaticMasker
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
    pair: SentencePair
    original_ids: list[int]

    def serialize(self, max_seq_length: int, max_predictions_per_seq: int) -> bytes:
        return records.serialize_example(
            self.input_ids, self.segment_ids, self.masked_lm_positions, self.masked_lm_ids,
            self.is_random_next, max_seq_length, max_predictions_per_seq)


def build_example(pair: SentencePair, cls_id: int, sep_id: int, masker: StaticMasker | None,
                  rng: random.Random) -> PretrainingExample:
    """`[CLS] A [SEP] B [SEP]` with segment ids 0/1, masked unless `masker` is None."""
    ids = [cls_id, *pair.tokens_a, sep_id, *pair.tokens_b, sep_id]
    segment_ids = [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
    if masker is None:
        return PretrainingExample(ids, segment_ids, [], [], pair.is_random_next, pair, ids)
    starts = [True, *pair.starts_a, True, *pair.starts_b, True]
    masked = masker.mask(ids, starts, rng)
    return PretrainingExample(masked.input_ids, segment_ids, masked.positions, masked.labels,
                              pair.is_random_next, pair, ids)


def make_masker(vocab: Sequence[str], settings: PretrainingDataSettings) -> StaticMasker | None:
    """The static masker of `settings`; None with dynamic masking (records stay unmasked)."""
    if settings.dynamic_masking:
        return None
    return StaticMasker(vocab, settings.max_predictions_per_seq, settings.masked_lm_prob,
                        settings.do_whole_word_mask)


def create_chunk_examples(chunk_id: int, documents: Sequence[TokenizedDocument],
                          vocab: Sequence[str], settings: PretrainingDataSettings,
                          masker: StaticMasker | None = None) -> list[PretrainingExample]:
    """All examples of one chunk: `dupe_factor` passes over its documents, then shuffled.

    `masker` (default: `make_masker(vocab, settings)`) may be passed in to reuse it.
    """
    rng = random.Random(derive_seed(settings.random_seed, "chunk", chunk_id))
    if masker is None:
        masker = make_masker(vocab, settings)
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
    examples: list[PretrainingExample] = []
    for _ in range(settings.dupe_factor):
        for index in range(len(documents)):
            for pair in create_pairs_from_document(documents, index, settings.max_num_tokens,
                                                   settings.short_seq_prob, rng):
                examples.append(build_example(pair, cls_id, sep_id, masker, rng))
    rng.shuffle(examples)
    return examples


def plan_chunks(num_documents: int, settings: PretrainingDataSettings) -> list[list[int]]:
    """Document ids of each chunk: a seeded permutation cut into `documents_per_chunk`
    pieces (a last piece of one document joins the one before it).

    Example:
        >>> s = PretrainingDataSettings(documents_per_chunk=4)
        >>> [len(c) for c in plan_chunks(9, s)]
        [4, 5]
    """
    order = list(range(num_documents))
    random.Random(derive_seed(settings.random_seed, "documents")).shuffle(order)
    size = settings.documents_per_chunk
    chunks = [order[i:i + size] for i in range(0, num_documents, size)]
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks[-2].extend(chunks.pop())
    return chunks


def chunks_of_shard(num_chunks: int, shard: int, num_output_shards: int) -> list[int]:
    """Chunk ids written to output shard `shard` (round robin)."""
    return list(range(shard, num_chunks, num_output_shards))


def shards_of_worker(num_output_shards: int, shard_index: int, num_shards: int) -> list[int]:
    """Output shards that worker `shard_index` of `num_shards` machines writes."""
    return list(range(shard_index, num_output_shards, num_shards))
