"""Training checkpoints that survive `kill -9`: keep the last K, resume from the newest.

`tf.train.CheckpointManager` writes `ckpt-N.index`/`ckpt-N.data-*` first and only then
rewrites the `checkpoint` state file (atomically), so a kill at any moment leaves the state
file naming the previous, complete checkpoint. Left-over pieces of an interrupted save are
removed on the next start. Beside the checkpoints lives `run_config.json`, the settings the
checkpoints were made with; resuming with different settings is refused before training.

Under MultiWorkerMirroredStrategy every worker must take part in a save; only the chief
writes into `directory`, the others into a scratch directory they delete at once.

Example:
    >>> import tensorflow as tf
    >>> v = tf.Variable(1.0)
    >>> keeper = TrainingCheckpoints("/tmp/kbert_doc_ckpt", tf.train.Checkpoint(v=v), keep=2)
    >>> path = keeper.save(step=10)
    >>> keeper.latest_step()
    10
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil

import tensorflow as tf

from kbert import fileio

RUN_CONFIG_FILE = "run_config.json"
STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"


class RunMismatchError(ValueError):
    """The checkpoint in an output directory was made with different settings."""


def checkpoint_step(path: str) -> int:
    """The training step stored in checkpoint `path` (a prefix such as `.../ckpt-3`)."""
    reader = tf.train.load_checkpoint(path)
    if not reader.has_tensor(STEP_KEY):
        raise RunMismatchError(f"checkpoint {path} has no training step; it was not "
                                      f"written by kbert's pre-training loop")
    return int(reader.get_tensor(STEP_KEY))


def remove_partial_saves(directory: str) -> None:
    """Delete what a killed save left behind (`*_temp` directories, orphan data files)."""
    for leftover in glob.glob(os.path.join(directory, "*_temp*")):
        logging.info("removing partial checkpoint %s", leftover)
        if os.path.isdir(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            os.remove(leftover)
    for data in glob.glob(os.path.join(directory, "ckpt-*.data-*")):
        prefix = data.split(".data-")[0]
        if not os.path.exists(prefix + ".index"):
            logging.info("removing incomplete checkpoint file %s", data)
            os.remove(data)


class TrainingCheckpoints:
    """A `tf.train.CheckpointManager` around `checkpoint` (which must own a `step` variable
    when `save(step=...)` is used) plus the run-config guard.

    Args:
        directory: where checkpoints live.
        checkpoint: a `tf.train.Checkpoint`.
        keep: how many recent checkpoints to keep.
        is_chief: False on non-chief workers (they save into a scratch directory).
        worker_name: names the scratch directory of a non-chief worker.
    """

    def __init__(self, directory: str, checkpoint: tf.train.Checkpoint, keep: int = 5,
                 is_chief: bool = True, worker_name: str = "chief"):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = directory
        self.checkpoint = checkpoint
        self.is_chief = is_chief
        self._scratch = None if is_chief else os.path.join(
            os.path.dirname(os.path.abspath(directory)), ".scratch", worker_name)
        if is_chief:
            os.makedirs(directory, exist_ok=True)
            remove_partial_saves(directory)
        self._manager = tf.train.CheckpointManager(
            checkpoint, directory if is_chief else self._scratch, max_to_keep=keep)

    # ------------------------------------------------------------------ reading
    @property
    def latest(self) -> str | None:
        """The newest complete checkpoint in `directory` (what every worker resumes from)."""
        return tf.train.latest_checkpoint(self.directory)

    def latest_step(self) -> int | None:
        latest = self.latest
        return None if latest is None else checkpoint_step(latest)

    def restore(self, path: str | None = None) -> str:
        """Restore `path` (default: the newest); every tracked object must be found in it."""
        path = path or self.latest
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as e:
            raise RunMismatchError(
                f"checkpoint {path} does not match the model being trained: {e}") from e
        logging.info("restored %s", path)
        return path

    # ------------------------------------------------------------------ writing
    def save(self, step: int | None = None) -> str:
        """Save (all workers must call this together); returns the path written."""
        if step is not None:
            self.checkpoint.step.assign(step)
        path = self._manager.save(checkpoint_number=step)
        if not self.is_chief:
            shutil.rmtree(self._scratch, ignore_errors=True)
        else:
            logging.info("saved checkpoint %s", path)
        return path

    # ------------------------------------------------------------------ run config guard
    def check_run_config(self, run_config: dict) -> None:
        """Refuse to resume when the stored run config differs; record it otherwise.

        Call before restoring. Only keys present in both are compared."""
        path = os.path.join(self.directory, RUN_CONFIG_FILE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                try:
                    stored = json.load(f)
                except json.JSONDecodeError as e:
                    raise RunMismatchError(f"{path} is not valid JSON: {e}") from e
            differences = {k: (stored[k], run_config[k]) for k in sorted(stored)
                           if k in run_config and stored[k] != run_config[k]}
            if differences and self.latest is not None:
                listed = "; ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}"
                                   for k, (a, b) in differences.items())
                raise RunMismatchError(
                    f"the checkpoint in {self.directory} was made with different settings "
                    f"({listed}). Use a new --output_dir, or --noresume with an empty one.")
        if self.is_chief:
            fileio.atomic_write_text(path, json.dumps(run_config, indent=2, sort_keys=True))
