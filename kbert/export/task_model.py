"""What the export stage needs from a fine-tuned model directory, in one place.

A task model takes kbert's encoder inputs (`token_ids`, `segment_ids`, `padding_mask`) and
returns class logits (a tensor, or a dict holding `"logits"`). Its directory's `config.json`
names the model family (bert, roberta, albert, distilbert: its tokenizer files lie beside)
and its `kbert` section the label names, the max length and the casing.

Example:
    >>> info = read_task_info("runs/fortunes/model")                    # doctest: +SKIP
    >>> info.labels[:2], info.max_seq_length                            # doctest: +SKIP
    (['art', 'computers'], 128)
"""

from __future__ import annotations

import dataclasses
import os

from kbert.loading import load
from kbert.models import saving
from kbert.tokenizers.families import TOKENIZER_FILES, load_family_tokenizer, tokenizer_files


class ExportError(ValueError):
    """The export cannot go on; the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """Settings an exported classifier carries (and the app needs)."""

    labels: tuple
    max_seq_length: int
    do_lower_case: bool
    vocab_file: str | None
    task: str = "classification"
    family: str = "bert"
    tokenizer_files: tuple = ()

    @property
    def is_wordpiece(self) -> bool:
        return TOKENIZER_FILES.get(self.family) == ("vocab.txt",)


def task_tokenizer(info: TaskInfo, normalization: str = "exact"):
    """The family's tokenizer for `info` (WordPiece takes `normalization`: "exact" or the
    LiteRT-convertible "fast")."""
    if not info.tokenizer_files:
        names = " + ".join(TOKENIZER_FILES.get(info.family, ("vocab.txt",)))
        raise ExportError(f"the {info.family} model directory has no tokenizer ({names})")
    if info.is_wordpiece:
        from kbert.tokenizers import BertTokenizer
        return BertTokenizer(info.tokenizer_files[0], lower_case=info.do_lower_case,
                             normalization=normalization)
    return load_family_tokenizer(info.family, list(info.tokenizer_files),
                                 lower_case=info.do_lower_case)


def _first(section: dict, *keys, default=None):
    for key in keys:
        value = section
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            return value
    return default


def read_task_info(directory: str, max_seq_length: int | None = None) -> TaskInfo:
    """The `TaskInfo` of a model directory; errors name the directory."""
    try:
        config = saving.read_directory_config(directory)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(str(e)) from e
    section = config["kbert"]
    if section.get("text_pair_column"):
        raise ExportError(f"model directory {directory} is a pair classifier (fine-tuned on "
                          f"text + {section['text_pair_column']}); the export commands feed "
                          f"one text a row and would drop the second text, so pair models "
                          f"are not exported")
    labels = _first(section, "labels", "label_names", "model.config.label_names",
                    "task.labels", "task.label_names")
    if not labels:
        raise ExportError(f"model directory {directory} names no labels (config.json kbert."
                          f"labels); export classification models written by "
                          f"trainers.finetune or export.distill")
    length = max_seq_length or _first(section, "max_seq_length",
                                      "model.config.preprocessor.config.max_seq_length",
                                      "task.max_seq_length", default=128)
    length = min(int(length), int(config.get("max_position_embeddings", length)))
    family = config.get("family", "bert")
    if family not in TOKENIZER_FILES:
        raise ExportError(f"model directory {directory}: unknown family {family!r} "
                          f"(config.json); supported: {', '.join(sorted(TOKENIZER_FILES))}")
    files = tokenizer_files(family, directory)
    present = all(os.path.isfile(path) for path in files)
    task = _first(section, "task", default="classification")
    return TaskInfo(labels=tuple(str(x) for x in labels), max_seq_length=length,
                    do_lower_case=bool(section.get("do_lower_case", True)),
                    vocab_file=files[0] if present and files[0].endswith(".txt") else None,
                    task=task if isinstance(task, str) else task.get("name", "classification"),
                    family=family, tokenizer_files=tuple(files) if present else ())


def load_task_model(directory: str, max_seq_length: int | None = None):
    """`(model, TaskInfo)` from a fine-tuned (or distilled) model directory."""
    info = read_task_info(directory, max_seq_length)
    try:
        model = load(directory)
    except Exception as e:  # noqa: BLE001 - any load failure is one clear line
        raise ExportError(f"cannot load the model in {directory}: {e}") from e
    return model, info


def encoder_features(input_ids, attention_mask, token_type_ids) -> dict:
    """kbert's encoder input names from the Hugging Face / LiteRT signature names."""
    return {"token_ids": input_ids, "segment_ids": token_type_ids,
            "padding_mask": attention_mask}


def classifier_logits(model, features: dict, training=False):
    """Class logits of a task model called on encoder features."""
    outputs = model(features, training=training)
    if isinstance(outputs, dict):
        if "logits" not in outputs:
            raise ExportError(f"the model returns {sorted(outputs)}, not 'logits'")
        return outputs["logits"]
    return outputs
