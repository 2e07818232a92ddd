"""One test harness for every kbert model (after keras-hub's `run_backbone_test`).

`run_model_test(make_model, make_inputs, output_key)` checks, for any model:
serialization (`get_config`/`from_config`, `.keras` file, model directory) reproduces
outputs; variable sequence lengths and batch sizes run without rebuilding; changing tokens
under the padding mask leaves real positions unchanged; mixed precision runs with float32
where losses need it; a gradient reaches every trainable weight.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

import kbert


def _numpy_tree(x):
    return tf.nest.map_structure(lambda t: np.asarray(t), x)


def _assert_trees_close(a, b, atol):
    tf.nest.assert_same_structure(a, b)
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def check_serialization(model, inputs, tmp_dir, atol=1e-6):
    expected = _numpy_tree(model(inputs))
    # get_config / from_config round trip: same architecture (weights are fresh).
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    # .keras file round trip: same outputs.
    path = os.path.join(tmp_dir, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    _assert_trees_close(expected, _numpy_tree(restored(inputs)), atol)
    # model directory round trip through kbert.load.
    directory = os.path.join(tmp_dir, "model_dir")
    kbert.save_pretrained(model, directory)
    reloaded = kbert.load(directory)
    assert type(reloaded) is type(model)
    _assert_trees_close(expected, _numpy_tree(reloaded(inputs)), atol)


def check_variable_shapes(model, make_inputs, output_key):
    """Different batch sizes and lengths in one model object, eager and in one tf.function."""
    predict = tf.function(lambda x: model(x), reduce_retracing=True)
    for batch, length in ((1, 5), (3, 9), (2, 17)):
        out = model(make_inputs(batch, length))[output_key]
        assert out.shape[0] == batch
        graph_out = predict(make_inputs(batch, length))[output_key]
        np.testing.assert_allclose(np.asarray(out), np.asarray(graph_out), atol=1e-5)


def check_padding_invariance(model, make_inputs, output_key, padding_key, token_key):
    """Tokens under padding_mask=0 must not change outputs at real positions."""
    inputs = make_inputs(2, 12)
    mask = np.ones_like(inputs[padding_key])
    mask[:, 8:] = 0
    inputs[padding_key] = mask
    first = np.asarray(model(inputs)[output_key])
    changed = dict(inputs)
    tokens = np.array(inputs[token_key])
    tokens[:, 8:] = (tokens[:, 8:] + 7) % 50 + 1
    changed[token_key] = tokens
    second = np.asarray(model(changed)[output_key])
    if first.ndim == 3:  # per-token output: compare real positions only
        first, second = first[:, :8], second[:, :8]
    np.testing.assert_allclose(first, second, atol=1e-5)
    # ...while a change at a real position does change them (the check can fail).
    real_change = dict(inputs)
    tokens = np.array(inputs[token_key])
    tokens[:, 1] = (tokens[:, 1] + 7) % 50 + 1
    real_change[token_key] = tokens
    third = np.asarray(model(real_change)[output_key])
    third = third[:, :8] if third.ndim == 3 else third
    assert np.abs(first - third).max() > 1e-6


def check_gradients_reach_every_weight(model, inputs, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn(inputs, model(inputs, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads)
               if g is None or not np.any(np.asarray(tf.convert_to_tensor(g)))]
    assert not missing, f"no gradient reaches: {missing}"


def check_mixed_precision(make_model, inputs, float32_keys, policy):
    keras.config.set_dtype_policy(policy)
    try:
        model = make_model()
        outputs = model(inputs)
        compute = policy.split("_")[1]
        for key in float32_keys:
            assert outputs[key].dtype == tf.float32, (key, outputs[key].dtype)
        assert all(v.dtype == "float32" for v in model.weights)  # float32 master weights
        layer_dtypes = {layer.compute_dtype for layer in model._flatten_layers()
                        if layer.weights and not isinstance(layer, keras.layers.LayerNormalization)}
        assert compute in layer_dtypes, layer_dtypes
        for value in tf.nest.flatten(outputs):
            assert np.all(np.isfinite(np.asarray(tf.cast(value, tf.float32))))
    finally:
        keras.config.set_dtype_policy("float32")


def run_model_test(make_model, make_inputs, tmp_dir, output_key, loss_fn,
                   padding_key, token_key, float32_keys=()):
    """Every check above, for one model family."""
    model = make_model()
    inputs = make_inputs(2, 10)
    check_serialization(model, inputs, tmp_dir)
    check_variable_shapes(model, make_inputs, output_key)
    check_padding_invariance(model, make_inputs, output_key, padding_key, token_key)
    check_gradients_reach_every_weight(model, inputs, loss_fn)
    for policy in ("mixed_float16", "mixed_bfloat16"):
        check_mixed_precision(make_model, inputs, float32_keys, policy)
