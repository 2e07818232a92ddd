"""`tf.train.Example` records with google-research/bert's feature names and dtypes.

Example:
    >>> data = serialize_example([2, 5, 3, 6, 3], [0, 0, 0, 1, 1], [1], [5], True,
    ...                          max_seq_length=8, max_predictions_per_seq=2)
    >>> import tensorflow as tf
    >>> parsed = tf.io.parse_single_example(data, feature_spec(8, 2))
    >>> parsed["input_mask"].numpy().tolist(), int(parsed["next_sentence_labels"][0])
    ([1, 1, 1, 1, 1, 0, 0, 0], 1)
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

# google's next_sentence_labels: 0 = B is the actual next segment, 1 = B is random.
IS_NEXT = 0
NOT_NEXT = 1

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                 "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


def feature_spec(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """google-research/bert's `run_pretraining.py` `name_to_features`."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def _padded(values: Sequence, length: int, fill=0) -> list:
    return list(values) + [fill] * (length - len(values))


def serialize_example(input_ids: Sequence[int], segment_ids: Sequence[int],
                      masked_lm_positions: Sequence[int], masked_lm_ids: Sequence[int],
                      is_random_next: bool, max_seq_length: int,
                      max_predictions_per_seq: int) -> bytes:
    """One padded example as deterministic `tf.train.Example` bytes.

    With no masked positions (dynamic masking) the masked_lm features are all zeros.
    """
    if len(input_ids) > max_seq_length:
        raise ValueError(f"example has {len(input_ids)} tokens > max_seq_length={max_seq_length}")
    if len(masked_lm_positions) > max_predictions_per_seq:
        raise ValueError(f"example has {len(masked_lm_positions)} predictions > "
                         f"max_predictions_per_seq={max_predictions_per_seq}")
    example = tf.train.Example()
    feature = example.features.feature
    n, k = len(input_ids), len(masked_lm_positions)
    feature["input_ids"].int64_list.value[:] = _padded(input_ids, max_seq_length)
    feature["input_mask"].int64_list.value[:] = [1] * n + [0] * (max_seq_length - n)
    feature["segment_ids"].int64_list.value[:] = _padded(segment_ids, max_seq_length)
    feature["masked_lm_positions"].int64_list.value[:] = _padded(masked_lm_positions,
                                                                 max_predictions_per_seq)
    feature["masked_lm_ids"].int64_list.value[:] = _padded(masked_lm_ids, max_predictions_per_seq)
    feature["masked_lm_weights"].float_list.value[:] = (
        [1.0] * k + [0.0] * (max_predictions_per_seq - k))
    feature["next_sentence_labels"].int64_list.value[:] = [NOT_NEXT if is_random_next else IS_NEXT]
    return example.SerializeToString(deterministic=True)
