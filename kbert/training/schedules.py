"""Learning-rate schedules: linear warmup, then linear or polynomial decay.

Example:
    >>> schedule = WarmupPolynomialDecay(1e-3, warmup_steps=10, total_steps=110)
    >>> [round(float(schedule(s)), 6) for s in (0, 5, 10, 60, 110)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0]
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kbert")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`peak * step / warmup` while warming up, then polynomial decay to `end_learning_rate`.

    After warmup the rate is
    `end + (peak - end) * (1 - (step - warmup) / (total - warmup)) ** power`, so it is
    continuous at the end of warmup (as Hugging Face's
    `get_polynomial_decay_schedule_with_warmup`); `power=1` is linear decay. Past
    `total_steps` it stays at `end_learning_rate`. `step` is the number of updates already
    applied (Keras passes `optimizer.iterations`).

    Args:
        peak_learning_rate: the rate reached at the end of warmup.
        warmup_steps: number of linear warmup steps (0 for none).
        total_steps: the step at which decay reaches `end_learning_rate`.
        end_learning_rate: the final rate.
        power: decay exponent; 1.0 is linear.

    Example:
        >>> round(float(WarmupPolynomialDecay(1.0, 0, 4, power=2.0)(2)), 4)
        0.25
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int, total_steps: int,
                 end_learning_rate: float = 0.0, power: float = 1.0, name: str | None = None):
        super().__init__()
        if peak_learning_rate <= 0:
            raise ValueError(f"peak_learning_rate must be > 0, got {peak_learning_rate}")
        if warmup_steps < 0 or total_steps <= 0:
            raise ValueError(f"need warmup_steps >= 0 and total_steps > 0, got "
                             f"{warmup_steps} and {total_steps}")
        if warmup_steps > total_steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) exceeds total_steps "
                             f"({total_steps})")
        if not 0 <= end_learning_rate <= peak_learning_rate:
            raise ValueError(f"end_learning_rate must be in [0, peak], got {end_learning_rate}")
        if power <= 0:
            raise ValueError(f"power must be > 0, got {power}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)
        self.name = name

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.peak_learning_rate, tf.float32)
        end = tf.constant(self.end_learning_rate, tf.float32)
        warmup = float(self.warmup_steps)
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = tf.clip_by_value((step - warmup) / decay_steps, 0.0, 1.0)
        decayed = end + (peak - end) * tf.pow(1.0 - progress, self.power)
        if self.warmup_steps == 0:
            return decayed
        warming = peak * step / warmup
        return tf.where(step < warmup, warming, decayed)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power,
                "name": self.name}


@keras.saving.register_keras_serializable(package="kbert")
class PhasedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Schedule `i` runs from `boundaries[i-1]` (0 for the first), seeing steps counted from
    its own start: e.g. LAMB's two phases, each with its own warmup and decay.

    Example:
        >>> first = WarmupPolynomialDecay(1.0, 0, 10)
        >>> second = WarmupPolynomialDecay(0.5, 2, 4)
        >>> schedule = PhasedSchedule([first, second], boundaries=[10])
        >>> [round(float(schedule(s)), 3) for s in (0, 5, 10, 11, 12, 13)]
        [1.0, 0.5, 0.0, 0.25, 0.5, 0.25]
    """

    def __init__(self, schedules, boundaries):
        super().__init__()
        schedules = [keras.optimizers.schedules.deserialize(s) if isinstance(s, dict) else s
                     for s in schedules]
        if len(schedules) != len(boundaries) + 1:
            raise ValueError(f"{len(schedules)} schedules need {len(schedules) - 1} "
                             f"boundaries, got {len(boundaries)}")
        if list(boundaries) != sorted(boundaries) or any(b <= 0 for b in boundaries):
            raise ValueError(f"boundaries must be positive and increasing, got {boundaries}")
        self.schedules = schedules
        self.boundaries = [int(b) for b in boundaries]

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        starts = [0] + self.boundaries
        rate = self.schedules[0](step)
        for start, schedule in zip(starts[1:], self.schedules[1:]):
            rate = tf.where(step >= float(start), schedule(step - float(start)), rate)
        return rate

    def get_config(self):
        return {"schedules": [keras.optimizers.schedules.serialize(s) for s in self.schedules],
                "boundaries": self.boundaries}


# --------------------------------------------------------------------------- two-phase runs
def phase1_steps(num_train_steps: int, phase2_fraction: float | None = None) -> int:
    """Steps of phase 1 of a two-phase run (all of them when there is no phase 2).

    Example:
        >>> phase1_steps(1000, 0.1), phase1_steps(1000)
        (900, 1000)
    """
    if phase2_fraction is None:
        return num_train_steps
    return int(round(num_train_steps * (1.0 - phase2_fraction)))


def scaled_max_predictions(max_predictions_per_seq: int, max_seq_length: int,
                           new_max_seq_length: int) -> int:
    """Masked-LM predictions per sequence kept in proportion at another sequence length.

    Example:
        >>> scaled_max_predictions(20, 128, 512)
        80
    """
    return int(round(max_predictions_per_seq * new_max_seq_length / max_seq_length))


def pretraining_schedule(learning_rate: float, num_warmup_steps: int, num_train_steps: int,
                         end_learning_rate: float = 0.0, decay_power: float = 1.0,
                         phase1: int | None = None, phase2_learning_rate: float | None = None,
                         phase2_warmup_steps: int = 0):
    """The learning rate of a pre-training run: warmup then decay, over one phase or two.

    With `phase1` (steps) and `phase2_learning_rate`, phase 2 warms up again to its own peak
    and decays over the remaining steps; otherwise one schedule spans the run.

    Example:
        >>> schedule = pretraining_schedule(1e-3, 10, 100, phase1=90,
        ...                                 phase2_learning_rate=5e-4, phase2_warmup_steps=5)
        >>> type(schedule).__name__
        'PhasedSchedule'
    """
    if phase1 is not None and phase2_learning_rate:
        return PhasedSchedule([
            WarmupPolynomialDecay(learning_rate, num_warmup_steps, phase1,
                                  end_learning_rate, decay_power),
            WarmupPolynomialDecay(phase2_learning_rate, phase2_warmup_steps,
                                  num_train_steps - phase1,
                                  min(end_learning_rate, phase2_learning_rate),
                                  decay_power)], boundaries=[phase1])
    return WarmupPolynomialDecay(learning_rate, min(num_warmup_steps, num_train_steps),
                                 num_train_steps, end_learning_rate, decay_power)
