"""Quantization-aware fine-tuning on Keras 3's own fake-quant op.

`tensorflow-model-optimization` rejects Keras 3 models, so every `Dense` layer of the task
model gets fake-quant on its input (per-tensor, range calibrated on training batches) and
on its kernel (per tensor, symmetric, from the kernel's current range), using
`keras.quantizers.fake_quant_with_min_max_vars` (TensorFlow's `FakeQuantWithMinMaxVars`).
The model is then fine-tuned briefly so its weights adapt to int8 rounding; the converter
reads the learned ranges and emits int8 `FULLY_CONNECTED` kernels (mode `qat`).

Example:
    >>> ranges = add_fake_quant(model, calibration_batches)             # doctest: +SKIP
    >>> qat_finetune(model, train_batches, epochs=1)                    # doctest: +SKIP
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kbert.export.task_model import classifier_logits, encoder_features


def _dense_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False)
            if type(layer) is keras.layers.Dense]


def _fake_quant_call(layer, ranges):
    def call(inputs, training=None):
        x = keras.quantizers.fake_quant_with_min_max_vars(
            inputs, ranges[0], ranges[1], num_bits=8)
        # Per-tensor: the converter transposes FC kernels, and a per-channel fake-quant
        # axis then no longer matches ("mismatched quantized axes").
        limit = ops.maximum(ops.max(ops.abs(layer.kernel)), 1e-8)
        kernel = keras.quantizers.fake_quant_with_min_max_vars(
            layer.kernel, -limit, limit, num_bits=8, narrow_range=True)
        y = ops.matmul(x, kernel)
        if layer.use_bias:
            y = y + layer.bias
        return layer.activation(y) if layer.activation is not None else y
    return call


def add_fake_quant(model, calibration_batches, margin: float = 1.0) -> dict:
    """Calibrate each Dense input's range on `calibration_batches` (lists of
    `(ids, mask, types)`), then put fake-quant in every Dense layer; returns the ranges."""
    layers = _dense_layers(model)
    seen = {id(layer): [np.inf, -np.inf] for layer in layers}
    originals = {id(layer): layer.call for layer in layers}

    def recorder(layer):
        def call(inputs, training=None):
            values = np.asarray(inputs)
            low, high = seen[id(layer)]
            seen[id(layer)] = [min(low, float(values.min())), max(high, float(values.max()))]
            return originals[id(layer)](inputs)
        return call

    for layer in layers:
        layer.call = recorder(layer)
    try:
        for ids, mask, types in calibration_batches:
            classifier_logits(model, encoder_features(ids, mask, types))
    finally:
        for layer in layers:
            layer.call = originals[id(layer)]
    ranges = {}
    for layer in layers:
        low, high = seen[id(layer)]
        low, high = min(low, 0.0) * margin, max(high, 0.0) * margin
        ranges[layer.path] = (tf.constant(low, tf.float32), tf.constant(high, tf.float32))
        layer.call = _fake_quant_call(layer, ranges[layer.path])
    return {name: (float(a), float(b)) for name, (a, b) in ranges.items()}


def qat_finetune(model, train_batches, epochs: int = 1, learning_rate: float = 1e-5) -> list:
    """Fine-tune the fake-quantized model on `(ids, mask, types, label_ids)` batches;
    returns the mean loss of each epoch."""
    optimizer = keras.optimizers.Adam(learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(ids, mask, types, labels):
        with tf.GradientTape() as tape:
            logits = classifier_logits(model, encoder_features(ids, mask, types), training=True)
            loss = loss_fn(labels, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    history = []
    for _ in range(epochs):
        losses = [float(step(*batch)) for batch in train_batches]
        history.append(float(np.mean(losses)) if losses else float("nan"))
    return history
