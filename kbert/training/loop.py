"""The custom distributed pre-training loop (works under every `tf.distribute` strategy).

One training step, inside `strategy.run` on each replica:
  1. all-reduce the global loss denominators (masked-LM weight sum, sequence count);
  2. forward + backward over `grad_accum_steps` micro-batches, summing gradients (this part
     is optionally XLA-compiled);
  3. all-reduce the gradients (SUM), then the optimizer unscales them (fp16 loss scaling),
     clips by global norm and applies AdamW / LAMB.
The host reads the reduced loss sums every step: a non-finite loss stops the run before
anything is saved, so the newest checkpoint is always a good one.

Input position: every step consumes exactly one batch per replica from its input pipeline,
so a resumed run skips `(step - phase_start) x replicas per pipeline` batches of the
deterministic (seeded) dataset.
(`tf.distribute`'s distributed iterators cannot be checkpointed in TF 2.21.)

Example (see tests/test_training_loop.py for a complete run):
    >>> loop = PretrainingLoop(strategy, model, optimizer, LoopSettings("out"))  # doctest: +SKIP
    >>> history = loop.run([Phase("seq128", end_step=100, global_batch_size=32,
    ...                           dataset_fn=make_dataset)])                     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Callable

import keras
import tensorflow as tf

from kbert.models.pretraining_losses import named_for_objective
from kbert.training import objective
from kbert.training.accumulation import accumulate_gradients
from kbert.training.checkpointing import TrainingCheckpoints
from kbert.training.distribution import is_chief, worker_id
from kbert.training.metrics_logging import (HISTORY_FILE, MetricsHistory, ProgressLogger,
                                            TensorBoardWriter)
from kbert.training.plotting import plot_history

SUM = tf.distribute.ReduceOp.SUM


def replicas_per_pipeline(context: tf.distribute.InputContext) -> int:
    """Replicas an input pipeline feeds: each global step takes that many of its batches."""
    return max(1, context.num_replicas_in_sync // context.num_input_pipelines)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass
class Phase:
    """Steps `[start, end_step)` of a run, `start` being the previous phase's `end_step`.

    `dataset_fn(input_context)` returns this replica-pipeline's dataset of *per-replica*
    batches (`input_context.get_per_replica_batch_size(global_batch_size)`), repeating and
    deterministic for a given seed (resuming skips batches).
    """

    name: str
    end_step: int
    global_batch_size: int
    dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]
    grad_accum_steps: int | None = None   # None: LoopSettings.grad_accum_steps

    def accumulation(self, settings: "LoopSettings") -> int:
        return self.grad_accum_steps or settings.grad_accum_steps


@dataclasses.dataclass
class LoopSettings:
    """How the loop runs; the `trainers/flags.py` flags of the same names fill it."""

    output_dir: str
    grad_accum_steps: int = 1
    log_every_steps: int = 100
    save_checkpoints_steps: int = 1000
    keep_checkpoints: int = 5
    eval_every_steps: int = 0
    eval_steps: int = 20
    jit_compile: bool = False
    resume: bool = True
    run_config: dict = dataclasses.field(default_factory=dict)
    write_plot: bool = True
    # Called as step_callback(step, total_steps) after every step on the chief, e.g.
    # kbert.training.progress.ProgressFile.update for a parent showing the run's progress.
    step_callback: Callable | None = None

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.output_dir, "checkpoints")


class PretrainingLoop:
    """Trains `model` (a `BertPretrainer`-like model: features dict -> `mlm_logits`,
    `nsp_logits`) with `optimizer`, both created inside `strategy.scope()`.

    Args:
        strategy: the `tf.distribute.Strategy`.
        model: the model; built here on `model.example_inputs()` if not yet built.
        optimizer: a `kbert.training.optimizers` optimizer made with
            `gradients_reduced=True`, optionally wrapped in `keras.optimizers.LossScaleOptimizer`.
        settings: `LoopSettings`.
        eval_dataset_fn: like `Phase.dataset_fn`, for held-out batches (not repeating is fine).
        eval_batch_size: the global eval batch size.
    """

    def __init__(self, strategy: tf.distribute.Strategy, model: keras.Model, optimizer,
                 settings: LoopSettings, eval_dataset_fn: Callable | None = None,
                 eval_batch_size: int | None = None):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.settings = settings
        self.eval_dataset_fn = eval_dataset_fn
        self.eval_batch_size = eval_batch_size
        self.is_chief = is_chief(strategy)
        self.history = MetricsHistory()
        self._loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        inner = optimizer.inner_optimizer if self._loss_scaling else optimizer
        if not getattr(inner, "gradients_reduced", False):
            raise ValueError("the loop all-reduces gradients itself: create the optimizer with "
                             "gradients_reduced=True (kbert.training.optimizers)")
        with strategy.scope():
            if not model.built and hasattr(model, "example_inputs"):
                model(model.example_inputs(), training=False)
            optimizer.build(model.trainable_variables)
            self.step_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            # The sums of a logging window that a save cuts in two (log_every_steps need not
            # divide save_checkpoints_steps): a resumed run's next row then averages the
            # same steps as an unbroken run's. Last entry: 1 when a window is open.
            self.window_variable = tf.Variable(
                tf.zeros([len(objective.TERM_NAMES) + 1], tf.float64), trainable=False,
                name="log_window")
        # Keras keeps dropout's random-generator states outside the model's checkpoint tree;
        # saving them makes a resumed run draw the same dropout masks as an unbroken one.
        rng_states = [v.value for v in model.non_trainable_variables
                      if "seed_generator" in v.path]
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                              step=self.step_variable, rng_states=rng_states,
                                              log_window=self.window_variable)
        self.checkpoints = TrainingCheckpoints(
            settings.checkpoint_dir, self.checkpoint, keep=settings.keep_checkpoints,
            is_chief=self.is_chief, worker_name=worker_id(strategy))
        self.tensorboard = TensorBoardWriter(
            os.path.join(settings.output_dir, "tensorboard") if self.is_chief else None)
        self._eval_step = None
        self._all_finite = None
        self._window = None

    # ================================================================== replica-side steps
    def _gradients_and_terms(self, features, denominators, grad_accum_steps):
        variables = self.model.trainable_variables

        def loss_fn(batch):
            outputs = self.model(batch, training=True)
            loss, terms = objective.micro_batch_loss(batch, outputs, denominators)
            if self._loss_scaling:
                loss = self.optimizer.scale_loss(loss)
            return loss, terms

        gradients, terms = accumulate_gradients(loss_fn, features, variables,
                                                grad_accum_steps)
        gradients = [tf.convert_to_tensor(g) for g in gradients]
        return gradients, terms

    def _replica_train_step(self, features, compute_gradients):
        context = tf.distribute.get_replica_context()
        denominators = context.all_reduce(SUM, objective.local_denominators(features))
        gradients, terms = compute_gradients(features, denominators)
        gradients = context.all_reduce(SUM, gradients)
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return terms

    def _replica_eval_step(self, features):
        outputs = self.model(features, training=False)
        return objective.pretraining_loss_terms(features, outputs)

    def make_train_step(self, grad_accum_steps: int | None = None):
        """`train_step(distributed_iterator) -> reduced loss sums` (one tf.function)."""
        accumulation = grad_accum_steps or self.settings.grad_accum_steps
        compute_gradients = tf.function(
            lambda features, denominators: self._gradients_and_terms(
                features, denominators, accumulation),
            jit_compile=self.settings.jit_compile or None)

        @tf.function
        def train_step(iterator):
            replica_step = functools.partial(self._replica_train_step,
                                             compute_gradients=compute_gradients)
            per_replica = self.strategy.run(replica_step, args=(next(iterator),))
            return {k: self.strategy.reduce(SUM, v, axis=None) for k, v in per_replica.items()}
        return train_step

    def _make_eval_step(self):
        @tf.function
        def eval_step(batch):
            per_replica = self.strategy.run(self._replica_eval_step, args=(batch,))
            return {k: self.strategy.reduce(SUM, v, axis=None) for k, v in per_replica.items()}
        return eval_step

    # ================================================================== host side
    def _log_batch_layout(self, phase: Phase) -> None:
        replicas = self.strategy.num_replicas_in_sync
        per_replica = phase.global_batch_size // replicas
        accumulation = phase.accumulation(self.settings)
        logging.info("phase %s: global batch %d = %d replicas x %d per replica "
                     "(%d micro-batches of %d)", phase.name, phase.global_batch_size, replicas,
                     per_replica, accumulation, per_replica // accumulation)

    def check_batch_sizes(self, phases) -> None:
        replicas = self.strategy.num_replicas_in_sync
        for phase in phases:
            accum = phase.accumulation(self.settings)
            if phase.global_batch_size % (replicas * accum):
                raise ValueError(
                    f"phase {phase.name}: global batch {phase.global_batch_size} is not "
                    f"divisible by {replicas} replicas x {accum} accumulation steps")

    def _weights_finite(self) -> bool:
        if self._all_finite is None:
            variables = self.model.trainable_variables

            @tf.function
            def all_finite():
                return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])
            self._all_finite = all_finite
        return bool(self._all_finite())

    def _learning_rate(self, step: int) -> float:
        """The rate step `step` (1-based) was trained with: the schedule at `step - 1`
        (the optimizer's own `learning_rate` already reads the next step's)."""
        inner = self.optimizer.inner_optimizer if self._loss_scaling else self.optimizer
        schedule = getattr(inner, "_learning_rate", None)
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            return float(keras.ops.convert_to_numpy(schedule(step - 1)))
        return float(keras.ops.convert_to_numpy(inner.learning_rate))

    def _store_window(self) -> None:
        window = self._window
        self.window_variable.assign(
            [window[k] if window else 0.0 for k in objective.TERM_NAMES] + [float(bool(window))])

    def _restore_window(self) -> None:
        values = self.window_variable.numpy().tolist()
        self._window = dict(zip(objective.TERM_NAMES, values[:-1])) if values[-1] else None

    def _resume(self, total_steps: int) -> int:
        settings = self.settings
        self.checkpoints.check_run_config(settings.run_config)
        latest = self.checkpoints.latest
        if latest is None:
            return 0
        if not settings.resume:
            raise FileExistsError(
                f"{settings.checkpoint_dir} already holds checkpoints ({latest}) and --resume "
                f"is off; use a new --output_dir or resume")
        latest = self.checkpoints.restore_newest_intact()
        step = int(self.step_variable.numpy())
        self._restore_window()
        history_path = os.path.join(settings.output_dir, HISTORY_FILE)
        # A history written before sentence metrics were named after the objective
        # (nsp_* for every model) continues under the new names.
        self.history = MetricsHistory([self._named(r) for r in
                                       MetricsHistory.load(history_path).records])
        self.history.truncate(after_step=step)
        logging.info("resuming from step %d (%s) of %d", step, latest, total_steps)
        return step

    def evaluate(self, step: int | None = None) -> dict:
        """Held-out metrics over `eval_steps` batches of `eval_dataset_fn`."""
        if self.eval_dataset_fn is None:
            return {}
        if self._eval_step is None:
            self._eval_step = self._make_eval_step()
            eval_steps = self.settings.eval_steps

            def dataset_fn(context):
                # eval_steps global batches: each takes one batch per local replica.
                return self.eval_dataset_fn(context).repeat().take(
                    eval_steps * replicas_per_pipeline(context))
            self._eval_dataset = self.strategy.distribute_datasets_from_function(dataset_fn)
        totals = None
        for batch in self._eval_dataset:
            terms = self._eval_step(batch)
            values = {k: float(v) for k, v in terms.items()}
            totals = values if totals is None else {k: totals[k] + values[k] for k in totals}
        metrics = self._named(objective.metrics_from_terms(totals))
        if step is not None:
            logging.info("eval at step %d: %s", step,
                         " ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            self._record("eval", step, metrics)
        return metrics

    def _named(self, metrics: dict) -> dict:
        """Sentence metrics under the model's objective: nsp_*, sop_*, or none."""
        return named_for_objective(metrics, getattr(self.model, "sentence_objective", "nsp"))

    def _record(self, split: str, step: int, metrics: dict) -> None:
        if not self.is_chief:
            return
        self.history.append(split, step, metrics)
        self.tensorboard.write(split, step, metrics)

    def _save(self, step: int) -> None:
        if not self._weights_finite():
            raise NonFiniteLossError(
                f"weights became NaN or infinite by step {step}; not saving them. The last "
                f"good checkpoint is kept: {self.checkpoints.latest}.")
        # History first: a kill between the two writes then leaves a history that reaches
        # past the newest checkpoint (truncated on resume), never one that stops short of it.
        if self.is_chief:
            self.history.save(os.path.join(self.settings.output_dir, HISTORY_FILE))
        self._store_window()
        self.checkpoints.save(step)

    def run(self, phases: list[Phase]) -> MetricsHistory:
        """Train through `phases` (resuming when a checkpoint exists); returns the history."""
        if not phases:
            raise ValueError("no training phases")
        self.check_batch_sizes(phases)
        settings = self.settings
        total_steps = phases[-1].end_step
        step = self._resume(total_steps)
        progress = ProgressLogger(total_steps, phases[0].global_batch_size,
                                  settings.log_every_steps)
        phase_start = 0
        last_saved = step if step else None
        for phase in phases:
            if step >= phase.end_step:
                phase_start = phase.end_step
                continue
            self._log_batch_layout(phase)
            skip = step - phase_start

            def dataset_fn(context, phase=phase, skip=skip):
                # Each step takes one batch per local replica from this pipeline.
                dataset = phase.dataset_fn(context)
                if not skip:
                    return dataset
                return dataset.skip(skip * replicas_per_pipeline(context))
            iterator = iter(self.strategy.distribute_datasets_from_function(dataset_fn))
            train_step = self.make_train_step(phase.accumulation(settings))
            progress.set_global_batch_size(phase.global_batch_size)
            progress.start(step)
            while step < phase.end_step:
                terms = train_step(iterator)
                values = {k: float(v) for k, v in terms.items()}
                metrics = self._named(objective.metrics_from_terms(values))
                if not objective.all_finite(metrics):
                    losses = ", ".join(f"{k} {v}" for k, v in metrics.items()
                                       if k.endswith("_loss"))
                    raise NonFiniteLossError(
                        f"loss became {metrics['loss']} at step {step + 1} ({losses}); stopping. "
                        f"The last good checkpoint is kept: {self.checkpoints.latest}. "
                        f"Lower --learning_rate, raise --num_warmup_steps or set --clip_norm.")
                window = self._window
                self._window = values if window is None else {k: window[k] + values[k]
                                                             for k in window}
                step += 1
                if self._loss_scaling:
                    # A step the loss scaler skipped does not advance the optimizer's
                    # iterations; the schedule (and its phases) must follow the loop's step.
                    self.optimizer.iterations.assign(step)
                if settings.step_callback is not None and self.is_chief:
                    settings.step_callback(step, total_steps)
                if step % settings.log_every_steps == 0 or step == phase.end_step:
                    metrics = self._named(objective.metrics_from_terms(self._window))
                    metrics["learning_rate"] = self._learning_rate(step)
                    if self.is_chief:
                        progress.log(step, metrics)
                    else:
                        progress.throughput(step)
                    self._record("train", step, metrics)
                    self._window = None
                # The final evaluation comes before the final save, so a run killed after
                # its last checkpoint has it in its history.
                if self.eval_dataset_fn is not None and settings.eval_steps and (
                        (settings.eval_every_steps and step % settings.eval_every_steps == 0)
                        or step == total_steps):
                    self.evaluate(step)
                    progress.start(step)
                if step % settings.save_checkpoints_steps == 0 or step == phase.end_step:
                    self._save(step)
                    last_saved = step
                    progress.start(step)
            phase_start = phase.end_step
        if last_saved != step:
            self._save(step)
        if self.is_chief:
            self.history.save(os.path.join(settings.output_dir, HISTORY_FILE))
            if settings.write_plot:
                plot_history(self.history, os.path.join(settings.output_dir, "loss.png"))
        self.tensorboard.close()
        return self.history
