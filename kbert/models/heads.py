"""Pre-training heads: masked-LM (tied to the token embedding) and next-sentence prediction."""

import keras
from keras import ops

from kbert.layers.activations import get_activation


def gather_positions(sequence, positions):
    """Pick `positions` [batch, P] out of `sequence` [batch, seq, hidden] -> [batch, P, hidden].

    Example:
        >>> import numpy as np
        >>> gather_positions(np.arange(6, dtype="float32").reshape(1, 3, 2),
        ...                  np.array([[2, 0]])).numpy().tolist()
        [[[4.0, 5.0], [0.0, 1.0]]]
    """
    positions = ops.cast(positions, "int32")
    return ops.take_along_axis(sequence, ops.expand_dims(positions, -1), axis=1)


@keras.saving.register_keras_serializable(package="kbert")
class MaskedLMHead(keras.layers.Layer):
    """Predicts the original token at masked positions.

    dense + activation + LayerNorm, then logits against the (tied) token embedding matrix
    plus an output bias. Computed only at `masked_positions`, never the whole sequence.
    Logits are returned in float32 whatever the compute dtype.

    Args:
        token_embedding: the encoder's `keras.layers.Embedding` whose matrix is reused as
            the output projection. Not part of `get_config`: the owning model passes it.
        activation: transform activation name ("gelu" for BERT).
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal kernel initializer.

    Example:
        >>> import numpy as np
        >>> emb = keras.layers.Embedding(50, 8); emb.build((None,))
        >>> head = MaskedLMHead(emb)
        >>> head(np.zeros((2, 5, 8), "float32"), np.zeros((2, 3), "int32")).shape
        (2, 3, 50)
    """

    def __init__(self, token_embedding, activation="gelu", layer_norm_eps=1e-12,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.activation = activation
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self._activation_fn = get_activation(activation)
        hidden = token_embedding.output_dim
        self.transform_dense = keras.layers.Dense(
            hidden, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=initializer_range), dtype=self.dtype_policy, name="transform_dense")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="transform_layer_norm")

    def build(self, sequence_shape, masked_positions_shape=None):
        hidden = self.token_embedding.output_dim  # ALBERT: E, narrower than the encoder
        self.transform_dense.build((None, None, sequence_shape[-1]))
        self.layer_norm.build((None, None, hidden))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.token_embedding.input_dim,), initializer="zeros")
        self.built = True

    def call(self, sequence, masked_positions):
        x = gather_positions(sequence, masked_positions)
        x = self.layer_norm(self._activation_fn(self.transform_dense(x)))
        table = ops.cast(self.token_embedding.embeddings, x.dtype)
        logits = ops.matmul(x, ops.transpose(table))
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

    def compute_output_shape(self, sequence_shape, masked_positions_shape):
        return tuple(masked_positions_shape) + (self.token_embedding.input_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(activation=self.activation, layer_norm_eps=self.layer_norm_eps,
                      initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="kbert")
class NextSentenceHead(keras.layers.Layer):
    """Classifies the pooled [CLS] vector: 0 = B follows A (IsNext), 1 = B is random.

    Example:
        >>> import numpy as np
        >>> NextSentenceHead()(np.zeros((4, 8), "float32")).shape
        (4, 2)
    """

    def __init__(self, num_classes=2, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            num_classes, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=initializer_range), dtype=self.dtype_policy, name="dense")

    def build(self, pooled_shape):
        self.dense.build(pooled_shape)
        self.built = True

    def call(self, pooled):
        return ops.cast(self.dense(pooled), "float32")

    def compute_output_shape(self, pooled_shape):
        return (pooled_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, initializer_range=self.initializer_range)
        return config
