"""Distributed pre-training: schedules, optimizers, gradient accumulation, strategies, the
custom training loop, checkpoints, progress/TensorBoard logging and loss plots.

Example:
    >>> from kbert.training import create_strategy, create_optimizer   # doctest: +SKIP
    >>> strategy = create_strategy("auto")                               # doctest: +SKIP
    >>> with strategy.scope():                                           # doctest: +SKIP
    ...     model = BertPretrainer(BertEncoder(config))
    ...     optimizer = create_optimizer("adamw", WarmupPolynomialDecay(1e-4, 10000, 10**6),
    ...                                  model=model, gradients_reduced=True)
    >>> PretrainingLoop(strategy, model, optimizer, LoopSettings("out")).run(
    ...     [Phase("seq128", 10**6, 256, dataset_fn)])                     # doctest: +SKIP

`trainers/pretrain.py` wires these to command-line flags.
"""

from kbert.training.distribution import create_strategy
from kbert.training.loop import LoopSettings, NonFiniteLossError, Phase, PretrainingLoop
from kbert.training.optimizers import AdamW, Lamb, create_optimizer, weight_decay_exclusions
from kbert.training.schedules import PhasedSchedule, WarmupPolynomialDecay

__all__ = ["AdamW", "Lamb", "LoopSettings", "NonFiniteLossError", "Phase", "PhasedSchedule",
           "PretrainingLoop", "WarmupPolynomialDecay", "create_optimizer", "create_strategy",
           "weight_decay_exclusions"]
