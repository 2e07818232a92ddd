"""Token + learned position + segment embeddings, then LayerNorm and dropout.

One layer for every family: RoBERTa counts positions after its padding index
(`position_offset`), DistilBERT has no segments (`type_vocab_size=0`), ALBERT's narrower
width E is just a smaller `hidden_size` here (the encoder projects E to H).
"""

import keras
from keras import ops

from kbert.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="kbert")
class BertEmbeddings(keras.layers.Layer):
    """BERT's input embeddings.

    Sums a token embedding, a learned absolute position embedding and a segment
    (token type) embedding, then applies LayerNorm and dropout.

    Args:
        vocab_size: number of token ids.
        hidden_size: embedding width.
        max_position_embeddings: longest sequence the position table covers.
        type_vocab_size: number of segment ids.
        layer_norm_eps: LayerNorm epsilon.
        dropout: dropout rate after the LayerNorm.
        initializer_range: stddev of the truncated-normal initializer.
        position_offset: 0 (BERT): position i is row i. k > 0 (RoBERTa: 2 = padding index
            + 1): the n-th real token (padding_mask 1) takes row k - 1 + n and padding
            takes row k - 1, as Hugging Face's `create_position_ids_from_input_ids`.

    Call args: `token_ids`, `segment_ids` (ignored when `type_vocab_size` is 0),
    `padding_mask` (used only with a `position_offset`).

    Example:
        >>> import numpy as np
        >>> layer = BertEmbeddings(100, 16, 32, 2)
        >>> layer(np.ones((2, 5), "int32"), np.zeros((2, 5), "int32")).shape
        (2, 5, 16)
    """

    def __init__(self, vocab_size, hidden_size, max_position_embeddings, type_vocab_size,
                 layer_norm_eps=1e-12, dropout=0.0, initializer_range=0.02, position_offset=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.position_offset = position_offset
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.token_embedding = keras.layers.Embedding(
            vocab_size, hidden_size, embeddings_initializer=init, dtype=self.dtype_policy,
            name="token_embedding")
        self.position_embedding = keras.layers.Embedding(
            max_position_embeddings, hidden_size, embeddings_initializer=init,
            dtype=self.dtype_policy, name="position_embedding")
        self.segment_embedding = None
        if type_vocab_size:
            self.segment_embedding = keras.layers.Embedding(
                type_vocab_size, hidden_size, embeddings_initializer=init,
                dtype=self.dtype_policy, name="segment_embedding")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm")
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, token_ids_shape, segment_ids_shape=None, padding_mask_shape=None):
        self.token_embedding.build(token_ids_shape)
        self.position_embedding.build((None,))
        if self.segment_embedding is not None:
            self.segment_embedding.build(token_ids_shape)
        self.layer_norm.build(tuple(token_ids_shape) + (self.hidden_size,))
        self.built = True

    def call(self, token_ids, segment_ids=None, padding_mask=None, training=None):
        seq_length = ops.shape(token_ids)[1]
        longest = self.max_position_embeddings - self.position_offset
        if isinstance(seq_length, int) and seq_length > longest:
            raise ValueError(
                f"sequence length {seq_length} exceeds max_position_embeddings "
                f"({self.max_position_embeddings}, of which {longest} usable); truncate "
                f"inputs or use a model with a longer position table")
        x = self.token_embedding(token_ids)
        if self.segment_embedding is not None:
            x = x + self.segment_embedding(segment_ids)
        if self.position_offset:
            real = (ops.ones_like(token_ids) if padding_mask is None
                    else ops.cast(padding_mask, token_ids.dtype))
            position_ids = ops.cumsum(real, axis=1) * real + (self.position_offset - 1)
            x = x + ops.cast(self.position_embedding(position_ids), x.dtype)
        else:
            positions = ops.slice(self.position_embedding.embeddings, (0, 0),
                                  (seq_length, self.hidden_size))
            x = x + ops.cast(ops.expand_dims(positions, 0), x.dtype)
        x = self.layer_norm(x)
        return self.dropout_layer(x, training=training)

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None,
                             padding_mask_shape=None):
        return tuple(token_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size, layer_norm_eps=self.layer_norm_eps,
            dropout=self.dropout, initializer_range=self.initializer_range,
            position_offset=self.position_offset)
        return config
