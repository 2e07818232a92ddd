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

import dataclasses
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
    """

    def __init__(self, vocab: Sequence[str], max_predictions_per_seq: int,
                 masked_lm_prob: float = 0.15, do_whole_word_mask: bool = False):
        self.max_predictions_per_seq = max_predictions_per_seq
        self.masked_lm_prob = masked_lm_prob
        self.do_whole_word_mask = do_whole_word_mask
        self.mask_id = list(vocab).index("[MASK]")
        self.special_ids = frozenset(special_token_ids(vocab))
        self.replacement_ids = replacement_token_ids(vocab)

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

    def choose_positions(self, input_ids: Sequence[int], word_starts: Sequence[bool],
                         rng: random.Random) -> list[int]:
        """The positions to predict (in the order chosen)."""
        if not self.do_whole_word_mask:
            candidates = [p for p, t in enumerate(input_ids) if t not in self.special_ids]
            budget = num_to_predict(len(candidates), self.masked_lm_prob,
                                    self.max_predictions_per_seq)
            # A uniform random subset, as google's shuffle-then-take-the-first.
            return rng.sample(candidates, budget)
        groups = self.candidate_groups(input_ids, word_starts)
        budget = num_to_predict(sum(map(len, groups)), self.masked_lm_prob,
                                self.max_predictions_per_seq)
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
