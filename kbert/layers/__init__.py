"""Keras layers that build BERT-family encoders."""

from kbert.layers.activations import get_activation
from kbert.layers.attention import MASK_VALUE, MultiHeadSelfAttention, padding_mask_to_bias
from kbert.layers.dropout import Dropout, drop_units
from kbert.layers.embeddings import BertEmbeddings
from kbert.layers.feed_forward import PositionwiseFeedForward
from kbert.layers.transformer_block import TransformerBlock

__all__ = ["BertEmbeddings", "Dropout", "MultiHeadSelfAttention", "PositionwiseFeedForward",
           "TransformerBlock", "drop_units", "get_activation", "padding_mask_to_bias",
           "MASK_VALUE"]
