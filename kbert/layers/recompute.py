"""Gradient checkpointing: recompute a block's activations in the backward pass instead of
keeping them, with the dropout masks of the forward pass.

`tf.recompute_grad` (what `keras.remat` is on TensorFlow) runs the function again when
gradients are taken. Keras' `Dropout` draws a fresh seed from its `SeedGenerator` at every
call, so a plain recomputation would drop other units than the forward pass did and the
gradient would belong to another network. `recompute_with_dropout` draws each dropout
layer's seed once, outside, and both runs use it.

Example:
    >>> import numpy as np, keras
    >>> drop = keras.layers.Dropout(0.5)
    >>> f = recompute_with_dropout(lambda x: drop(x, training=True) * 2.0, [drop])
    >>> f(np.ones((2, 3), "float32")).shape
    TensorShape([2, 3])
"""

from __future__ import annotations

import contextlib

import tensorflow as tf
from keras.src.random.seed_generator import SeedGenerator


class _DrawnSeed(SeedGenerator):
    """A seed drawn already: `next()` gives it again (no state variable is made)."""

    def __init__(self, seed):  # noqa: the parent's __init__ would create a variable
        self._seed = seed

    def next(self, ordered=True):
        return self._seed


@contextlib.contextmanager
def _fixed_seeds(layers, seeds):
    saved = [layer.seed_generator for layer in layers]
    try:
        for layer, seed in zip(layers, seeds):
            # object.__setattr__: Keras' tracker must not record the stand-in as state.
            object.__setattr__(layer, "seed_generator", _DrawnSeed(seed))
        yield
    finally:
        for layer, generator in zip(layers, saved):
            object.__setattr__(layer, "seed_generator", generator)


def recompute_with_dropout(function, dropout_layers):
    """`function(x)` whose activations are recomputed for the gradient; each layer in
    `dropout_layers` (a Keras `Dropout` called inside `function`) drops the same units in
    the forward pass and in the recomputation."""
    active = [layer for layer in dropout_layers if layer.rate > 0]

    def call(x):
        seeds = [layer.seed_generator.next() for layer in active]

        def forward(inner):
            with _fixed_seeds(active, seeds):
                return function(inner)
        return tf.recompute_grad(forward)(x)
    return call


__all__ = ["recompute_with_dropout"]
