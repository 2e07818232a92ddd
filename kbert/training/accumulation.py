"""Gradient accumulation: one optimizer update from N micro-batches of one batch.

The batch is split along its first axis into `num_micro_batches` equal parts; the loss of
each part must already be normalised by the *whole* (global) batch's denominators, so the
summed gradients equal the gradient of the whole batch's loss, while only one micro-batch's
activations are alive at a time.

Example:
    >>> import tensorflow as tf
    >>> w = tf.Variable(2.0)
    >>> def loss_fn(x):            # returns (loss, extra sums)
    ...     return tf.reduce_sum(w * x), {"n": tf.cast(tf.size(x), tf.float32)}
    >>> grads, sums = accumulate_gradients(loss_fn, tf.range(6, dtype=tf.float32), [w], 3)
    >>> float(grads[0]), float(sums["n"])
    (15.0, 6.0)
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def split_micro_batches(features, num_micro_batches: int):
    """Reshape every tensor of `features` from [B, ...] to [N, B / N, ...]."""
    def split(t):
        t = tf.convert_to_tensor(t)
        batch = tf.shape(t)[0]
        tf.debugging.assert_equal(
            batch % num_micro_batches, 0,
            message=f"batch size must be divisible by {num_micro_batches} micro-batches")
        new_shape = tf.concat([[num_micro_batches, batch // num_micro_batches],
                               tf.shape(t)[1:]], axis=0)
        static = t.shape.as_list()
        result = tf.reshape(t, new_shape)
        if static and static[0] is not None:
            result.set_shape([num_micro_batches, static[0] // num_micro_batches] + static[1:])
        return result
    return tf.nest.map_structure(split, features)


def _dense(gradient, variable):
    if gradient is None:
        return tf.zeros_like(variable)
    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


def accumulate_gradients(loss_fn: Callable, features, variables, num_micro_batches: int = 1):
    """Sum of the gradients (and of `loss_fn`'s extra sums) over the micro-batches.

    Args:
        loss_fn: `loss_fn(micro_batch) -> (loss, sums)`, `sums` a dict of scalars to add up;
            `loss` is what is differentiated.
        features: a tensor or nested structure of tensors with a common batch axis.
        variables: the variables to differentiate against.
        num_micro_batches: N >= 1; the batch size must be divisible by it.

    Returns:
        `(gradients, sums)`: one dense or `IndexedSlices` gradient per variable (dense when
        N > 1) and the summed `sums`.
    """
    variables = list(variables)
    if num_micro_batches < 1:
        raise ValueError(f"num_micro_batches must be >= 1, got {num_micro_batches}")
    if num_micro_batches == 1:
        with tf.GradientTape() as tape:
            loss, sums = loss_fn(features)
        gradients = tape.gradient(loss, variables)
        return [g if g is not None else tf.zeros_like(v) for g, v in zip(gradients, variables)], sums

    micro = split_micro_batches(features, num_micro_batches)

    def one(i):
        batch = tf.nest.map_structure(lambda t: t[i], micro)
        with tf.GradientTape() as tape:
            loss, sums = loss_fn(batch)
        gradients = tape.gradient(loss, variables)
        return [_dense(g, v) for g, v in zip(gradients, variables)], sums

    # The first micro-batch gives the accumulators their structure and dtypes.
    gradients, sums = one(tf.constant(0))

    def body(i, gradients, sums):
        step_gradients, step_sums = one(i)
        gradients = [a + g for a, g in zip(gradients, step_gradients)]
        sums = tf.nest.map_structure(tf.add, sums, step_sums)
        return i + 1, gradients, sums

    _, gradients, sums = tf.while_loop(
        lambda i, *_: i < num_micro_batches, body, (tf.constant(1), gradients, sums),
        parallel_iterations=1)
    return gradients, sums
