"""BERT-family models with their pre-training heads, trainable with `model.fit`.

The sentence-pair objective is a switch: "nsp" (BERT), "sop" (ALBERT's sentence order:
label 0 = segments in order, 1 = swapped; the same head and loss) or "none" (RoBERTa,
DistilBERT: masked LM only, no sentence head).
"""

import keras
import numpy as np

from kbert.configs import DEFAULT_SENTENCE_OBJECTIVE, SENTENCE_OBJECTIVES
from kbert.models.encoder import BertEncoder
from kbert.models.heads import MaskedLMHead, NextSentenceHead
from kbert.models.pretraining_losses import (losses_from_terms, named_for_objective,
                                             pretraining_loss_terms)



def sentence_objective_for(config, requested=None) -> str:
    """`requested`, or the family's default; an error for a model that cannot have it.

    Example:
        >>> from kbert.configs import BertConfig
        >>> sentence_objective_for(BertConfig.named("tiny", family="albert"))
        'sop'
    """
    objective = requested or DEFAULT_SENTENCE_OBJECTIVE.get(config.family, "nsp")
    if objective not in SENTENCE_OBJECTIVES:
        raise ValueError(f"sentence_objective must be one of {SENTENCE_OBJECTIVES}, "
                         f"got {objective!r}")
    if objective != "none" and not config.use_pooler:
        raise ValueError(f"sentence_objective {objective!r} needs a pooler; the "
                         f"{config.family} config has use_pooler=false")
    if objective != "none" and config.type_vocab_size < 2:
        raise ValueError(f"sentence_objective {objective!r} needs two token types (segment "
                         f"ids 0 and 1); the {config.family} config has type_vocab_size="
                         f"{config.type_vocab_size}")
    return objective


def encoder_inputs(features):
    """Map google-research/bert record features to the encoder's named inputs."""
    return {"token_ids": features["input_ids"], "segment_ids": features["segment_ids"],
            "padding_mask": features["input_mask"]}


@keras.saving.register_keras_serializable(package="kbert")
class BertPretrainer(keras.Model):
    """Encoder + masked-LM head (tied to the token embedding) + sentence-pair head.

    Called on a dict of google-research/bert record features (`input_ids`, `input_mask`,
    `segment_ids`, `masked_lm_positions`; extra keys are ignored) it returns
    `{"mlm_logits": [batch, P, vocab], "nsp_logits": [batch, 2]}`, both float32
    (`nsp_logits` holds the NSP or SOP logits; absent with `sentence_objective="none"`).
    `fit` trains it: loss = weighted masked-LM cross-entropy + sentence-pair cross-entropy
    (labels in `next_sentence_labels`, as google-research/albert's records), with
    `mlm_loss`, `nsp_loss`, `mlm_accuracy` and `nsp_accuracy` metrics.

    Args:
        encoder: a `BertEncoder`.
        sentence_objective: "nsp", "sop" or "none"; None = the family's default (BERT
            "nsp", ALBERT "sop", RoBERTa and DistilBERT "none").

    Example:
        >>> from kbert.configs import BertConfig
        >>> model = BertPretrainer(BertEncoder(BertConfig.named("tiny", vocab_size=100)))
        >>> out = model(model.example_inputs(batch_size=2, seq_length=16))
        >>> out["mlm_logits"].shape, out["nsp_logits"].shape
        (TensorShape([2, 2, 100]), TensorShape([2, 2]))
    """

    def __init__(self, encoder, sentence_objective=None, **kwargs):
        super().__init__(**kwargs)
        config = encoder.config
        self.sentence_objective = sentence_objective_for(config, sentence_objective)
        self.encoder = encoder
        self.mlm_head = MaskedLMHead(
            encoder.token_embedding, activation=config.hidden_act,
            layer_norm_eps=config.layer_norm_eps, initializer_range=config.initializer_range,
            dtype=encoder.dtype_policy, name="mlm_head")
        self.nsp_head = None
        if self.sentence_objective != "none":
            self.nsp_head = NextSentenceHead(
                initializer_range=config.initializer_range, dtype=encoder.dtype_policy,
                name="nsp_head")
        self.mlm_loss_tracker = keras.metrics.Mean(name="mlm_loss")
        self.nsp_loss_tracker = keras.metrics.Mean(name="nsp_loss")
        self.mlm_accuracy_tracker = keras.metrics.Mean(name="mlm_accuracy")
        self.nsp_accuracy_tracker = keras.metrics.Mean(name="nsp_accuracy")

    def build(self, features_shape=None):
        self.mlm_head.build((None, None, self.config.hidden_size), (None, None))
        if self.nsp_head is not None:
            self.nsp_head.build((None, self.config.hidden_size))
        self.built = True

    @property
    def config(self):
        return self.encoder.config

    def call(self, features, training=None):
        encoded = self.encoder(encoder_inputs(features), training=training)
        outputs = {"mlm_logits": self.mlm_head(encoded["sequence_output"],
                                               features["masked_lm_positions"])}
        if self.nsp_head is not None:
            outputs["nsp_logits"] = self.nsp_head(encoded["pooled_output"])
        return outputs

    def example_inputs(self, batch_size=1, seq_length=8, num_predictions=2):
        """Feature dict of the right shapes and dtypes (builds the model when called)."""
        ids = np.full((batch_size, seq_length), 1, "int32")
        return {
            "input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids),
            "masked_lm_positions": np.tile(np.arange(num_predictions, dtype="int32"),
                                           (batch_size, 1)),
            "masked_lm_ids": np.ones((batch_size, num_predictions), "int32"),
            "masked_lm_weights": np.ones((batch_size, num_predictions), "float32"),
            "next_sentence_labels": np.zeros((batch_size,), "int32"),
        }

    # --- training with fit -------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        losses = losses_from_terms(pretraining_loss_terms(x, y_pred))
        self.mlm_loss_tracker.update_state(losses["mlm_loss"])
        self.nsp_loss_tracker.update_state(losses["nsp_loss"])
        self.mlm_accuracy_tracker.update_state(losses["mlm_accuracy"])
        self.nsp_accuracy_tracker.update_state(losses["nsp_accuracy"])
        total = losses["loss"]
        if self.losses:
            total = total + keras.ops.sum(self.losses)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return named_for_objective(self.get_metrics_result(), self.sentence_objective)

    # --- serialization -----------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "sentence_objective": self.sentence_objective}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
