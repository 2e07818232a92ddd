"""In-graph masked-LM masking of batched examples (RoBERTa-style dynamic masking).

The same rules as the static masker (`kbert.data.masking`): `round(masked_lm_prob *
non-special tokens)` positions per example (at least 1, at most `max_predictions_per_seq`),
none of the five special tokens, 80% [MASK] / 10% random non-special token / 10% unchanged,
optional whole-word masking by the `##` convention (or the tokenizer's own word starts:
"Ġ" for byte-level BPE, "▁" for SentencePiece), optional n-gram masking (ALBERT: spans of
up to `max_ngram` words, length n drawn with probability proportional to 1/n). Randomness
is stateless: the same
seed gives the same masks, and `kbert.data.pipelines` feeds a new seed per batch, so every
epoch draws new masks.

keras-hub's `MaskedLMMaskGenerator` / tensorflow-text's `mask_language_model` were not used:
their random replacement may be any id (special tokens included), their count is per batch,
and they have no whole-word option for records that hold ids only.

Example:
    >>> import tensorflow as tf
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(20)]
    >>> masker = DynamicMasker(vocab, max_predictions_per_seq=4)
    >>> ids = tf.constant([[2, 5, 6, 7, 8, 9, 10, 11, 12, 3, 0, 0]])
    >>> out = masker(ids, tf.cast(ids > 0, tf.int32), seed=tf.constant([1, 2]))
    >>> int(tf.reduce_sum(out["masked_lm_weights"]))   # round(0.15 * 8) = 1
    1
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from kbert.data.masking import (ngram_weights, special_token_ids, tokenizer_masking_ids,
                                word_start_table)


class DynamicMasker:
    """Masks `[batch, max_seq_length]` id tensors in-graph.

    Args:
        vocab: the vocabulary (list of tokens, index = id).
        max_predictions_per_seq: width P of the masked_lm outputs.
        masked_lm_prob: fraction of the non-special tokens chosen.
        do_whole_word_mask: choose all pieces of a word (a token and its following `##`
            pieces) together; a word that would overshoot the count is skipped.
        max_ngram: 1, or ALBERT's n-gram masking: the words (whole words with
            `do_whole_word_mask`, else tokens) of each example are cut, left to right, into
            spans of n = 1..max_ngram words with P(n) proportional to 1/n (3: 6/11, 3/11,
            2/11); spans are then chosen in random order as whole words are.
        special_ids, mask_id, word_starts: for tokenizers other than WordPiece (RoBERTa's
            `<mask>`, ALBERT's `[MASK]`): the ids never masked, the mask id and the
            per-id word-start table; `DynamicMasker.for_tokenizer` reads them.
    """

    def __init__(self, vocab: Sequence[str], max_predictions_per_seq: int,
                 masked_lm_prob: float = 0.15, do_whole_word_mask: bool = False,
                 max_ngram: int = 1, special_ids: Sequence[int] | None = None,
                 mask_id: int | None = None, word_starts: Sequence[bool] | None = None):
        vocab = list(vocab)
        self.max_predictions_per_seq = int(max_predictions_per_seq)
        self.masked_lm_prob = float(masked_lm_prob)
        self.do_whole_word_mask = bool(do_whole_word_mask)
        if int(max_ngram) < 1:
            raise ValueError(f"max_ngram must be at least 1, got {max_ngram}")
        self.max_ngram = int(max_ngram)
        self.mask_id = vocab.index("[MASK]") if mask_id is None else int(mask_id)
        special = set(special_token_ids(vocab) if special_ids is None else special_ids)
        self._is_special = tf.constant([i in special for i in range(len(vocab))], tf.bool)
        self._replacement_ids = tf.constant(
            [i for i in range(len(vocab)) if i not in special], tf.int32)
        self._word_starts = tf.constant(
            word_start_table(vocab) if word_starts is None else list(word_starts), tf.bool)
        self._ngram_logits = tf.math.log([ngram_weights(self.max_ngram)])

    @classmethod
    def for_tokenizer(cls, tokenizer, max_predictions_per_seq: int, **kwargs):
        """A masker for any kbert tokenizer (WordPiece, byte-level BPE, SentencePiece).

        Example:
            >>> DynamicMasker.for_tokenizer(tokenizer, 20, max_ngram=3)  # doctest: +SKIP
        """
        if hasattr(tokenizer, "special_ids"):
            kwargs = dict(word_starts=tokenizer.word_start, **kwargs)
        return cls(tokenizer.vocab, max_predictions_per_seq, **tokenizer_masking_ids(tokenizer),
                   **kwargs)

    def get_config(self) -> dict:
        return {"max_predictions_per_seq": self.max_predictions_per_seq,
                "masked_lm_prob": self.masked_lm_prob,
                "do_whole_word_mask": self.do_whole_word_mask, "max_ngram": self.max_ngram}

    # ------------------------------------------------------------------ selection
    def _candidates(self, input_ids, input_mask):
        special = tf.gather(self._is_special, input_ids)
        return tf.logical_and(input_mask > 0, tf.logical_not(special))

    def _budget(self, candidates):
        count = tf.reduce_sum(tf.cast(candidates, tf.float32), axis=1)
        wanted = tf.maximum(1.0, tf.round(count * self.masked_lm_prob))  # round half to even
        wanted = tf.minimum(wanted, float(self.max_predictions_per_seq))
        return tf.cast(tf.where(count > 0, wanted, 0.0), tf.int32)

    def _select_tokens(self, candidates, budget, seed, k):
        """`budget` random candidates per row: (ascending positions [B, k], valid [B, k])."""
        scores = tf.random.stateless_uniform(tf.shape(candidates), seed)
        _, best = tf.math.top_k(tf.where(candidates, scores, -1.0), k=k)
        chosen = tf.range(k)[None, :] < budget[:, None]  # budget <= candidates, <= k
        length = tf.shape(candidates)[1]
        positions = tf.sort(tf.where(chosen, best, length), axis=1)
        return positions, positions < length

    @staticmethod
    def _positions_of(selected, k):
        """(ascending positions [B, k], valid [B, k]) of a selection mask."""
        length = tf.shape(selected)[1]
        key = tf.where(selected, tf.range(length)[None, :], length + tf.range(length)[None, :])
        _, positions = tf.math.top_k(-key, k=k)
        return positions, tf.gather(selected, positions, batch_dims=1)

    def _span_starts(self, group_start, seed):
        """Keep the group starts that begin an n-gram: cut the groups of each row, left to
        right, into runs of n groups, n drawn from the 1/n distribution."""
        batch, length = tf.shape(group_start)[0], tf.shape(group_start)[1]
        draws = tf.random.stateless_categorical(
            tf.tile(self._ngram_logits, [batch * length, 1]), 1, seed, dtype=tf.int32)
        span_length = tf.reshape(draws, [batch, length]) + 1

        def step(remaining, inputs):
            is_start, n = inputs
            begins = tf.logical_and(is_start, remaining == 0)
            remaining = tf.where(begins, n - 1,
                                 tf.where(is_start, remaining - 1, remaining))
            return remaining, begins

        _, begins = tf.scan(lambda carry, x: step(carry[0], x),
                            (tf.transpose(group_start), tf.transpose(span_length)),
                            initializer=(tf.zeros([batch], tf.int32),
                                         tf.zeros([batch], tf.bool)))
        return tf.transpose(begins)

    def _select_words(self, input_ids, candidates, budget, seed):
        batch, length = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
        previous = tf.pad(candidates[:, :-1], [[0, 0], [1, 0]])
        starts_word = tf.gather(self._word_starts, input_ids)
        if not self.do_whole_word_mask:  # n-grams of tokens
            starts_word = tf.ones_like(candidates)
        group_start = tf.logical_and(
            candidates, tf.logical_or(starts_word, tf.logical_not(previous)))
        if self.max_ngram > 1:
            seed, span_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
            group_start = self._span_starts(group_start, span_seed)
        group_id = tf.cumsum(tf.cast(group_start, tf.int32), axis=1) - 1  # [B, L]
        segment = tf.where(candidates, group_id + tf.range(batch)[:, None] * length,
                           batch * length)  # non-candidates go to one extra segment
        sizes = tf.math.unsorted_segment_sum(tf.ones_like(group_id), segment,
                                             batch * length + 1)[:-1]
        sizes = tf.reshape(sizes, [batch, length])  # pieces per group, 0 past the last group
        scores = tf.random.stateless_uniform([batch, length], seed)
        scores = tf.where(sizes > 0, scores, -1.0)
        order = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
        ordered_sizes = tf.gather(sizes, order, batch_dims=1)  # groups in random order

        def take(used, size):
            fits = tf.logical_and(size > 0, used + size <= budget)
            return used + tf.where(fits, size, 0)

        used_after = tf.scan(take, tf.transpose(ordered_sizes),
                             initializer=tf.zeros([batch], tf.int32))  # [L, B]
        used_before = tf.concat([tf.zeros([1, batch], tf.int32), used_after[:-1]], axis=0)
        taken_ordered = tf.transpose(used_after > used_before)  # [B, L] by rank
        taken = tf.scatter_nd(
            tf.stack([tf.repeat(tf.range(batch), length), tf.reshape(order, [-1])], axis=1),
            tf.reshape(taken_ordered, [-1]), [batch, length])  # by group id
        return tf.logical_and(candidates,
                              tf.gather(taken, tf.maximum(group_id, 0), batch_dims=1))

    # ------------------------------------------------------------------ masking
    def __call__(self, input_ids, input_mask, seed) -> dict:
        """Mask a batch.

        Args:
            input_ids, input_mask: `[batch, max_seq_length]` integer tensors.
            seed: shape-[2] integer tensor (stateless random seed).

        Returns:
            dict with `input_ids` (int32, masked), `masked_lm_positions`, `masked_lm_ids`
            (int32 `[batch, P]`, ascending positions, zero padded) and `masked_lm_weights`
            (float32 `[batch, P]`, 1 for real predictions).
        """
        input_ids = tf.cast(input_ids, tf.int32)
        input_mask = tf.cast(input_mask, tf.int32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
        candidates = self._candidates(input_ids, input_mask)
        budget = self._budget(candidates)
        batch, length = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
        width = self.max_predictions_per_seq
        k = tf.minimum(width, length)
        if self.do_whole_word_mask or self.max_ngram > 1:
            positions, valid = self._positions_of(
                self._select_words(input_ids, candidates, budget, seeds[0]), k)
        else:
            positions, valid = self._select_tokens(candidates, budget, seeds[0], k)
        positions = tf.where(valid, positions, 0)
        labels = tf.where(valid, tf.gather(input_ids, positions, batch_dims=1), 0)

        draw = tf.random.stateless_uniform([batch, k], seeds[1])
        random_ids = tf.gather(self._replacement_ids, tf.random.stateless_uniform(
            [batch, k], seeds[2], minval=0, maxval=tf.size(self._replacement_ids),
            dtype=tf.int32))
        replacement = tf.where(draw < 0.8, self.mask_id, tf.where(draw < 0.9, random_ids, labels))
        rows = tf.broadcast_to(tf.range(batch)[:, None], [batch, k])
        indices = tf.boolean_mask(tf.stack([rows, positions], axis=-1), valid)
        masked_ids = tf.tensor_scatter_nd_update(input_ids, indices,
                                                 tf.boolean_mask(replacement, valid))
        pad = [[0, 0], [0, width - k]]
        return {
            "input_ids": masked_ids,
            "masked_lm_positions": tf.pad(positions, pad),
            "masked_lm_ids": tf.pad(labels, pad),
            "masked_lm_weights": tf.pad(tf.cast(valid, tf.float32), pad),
        }
