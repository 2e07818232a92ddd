"""Position-wise feed-forward network: dense -> activation -> dense."""

import keras

from kbert.layers.activations import get_activation


@keras.saving.register_keras_serializable(package="kbert")
class PositionwiseFeedForward(keras.layers.Layer):
    """The same two-layer MLP applied at every position.

    Args:
        hidden_size: input and output width.
        intermediate_size: inner width (4 × hidden in BERT).
        activation: a name from `kbert.layers.activations` ("gelu" is BERT's).
        initializer_range: stddev of the truncated-normal kernel initializer.

    Example:
        >>> import numpy as np
        >>> PositionwiseFeedForward(8, 32)(np.zeros((1, 3, 8), "float32")).shape
        (1, 3, 8)
    """

    def __init__(self, hidden_size, intermediate_size, activation="gelu",
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.activation = activation
        self.initializer_range = initializer_range
        self._activation_fn = get_activation(activation)
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.intermediate_dense = keras.layers.Dense(
            intermediate_size, kernel_initializer=init, dtype=self.dtype_policy,
            name="intermediate_dense")
        self.output_dense = keras.layers.Dense(
            hidden_size, kernel_initializer=init, dtype=self.dtype_policy, name="output_dense")

    def build(self, x_shape):
        self.intermediate_dense.build(x_shape)
        self.output_dense.build(tuple(x_shape[:-1]) + (self.intermediate_size,))
        self.built = True

    def call(self, x):
        return self.output_dense(self._activation_fn(self.intermediate_dense(x)))

    def compute_output_shape(self, x_shape):
        return tuple(x_shape[:-1]) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
                      activation=self.activation, initializer_range=self.initializer_range)
        return config
