"""Task-specific distillation: a student classifier learns from a fine-tuned teacher.

loss = alpha_soft · KL(teacher ‖ student at temperature T) · T²
     + alpha_hard · cross-entropy(labels, student)
     + alpha_hidden · hidden-state loss (cosine or MSE between last hidden states over real
       tokens, through a learned projection when the student is narrower; optional)

Defaults follow DistilBERT (T = 2, alpha 5 / 2 / 1). Teacher logits are computed once and
cached (`cache_teacher_logits`, the default: the teacher then runs one forward pass per
example instead of one per epoch) or on the fly; a hidden-state loss always runs the
teacher on the fly (its states are too large to cache).

Example:
    >>> settings = DistillationSettings(num_train_epochs=3)                 # doctest: +SKIP
    >>> history = distill_task(teacher, student, tokenizer, texts, label_ids, settings)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import time

import keras
import numpy as np
import tensorflow as tf

from kbert.distillation.losses import hidden_state_loss, soft_target_loss
from kbert.distillation.students import encoder_of, with_sequence_output
from kbert.tasks.batching import pad_id_rows
from kbert.tasks.optimization import fine_tuning_optimizer

HIDDEN_LOSSES = ("none", "cosine", "mse")


@dataclasses.dataclass
class DistillationSettings:
    temperature: float = 2.0
    alpha_soft: float = 5.0
    alpha_hard: float = 2.0
    alpha_hidden: float = 1.0
    hidden_loss: str = "none"
    learning_rate: float = 1e-4
    warmup_proportion: float = 0.1
    num_train_epochs: float = 3.0
    batch_size: int = 32
    max_seq_length: int = 128
    cache_teacher_logits: bool = True
    seed: int = 12345

    def __post_init__(self):
        if self.hidden_loss not in HIDDEN_LOSSES:
            raise ValueError(f"hidden_loss must be one of {HIDDEN_LOSSES}, "
                             f"got {self.hidden_loss!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


def encode_pieces(tokenizer, texts, max_seq_length):
    """Per-example id lists `[CLS] pieces [SEP]`, truncated to `max_seq_length`."""
    pieces = tokenizer.tokenize(list(texts)).to_list()
    return [[tokenizer.cls_id] + p[:max_seq_length - 2] + [tokenizer.sep_id] for p in pieces]


def pad_rows(rows, pad_id=0):
    """Encoder features (`token_ids`, `segment_ids`, `padding_mask`) from id lists."""
    ids, mask, types = pad_id_rows(rows, pad_id)
    return {"token_ids": ids, "segment_ids": types, "padding_mask": mask}


def length_bucketed_batches(lengths, batch_size, rng, pool=20):
    """Index batches: shuffled, then sorted by length inside pools of `pool` batches (so a
    batch pads to a similar length), batch order shuffled again."""
    order = rng.permutation(len(lengths))
    batches = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def predict_logits(model, rows, batch_size=64) -> np.ndarray:
    order = np.argsort([len(r) for r in rows])
    out = np.zeros((len(rows), 0), np.float32)
    results = {}
    for start in range(0, len(rows), batch_size):
        index = order[start:start + batch_size]
        logits = model(pad_rows([rows[i] for i in index]), training=False)
        logits = logits["logits"] if isinstance(logits, dict) else logits
        for i, row in zip(index, np.asarray(logits)):
            results[i] = row
    if results:
        out = np.stack([results[i] for i in range(len(rows))]).astype(np.float32)
    return out


def distill_task(teacher, student, tokenizer, texts, labels, settings: DistillationSettings,
                 log=logging.info, student_tokenizer=None, progress=None) -> dict:
    """Train `student` on `(texts, labels)` (label ids) against `teacher`; returns a history
    of per-epoch mean losses (`soft`, `hard`, `hidden`, `total`). A `student_tokenizer`
    (a pruned vocabulary) tokenizes the student's inputs; the teacher keeps `tokenizer`."""
    rng = np.random.default_rng(settings.seed)
    keras.utils.set_random_seed(settings.seed)
    teacher_rows = encode_pieces(tokenizer, texts, settings.max_seq_length)
    rows = (teacher_rows if student_tokenizer is None
            else encode_pieces(student_tokenizer, texts, settings.max_seq_length))
    labels = np.asarray(labels, np.int32)
    use_hidden = settings.hidden_loss != "none"
    if use_hidden and student_tokenizer is not None:
        raise ValueError("a hidden-state loss needs teacher and student to share token "
                         "positions; it cannot be combined with a pruned vocabulary")
    cached = None
    if settings.cache_teacher_logits and not use_hidden:
        log("caching teacher logits")
        cached = predict_logits(teacher, teacher_rows)
    t_model = with_sequence_output(teacher) if use_hidden else teacher
    s_model = with_sequence_output(student) if use_hidden else student
    projection = None
    t_width, s_width = encoder_of(teacher).config.hidden_size, encoder_of(student).config.hidden_size
    if use_hidden and t_width != s_width:
        projection = keras.layers.Dense(t_width, name="hidden_projection")
        projection.build((None, None, s_width))
    steps_per_epoch = -(-len(rows) // settings.batch_size)
    total_steps = max(1, int(round(steps_per_epoch * settings.num_train_epochs)))
    optimizer = fine_tuning_optimizer(student, settings.learning_rate, total_steps,
                                      settings.warmup_proportion)
    variables = student.trainable_variables + (projection.trainable_variables
                                               if projection else [])
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in
            ("token_ids", "segment_ids", "padding_mask")}

    @tf.function(input_signature=[spec, spec, tf.TensorSpec([None], tf.int32),
                                  tf.TensorSpec([None, None], tf.float32)])
    def step(features, teacher_features, y, teacher_logits):
        if use_hidden:
            t_out = t_model(teacher_features, training=False)
            teacher_logits = t_out["logits"]
        elif cached is None:
            out = t_model(teacher_features, training=False)
            teacher_logits = out["logits"] if isinstance(out, dict) else out
        with tf.GradientTape() as tape:
            s_out = s_model(features, training=True)
            s_logits = s_out["logits"] if isinstance(s_out, dict) else s_out
            soft = soft_target_loss(s_logits, teacher_logits, settings.temperature)
            hard = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
                y, s_logits, from_logits=True))
            hidden = tf.constant(0.0)
            if use_hidden:
                states = s_out["sequence_output"]
                if projection is not None:
                    states = projection(states)
                hidden = hidden_state_loss(states, t_out["sequence_output"],
                                           features["padding_mask"], settings.hidden_loss)
            total = (settings.alpha_soft * soft + settings.alpha_hard * hard
                     + settings.alpha_hidden * hidden)
        grads = tape.gradient(total, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return soft, hard, hidden, total

    history = {"soft": [], "hard": [], "hidden": [], "total": []}
    lengths = [len(r) for r in rows]
    done = 0
    epoch = 0
    num_classes = int(np.max(labels)) + 1 if len(labels) else 1
    while done < total_steps:
        epoch += 1
        started = time.time()
        sums = np.zeros(4)
        count = 0
        for index in length_bucketed_batches(lengths, settings.batch_size, rng):
            if done >= total_steps:
                break
            features = pad_rows([rows[i] for i in index])
            teacher_features = (features if teacher_rows is rows
                                else pad_rows([teacher_rows[i] for i in index]))
            teacher_logits = (cached[index] if cached is not None
                              else np.zeros((len(index), num_classes), np.float32))
            values = step(features, teacher_features, labels[index], teacher_logits)
            sums += [float(v) for v in values]
            count += 1
            done += 1
            if progress is not None:    # e.g. kbert.training.progress.ProgressFile.update
                progress(done, total_steps, epoch=epoch,
                         epochs=-(-total_steps // steps_per_epoch))
        for key, value in zip(history, sums / max(count, 1)):
            history[key].append(float(value))
        log(f"distill epoch {epoch}: soft {history['soft'][-1]:.4f} hard "
            f"{history['hard'][-1]:.4f} total {history['total'][-1]:.4f} "
            f"({time.time() - started:.0f} s, {count} steps)")
    return history
