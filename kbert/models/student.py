"""DistilBERT students initialised from a BERT (or RoBERTa) teacher by taking some of its layers.

Sanh et al. (2019) built DistilBERT from BERT-base by keeping teacher layers
`[0, 2, 4, 7, 9, 11]`. The rule here generalises it to any depth: student layer `i` of `n`
takes teacher layer `round(i * (L - 1) / (n - 1))` (halves rounded up), evenly spaced from
the first to the last teacher layer; a one-layer student takes layer 0. For 12 -> 6 that
is exactly the DistilBERT authors' list. The embeddings, the masked-LM head and each chosen
block are copied; the teacher's pooler and sentence head are dropped (DistilBERT has
neither). The teacher's segment-0 embedding is folded into the position table, so a
single-segment input embeds exactly as in the teacher (Hugging Face's
`extract_distilbert.py` drops it instead; pass `fold_segment_embedding=False` for that).
The distillation training itself is the export stage's.

Example:
    >>> student_layer_indices(12, 6)
    [0, 2, 4, 7, 9, 11]
    >>> student_layer_indices(24, 6)
    [0, 5, 9, 14, 18, 23]
"""

from __future__ import annotations

import math
import re

import numpy as np

from kbert.models.encoder import BertEncoder
from kbert.models.pretrainer import BertPretrainer


def student_layer_indices(teacher_layers: int, student_layers: int) -> list[int]:
    """Which teacher layer each student layer starts from (see the module docstring)."""
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"a student needs between 1 and {teacher_layers} layers (the "
                         f"teacher's), got {student_layers}")
    if student_layers == 1:
        return [0]
    step = (teacher_layers - 1) / (student_layers - 1)
    return [int(math.floor(i * step + 0.5)) for i in range(student_layers)]


def distilbert_from_teacher(teacher, layers: list[int] | None = None,
                            fold_segment_embedding: bool = True):
    """A DistilBERT-family student holding copies of the teacher's weights.

    Args:
        teacher: a `BertEncoder` or `BertPretrainer` (BERT or RoBERTa family, no shared
            layers). A pre-trainer gives a masked-LM `BertPretrainer` student.
        layers: teacher layer indices to keep, in order; default half the teacher's
            layers chosen by `student_layer_indices`.
        fold_segment_embedding: add the teacher's segment-0 embedding to the student's
            position table (the student has no segments).

    Example:
        >>> student = distilbert_from_teacher(kbert.load("models/bert_base"))  # doctest: +SKIP
    """
    from kbert.checkpoints.mapping import weight_targets
    config = teacher.config
    if config.share_layers != "none":
        raise ValueError(f"a teacher with shared layers ({config.family}, share_layers="
                         f"{config.share_layers!r}) has no distinct layers to take")
    depth = config.num_hidden_layers
    layers = list(layers) if layers is not None else \
        student_layer_indices(depth, max(1, depth // 2))
    if not layers or any(not 0 <= i < depth for i in layers):
        raise ValueError(f"layers must be teacher layer indices in [0, {depth}), got {layers}")
    student_config = config.replace(family="distilbert", num_hidden_layers=len(layers),
                                    type_vocab_size=0, use_pooler=False)
    is_pretrainer = isinstance(teacher, BertPretrainer)
    student = BertEncoder(student_config)
    if is_pretrainer:
        student = BertPretrainer(student, sentence_objective="none")
        student(student.example_inputs())
    teacher_targets = weight_targets(teacher)
    for name, target in weight_targets(student).items():
        source = re.sub(r"^encoder\.layer\.(\d+)\.",
                        lambda m: f"encoder.layer.{layers[int(m.group(1))]}.", name)
        value = np.asarray(teacher_targets[source].variable)
        if name == "embeddings.position_embeddings.weight" and fold_segment_embedding \
                and "embeddings.token_type_embeddings.weight" in teacher_targets:
            value = value + np.asarray(
                teacher_targets["embeddings.token_type_embeddings.weight"].variable)[0]
        target.variable.assign(value)
    return student
