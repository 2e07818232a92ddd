"""Multi-head scaled dot-product self-attention with a padding mask."""

import math

import keras
from keras import ops

from kbert.layers.dropout import Dropout

# Added to the scores of padded keys. Finite and within float16 range, so masked rows stay
# well defined under mixed precision; small enough in magnitude to quantize (the export
# stage may clip it further).
MASK_VALUE = -10000.0


def padding_mask_to_bias(padding_mask, dtype="float32"):
    """[batch, keys] 0/1 mask -> additive bias [batch, 1, 1, keys] (0 keep, MASK_VALUE drop).

    Uses expand_dims rather than `None` indexing, which lowers to Flex ops in LiteRT.

    Example:
        >>> import numpy as np
        >>> padding_mask_to_bias(np.array([[1, 0]])).shape
        (1, 1, 1, 2)
    """
    mask = ops.cast(padding_mask, dtype)
    bias = (1.0 - mask) * MASK_VALUE
    return ops.expand_dims(ops.expand_dims(bias, 1), 1)


@keras.saving.register_keras_serializable(package="kbert")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Self-attention: Q/K/V projections, scaled dot-product, softmax, weighted sum.

    Each token's vector is projected to a query, key and value per head; scores are
    `q·k / sqrt(head_size)` plus the padding bias; softmax (in float32) over keys,
    attention dropout, the weighted sum of values; heads are concatenated and projected.

    Args:
        num_heads: number of attention heads.
        head_size: width of each head; hidden size = num_heads * head_size.
        attention_dropout: dropout rate on the attention probabilities (BertConfig's
            `attention_probs_dropout_prob`; `TransformerBlock`'s `attention_dropout`).
        initializer_range: stddev of the truncated-normal kernel initializer.

    Call args: `x` [batch, seq, hidden], `padding_mask` [batch, seq] (1 = real token,
    0 = padding: no query attends to it), `return_attention` to also return the
    probabilities [batch, heads, seq, seq] (float32).

    Example:
        >>> import numpy as np
        >>> attn = MultiHeadSelfAttention(num_heads=2, head_size=4)
        >>> attn(np.zeros((1, 3, 8), "float32")).shape
        (1, 3, 8)
    """

    def __init__(self, num_heads, head_size, attention_dropout=0.0, initializer_range=0.02,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_size = head_size
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        hidden = num_heads * head_size

        def dense(name):
            return keras.layers.Dense(
                hidden, kernel_initializer=keras.initializers.TruncatedNormal(
                    stddev=initializer_range), dtype=self.dtype_policy, name=name)

        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.output_dense = dense("output")
        self.dropout_layer = Dropout(attention_dropout, dtype=self.dtype_policy,
                                     name="attention_dropout")

    def build(self, x_shape, padding_mask_shape=None):
        for layer in (self.query, self.key, self.value):
            layer.build(x_shape)
        self.output_dense.build(tuple(x_shape[:-1]) + (self.num_heads * self.head_size,))
        self.built = True

    def _split_heads(self, x):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, seq, self.num_heads, self.head_size))
        return ops.transpose(x, (0, 2, 1, 3))  # [batch, heads, seq, head_size]

    def call(self, x, padding_mask=None, training=None, return_attention=False):
        q = self._split_heads(self.query(x))
        k = self._split_heads(self.key(x))
        v = self._split_heads(self.value(x))
        q = q * ops.cast(1.0 / math.sqrt(self.head_size), q.dtype)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # [b, h, q, k]
        scores = ops.cast(scores, "float32")
        if padding_mask is not None:
            scores = scores + padding_mask_to_bias(padding_mask, "float32")
        probs = ops.softmax(scores, axis=-1)
        dropped = self.dropout_layer(ops.cast(probs, v.dtype), training=training)
        context = ops.matmul(dropped, v)  # [b, h, q, d]
        context = ops.transpose(context, (0, 2, 1, 3))
        batch, seq = ops.shape(context)[0], ops.shape(context)[1]
        context = ops.reshape(context, (batch, seq, self.num_heads * self.head_size))
        output = self.output_dense(context)
        if return_attention:
            return output, probs
        return output

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_size=self.head_size,
                      attention_dropout=self.attention_dropout,
                      initializer_range=self.initializer_range)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "dropout" in config:   # the argument's name in configs saved before 0.1.0's tidy
            config["attention_dropout"] = config.pop("dropout")
        return cls(**config)
