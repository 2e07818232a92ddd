"""What both kinds of `export.distill` share: the output contract of --output_dir and the
student built from the teacher (or loaded from --student_init).

Example:
    >>> from export.distill_common import DISTILL_KIND
    >>> DISTILL_KIND
    'distillation'
"""

from __future__ import annotations

import contextlib
import os

DISTILL_KIND = "distillation"


def check_output_dir(output_dir: str, overwrite: bool, inputs=()) -> None:
    """The output contract for --output_dir (kbert.outputs), checked before any training."""
    from kbert import outputs
    outputs.check_output(output_dir, DISTILL_KIND, inputs, overwrite, flag="--output_dir")


@contextlib.contextmanager
def output_staging(fv, inputs):
    """A staging directory that becomes --output_dir (model/ + eval.json) in one step."""
    from kbert import outputs
    with outputs.replace_directory(fv.output_dir, DISTILL_KIND, inputs, fv.overwrite,
                                   flag="--output_dir") as staging:
        yield staging


def _vocab_check(teacher_dir, student_dir):
    """Teacher and student must share one tokenizer (the same family's files, same ids)."""
    from kbert.export.task_model import ExportError
    from kbert.models.saving import read_directory_config
    from kbert.tokenizers.families import tokenizer_files, tokenizer_hash
    found = []
    for directory in (teacher_dir, student_dir):
        try:
            family = read_directory_config(directory).get("family", "bert")
        except (FileNotFoundError, ValueError) as e:
            raise ExportError(str(e)) from e
        files = tokenizer_files(family, directory)
        missing = [p for p in files if not os.path.isfile(p)]
        if missing:
            raise ExportError(f"model directory has no {os.path.basename(missing[0])}: "
                              f"{directory}")
        found.append((family, tokenizer_hash(family, files)))
    if found[0] != found[1]:
        raise ExportError(f"teacher and student vocabularies differ ({teacher_dir}: "
                          f"{found[0][0]}, {student_dir}: {found[1][0]}): a student must "
                          f"share its teacher's token ids")


def make_student(teacher, fv, keep_token_ids=None, vocabulary=None):
    from kbert.distillation import student_from_teacher
    from kbert.export.task_model import ExportError
    if fv.student_init:
        import kbert
        _vocab_check(fv.teacher_model, fv.student_init)
        return kbert.load(fv.student_init)
    try:
        return student_from_teacher(
            teacher, layers=fv.student_layers, num_layers=fv.student_num_layers,
            hidden_size=fv.student_hidden_size,
            num_attention_heads=fv.student_num_attention_heads,
            intermediate_size=fv.student_intermediate_size, keep_token_ids=keep_token_ids,
            vocabulary=vocabulary)
    except (ValueError, TypeError) as e:
        raise ExportError(f"--student_layers/--student_*: {e}") from e
