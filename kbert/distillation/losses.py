"""Distillation losses (Hinton et al. 2015; DistilBERT, Sanh et al. 2019).

Example:
    >>> import numpy as np
    >>> float(soft_target_loss(np.zeros((1, 3)), np.zeros((1, 3)), temperature=2.0))
    0.0
"""

from __future__ import annotations

import tensorflow as tf


def soft_target_loss(student_logits, teacher_logits, temperature: float = 2.0, weights=None):
    """KL(teacher ‖ student) of the temperature-softened distributions, times T² (so its
    gradient scale does not shrink with T), averaged over rows (weighted if `weights`)."""
    t = tf.cast(temperature, tf.float32)
    teacher = tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / t, axis=-1)
    log_student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / t, axis=-1)
    log_teacher = tf.math.log(tf.maximum(teacher, 1e-12))
    kl = tf.reduce_sum(teacher * (log_teacher - log_student), axis=-1) * t * t
    if weights is None:
        return tf.reduce_mean(kl)
    weights = tf.cast(weights, tf.float32)
    return tf.reduce_sum(kl * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def hidden_state_loss(student_states, teacher_states, mask, kind: str = "cosine"):
    """Mean over real tokens of `1 - cos(s, t)` (`"cosine"`) or of the squared error per
    dimension (`"mse"`); `student_states` already projected to the teacher's width."""
    mask = tf.cast(mask, tf.float32)
    s = tf.cast(student_states, tf.float32)
    t = tf.cast(teacher_states, tf.float32)
    if kind == "cosine":
        per_token = 1.0 - tf.reduce_sum(tf.math.l2_normalize(s, -1) * tf.math.l2_normalize(t, -1),
                                        axis=-1)
    elif kind == "mse":
        per_token = tf.reduce_mean(tf.square(s - t), axis=-1)
    else:
        raise ValueError(f"hidden-state loss must be 'cosine' or 'mse', got {kind!r}")
    return tf.reduce_sum(per_token * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
