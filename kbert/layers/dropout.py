"""Dropout with half the random bits: each unit's keep/drop draw is 16 random bits.

Keras' dropout (`tf.nn.experimental.stateless_dropout`) draws one float32 per unit: a
Philox block of 128 bits makes 4 draws, each turned into a float and compared. Here the
same Philox output is read as 16-bit integers, 8 draws per block, compared as integers
against `round(rate * 65536)`: half the random-number work and no float conversion. The
kept units are scaled by `65536 / (65536 - threshold)`, so the expectation is exact for
the rate actually drawn (0.1 -> 6554 / 65536 = 0.100006).

`Dropout` is Keras' `Dropout` (same arguments, config, seed generator and checkpoint
layout) with this draw; with a `noise_shape` it falls back to Keras' draw.

Example:
    >>> import numpy as np
    >>> y = Dropout(0.5, seed=1)(np.ones((4, 1000), "float32"), training=True)
    >>> [float(v) for v in np.unique(y.numpy())]
    [0.0, 2.0]
    >>> bool(abs(float((y.numpy() == 0).mean()) - 0.5) < 0.05)
    True
"""

from __future__ import annotations

import keras
import tensorflow as tf

_LEVELS = 1 << 16


def _int32_seed(seed):
    """A SeedGenerator's (int64) seed as the int32 pair stateless ops take under XLA too
    (what Keras' TensorFlow backend does)."""
    seed = tf.convert_to_tensor(seed)
    if seed.dtype == tf.int32:
        return seed
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)


def drop_units(x, rate: float, seed):
    """`x` with units zeroed at `rate` and the rest scaled to keep the expectation;
    `seed` is a shape-[2] integer seed (the same seed drops the same units)."""
    threshold = int(round(rate * _LEVELS))
    if threshold <= 0:
        return x
    if threshold >= _LEVELS:
        return tf.zeros_like(x)
    size = tf.size(x)
    words = tf.random.stateless_uniform(tf.reshape((size + 1) // 2, [1]), seed=seed,
                                        minval=None, maxval=None, dtype=tf.uint32)
    halves = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    keep = tf.reshape(halves, tf.shape(x)) >= tf.constant(threshold, tf.uint16)
    scale = tf.cast(_LEVELS / (_LEVELS - threshold), x.dtype)
    return tf.where(keep, x * scale, tf.zeros_like(x))


@keras.saving.register_keras_serializable(package="kbert")
class Dropout(keras.layers.Dropout):
    """Keras `Dropout` whose training draw is `drop_units` (16 random bits per unit)."""

    def call(self, inputs, training=False):
        if not training or self.rate <= 0:
            return inputs
        seed = _int32_seed(self.seed_generator.next())
        if self.noise_shape is not None:
            return tf.nn.experimental.stateless_dropout(
                inputs, self.rate, noise_shape=self.noise_shape, seed=seed)
        return drop_units(inputs, self.rate, seed)


__all__ = ["Dropout", "drop_units"]
