"""Hugging Face tensor names of each family, renamed onto the canonical (BERT) names.

`kbert.checkpoints.mapping` knows one set of names, BERT's (`encoder.layer.0.attention.self.
query.weight`, `cls.predictions.bias`, ...). RoBERTa, ALBERT and DistilBERT checkpoints say
the same things under other names; each family here is a model prefix and a list of
(pattern, replacement) rules, applied in order, first match wins. A fifth family is one
more entry.

Example:
    >>> to_canonical("distilbert.transformer.layer.3.attention.q_lin.weight", "distilbert")
    'encoder.layer.3.attention.self.query.weight'
    >>> to_canonical("albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.bias", "albert")
    'encoder.layer.0.intermediate.dense.bias'
    >>> to_canonical("lm_head.layer_norm.weight", "roberta")
    'cls.predictions.transform.LayerNorm.weight'
"""

from __future__ import annotations

import re

_ALBERT_LAYER = r"^encoder\.albert_layer_groups\.0\.albert_layers\.0\."
_DISTILBERT_LAYER = r"^transformer\.layer\.(\d+)\."

# family -> (prefix of the base model's keys, [(regex, replacement), ...])
FAMILY_NAMES = {
    "bert": ("bert.", []),
    "roberta": ("roberta.", [
        (r"^lm_head\.dense\.", "cls.predictions.transform.dense."),
        (r"^lm_head\.layer_norm\.", "cls.predictions.transform.LayerNorm."),
        (r"^lm_head\.decoder\.", "cls.predictions.decoder."),
        (r"^lm_head\.bias$", "cls.predictions.bias"),
    ]),
    "albert": ("albert.", [
        (_ALBERT_LAYER + r"attention\.(query|key|value)\.", r"encoder.layer.0.attention.self.\1."),
        (_ALBERT_LAYER + r"attention\.dense\.", "encoder.layer.0.attention.output.dense."),
        (_ALBERT_LAYER + r"attention\.LayerNorm\.", "encoder.layer.0.attention.output.LayerNorm."),
        (_ALBERT_LAYER + r"ffn\.", "encoder.layer.0.intermediate.dense."),
        (_ALBERT_LAYER + r"ffn_output\.", "encoder.layer.0.output.dense."),
        (_ALBERT_LAYER + r"full_layer_layer_norm\.", "encoder.layer.0.output.LayerNorm."),
        (r"^pooler\.", "pooler.dense."),
        (r"^predictions\.dense\.", "cls.predictions.transform.dense."),
        (r"^predictions\.LayerNorm\.", "cls.predictions.transform.LayerNorm."),
        (r"^predictions\.decoder\.", "cls.predictions.decoder."),
        (r"^predictions\.bias$", "cls.predictions.bias"),
        (r"^sop_classifier\.classifier\.", "cls.seq_relationship."),
    ]),
    "distilbert": ("distilbert.", [
        (_DISTILBERT_LAYER + r"attention\.q_lin\.", r"encoder.layer.\1.attention.self.query."),
        (_DISTILBERT_LAYER + r"attention\.k_lin\.", r"encoder.layer.\1.attention.self.key."),
        (_DISTILBERT_LAYER + r"attention\.v_lin\.", r"encoder.layer.\1.attention.self.value."),
        (_DISTILBERT_LAYER + r"attention\.out_lin\.", r"encoder.layer.\1.attention.output.dense."),
        (_DISTILBERT_LAYER + r"sa_layer_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
        (_DISTILBERT_LAYER + r"ffn\.lin1\.", r"encoder.layer.\1.intermediate.dense."),
        (_DISTILBERT_LAYER + r"ffn\.lin2\.", r"encoder.layer.\1.output.dense."),
        (_DISTILBERT_LAYER + r"output_layer_norm\.", r"encoder.layer.\1.output.LayerNorm."),
        (r"^vocab_transform\.", "cls.predictions.transform.dense."),
        (r"^vocab_layer_norm\.", "cls.predictions.transform.LayerNorm."),
        (r"^vocab_projector\.weight$", "cls.predictions.decoder.weight"),
        (r"^vocab_projector\.bias$", "cls.predictions.bias"),
    ]),
}
_COMPILED = {family: (prefix, [(re.compile(p), r) for p, r in rules])
             for family, (prefix, rules) in FAMILY_NAMES.items()}


def to_canonical(name: str, family: str) -> str:
    """A family's Hugging Face key under the canonical BERT name (unknown keys keep their
    name, without the model prefix, so they are reported as unexpected)."""
    prefix, rules = _COMPILED[family]
    if name.startswith(prefix):
        name = name[len(prefix):]
    for pattern, replacement in rules:
        renamed, count = pattern.subn(replacement, name)
        if count:
            return renamed
    return name
