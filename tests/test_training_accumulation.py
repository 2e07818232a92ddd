"""Gradient accumulation: N micro-batches of size b give the update of one batch of N*b."""

import numpy as np
import pytest
import tensorflow as tf

from kbert.configs import BertConfig
from kbert.models import BertEncoder, BertPretrainer
from kbert.training import objective
from kbert.training.accumulation import accumulate_gradients, split_micro_batches
from kbert.training.optimizers import create_optimizer


def _features(batch, seq=16, predictions=4, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    weights = np.ones((batch, predictions), np.float32)
    weights[:, -1] = rng.integers(0, 2, size=batch)   # uneven real predictions per example
    return {
        "input_ids": rng.integers(5, vocab, size=(batch, seq)).astype(np.int32),
        "input_mask": np.ones((batch, seq), np.int32),
        "segment_ids": np.repeat([[0] * (seq // 2) + [1] * (seq - seq // 2)], batch, 0).astype(np.int32),
        "masked_lm_positions": rng.integers(1, seq, size=(batch, predictions)).astype(np.int32),
        "masked_lm_ids": rng.integers(5, vocab, size=(batch, predictions)).astype(np.int32),
        "masked_lm_weights": weights,
        "next_sentence_labels": rng.integers(0, 2, size=batch).astype(np.int32),
    }


def _model():
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    model = BertPretrainer(BertEncoder(config))
    model(model.example_inputs())
    return model


def _gradients(model, features, num_micro_batches):
    denominators = objective.local_denominators(features)

    def loss_fn(batch):
        return objective.micro_batch_loss(batch, model(batch, training=True), denominators)
    return accumulate_gradients(loss_fn, features,
                                model.trainable_variables, num_micro_batches)


def test_split_micro_batches_keeps_order():
    parts = split_micro_batches({"x": tf.reshape(tf.range(12), (6, 2))}, 3)["x"].numpy()
    np.testing.assert_array_equal(parts[1], [[4, 5], [6, 7]])


def test_accumulated_gradients_and_update_equal_the_full_batch(num_micro_batches=4):
    model = _model()
    features = _features(8)
    full_grads, full_terms = _gradients(model, features, 1)
    accumulated, terms = tf.function(
        lambda f: _gradients(model, f, num_micro_batches))(features)
    for g_full, g_acc, v in zip(full_grads, accumulated, model.trainable_variables):
        np.testing.assert_allclose(tf.convert_to_tensor(g_acc).numpy(),
                                   tf.convert_to_tensor(g_full).numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=v.path)
    for name in objective.TERM_NAMES:
        np.testing.assert_allclose(float(terms[name]), float(full_terms[name]), rtol=1e-5)
    # The loss of the full batch is the weighted mean over every real prediction, which the
    # micro-batch losses only reach when normalised by the *global* denominators:
    naive = np.mean([float(objective.metrics_from_terms(_gradients(model, part, 1)[1])["loss"])
                     for part in [{k: v[i::num_micro_batches] for k, v in features.items()}
                                  for i in range(num_micro_batches)]])
    exact = objective.metrics_from_terms(full_terms)["loss"]
    assert abs(naive - exact) > 1e-6   # uneven weights: a plain mean would be wrong

    # One AdamW update from each gives the same weights.
    start = [v.numpy().copy() for v in model.trainable_variables]
    results = []
    for grads in (full_grads, accumulated):
        for v, w in zip(model.trainable_variables, start):
            v.assign(w)
        optimizer = create_optimizer("adamw", 1e-2, weight_decay=0.01, clip_norm=1.0, model=model)
        optimizer.apply([tf.convert_to_tensor(g) for g in grads], model.trainable_variables)
        results.append([v.numpy().copy() for v in model.trainable_variables])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_indivisible_batch_is_refused():
    with pytest.raises(tf.errors.InvalidArgumentError, match="divisible"):
        split_micro_batches({"x": tf.zeros((5, 2))}, 2)
