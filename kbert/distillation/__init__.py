"""Knowledge distillation: smaller students from kbert teachers (task-specific or general).

Example:
    >>> student = student_from_teacher(teacher, layers=[0, 2, 4])          # doctest: +SKIP
    >>> history = distill_task(teacher, student, train, DistillationSettings())  # doctest: +SKIP
"""

from kbert.distillation.losses import hidden_state_loss, soft_target_loss
from kbert.distillation.students import (encoder_of, every_other_layer, student_from_teacher,
                                         with_sequence_output)
from kbert.distillation.task import DistillationSettings, distill_task

__all__ = ["DistillationSettings", "distill_task", "encoder_of", "every_other_layer",
           "hidden_state_loss", "soft_target_loss", "student_from_teacher",
           "with_sequence_output"]
