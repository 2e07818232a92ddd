"""kbert.training.fit_backup: a killed `fit` resumes; a damaged backup is set aside (never
deleted) and training restarts from the first epoch; only kbert's backup folder is removed."""

import json
import os

import keras
import numpy as np
import pytest

from kbert.outputs import OutputError, RunDirectory
from kbert.training.fit_backup import METADATA, WEIGHTS, SafeBackupAndRestore, backup_problem


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")


class StopAfter(keras.callbacks.Callback):
    """Stands for a kill after `epochs` epochs: the backup of that epoch is on disk."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def interrupted_run(root):
    run = RunDirectory(root, "demo", {}, names=["backup"]).open()
    backup = SafeBackupAndRestore(run, "backup")
    with pytest.raises(KeyboardInterrupt):
        tiny_model().fit(*data(), epochs=3, verbose=0, callbacks=[backup, StopAfter(2)])
    return run


def test_a_killed_fit_resumes_from_its_backup(tmp_path):
    root = str(tmp_path / "run")
    interrupted_run(root)
    assert backup_problem(os.path.join(root, "backup")) is None
    with open(os.path.join(root, "backup", METADATA)) as f:
        assert json.load(f)["epoch"] == 2          # epochs 0 and 1 done: 2 is next
    run = RunDirectory(root, "demo", {}, names=["backup"]).open()
    assert run.resuming
    seen = []
    epochs = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))
    backup = SafeBackupAndRestore(run, "backup")
    tiny_model().fit(*data(), epochs=3, verbose=0, callbacks=[backup, epochs])
    assert seen == [2] and backup.restarted_because is None
    assert not os.path.exists(os.path.join(root, "backup"))      # removed at the end
    assert not run.owns("backup")


@pytest.mark.parametrize("damage", ["truncate_weights", "bad_metadata"])
def test_a_damaged_backup_is_set_aside_and_training_restarts(tmp_path, damage):
    """Old code: a truncated backup/latest.weights.h5 (kill -9 during Keras' write) failed
    every later run with `OSError: ... bad object header version number`."""
    root = str(tmp_path / "run")
    interrupted_run(root)
    weights = os.path.join(root, "backup", WEIGHTS)
    if damage == "truncate_weights":
        with open(weights, "rb") as f:
            data_bytes = f.read()
        with open(weights, "wb") as f:
            f.write(data_bytes[: len(data_bytes) // 3])
    else:
        with open(os.path.join(root, "backup", METADATA), "w") as f:
            f.write('{"epo')
    run = RunDirectory(root, "demo", {}, names=["backup"]).open()
    seen = []
    epochs = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))
    backup = SafeBackupAndRestore(run, "backup")
    tiny_model().fit(*data(), epochs=3, verbose=0, callbacks=[backup, epochs])
    assert seen == [0, 1, 2]                          # restarted from the first epoch
    assert "set aside" in backup.restarted_because
    aside = [n for n in os.listdir(root) if n.startswith("backup.damaged-")]
    assert len(aside) == 1 and run.owns(aside[0])     # kept, and known as kbert's
    assert {METADATA, WEIGHTS} <= set(os.listdir(os.path.join(root, aside[0])))


def test_the_users_backup_folder_is_never_removed(tmp_path):
    root = tmp_path / "run"
    (root / "backup").mkdir(parents=True)
    (root / "backup" / "mine.txt").write_text("mine")
    with pytest.raises(OutputError, match="backup was not written by kbert"):
        RunDirectory(str(root), "demo", {}, names=["backup"], overwrite=True).open()
    assert (root / "backup" / "mine.txt").read_text() == "mine"
