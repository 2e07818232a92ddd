"""Masked-LM and next-sentence losses and accuracies, as sums a distributed loop can reduce.

Example:
    >>> import numpy as np
    >>> features = {"masked_lm_ids": np.array([[3, 0]]), "masked_lm_weights": np.array([[1., 0.]]),
    ...             "next_sentence_labels": np.array([0])}
    >>> outputs = {"mlm_logits": np.zeros((1, 2, 5), "float32"),
    ...            "nsp_logits": np.zeros((1, 2), "float32")}
    >>> round(float(pretraining_losses(features, outputs)["mlm_loss"]), 4)  # log(5)
    1.6094
"""

import tensorflow as tf
from keras import ops

TERM_NAMES = ("mlm_loss_sum", "mlm_weight_sum", "mlm_correct_sum",
              "nsp_loss_sum", "nsp_count", "nsp_correct_sum")


def _sparse_cross_entropy(labels, logits):
    # One fused op (TensorFlow's SparseSoftmaxCrossEntropyWithLogits), not log_softmax +
    # take_along_axis, whose gradient scatters into a dense [B*P, vocab] tensor
    # (benchmarks/pretrain_step_variants.py, variant fused_cross_entropy; BUILD_NOTES issue 17).
    return ops.sparse_categorical_crossentropy(labels, ops.cast(logits, "float32"),
                                               from_logits=True)


def _top1(logits):
    # tf.argmax, not keras.ops.argmax: Keras' TensorFlow backend first rewrites -0.0 as the
    # smallest negative float (a sign-bit test, a comparison and a select: five passes over
    # the [batch, predictions, vocab] logits; dropping them measured 1.02× on a mini step)
    # so that argmax breaks 0.0/-0.0 ties as NumPy does; an accuracy does not need that
    # (benchmarks/pretrain_step_variants.py, variant keras_argmax; BUILD_NOTES issue 17).
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def pretraining_loss_terms(features, outputs):
    """Per-replica sums: reduce each with SUM across replicas, then divide.

    `mlm_*` sums are weighted by `masked_lm_weights` (padding predictions weigh 0). Without
    `nsp_logits` (a masked-LM-only model: RoBERTa, DistilBERT) the `nsp_*` sums are 0.
    """
    mlm_labels = ops.cast(features["masked_lm_ids"], "int32")
    mlm_weights = ops.cast(features["masked_lm_weights"], "float32")
    mlm_logits = outputs["mlm_logits"]
    mlm_ce = _sparse_cross_entropy(mlm_labels, mlm_logits)
    mlm_hit = ops.cast(ops.equal(_top1(mlm_logits), mlm_labels), "float32")

    terms = {
        "mlm_loss_sum": ops.sum(mlm_ce * mlm_weights),
        "mlm_weight_sum": ops.sum(mlm_weights),
        "mlm_correct_sum": ops.sum(mlm_hit * mlm_weights),
    }
    if "nsp_logits" not in outputs:
        zero = ops.zeros((), "float32")
        return {**terms, "nsp_loss_sum": zero, "nsp_count": zero, "nsp_correct_sum": zero}
    nsp_labels = ops.reshape(ops.cast(features["next_sentence_labels"], "int32"), (-1,))
    nsp_logits = outputs["nsp_logits"]
    nsp_ce = _sparse_cross_entropy(nsp_labels, nsp_logits)
    nsp_hit = ops.cast(ops.equal(_top1(nsp_logits), nsp_labels), "float32")
    return {
        **terms,
        "nsp_loss_sum": ops.sum(nsp_ce),
        "nsp_count": ops.cast(ops.shape(nsp_labels)[0], "float32"),
        "nsp_correct_sum": ops.sum(nsp_hit),
    }


def losses_from_terms(terms):
    """Means from (reduced) sums: `loss = mlm_loss + nsp_loss`, plus both accuracies."""
    mlm_denominator = terms["mlm_weight_sum"] + 1e-5  # as google-research/bert
    nsp_denominator = ops.maximum(terms["nsp_count"], 1.0)
    mlm_loss = terms["mlm_loss_sum"] / mlm_denominator
    nsp_loss = terms["nsp_loss_sum"] / nsp_denominator
    return {
        "loss": mlm_loss + nsp_loss,
        "mlm_loss": mlm_loss,
        "nsp_loss": nsp_loss,
        "mlm_accuracy": terms["mlm_correct_sum"] / mlm_denominator,
        "nsp_accuracy": terms["nsp_correct_sum"] / nsp_denominator,
    }


def pretraining_losses(features, outputs):
    """Loss and accuracies of one (local) batch."""
    return losses_from_terms(pretraining_loss_terms(features, outputs))


def named_for_objective(metrics: dict, sentence_objective: str = "nsp") -> dict:
    """Reported metrics with the sentence terms under the objective's name: `nsp_*` for
    NSP, `sop_*` for sentence-order prediction, left out when there is none. The sums
    (`TERM_NAMES`) keep their generic `nsp_` names, so checkpoints do not depend on this.

    Example:
        >>> named_for_objective({"loss": 1.0, "nsp_loss": 0.5, "nsp_accuracy": 0.7}, "sop")
        {'loss': 1.0, 'sop_loss': 0.5, 'sop_accuracy': 0.7}
        >>> named_for_objective({"loss": 1.0, "nsp_loss": 0.0}, "none")
        {'loss': 1.0}
    """
    if sentence_objective == "nsp":
        return dict(metrics)
    return {(sentence_objective + name[3:] if name.startswith("nsp_") else name): value
            for name, value in metrics.items()
            if not (sentence_objective == "none" and name.startswith("nsp_"))}
