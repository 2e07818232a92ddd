"""Gradient checkpointing: recomputed blocks give the gradients of the network that ran
(same dropout masks), in eager and graph mode, and keep less in memory."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from kbert.configs import BertConfig
from kbert.models import BertEncoder


def _encoder(checkpointing):
    keras.utils.set_random_seed(7)    # same weights and dropout seed states for both
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, hidden_dropout_prob=0.3,
                        attention_probs_dropout_prob=0.3, max_position_embeddings=32)
    encoder = BertEncoder(config)
    encoder.gradient_checkpointing = checkpointing
    return encoder


def _inputs():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, size=(3, 12)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


def _loss_and_grads(encoder, graph, training=True):
    def step(inputs):
        with tf.GradientTape() as tape:
            outputs = encoder(inputs, training=training)
            out = outputs["sequence_output"]
            loss = tf.reduce_sum(out * tf.cast(tf.range(32), out.dtype)) + \
                tf.reduce_sum(outputs["pooled_output"])
        return loss, tape.gradient(loss, encoder.trainable_variables)
    if graph:
        step = tf.function(step)
    loss, grads = step(_inputs())
    return float(loss), [np.asarray(tf.convert_to_tensor(g)) for g in grads]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
def test_recomputed_blocks_give_the_gradients_of_the_network_that_ran(graph):
    loss, grads = _loss_and_grads(_encoder(False), graph)
    loss_ckpt, grads_ckpt = _loss_and_grads(_encoder(True), graph)
    assert loss_ckpt == pytest.approx(loss, rel=1e-6)
    assert len(grads) == len(grads_ckpt) and all(g is not None for g in grads_ckpt)
    for g, h in zip(grads, grads_ckpt):
        np.testing.assert_allclose(h, g, rtol=1e-4, atol=1e-5)
    # Dropout was on: without it the gradients differ (so the comparison above can fail).
    _, plain = _loss_and_grads(_encoder(False), graph, training=False)
    assert max(np.abs(a - b).max() for a, b in zip(plain, grads)) > 1e-3


def test_switch_is_per_block_and_not_saved():
    encoder = _encoder(True)
    assert encoder.gradient_checkpointing
    assert all(b.gradient_checkpointing for b in encoder.transformer_layers)
    again = BertEncoder.from_config(encoder.get_config())
    assert not again.gradient_checkpointing
    # Inference is untouched: same outputs with the switch on or off.
    on = encoder(_inputs(), training=False)["sequence_output"]
    encoder.gradient_checkpointing = False
    np.testing.assert_array_equal(on, encoder(_inputs(), training=False)["sequence_output"])
