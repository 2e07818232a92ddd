"""Learning-rate schedules against Hugging Face's schedulers (the reference users know)."""

import keras
import numpy as np
import pytest
import torch
from transformers import get_linear_schedule_with_warmup, get_polynomial_decay_schedule_with_warmup

from kbert.training.schedules import (PhasedSchedule, WarmupPolynomialDecay, phase1_steps,
                                      pretraining_schedule, scaled_max_predictions)


def _hf_rates(make_scheduler, peak, steps):
    """Hugging Face's rate before each of `steps` updates (step 0 = before the first)."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=peak)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


def _kbert_rates(schedule, steps):
    return np.array([float(schedule(s)) for s in range(steps)])


def test_linear_warmup_then_linear_decay_matches_hugging_face():
    expected = _hf_rates(lambda o: get_linear_schedule_with_warmup(o, 10, 50), 1e-3, 55)
    actual = _kbert_rates(WarmupPolynomialDecay(1e-3, warmup_steps=10, total_steps=50), 55)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("power,end", [(2.0, 1e-5), (0.5, 0.0)])
def test_polynomial_decay_matches_hugging_face(power, end):
    expected = _hf_rates(lambda o: get_polynomial_decay_schedule_with_warmup(
        o, 7, 40, lr_end=end, power=power), 2e-3, 45)
    actual = _kbert_rates(WarmupPolynomialDecay(2e-3, 7, 40, end_learning_rate=end,
                                                power=power), 45)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-10)


def test_no_warmup_starts_at_peak():
    schedule = WarmupPolynomialDecay(1e-3, warmup_steps=0, total_steps=10)
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(10)) == pytest.approx(0.0)


def test_phased_schedule_restarts_each_phase():
    first = WarmupPolynomialDecay(6e-3, 20, 70, power=0.5)
    second = WarmupPolynomialDecay(4e-3, 5, 30, power=0.5)
    schedule = PhasedSchedule([first, second], boundaries=[70])
    expected = np.concatenate([
        _hf_rates(lambda o: get_polynomial_decay_schedule_with_warmup(o, 20, 70, 0.0, 0.5),
                  6e-3, 70),
        _hf_rates(lambda o: get_polynomial_decay_schedule_with_warmup(o, 5, 30, 0.0, 0.5),
                  4e-3, 30)])
    np.testing.assert_allclose(_kbert_rates(schedule, 100), expected, rtol=1e-5, atol=1e-10)


def test_schedules_serialize_round_trip():
    schedule = PhasedSchedule([WarmupPolynomialDecay(1e-3, 2, 10),
                               WarmupPolynomialDecay(5e-4, 1, 5, power=2.0)], [10])
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    np.testing.assert_allclose(_kbert_rates(restored, 16), _kbert_rates(schedule, 16))


@pytest.mark.parametrize("kwargs,message", [
    (dict(peak_learning_rate=0.0, warmup_steps=1, total_steps=2), "peak_learning_rate"),
    (dict(peak_learning_rate=1.0, warmup_steps=5, total_steps=2), "warmup_steps"),
    (dict(peak_learning_rate=1.0, warmup_steps=0, total_steps=2, end_learning_rate=2.0),
     "end_learning_rate"),
    (dict(peak_learning_rate=1.0, warmup_steps=0, total_steps=2, power=0.0), "power"),
])
def test_bad_schedule_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupPolynomialDecay(**kwargs)


def test_phase_arithmetic_of_a_two_phase_run():
    assert phase1_steps(1000) == 1000
    assert phase1_steps(1000, 0.1) == 900
    assert phase1_steps(7, 0.5) == 4   # round half to even: 3.5 -> 4
    assert scaled_max_predictions(20, 128, 512) == 80
    assert scaled_max_predictions(8, 64, 100) == 12


def test_pretraining_schedule_one_phase_and_two_phases():
    one = pretraining_schedule(1e-3, 20, 10, end_learning_rate=0.0)
    # Warmup is capped at the run's length, as the command always did.
    reference = WarmupPolynomialDecay(1e-3, 10, 10, 0.0, 1.0)
    np.testing.assert_allclose(_kbert_rates(one, 12), _kbert_rates(reference, 12))
    two = pretraining_schedule(1e-3, 2, 10, end_learning_rate=1e-4, phase1=8,
                               phase2_learning_rate=5e-5, phase2_warmup_steps=1)
    rates = _kbert_rates(two, 10)
    np.testing.assert_allclose(rates[:8], _kbert_rates(
        WarmupPolynomialDecay(1e-3, 2, 8, 1e-4, 1.0), 8), rtol=1e-6)
    assert rates[8] == pytest.approx(0.0)          # phase 2 warms up again from zero
    assert rates[9] == pytest.approx(5e-5, rel=1e-5)  # to its own peak, decaying to min(end, peak)
