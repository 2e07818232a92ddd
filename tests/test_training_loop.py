"""The custom training loop in-process on one CPU device: checkpoints, resume, NaN stop,
run-config guard, TensorBoard scalars, loss.png, mixed precision."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kbert.configs import BertConfig
from kbert.models import BertEncoder, BertPretrainer
from kbert.training.checkpointing import RunMismatchError, TrainingCheckpoints
from kbert.training.distribution import create_strategy
from kbert.training.loop import LoopSettings, NonFiniteLossError, Phase, PretrainingLoop
from kbert.training.optimizers import create_optimizer
from kbert.training.schedules import WarmupPolynomialDecay

VOCAB, SEQ, PREDICTIONS, BATCH = 60, 16, 3, 8


def synthetic_dataset_fn(poison_batch=None, seed=0):
    """Deterministic batches: example i depends only on (seed, i). With `poison_batch`,
    that batch's masked-LM weights are NaN (a loss that goes bad mid-run)."""
    def example(i):
        key = tf.stack([tf.cast(i, tf.int64), tf.constant(seed, tf.int64)])
        ids = tf.random.stateless_uniform([SEQ], key, 5, VOCAB, tf.int32)
        label = tf.cast(ids[1] % 2, tf.int32)
        # NotNext examples repeat a token pattern the model can pick up quickly.
        ids = tf.where(label == 1, tf.concat([ids[:SEQ // 2], ids[:SEQ // 2]], 0), ids)
        return {"input_ids": ids, "input_mask": tf.ones([SEQ], tf.int32),
                "segment_ids": tf.concat([tf.zeros([SEQ // 2], tf.int32),
                                          tf.ones([SEQ - SEQ // 2], tf.int32)], 0),
                "masked_lm_positions": tf.constant([2, 5, 11]),
                "masked_lm_ids": tf.gather(ids, [2, 5, 11]) % 7,
                "masked_lm_weights": tf.constant([1.0, 1.0, 0.0]),
                "next_sentence_labels": label}

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(BATCH) if context else BATCH
        dataset = tf.data.Dataset.range(10 ** 6).map(example).batch(per_replica,
                                                                    drop_remainder=True)
        if poison_batch is None:
            return dataset

        def poison(index, batch):
            bad = tf.fill(tf.shape(batch["masked_lm_weights"]), float("nan"))
            batch = dict(batch)
            batch["masked_lm_weights"] = tf.where(index == poison_batch, bad,
                                                  batch["masked_lm_weights"])
            return batch
        return dataset.enumerate().map(poison)
    return dataset_fn


def make_loop(output_dir, dropout=0.1, learning_rate=2e-3, total_steps=6, policy=None,
              run_config=None, resume=True, sentence_objective=None, **settings):
    keras.utils.set_random_seed(7)
    if policy:
        keras.config.set_dtype_policy(policy)
    strategy = create_strategy("one_device")
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                        max_position_embeddings=SEQ)
    with strategy.scope():
        model = BertPretrainer(BertEncoder(config), sentence_objective=sentence_objective)
        optimizer = create_optimizer(
            "adamw", WarmupPolynomialDecay(learning_rate, 1, total_steps), weight_decay=0.01,
            clip_norm=1.0, model=(model(model.example_inputs()), model)[1],
            gradients_reduced=True)
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    defaults = dict(log_every_steps=1, save_checkpoints_steps=3, keep_checkpoints=2)
    defaults.update(settings)
    return PretrainingLoop(strategy, model, optimizer,
                           LoopSettings(str(output_dir), resume=resume,
                                        run_config=run_config or {"model": "micro"}, **defaults),
                           eval_dataset_fn=synthetic_dataset_fn(seed=99), eval_batch_size=BATCH)


def train_losses(history):
    return {r["step"]: r["loss"] for r in history.records if r["split"] == "train"}


def event_tags(directory):
    tags = set()
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_run_then_resume_continues_the_uninterrupted_curve(tmp_path):
    # One uninterrupted run of 6 steps...
    full = make_loop(tmp_path / "full", eval_every_steps=3, eval_steps=2)
    history = full.run([Phase("p", 6, BATCH, synthetic_dataset_fn())])
    expected = train_losses(history)
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in history.records if r["split"] == "eval"] == [3, 6]
    assert expected[6] < expected[1]
    checkpoint_dir = tmp_path / "full" / "checkpoints"
    assert tf.train.latest_checkpoint(str(checkpoint_dir)).endswith("ckpt-6")
    assert sorted(os.path.basename(p) for p in glob.glob(str(checkpoint_dir / "*.index"))) == [
        "ckpt-3.index", "ckpt-6.index"]
    with open(tmp_path / "full" / "loss.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    train_tags = event_tags(tmp_path / "full" / "tensorboard" / "train")
    assert {"loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy", "learning_rate",
            "steps_per_second", "examples_per_second"} <= train_tags
    assert "mlm_accuracy" in event_tags(tmp_path / "full" / "tensorboard" / "eval")

    # ...equals one that stops at step 3 and is resumed by fresh objects (as a new process
    # would), dropout included: its random state is in the checkpoint too.
    make_loop(tmp_path / "split").run([Phase("p", 3, BATCH, synthetic_dataset_fn())])
    steps_seen = []       # a parent's progress line follows every step, counted from resume
    resumed = make_loop(tmp_path / "split",
                        step_callback=lambda step, total: steps_seen.append((step, total)))
    continued = train_losses(resumed.run([Phase("p", 6, BATCH, synthetic_dataset_fn())]))
    assert steps_seen == [(4, 6), (5, 6), (6, 6)]
    assert sorted(continued) == [1, 2, 3, 4, 5, 6]     # history kept across the restart
    for step in range(1, 7):
        assert continued[step] == pytest.approx(expected[step], rel=1e-5), step
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # Resuming with other settings is refused before any step, naming the difference.
    with pytest.raises(RunMismatchError, match="model: checkpoint has 'micro'"):
        make_loop(tmp_path / "split", run_config={"model": "other"}).run(
            [Phase("p", 8, BATCH, synthetic_dataset_fn())])
    with pytest.raises(FileExistsError, match="--resume"):
        make_loop(tmp_path / "split", resume=False).run(
            [Phase("p", 8, BATCH, synthetic_dataset_fn())])


def test_sop_metrics_keep_their_name_across_a_resume_of_the_old_format(tmp_path):
    """An SOP run reports sop_*; one whose history was written under the old names
    (nsp_* for every objective) resumes from its checkpoint and continues as sop_*."""
    out = tmp_path / "sop"
    history = make_loop(out, sentence_objective="sop", eval_steps=1, eval_every_steps=3).run(
        [Phase("p", 3, BATCH, synthetic_dataset_fn())])
    assert all("sop_loss" in r and "sop_accuracy" in r and not any(k.startswith("nsp")
               for k in r) for r in history.records)
    assert {"sop_loss", "sop_accuracy"} <= event_tags(out / "tensorboard" / "eval")
    path = out / "metrics_history.json"
    path.write_text(path.read_text().replace('"sop_', '"nsp_'))   # as kbert wrote it before
    resumed = make_loop(out, sentence_objective="sop", eval_steps=1, eval_every_steps=3).run(
        [Phase("p", 6, BATCH, synthetic_dataset_fn())])
    assert [r["step"] for r in resumed.records if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert all("sop_loss" in r and "nsp_loss" not in r for r in resumed.records)


class Killed(BaseException):
    """Stands for the process dying at that point."""


@pytest.mark.parametrize("dies_in", ["history", "checkpoint"])
def test_death_inside_a_save_leaves_a_history_the_resume_can_complete(tmp_path, dies_in):
    loop = make_loop(tmp_path)
    target = loop.history if dies_in == "history" else loop.checkpoints
    write = target.save

    def save_then_die_at_step_6(*args, **kwargs):
        if max(r["step"] for r in loop.history.records) == 6:
            raise Killed()
        return write(*args, **kwargs)
    target.save = save_then_die_at_step_6
    with pytest.raises(Killed):
        loop.run([Phase("p", 6, BATCH, synthetic_dataset_fn())])
    history = make_loop(tmp_path).run([Phase("p", 6, BATCH, synthetic_dataset_fn())])
    assert sorted(train_losses(history)) == [1, 2, 3, 4, 5, 6]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    loop = make_loop(tmp_path, save_checkpoints_steps=2, keep_checkpoints=5)
    with pytest.raises(NonFiniteLossError, match="at step 5"):
        loop.run([Phase("p", 8, BATCH, synthetic_dataset_fn(poison_batch=4))])
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-4")
    assert not glob.glob(str(tmp_path / "checkpoints" / "ckpt-5*"))
    fresh = make_loop(tmp_path / "other")
    fresh.checkpoints.restore(latest)
    assert all(np.all(np.isfinite(w)) for w in fresh.model.get_weights())


def test_partial_save_leftovers_are_removed_and_latest_kept(tmp_path):
    variable = tf.Variable(1.0)
    checkpoint = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), v=variable)
    TrainingCheckpoints(str(tmp_path), checkpoint).save(step=4)
    # What a kill in the middle of saving step 6 can leave behind:
    os.makedirs(tmp_path / "ckpt-6_temp" / "part-00000-of-00001")
    (tmp_path / "ckpt-6.data-00000-of-00001").write_bytes(b"partial")
    keeper = TrainingCheckpoints(str(tmp_path), checkpoint)
    assert not os.path.exists(tmp_path / "ckpt-6_temp")
    assert not os.path.exists(tmp_path / "ckpt-6.data-00000-of-00001")
    assert keeper.latest_step() == 4


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains(tmp_path, policy):
    loop = make_loop(tmp_path, policy=policy, dropout=0.0, learning_rate=5e-3, total_steps=4)
    assert loop.model.encoder.dtype_policy.compute_dtype == policy.split("_")[1]
    losses = train_losses(loop.run([Phase("p", 4, BATCH, synthetic_dataset_fn())]))
    assert all(np.isfinite(list(losses.values())))
    assert losses[4] < losses[1]
    names = {name for name, _ in tf.train.list_variables(str(tmp_path / "checkpoints"))}
    assert any("dynamic_scale" in n for n in names) == (policy == "mixed_float16")


def test_optimizer_must_leave_the_all_reduce_to_the_loop(tmp_path):
    strategy = create_strategy("one_device")
    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        optimizer = create_optimizer("adamw", 1e-3, weight_decay=0.0)
    with pytest.raises(ValueError, match="gradients_reduced=True"):
        PretrainingLoop(strategy, model, optimizer, LoopSettings(str(tmp_path)))


# --------------------------------------------------------------------------- resume edge cases
def comparable(history):
    """History rows without the wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in ("steps_per_second", "examples_per_second")}
            for r in history.records]


def test_resumed_history_equals_the_unbroken_one(tmp_path):
    """log_every 2 does not divide save every 3; eval_every 4 does not divide the 7 steps, so
    the final eval comes after the last periodic one. Old code: the row at step 4 after a
    resume from step 3 averaged 1 step instead of 2, and a run killed after its final
    checkpoint never got its final eval row."""
    settings = dict(log_every_steps=2, save_checkpoints_steps=3, eval_every_steps=4,
                    eval_steps=2, total_steps=7)
    unbroken = comparable(make_loop(tmp_path / "full", **settings).run(
        [Phase("p", 7, BATCH, synthetic_dataset_fn())]))
    assert [r["step"] for r in unbroken if r["split"] == "eval"] == [4, 7]
    for kill_at in (3, 7):   # killed after the checkpoint of step 3, then after the last
        loop = make_loop(tmp_path / "split", **settings)
        save = loop.checkpoints.save

        def die_after_the_checkpoint(step, save=save, kill_at=kill_at):
            path = save(step)
            if step == kill_at:
                raise Killed()
            return path
        loop.checkpoints.save = die_after_the_checkpoint
        with pytest.raises(Killed):
            loop.run([Phase("p", 7, BATCH, synthetic_dataset_fn())])
    resumed = comparable(make_loop(tmp_path / "split", **settings).run(
        [Phase("p", 7, BATCH, synthetic_dataset_fn())]))
    assert [(r["split"], r["step"]) for r in resumed] == [
        (r["split"], r["step"]) for r in unbroken]
    for a, b in zip(resumed, unbroken):
        assert a.keys() == b.keys()
        for key in a:
            expected = b[key] if isinstance(b[key], str) else pytest.approx(b[key], rel=1e-5)
            assert a[key] == expected, (key, a, b)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    make_loop(tmp_path, keep_checkpoints=3).run([Phase("p", 6, BATCH, synthetic_dataset_fn())])
    data = tmp_path / "checkpoints" / "ckpt-6.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:len(data.read_bytes()) // 2])   # truncated
    # Old code: IndexError: Read less bytes than requested.
    loop = make_loop(tmp_path, keep_checkpoints=3)
    with caplog.at_level("WARNING"):
        assert loop._resume(6) == 3
    assert "ckpt-6.data-00000-of-00001" in caplog.text and "falling back" in caplog.text
    history = loop.run([Phase("p", 6, BATCH, synthetic_dataset_fn())])
    assert sorted(train_losses(history)) == [1, 2, 3, 4, 5, 6]
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-6")


def test_logged_learning_rate_is_the_steps_own_and_survives_skipped_steps(tmp_path):
    """Under fp16 loss scaling a huge initial scale makes the first steps overflow and be
    skipped. Old code: the optimizer's iterations (schedule) fell behind the loop's step,
    and the logged rate was the next step's."""
    loop = make_loop(tmp_path, policy="mixed_float16", dropout=0.0, total_steps=6)
    loop.optimizer.dynamic_scale.assign(2.0 ** 60)
    history = loop.run([Phase("p", 6, BATCH, synthetic_dataset_fn())])
    assert float(loop.optimizer.dynamic_scale.numpy()) < 2.0 ** 60   # steps were skipped
    assert int(loop.optimizer.iterations.numpy()) == 6
    schedule = WarmupPolynomialDecay(2e-3, 1, 6)
    logged = {r["step"]: r["learning_rate"] for r in history.records if r["split"] == "train"}
    for step, rate in logged.items():
        assert rate == pytest.approx(float(schedule(step - 1)), rel=1e-6), step
