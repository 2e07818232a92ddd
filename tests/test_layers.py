"""Each layer against a plain-numpy statement of the BERT paper's equations."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from kbert.layers import (BertEmbeddings, MultiHeadSelfAttention, PositionwiseFeedForward,
                          TransformerBlock)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def np_attention(x, mask, layer):
    heads, d = layer.num_heads, layer.head_size
    w = {n: (getattr(layer, n).kernel.numpy(), getattr(layer, n).bias.numpy())
         for n in ("query", "key", "value", "output_dense")}
    outs, probs_all = [], []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        q = x @ w["query"][0][:, sl] + w["query"][1][sl]
        k = x @ w["key"][0][:, sl] + w["key"][1][sl]
        v = x @ w["value"][0][:, sl] + w["value"][1][sl]
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(d)
        scores = scores + (1 - mask[:, None, :]) * -10000.0
        probs = np_softmax(scores)
        probs_all.append(probs)
        outs.append(probs @ v)
    concat = np.concatenate(outs, -1)
    return concat @ w["output_dense"][0] + w["output_dense"][1], np.stack(probs_all, 1)


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], "int32")
    return x, mask


def test_attention_matches_numpy_equations(inputs):
    x, mask = inputs
    layer = MultiHeadSelfAttention(num_heads=4, head_size=4)
    out, probs = layer(x, mask, return_attention=True)
    want_out, want_probs = np_attention(x, mask, layer)
    np.testing.assert_allclose(out, want_out, atol=1e-5)
    np.testing.assert_allclose(probs, want_probs, atol=1e-6)
    assert probs.shape == (2, 4, 6, 6)
    assert np.all(np.asarray(probs)[1, :, :, 4:] < 1e-4)  # padded keys get no weight


def test_feed_forward_matches_numpy(inputs):
    x, _ = inputs
    layer = PositionwiseFeedForward(16, 64)
    out = layer(x)
    a, b = layer.intermediate_dense, layer.output_dense
    want = np_gelu(x @ a.kernel.numpy() + a.bias.numpy()) @ b.kernel.numpy() + b.bias.numpy()
    np.testing.assert_allclose(out, want, atol=1e-5)


def test_transformer_block_is_post_layer_norm(inputs):
    x, mask = inputs
    block = TransformerBlock(16, 4, 64, layer_norm_eps=1e-12)
    out = block(x, mask)
    attended, _ = np_attention(x, mask, block.attention)
    ln1, ln2 = block.attention_layer_norm, block.feed_forward_layer_norm
    h = np_layer_norm(x + attended, ln1.gamma.numpy(), ln1.beta.numpy(), 1e-12)
    ff = block.feed_forward
    f = np_gelu(h @ ff.intermediate_dense.kernel.numpy() + ff.intermediate_dense.bias.numpy())
    f = f @ ff.output_dense.kernel.numpy() + ff.output_dense.bias.numpy()
    want = np_layer_norm(h + f, ln2.gamma.numpy(), ln2.beta.numpy(), 1e-12)
    np.testing.assert_allclose(out, want, atol=1e-4)


def test_embeddings_sum_token_position_segment():
    layer = BertEmbeddings(50, 8, 20, 2, layer_norm_eps=1e-12)
    ids = np.array([[5, 7, 9]], "int32")
    seg = np.array([[0, 1, 1]], "int32")
    out = layer(ids, seg)
    tok = layer.token_embedding.embeddings.numpy()[ids[0]]
    pos = layer.position_embedding.embeddings.numpy()[:3]
    typ = layer.segment_embedding.embeddings.numpy()[seg[0]]
    ln = layer.layer_norm
    want = np_layer_norm(tok + pos + typ, ln.gamma.numpy(), ln.beta.numpy(), 1e-12)
    np.testing.assert_allclose(out[0], want, atol=1e-5)


def test_dropout_only_in_training(inputs):
    x, mask = inputs
    block = TransformerBlock(16, 4, 64, hidden_dropout=0.5, attention_dropout=0.5)
    bias = mask
    np.testing.assert_allclose(block(x, bias), block(x, bias), atol=0)
    assert not np.allclose(block(x, bias, training=True), block(x, bias))


@pytest.mark.parametrize("layer", [
    BertEmbeddings(50, 8, 20, 2, layer_norm_eps=1e-6, dropout=0.1),
    MultiHeadSelfAttention(num_heads=2, head_size=4, attention_dropout=0.2),
    PositionwiseFeedForward(8, 32, activation="relu"),
    TransformerBlock(8, 2, 32, activation="gelu_new", hidden_dropout=0.1),
])
def test_get_config_mirrors_constructor(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)


def test_indivisible_heads_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(10, 3, 32)


# --------------------------------------------------------------- dropout (16 random bits a unit)
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drop_units_drops_at_the_rate_and_keeps_the_expectation(rate):
    from kbert.layers import drop_units
    x = tf.ones((1001, 999))                          # odd size: the last 16-bit draw unused
    y = drop_units(x, rate, tf.constant([7, 3])).numpy()
    kept_value = 65536 / (65536 - round(rate * 65536))
    assert np.all((y == 0) | np.isclose(y, kept_value, rtol=1e-6))
    dropped = float((y == 0).mean())
    sigma = (rate * (1 - rate) / y.size) ** 0.5
    assert abs(dropped - rate) < 5 * sigma
    assert abs(float(y.mean()) - 1.0) < 5 * sigma * kept_value


def test_drop_units_is_a_function_of_the_seed_and_its_gradient_uses_the_mask():
    from kbert.layers import drop_units
    x = tf.random.stateless_normal((64, 33), seed=[1, 2])
    first = drop_units(x, 0.3, tf.constant([5, 6]))
    np.testing.assert_array_equal(first, drop_units(x, 0.3, tf.constant([5, 6])))
    assert not np.array_equal(first == 0, drop_units(x, 0.3, tf.constant([5, 7])) == 0)
    weights = tf.random.stateless_normal((64, 33), seed=[3, 4])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = drop_units(x, 0.3, tf.constant([5, 6]))
        loss = tf.reduce_sum(y * weights)
    keep = (y.numpy() != 0).astype("float32")
    scale = 65536 / (65536 - round(0.3 * 65536))
    np.testing.assert_allclose(tape.gradient(loss, x), keep * scale * weights.numpy(),
                               rtol=1e-6)
    bf16 = drop_units(tf.cast(x, tf.bfloat16), 0.3, tf.constant([5, 6]))
    assert bf16.dtype == tf.bfloat16
    np.testing.assert_array_equal(bf16.numpy() == 0, first.numpy() == 0)


def test_kbert_dropout_layer_is_keras_dropout_with_the_cheaper_draw():
    from kbert.layers import Dropout
    layer = Dropout(0.25, seed=3)
    x = np.ones((8, 512), "float32")
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True).numpy()
    assert 0.15 < (y == 0).mean() < 0.35
    assert not np.array_equal(y, layer(x, training=True).numpy())   # a new seed per call
    rows = Dropout(0.5, noise_shape=(8, 1), seed=1)(x, training=True).numpy()  # Keras' draw
    assert all(len(set(row)) == 1 for row in rows)
    restored = Dropout.from_config(layer.get_config())
    assert isinstance(restored, keras.layers.Dropout) and restored.rate == 0.25
    block = TransformerBlock(16, 2, 32, hidden_dropout=0.1, attention_dropout=0.1)
    assert all(isinstance(d, Dropout) for d in (
        block.attention_dropout_layer, block.feed_forward_dropout_layer,
        block.attention.dropout_layer))
