"""Any model directory (kbert, Hugging Face, Google) as an encoder that shows its insides.

`load_for_inspection` rebuilds the encoder with `output_hidden_states` and
`output_attentions` (same weights, float32; the saved model is not changed) and keeps its
tokenizer and, when the model carries one, its masked-LM head.

Example:
    >>> model = load_for_inspection("runs/demo/pretrained_model")      # doctest: +SKIP
    >>> model.encoder.output_attentions, model.mlm_head is not None     # doctest: +SKIP
    (True, True)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from kbert.inspection.errors import InspectionError

# A Hugging Face BertForMaskedLM has neither a pooler nor a next-sentence head; inspection
# uses neither, so they may stay at their initial values.
UNUSED_BY_INSPECTION = ("pooler.*", "cls.seq_relationship.*")


@dataclasses.dataclass
class InspectedModel:
    """An encoder returning `hidden_states` and `attentions`, its tokenizer, and the
    masked-LM head (None for a model without one). `source` is the directory read."""
    encoder: object
    tokenizer: object
    mlm_head: object | None
    source: str

    @property
    def config(self):
        return self.encoder.config

    @property
    def num_layers(self) -> int:
        return self.encoder.config.num_hidden_layers


def is_kbert_directory(path: str) -> bool:
    """A directory whose `config.json` has kbert's section."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as f:
            return "kbert" in json.load(f)
    except (OSError, ValueError):
        return False


def inspecting_encoder(encoder):
    """A float32 copy of `encoder` that also returns every hidden state and attention map."""
    from kbert.models import BertEncoder
    copy = BertEncoder(encoder.config, output_hidden_states=True, output_attentions=True,
                       dtype="float32")
    import numpy as np
    ids = np.ones((1, 4), "int32")
    copy({"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": ids})
    copy.set_weights(encoder.get_weights())
    return copy


def _foreign_tokenizer(path: str, family: str, do_lower_case: bool | None):
    from kbert.checkpoints import detect_format
    from kbert.convert import _resolve_do_lower_case, _source_directory
    from kbert.tokenizers.families import load_family_tokenizer, tokenizer_files
    source_format = detect_format(path)
    directory = _source_directory(path, source_format)
    files = tokenizer_files(family, directory)
    for file in files:
        if not os.path.isfile(file):
            raise InspectionError(f"{family} tokenizer file not found: {file}")
    lower = _resolve_do_lower_case(directory, source_format, do_lower_case, family)
    return load_family_tokenizer(family, files, lower_case=lower)


def load_for_inspection(path: str, do_lower_case: bool | None = None) -> InspectedModel:
    """Load a kbert model directory (any kbert model: encoder, pre-trainer, task model), a
    Hugging Face directory or a Google checkpoint for inspection.

    `do_lower_case` is for foreign checkpoints that do not say (as `kbert.convert`).
    Raises FileNotFoundError / ValueError / CheckpointError naming the path.
    """
    import kbert
    if not os.path.exists(path):
        raise FileNotFoundError(f"model directory not found: {path}")
    if is_kbert_directory(path):
        model = kbert.load(path)
        tokenizer = kbert.load_tokenizer(path)
    else:
        from kbert.checkpoints import import_checkpoint
        model = import_checkpoint(path, heads="auto", allow_missing=UNUSED_BY_INSPECTION)
        tokenizer = _foreign_tokenizer(path, model.config.family, do_lower_case)
    encoder = getattr(model, "encoder", model)
    if not hasattr(encoder, "config") or not hasattr(encoder, "token_embedding"):
        raise InspectionError(f"{path} holds a {type(model).__name__}, not a BERT-family "
                              f"model")
    inspected = inspecting_encoder(encoder)
    mlm_head = getattr(model, "mlm_head", None)
    logging.info("inspecting %s: %s, %d layers, %s masked-LM head", path,
                 type(model).__name__, encoder.config.num_hidden_layers,
                 "with a" if mlm_head is not None else "no")
    return InspectedModel(inspected, tokenizer, mlm_head, path)
