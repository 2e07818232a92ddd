"""Resume a killed Keras `fit` where it stopped, without ever losing or blocking a run.

`keras.callbacks.BackupAndRestore` writes `latest.weights.h5` in place: a kill -9 during
that write leaves a truncated file that every later run fails on (`OSError: ... bad object
header version number`), and at the end of `fit` it deletes its whole folder, whatever the
folder holds. `SafeBackupAndRestore` keeps Keras' behaviour and file names but:

- writes each backup (weights + `training_metadata.json`) into a staging folder swapped in
  whole (`kbert.outputs.replace_directory`): a kill leaves the previous backup or the new one;
- checks a backup before loading it (every HDF5 dataset read, the metadata parsed); one that
  fails is set aside (renamed `backup.damaged-<time>`, never deleted) and training restarts
  from the first epoch, saying so;
- removes the folder at the end only through the run directory, which removes only kbert's
  own files.

Example:
    >>> run = RunDirectory("runs/x", "finetune", settings).open()        # doctest: +SKIP
    >>> model.fit(data, callbacks=[SafeBackupAndRestore(run, "backup")])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os

import keras

from kbert import outputs

WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"


def backup_problem(directory: str) -> str | None:
    """Why the backup in `directory` cannot be resumed from, or None when it can."""
    weights, metadata = os.path.join(directory, WEIGHTS), os.path.join(directory, METADATA)
    if not os.path.exists(weights):
        return f"has no {WEIGHTS}"
    try:
        import h5py
        with h5py.File(weights, "r") as f:
            f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset)
                         else None)
    except Exception as e:   # noqa: BLE001 — h5py raises OSError, KeyError, RuntimeError...
        return f"{WEIGHTS} does not load ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    try:
        with open(metadata, encoding="utf-8") as f:
            found = json.load(f)
        int(found["epoch"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{METADATA} does not load ({e})"
    return None


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` on a kbert run directory (see the module doc)."""

    def __init__(self, run: outputs.RunDirectory, name: str = "backup", **kwargs):
        self.run, self.name = run, name
        super().__init__(run.path(name), **kwargs)
        self.restarted_because = None

    def on_train_begin(self, logs=None):
        if os.path.isdir(self.backup_dir) and set(os.listdir(self.backup_dir)) - {
                outputs.MARKER_NAME}:
            problem = backup_problem(self.backup_dir)
            if problem:
                moved = self.run.set_aside(self.name, problem)
                self.restarted_because = f"the backup {problem}; set aside as {moved}"
                logging.warning("restarting from the first epoch: %s", self.restarted_because)
            else:
                logging.info("resuming from the backup in %s", self.backup_dir)
        super().on_train_begin(logs)

    def _save_model(self):
        from kbert.models.saving import require_room_for_weights
        self.run.claim(self.name)
        require_room_for_weights(self.model, self.run.root)
        with outputs.replace_directory(self.backup_dir, "backup", replace_own=True) as staging:
            self.model.save_weights(os.path.join(staging, WEIGHTS), overwrite=True)
            with open(os.path.join(staging, METADATA), "w", encoding="utf-8") as f:
                json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            self.run.discard(self.name)
