"""The BERT-family encoder: embeddings, a stack of Transformer blocks, the [CLS] pooler.

RoBERTa, ALBERT and DistilBERT are this encoder under another `BertConfig` (see
`kbert.configs.FAMILIES`): ALBERT projects its E-wide embeddings to H and shares block
weights across layers, DistilBERT has no pooler, RoBERTa's positions start after padding.
"""

from __future__ import annotations

import keras
from kbert.configs import BertConfig
from kbert.layers import BertEmbeddings, TransformerBlock


def transformer_blocks(config: BertConfig, dtype=None) -> list:
    """`num_hidden_layers` blocks; with `share_layers` some are one object (ALBERT).

    "all": one block called at every depth; "attention" / "feed_forward": every block has
    its own LayerNorms and the other sub-layer, and all use the first block's attention /
    feed-forward layer.
    """
    def block(i, **shared):
        return TransformerBlock(
            config.hidden_size, config.num_attention_heads, config.intermediate_size,
            activation=config.hidden_act, hidden_dropout=config.hidden_dropout_prob,
            attention_dropout=config.attention_probs_dropout_prob,
            layer_norm_eps=config.layer_norm_eps, initializer_range=config.initializer_range,
            dtype=dtype, name=f"transformer_layer_{i}", **shared)

    first = block(0)
    if config.share_layers == "all":
        return [first] * config.num_hidden_layers
    shared = {}
    if config.share_layers == "attention":
        shared["attention_layer"] = first.attention
    elif config.share_layers == "feed_forward":
        shared["feed_forward_layer"] = first.feed_forward
    return [first] + [block(i, **shared) for i in range(1, config.num_hidden_layers)]


def _as_config(config) -> BertConfig:
    if isinstance(config, BertConfig):
        return config
    if isinstance(config, dict):
        return BertConfig.from_dict(config)
    raise TypeError(f"config must be a BertConfig or dict, got {type(config).__name__}")


@keras.saving.register_keras_serializable(package="kbert")
class BertEncoder(keras.Model):
    """An encoder-only, bidirectional Transformer (BERT) as a Keras functional model.

    Inputs (a dict): `token_ids`, `segment_ids`, `padding_mask` — int [batch, seq], any
    seq length up to `config.max_position_embeddings`.
    Outputs (a dict): `sequence_output` [batch, seq, hidden], `pooled_output` [batch, hidden]
    (tanh dense on the [CLS] position; absent when `config.use_pooler` is false, as
    DistilBERT); with `output_hidden_states`, `hidden_states`
    (a list: embeddings — after ALBERT's E-to-H projection — then each block's output); with `output_attentions`, `attentions`
    (a list of [batch, heads, seq, seq] probabilities, float32).

    Args:
        config: a `BertConfig` (or its dict).
        output_hidden_states: also return every layer's hidden states.
        output_attentions: also return every layer's attention probabilities.
        dtype: a dtype policy, e.g. "mixed_bfloat16"; defaults to the global policy.

    Example:
        >>> import numpy as np
        >>> encoder = BertEncoder(BertConfig.named("tiny", vocab_size=100))
        >>> out = encoder({"token_ids": np.ones((2, 8), "int32"),
        ...                "segment_ids": np.zeros((2, 8), "int32"),
        ...                "padding_mask": np.ones((2, 8), "int32")})
        >>> out["sequence_output"].shape, out["pooled_output"].shape
        (TensorShape([2, 8, 128]), TensorShape([2, 128]))
    """

    def __init__(self, config, output_hidden_states=False, output_attentions=False,
                 dtype=None, **kwargs):
        config = _as_config(config)
        policy = keras.dtype_policies.get(dtype) if dtype is not None else None

        # === Layers ===
        def init():  # one per layer, made in BERT's order (the seeded draws depend on it)
            return keras.initializers.TruncatedNormal(stddev=config.initializer_range)

        embeddings = BertEmbeddings(
            config.vocab_size, config.embedding_width, config.max_position_embeddings,
            config.type_vocab_size, layer_norm_eps=config.layer_norm_eps,
            dropout=config.hidden_dropout_prob, initializer_range=config.initializer_range,
            position_offset=config.position_offset, dtype=policy, name="embeddings")
        projection = None
        if config.embedding_width != config.hidden_size:  # ALBERT's factorized embedding
            projection = keras.layers.Dense(config.hidden_size, kernel_initializer=init(),
                                            dtype=policy, name="embedding_projection")
        blocks = transformer_blocks(config, dtype=policy)
        pooler = None
        if config.use_pooler:
            pooler = keras.layers.Dense(config.hidden_size, activation="tanh",
                                        kernel_initializer=init(), dtype=policy, name="pooler")

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = embeddings(token_ids, segment_ids, padding_mask)
        if projection is not None:
            x = projection(x)
        hidden_states, attentions = [x], []
        for block in blocks:
            if output_attentions:
                x, probs = block(x, padding_mask, return_attention=True)
                attentions.append(probs)
            else:
                x = block(x, padding_mask)
            hidden_states.append(x)
        outputs = {"sequence_output": x}
        if pooler is not None:
            outputs["pooled_output"] = pooler(x[:, 0, :])
        if output_hidden_states:
            outputs["hidden_states"] = hidden_states
        if output_attentions:
            outputs["attentions"] = attentions
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids,
                    "padding_mask": padding_mask},
            outputs=outputs, dtype=policy, **kwargs)

        # === Config ===
        self.config = config
        self.output_hidden_states = output_hidden_states
        self.output_attentions = output_attentions
        self.embeddings = embeddings
        self.embedding_projection = projection
        self.transformer_layers = blocks
        self.pooler = pooler

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether training recomputes each block's activations for the gradient instead of
        keeping them (Hugging Face's `gradient_checkpointing_enable`): fine-tuning MiniLM at
        batch 32 x 128 peaked at far less memory for about a third more compute (figures in
        BUILD_NOTES, issue 17). Not saved with the model.

        Example:
            >>> encoder = BertEncoder(BertConfig.named("tiny", vocab_size=100))
            >>> encoder.gradient_checkpointing = True
        """
        return all(block.gradient_checkpointing for block in self.transformer_layers)

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        for block in self.transformer_layers:
            block.gradient_checkpointing = bool(enabled)

    @property
    def token_embedding(self):
        """The token embedding layer (the MLM head ties its output projection to it)."""
        return self.embeddings.token_embedding

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "config": self.config.to_dict(),
            "output_hidden_states": self.output_hidden_states,
            "output_attentions": self.output_attentions,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
