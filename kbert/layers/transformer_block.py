"""One post-LayerNorm Transformer encoder block, as in BERT."""

import keras

from kbert.layers.attention import MultiHeadSelfAttention
from kbert.layers.dropout import Dropout
from kbert.layers.feed_forward import PositionwiseFeedForward
from kbert.layers.recompute import recompute_with_dropout


@keras.saving.register_keras_serializable(package="kbert")
class TransformerBlock(keras.layers.Layer):
    """`h = LN(x + Dropout(Attention(x)))`, `out = LN(h + Dropout(FFN(h)))`.

    Args:
        hidden_size, num_heads, intermediate_size: widths (hidden divisible by heads).
        activation: feed-forward activation name.
        hidden_dropout: dropout after attention output and after the FFN.
        attention_dropout: dropout on attention probabilities.
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal kernel initializer.
        attention_layer, feed_forward_layer: an existing `MultiHeadSelfAttention` /
            `PositionwiseFeedForward` to use (and share with other blocks, as ALBERT's
            attention-only or FFN-only sharing) instead of new ones. Not part of
            `get_config`: the owning encoder passes them again when it is rebuilt.

    Call args: `x` [batch, seq, hidden], `padding_mask` [batch, seq], `return_attention`.

    `gradient_checkpointing` (an attribute, not part of the config; see
    `BertEncoder.gradient_checkpointing`): when true, training calls keep only the block's
    input and recompute its activations for the gradient (about a third more compute, far
    less memory), with the same dropout masks.

    Example:
        >>> import numpy as np
        >>> block = TransformerBlock(8, 2, 32)
        >>> block(np.zeros((1, 3, 8), "float32")).shape
        (1, 3, 8)
    """

    def __init__(self, hidden_size, num_heads, intermediate_size, activation="gelu",
                 hidden_dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, attention_layer=None, feed_forward_layer=None,
                 **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.activation = activation
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        policy = self.dtype_policy
        self.attention = attention_layer or MultiHeadSelfAttention(
            num_heads, hidden_size // num_heads, attention_dropout=attention_dropout,
            initializer_range=initializer_range, dtype=policy, name="attention")
        self.attention_dropout_layer = Dropout(hidden_dropout, dtype=policy,
                                               name="attention_output_dropout")
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="attention_layer_norm")
        self.feed_forward = feed_forward_layer or PositionwiseFeedForward(
            hidden_size, intermediate_size, activation=activation,
            initializer_range=initializer_range, dtype=policy, name="feed_forward")
        self.feed_forward_dropout_layer = Dropout(hidden_dropout, dtype=policy,
                                                  name="feed_forward_dropout")
        self.feed_forward_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="feed_forward_layer_norm")
        self.gradient_checkpointing = False

    def build(self, x_shape, padding_mask_shape=None):
        for shared in (self.attention, self.feed_forward):  # maybe built by another block
            if not shared.built:
                shared.build(x_shape)
        self.attention_layer_norm.build(x_shape)
        self.feed_forward_layer_norm.build(x_shape)
        self.built = True

    def call(self, x, padding_mask=None, training=None, return_attention=False):
        if self.gradient_checkpointing and training and not return_attention:
            dropouts = [self.attention.dropout_layer, self.attention_dropout_layer,
                        self.feed_forward_dropout_layer]
            return recompute_with_dropout(
                lambda inner: self._forward(inner, padding_mask, True), dropouts)(x)
        return self._forward(x, padding_mask, training, return_attention)

    def _forward(self, x, padding_mask=None, training=None, return_attention=False):
        attended = self.attention(x, padding_mask, training=training,
                                  return_attention=return_attention)
        if return_attention:
            attended, probs = attended
        h = self.attention_layer_norm(
            x + self.attention_dropout_layer(attended, training=training))
        ff = self.feed_forward(h)
        out = self.feed_forward_layer_norm(
            h + self.feed_forward_dropout_layer(ff, training=training))
        if return_attention:
            return out, probs
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_heads=self.num_heads,
            intermediate_size=self.intermediate_size, activation=self.activation,
            hidden_dropout=self.hidden_dropout, attention_dropout=self.attention_dropout,
            layer_norm_eps=self.layer_norm_eps, initializer_range=self.initializer_range)
        return config
