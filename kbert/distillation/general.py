"""General (task-agnostic) distillation, DistilBERT-style: a pre-trained `BertPretrainer`
teacher teaches a smaller `BertPretrainer` student on raw text.

loss = alpha_soft · KL(teacher ‖ student MLM distributions at T) · T² over masked positions
     + alpha_hard · masked-LM cross-entropy
     + alpha_hidden · (1 − cos) between last hidden states over real tokens
Defaults: T = 2, 5.0 / 2.0 / 1.0 (Sanh et al. 2019). NSP is not distilled (DistilBERT drops
it); the student keeps the teacher's NSP head weights.

Example:
    >>> history = distill_general(teacher, student, dataset, num_steps=1000)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time

import keras
import numpy as np
import tensorflow as tf

from kbert.distillation.losses import hidden_state_loss, soft_target_loss
from kbert.models.pretrainer import encoder_inputs
from kbert.tasks.optimization import fine_tuning_optimizer


def _mlm(model, features, training):
    encoded = model.encoder(encoder_inputs(features), training=training)
    logits = model.mlm_head(encoded["sequence_output"], features["masked_lm_positions"])
    return tf.cast(logits, tf.float32), encoded["sequence_output"]


def masked_lm_scores(model, features) -> tuple:
    """(weighted MLM loss, accuracy) on one batch."""
    logits, _ = _mlm(model, features, False)
    weights = tf.cast(features["masked_lm_weights"], tf.float32)
    loss = tf.keras.losses.sparse_categorical_crossentropy(features["masked_lm_ids"], logits,
                                                           from_logits=True)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                               tf.cast(features["masked_lm_ids"], tf.int32)), tf.float32)
    total = tf.maximum(tf.reduce_sum(weights), 1.0)
    return (float(tf.reduce_sum(loss * weights) / total),
            float(tf.reduce_sum(correct * weights) / total))


def distill_general(teacher, student, dataset, num_steps: int, temperature: float = 2.0,
                    alpha_soft: float = 5.0, alpha_hard: float = 2.0, alpha_hidden: float = 1.0,
                    learning_rate: float = 1e-4, warmup_proportion: float = 0.1,
                    log=logging.info, log_every: int = 50) -> dict:
    """Train `student` for `num_steps` batches of pre-training features; returns the mean
    losses of each logging window."""
    if not (hasattr(teacher, "mlm_head") and hasattr(student, "mlm_head")):
        raise ValueError("general distillation needs teacher and student with MLM heads "
                         "(BertPretrainer model directories, e.g. from trainers.pretrain)")
    t_width = teacher.encoder.config.hidden_size
    s_width = student.encoder.config.hidden_size
    projection = None
    if t_width != s_width:
        projection = keras.layers.Dense(t_width, name="hidden_projection")
        projection.build((None, None, s_width))
    optimizer = fine_tuning_optimizer(student, learning_rate, num_steps, warmup_proportion)
    variables = student.trainable_variables + (projection.trainable_variables
                                               if projection else [])
    vocab = student.encoder.config.vocab_size

    @tf.function(reduce_retracing=True)
    def step(features):
        t_logits, t_states = _mlm(teacher, features, False)
        weights = tf.reshape(tf.cast(features["masked_lm_weights"], tf.float32), [-1])
        with tf.GradientTape() as tape:
            s_logits, s_states = _mlm(student, features, True)
            soft = soft_target_loss(tf.reshape(s_logits, [-1, vocab]),
                                    tf.reshape(t_logits, [-1, vocab]), temperature, weights)
            ce = tf.keras.losses.sparse_categorical_crossentropy(
                tf.reshape(features["masked_lm_ids"], [-1]), tf.reshape(s_logits, [-1, vocab]),
                from_logits=True)
            hard = tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
            states = projection(s_states) if projection is not None else s_states
            hidden = hidden_state_loss(states, t_states, features["input_mask"], "cosine")
            total = alpha_soft * soft + alpha_hard * hard + alpha_hidden * hidden
        grads = tape.gradient(total, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return soft, hard, hidden, total

    history = {"step": [], "soft": [], "hard": [], "hidden": [], "total": []}
    window, started = [], time.time()
    for index, features in enumerate(dataset.take(num_steps), start=1):
        window.append([float(v) for v in step(features)])
        if index % log_every == 0 or index == num_steps:
            means = np.mean(window, axis=0)
            history["step"].append(index)
            for key, value in zip(("soft", "hard", "hidden", "total"), means):
                history[key].append(float(value))
            log(f"general distillation step {index}/{num_steps}: soft {means[0]:.3f} hard "
                f"{means[1]:.3f} cosine {means[2]:.3f} ({time.time() - started:.0f} s)")
            window = []
    return history
