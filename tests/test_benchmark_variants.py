"""`benchmarks/pretrain_step_variants.py`: every variant that claims kbert's math with other
ops gives kbert's loss and gradients, so an A/B of its speed compares like with like."""

from __future__ import annotations

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import pretrain_step_variants as variants  # noqa: E402
from pretrain_throughput import synthetic_batch  # noqa: E402

from kbert.configs import BertConfig  # noqa: E402
from kbert.models import BertEncoder, BertPretrainer  # noqa: E402
from kbert.models.pretraining_losses import pretraining_losses  # noqa: E402

SAME_MATH = ("fused_qkv", "fused_qkv_split", "einsum_scores", "fused_cross_entropy",
             "gelu_custom_gradient", "vocab_transpose_b", "layer_norm_custom_gradient")


def _loss_and_gradients(variant, features):
    """Loss and gradients of a seeded tiny pre-trainer, the step traced under `variant`
    (`synthetic_batch` draws token ids from 1000 up, hence the vocabulary of 1,100)."""
    keras.utils.set_random_seed(3)
    config = BertConfig(vocab_size=1100, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        initializer_range=0.3)   # scores far from uniform: a change shows
    with variants.patched(variant):
        model = BertPretrainer(BertEncoder(config))
        model(model.example_inputs(), training=False)

        @tf.function
        def step(features):
            with tf.GradientTape() as tape:
                loss = pretraining_losses(features, model(features, training=True))["loss"]
            return loss, tape.gradient(loss, model.trainable_variables)

        loss, grads = step(features)
    # Paths without the model's own (uniquified) name: bert_pretrainer_1/... -> .../...
    return float(loss), {v.path.split("/", 1)[1]: tf.convert_to_tensor(g).numpy()
                         for v, g in zip(model.trainable_variables, grads)}


@pytest.fixture(scope="module")
def baseline():
    features = {k: tf.constant(v) for k, v in synthetic_batch(4, 16, 3, 1100).items()}
    return features, _loss_and_gradients("baseline", features)


@pytest.mark.parametrize("variant", SAME_MATH)
def test_variant_gives_kbert_loss_and_gradients(baseline, variant):
    features, (loss, grads) = baseline
    got_loss, got_grads = _loss_and_gradients(variant, features)
    assert got_loss == pytest.approx(loss, abs=1e-5)
    assert sorted(got_grads) == sorted(grads)
    for path, expected in grads.items():
        np.testing.assert_allclose(got_grads[path], expected, atol=2e-5, rtol=1e-4,
                                   err_msg=f"{variant}: {path}")


def test_an_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        with variants.patched("fast"):
            pass


def _weights_after_steps(variant, steps=5):
    """A small model's weights after `steps` AdamW steps (decay on, LayerNorm and biases
    excluded, global-norm clipping) with the optimizer update patched to `variant`."""
    from kbert.training.optimizers import create_optimizer
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
                              keras.layers.LayerNormalization(), keras.layers.Dense(3)])
    optimizer = create_optimizer("adamw", 1e-2, weight_decay=0.1, clip_norm=1.0, model=model)
    x = np.random.RandomState(1).randn(32, 8).astype("float32")
    y = np.random.RandomState(2).randint(0, 3, 32)
    with variants.patched(variant):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
                    y, model(x), from_logits=True))
            optimizer.apply(tape.gradient(loss, model.trainable_variables),
                            model.trainable_variables)

        for _ in range(steps):
            step()
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("variant",
                         ["decay_assign", "compiled_adamw", "kernel_adamw", "keras_adamw"])
def test_optimizer_variant_gives_kbert_weights(variant):
    expected = _weights_after_steps("baseline")
    for got, want in zip(_weights_after_steps(variant), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=variant)
