"""Progress of a long stage, told by the process that trains to the one that waits on it.

The training process writes a small JSON file (`ProgressFile`: steps done of the total,
epoch, replaced atomically at most once a second); a parent such as `export.road` polls it and
shows one updating line with an ETA (`ProgressLine`), as Keras' own bar does, or plain lines
now and then when its output is not a terminal.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "progress.json")
    >>> ProgressFile(path, interval=0).update(30, 120, epoch=1, epochs=4)
    >>> read_progress(path)["done"], describe(read_progress(path), elapsed=60)
    (30, 'epoch 1/4, step 30/120 (25 %), ETA 3 min')
"""

from __future__ import annotations

import json
import os
import sys
import time


class ProgressFile:
    """Steps done of `total` (and any extra fields) into `path`, atomically, at most every
    `interval` seconds (always at the last step)."""

    def __init__(self, path: str, interval: float = 1.0):
        self.path, self.interval = path, interval
        self._last = 0.0
        self._started = time.time()

    def update(self, done: int, total: int, **extra) -> None:
        now = time.time()
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        state = {"done": int(done), "total": int(total), "elapsed": round(now - self._started, 1),
                 **extra}
        staging = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(staging, "w", encoding="utf-8") as f:
                json.dump(state, f)
            os.replace(staging, self.path)
        except OSError:         # progress is a courtesy: never fail the training for it
            pass

    def keras_callback(self, steps_per_epoch: int, epochs: int):
        """A Keras callback reporting `fit`'s steps (across epochs) to this file."""
        import keras
        progress = self

        class ReportProgress(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                progress.update(self.epoch * steps_per_epoch + batch + 1,
                                steps_per_epoch * epochs, epoch=self.epoch + 1, epochs=epochs)

        return ReportProgress()


def read_progress(path: str) -> dict | None:
    """The last state written to `path`, or None (not written yet, or unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("total") else None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def describe(state: dict, elapsed: float) -> str:
    """'epoch 2/3, step 40/90 (44 %), ETA 1 min' from a progress state and the seconds the
    stage has run (the ETA assumes the steps to come take as long as those done)."""
    done, total = state["done"], state["total"]
    parts = []
    if state.get("epochs"):
        parts.append(f"epoch {state['epoch']}/{state['epochs']}")
    parts.append(f"step {done}/{total} ({100 * done // max(total, 1)} %)")
    if 0 < done < total:
        parts[-1] += f", ETA {_duration(elapsed * (total - done) / done)}"
    return ", ".join(parts)


class ProgressLine:
    """One status line that rewrites itself on a terminal (`\\r`), or a plain line every
    `plain_every` seconds when the stream is a file or a pipe."""

    def __init__(self, stream=None, plain_every: float = 30.0):
        self.stream = stream or sys.stdout
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.plain_every = plain_every
        self._last_plain = time.time()
        self._width = 0

    def show(self, text: str) -> None:
        if self.live:
            padding = " " * max(0, self._width - len(text))
            self.stream.write("\r" + text + padding)
            self._width = len(text)
            self.stream.flush()
        elif time.time() - self._last_plain >= self.plain_every:
            self._last_plain = time.time()
            print(text, file=self.stream, flush=True)

    def clear(self) -> None:
        """Remove the live line (before a plain message is printed)."""
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
