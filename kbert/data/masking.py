"""Static masked-LM predictions: 15% of the non-special tokens, 80% [MASK] / 10% random /
10% unchanged, as google-research/bert's `create_masked_lm_predictions`.

Differences from google (deliberate; BUILD_NOTES.md, "Deviations from google-research/bert"):
the number to predict is `masked_lm_prob` times the number of *non-special* tokens (google
multiplies the length including [CLS]/[SEP]); none of the five special tokens ([PAD] [UNK] [CLS] [SEP]
[MASK]) is ever chosen (google may choose [UNK]) or drawn as the random replacement.

Example:
    >>> import random
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##c"]
    >>> masker = StaticMasker(vocab, max_predictions_per_seq=2, masked_lm_prob=0.5)
    >>> out = masker.mask([2, 5, 6, 7, 3], [True] * 5, random.Random(0))
    >>> len(out.positions), all(p not in (0, 4) for p in out.positions)
    (2, True)
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import random
from typing import Sequence

from kbert.tokenizers import SPECIAL_TOKENS
CONTINUATION_PREFIX = "##"


def special_token_ids(vocab: Sequence[str]) -> list[int]:
    """Ids of the five special tokens present in `vocab`."""
    index = {token: i for i, token in enumerate(vocab)}
    return sorted(index[t] for t in SPECIAL_TOKENS if t in index)


def replacement_token_ids(vocab: Sequence[str]) -> list[int]:
    """Ids a masked position may be replaced with at random: every non-special token."""
    special = set(special_token_ids(vocab))
    return [i for i in range(len(vocab)) if i not in special]


def word_start_table(vocab: Sequence[str]) -> list[bool]:
    """`table[id]` is False for `##` continuation pieces (WordPiece's convention)."""
    return [not token.startswith(CONTINUATION_PREFIX) for token in vocab]


def tokenizer_masking_ids(tokenizer) -> dict:
    """{special_ids, mask_id} of a byte-level BPE or SentencePiece tokenizer (RoBERTa's
    `<mask>`, ALBERT's `[MASK]`); {} for WordPiece, whose vocabulary says them."""
    if not hasattr(tokenizer, "special_ids"):
        return {}
    return {"special_ids": tokenizer.special_ids, "mask_id": tokenizer.mask_id}


def ngram_weights(max_ngram: int) -> list[float]:
    """ALBERT's span-length law: P(n) ∝ 1/n for n = 1..max_ngram.

    Example:
        >>> [round(w, 4) for w in ngram_weights(3)]   # 6/11, 3/11, 2/11
        [0.5455, 0.2727, 0.1818]
    """
    weights = [1.0 / n for n in range(1, max_ngram + 1)]
    return [w / sum(weights) for w in weights]


def num_to_predict(num_candidates: int, masked_lm_prob: float, max_predictions: int) -> int:
    """`min(max_predictions, max(1, round(num_candidates * masked_lm_prob)))`, 0 if none.

    Example:
        >>> num_to_predict(125, 0.15, 20), num_to_predict(3, 0.15, 20), num_to_predict(0, 0.15, 20)
        (19, 1, 0)
    """
    if num_candidates <= 0:
        return 0
    return min(max_predictions, max(1, int(round(num_candidates * masked_lm_prob))))


@dataclasses.dataclass
class MaskedTokens:
    """`input_ids` after masking; `positions` (ascending) and their original `labels`."""

    input_ids: list[int]
    positions: list[int]
    labels: list[int]


class StaticMasker:
    """Chooses and replaces masked-LM positions of one example (python, seeded `rng`).

    Args:
        vocab: the vocabulary (list of tokens, index = id).
        max_predictions_per_seq: most positions chosen per example.
        masked_lm_prob: fraction of the non-special tokens chosen.
        do_whole_word_mask: choose all pieces of a word together; a word that would
            overshoot the count is skipped (google's rule).
        max_ngram: ALBERT's n-gram masking (1: off): the candidate words (tokens without
            `do_whole_word_mask`) are cut left to right into spans of n = 1..max_ngram
            adjacent words, P(n) ∝ 1/n, and spans are chosen as whole words are (the
            same law as `kbert.data.dynamic_masking.DynamicMasker`).
        special_ids, mask_id: for tokenizers other than WordPiece (`for_tokenizer`).
    """

    def __init__(self, vocab: Sequence[str], max_predictions_per_seq: int,
                 masked_lm_prob: float = 0.15, do_whole_word_mask: bool = False,
                 max_ngram: int = 1, special_ids: Sequence[int] | None = None,
                 mask_id: int | None = None):
        self.max_predictions_per_seq = max_predictions_per_seq
        self.masked_lm_prob = masked_lm_prob
        self.do_whole_word_mask = do_whole_word_mask
        if int(max_ngram) < 1:
            raise ValueError(f"max_ngram must be at least 1, got {max_ngram}")
        self.max_ngram = int(max_ngram)
        self._ngram_cumulative = list(itertools.accumulate(ngram_weights(self.max_ngram)))
        self.mask_id = list(vocab).index("[MASK]") if mask_id is None else int(mask_id)
        self.special_ids = frozenset(special_token_ids(vocab) if special_ids is None
                                     else special_ids)
        self.replacement_ids = [i for i in range(len(vocab)) if i not in self.special_ids]

    @classmethod
    def for_tokenizer(cls, tokenizer, max_predictions_per_seq: int, **kwargs):
        """A masker for any kbert tokenizer (WordPiece, byte-level BPE, SentencePiece)."""
        return cls(tokenizer.vocab, max_predictions_per_seq,
                   **tokenizer_masking_ids(tokenizer), **kwargs)

    def candidate_groups(self, input_ids: Sequence[int],
                         word_starts: Sequence[bool]) -> list[list[int]]:
        """Positions that may be chosen, grouped by word when `do_whole_word_mask`."""
        special = self.special_ids
        if not self.do_whole_word_mask:
            return [[p] for p, t in enumerate(input_ids) if t not in special]
        groups: list[list[int]] = []
        previous_is_candidate = False
        for position, (token_id, starts) in enumerate(zip(input_ids, word_starts)):
            if token_id in special:
                previous_is_candidate = False
            elif previous_is_candidate and not starts:
                groups[-1].append(position)
            else:
                groups.append([position])
                previous_is_candidate = True
        return groups

    def ngram_spans(self, groups: list[list[int]], rng: random.Random) -> list[list[int]]:
        """`groups` (words, in order) joined left to right into spans of n adjacent words,
        n drawn with P(n) ∝ 1/n; a span never jumps over a special token."""
        spans: list[list[int]] = []
        left = 0
        for group in groups:
            if left and spans[-1][-1] + 1 == group[0]:
                spans[-1].extend(group)
                left -= 1
                continue
            spans.append(list(group))
            left = min(bisect.bisect_left(self._ngram_cumulative, rng.random()),
                       self.max_ngram - 1)   # n - 1 more words join this span
        return spans

    def choose_positions(self, input_ids: Sequence[int], word_starts: Sequence[bool],
                         rng: random.Random) -> list[int]:
        """The positions to predict (in the order chosen)."""
        if not self.do_whole_word_mask and self.max_ngram == 1:
            candidates = [p for p, t in enumerate(input_ids) if t not in self.special_ids]
            budget = num_to_predict(len(candidates), self.masked_lm_prob,
                                    self.max_predictions_per_seq)
            # A uniform random subset, as google's shuffle-then-take-the-first.
            return rng.sample(candidates, budget)
        groups = self.candidate_groups(input_ids, word_starts)
        budget = num_to_predict(sum(map(len, groups)), self.masked_lm_prob,
                                self.max_predictions_per_seq)
        if self.max_ngram > 1:
            groups = self.ngram_spans(groups, rng)
        rng.shuffle(groups)
        chosen: list[int] = []
        for group in groups:
            if len(chosen) >= budget:
                break
            if len(chosen) + len(group) <= budget:  # google skips words that overshoot
                chosen.extend(group)
        return chosen

    def mask(self, input_ids: Sequence[int], word_starts: Sequence[bool],
             rng: random.Random) -> MaskedTokens:
        """Choose positions, then replace each: 80% [MASK], 10% random token, 10% kept."""
        chosen = self.choose_positions(input_ids, word_starts, rng)
        output = list(input_ids)
        for position in chosen:
            if rng.random() < 0.8:
                output[position] = self.mask_id
            elif rng.random() < 0.5:
                pass  # 10%: keep the original token
            else:
                output[position] = self.replacement_ids[
                    rng.randint(0, len(self.replacement_ids) - 1)]
        chosen.sort()
        return MaskedTokens(output, chosen, [input_ids[p] for p in chosen])
