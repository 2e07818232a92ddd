"""BERT's pre-training objective split over replicas and micro-batches.

The loss of a global batch is `mlm_loss_sum / W + nsp_loss_sum / C`, where `W` (the summed
masked-LM weights) and `C` (the number of sequences) are totals over the *global* batch.
Each replica computes `W` and `C` from its features, all-reduces them, and divides its own
sums by the totals; the replicas' gradients then add up to exactly the gradient of the
single-device loss at the same global batch.

Example:
    >>> import numpy as np
    >>> features = {"masked_lm_weights": np.array([[1., 1., 0.]], "float32"),
    ...             "next_sentence_labels": np.array([1])}
    >>> {k: float(v) for k, v in local_denominators(features).items()}
    {'mlm_weight_sum': 2.0, 'nsp_count': 1.0}
"""

from __future__ import annotations

import math

import tensorflow as tf

from kbert.models.pretraining_losses import (TERM_NAMES, losses_from_terms,
                                             pretraining_loss_terms)

__all__ = ["TERM_NAMES", "local_denominators", "micro_batch_loss", "metrics_from_terms"]


def local_denominators(features) -> dict:
    """This replica's share of the global denominators, from the features alone."""
    weights = tf.cast(features["masked_lm_weights"], tf.float32)
    labels = tf.reshape(features["next_sentence_labels"], [-1])
    return {"mlm_weight_sum": tf.reduce_sum(weights),
            "nsp_count": tf.cast(tf.shape(labels)[0], tf.float32)}


def micro_batch_loss(features, outputs, global_denominators: dict):
    """`(loss, terms)`: this (micro-)batch's contribution to the global-batch loss, and its
    loss/accuracy sums (`TERM_NAMES`) for reporting."""
    terms = pretraining_loss_terms(features, outputs)
    loss = losses_from_terms({**terms, **global_denominators})["loss"]
    return loss, terms


def metrics_from_terms(terms: dict) -> dict:
    """Host-side means (`loss`, `mlm_loss`, `nsp_loss`, `mlm_accuracy`, `nsp_accuracy`) from
    summed terms (numbers or scalar tensors)."""
    values = {k: float(v) for k, v in terms.items()}
    return {k: float(v) for k, v in losses_from_terms(values).items()}


def all_finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values())
