"""The BERT encoder: embeddings, a stack of Transformer blocks, and the [CLS] pooler."""

from __future__ import annotations

import keras
from kbert.configs import BertConfig
from kbert.layers import BertEmbeddings, TransformerBlock


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
    (tanh dense on the [CLS] position); with `output_hidden_states`, `hidden_states`
    (a list: embeddings then each block's output); with `output_attentions`, `attentions`
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
        embeddings = BertEmbeddings(
            config.vocab_size, config.hidden_size, config.max_position_embeddings,
            config.type_vocab_size, layer_norm_eps=config.layer_norm_eps,
            dropout=config.hidden_dropout_prob, initializer_range=config.initializer_range,
            dtype=policy, name="embeddings")
        blocks = [
            TransformerBlock(
                config.hidden_size, config.num_attention_heads, config.intermediate_size,
                activation=config.hidden_act, hidden_dropout=config.hidden_dropout_prob,
                attention_dropout=config.attention_probs_dropout_prob,
                layer_norm_eps=config.layer_norm_eps,
                initializer_range=config.initializer_range, dtype=policy,
                name=f"transformer_layer_{i}")
            for i in range(config.num_hidden_layers)
        ]
        pooler = keras.layers.Dense(
            config.hidden_size, activation="tanh",
            kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=config.initializer_range), dtype=policy, name="pooler")

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = embeddings(token_ids, segment_ids)
        hidden_states, attentions = [x], []
        for block in blocks:
            if output_attentions:
                x, probs = block(x, padding_mask, return_attention=True)
                attentions.append(probs)
            else:
                x = block(x, padding_mask)
            hidden_states.append(x)
        cls = x[:, 0, :]
        outputs = {"sequence_output": x, "pooled_output": pooler(cls)}
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
        self.transformer_layers = blocks
        self.pooler = pooler

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
