"""Fine-tuning optimizer defaults: AdamW, decay off for LayerNorm and biases, linear warmup
then linear decay to zero over the planned steps (as google-research/bert's run_classifier
and Hugging Face's Trainer).

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> optimizer = fine_tuning_optimizer(model, 3e-5, num_train_steps=100)
    >>> round(float(optimizer.learning_rate), 8)   # step 0 of the warmup
    0.0
"""

from __future__ import annotations

from kbert.training.optimizers import create_optimizer
from kbert.training.schedules import WarmupPolynomialDecay

DEFAULT_LEARNING_RATE = 3e-5
DEFAULT_WARMUP_PROPORTION = 0.1
DEFAULT_WEIGHT_DECAY = 0.01


def fine_tuning_optimizer(model, learning_rate: float = DEFAULT_LEARNING_RATE,
                          num_train_steps: int | None = None,
                          warmup_proportion: float = DEFAULT_WARMUP_PROPORTION,
                          weight_decay: float = DEFAULT_WEIGHT_DECAY,
                          clip_norm: float | None = 1.0):
    """AdamW for `model` (built); with `num_train_steps`, warmup + linear decay to 0."""
    if not 0 <= warmup_proportion < 1:
        raise ValueError(f"warmup_proportion must be in [0, 1), got {warmup_proportion}")
    rate = learning_rate
    if num_train_steps:
        rate = WarmupPolynomialDecay(learning_rate, int(warmup_proportion * num_train_steps),
                                     int(num_train_steps), power=1.0)
    return create_optimizer("adamw", rate, weight_decay=weight_decay, clip_norm=clip_norm,
                            model=model)
