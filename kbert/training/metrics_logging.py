"""What a training run reports: a progress line, TensorBoard scalars, a metrics history file.

Example:
    >>> history = MetricsHistory()
    >>> history.append("train", 10, {"loss": 2.5})
    >>> history.append("train", 20, {"loss": 2.0})
    >>> history.truncate(after_step=10)
    >>> [r["step"] for r in history.records]
    [10]
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import time

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from kbert import fileio

HISTORY_FILE = "metrics_history.json"


def format_duration(seconds: float) -> str:
    """`3725 -> "1:02:05"`."""
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class ProgressLogger:
    """Logs `step k/N`, the metrics, steps/s, examples/s and the ETA every `every` steps.

    Example:
        >>> progress = ProgressLogger(total_steps=100, global_batch_size=32, every=10)
        >>> progress.start(step=0)
        >>> line = progress.line(10, {"loss": 1.0})
        >>> line.startswith("step 10/100")
        True
    """

    def __init__(self, total_steps: int, global_batch_size: int, every: int = 100):
        self.total_steps = total_steps
        self.global_batch_size = global_batch_size
        self.every = max(1, every)
        self._last_time = None
        self._last_step = 0

    def start(self, step: int) -> None:
        self._last_time = time.perf_counter()
        self._last_step = step

    def set_global_batch_size(self, global_batch_size: int) -> None:
        self.global_batch_size = global_batch_size

    def throughput(self, step: int) -> tuple[float, float]:
        """(steps/s, examples/s) since the last call, and resets the window."""
        now = time.perf_counter()
        elapsed = max(now - (self._last_time or now), 1e-9)
        steps_per_second = (step - self._last_step) / elapsed
        self._last_time, self._last_step = now, step
        return steps_per_second, steps_per_second * self.global_batch_size

    def line(self, step: int, metrics: dict) -> str:
        steps_per_second, examples_per_second = self.throughput(step)
        remaining = (self.total_steps - step) / steps_per_second if steps_per_second else float("inf")
        shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        metrics["steps_per_second"] = steps_per_second
        metrics["examples_per_second"] = examples_per_second
        return (f"step {step}/{self.total_steps} | {shown} | {steps_per_second:.2f} steps/s, "
                f"{examples_per_second:.1f} examples/s | ETA {format_duration(remaining)}")

    def log(self, step: int, metrics: dict) -> None:
        logging.info("%s", self.line(step, metrics))


# What `tensorboard.summary.scalar` attaches; written here directly so that no `tensorboard`
# package is needed to *write* event files (TensorFlow 2.21 does not install it).
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class TensorBoardWriter:
    """Scalars under `<log_dir>/<split>` (train, eval); a no-op when `log_dir` is None.

    The event files are TensorBoard's scalar format (`tensorboard --logdir <log_dir>`).
    """

    def __init__(self, log_dir: str | None):
        self.log_dir = log_dir
        self._writers = {}

    def write(self, split: str, step: int, scalars: dict) -> None:
        if self.log_dir is None:
            return
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(os.path.join(self.log_dir, split))
        with self._writers[split].as_default(step=step):
            for name, value in scalars.items():
                tf.summary.write(name, tf.constant(float(value), tf.float32),
                                 metadata=_SCALAR_METADATA)
        self._writers[split].flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


class MetricsHistory:
    """Every logged record (`{"split", "step", metric: value...}`), kept as one JSON file."""

    def __init__(self, records: list | None = None):
        self.records = list(records or [])

    def append(self, split: str, step: int, metrics: dict) -> None:
        self.records.append({"split": split, "step": int(step),
                             **{k: float(v) for k, v in metrics.items()}})

    def truncate(self, after_step: int) -> None:
        """Forget records past `after_step` (they are recomputed after a resume)."""
        self.records = [r for r in self.records if r["step"] <= after_step]

    def series(self, split: str, metric: str) -> tuple[list, list]:
        rows = [r for r in self.records if r["split"] == split and metric in r]
        return [r["step"] for r in rows], [r[metric] for r in rows]

    def save(self, path: str) -> None:
        fileio.atomic_write_text(path, json.dumps(self.records, indent=1))

    @classmethod
    def load(cls, path: str) -> "MetricsHistory":
        if not os.path.isfile(path):
            return cls()
        with open(path, encoding="utf-8") as f:
            try:
                return cls(json.load(f))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON (line {e.lineno}): {e.msg}") from e
