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

import importlib

# TensorFlow-heavy pieces load on first use, so that `kbert.training.precision` and
# `kbert.training.xla_fusion` can be imported before TensorFlow (a command decides its XLA
# flags and log level first).
_HOMES = {"create_strategy": "distribution", "LoopSettings": "loop",
          "NonFiniteLossError": "loop", "Phase": "loop", "PretrainingLoop": "loop",
          "AdamW": "optimizers", "Lamb": "optimizers", "create_optimizer": "optimizers",
          "weight_decay_exclusions": "optimizers", "PhasedSchedule": "schedules",
          "WarmupPolynomialDecay": "schedules"}


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f"kbert.training.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'kbert.training' has no attribute {name!r}")


__all__ = ["AdamW", "Lamb", "LoopSettings", "NonFiniteLossError", "Phase", "PhasedSchedule",
           "PretrainingLoop", "WarmupPolynomialDecay", "create_optimizer", "create_strategy",
           "weight_decay_exclusions"]
