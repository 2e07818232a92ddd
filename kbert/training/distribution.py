"""Choosing a `tf.distribute` strategy for pre-training.

* `auto`: MultiWorkerMirroredStrategy when `TF_CONFIG` names several workers; else
  MirroredStrategy over the visible GPUs; else MirroredStrategy over `num_cpu_devices`
  logical CPU devices when that is > 1; else one CPU device.
* `mirrored`, `multi_worker`, `one_device`: that strategy.
* `tpu`: TPUStrategy on `tpu_address` (a Cloud TPU name, `grpc://host:port`, or "" / "local"
  for a TPU VM). The loop is TPU-ready (static shapes, `drop_remainder`, dataset from
  `distribute_datasets_from_function`) but it has not been run on a TPU here; see
  BUILD_NOTES.md ("Distributed pre-training").

Logical CPU devices must be configured before TensorFlow initialises its runtime, so
call `configure_cpu_devices` (or `create_strategy`) before any other TF work.

Example:
    >>> strategy = create_strategy("one_device")
    >>> strategy.num_replicas_in_sync
    1
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

STRATEGY_NAMES = ("auto", "mirrored", "multi_worker", "one_device", "tpu")


def tf_config_workers(environ=None) -> int:
    """Number of workers (`worker` + `chief`) named by the `TF_CONFIG` environment variable."""
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG is not a valid JSON object: {e}") from e
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def configure_cpu_devices(num_cpu_devices: int) -> None:
    """Split the physical CPU into `num_cpu_devices` logical devices (for testing Mirrored)."""
    if num_cpu_devices < 1:
        raise ValueError(f"num_cpu_devices must be >= 1, got {num_cpu_devices}")
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if num_cpu_devices == 1 and not current:
        return
    if current and len(current) == num_cpu_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
    except RuntimeError as e:
        raise RuntimeError(
            f"cannot split the CPU into {num_cpu_devices} devices: TensorFlow is already "
            f"initialised ({e}); configure devices before any other TensorFlow call") from e


def create_strategy(name: str = "auto", num_cpu_devices: int = 1,
                    tpu_address: str | None = None) -> tf.distribute.Strategy:
    """The strategy `name` (see the module docstring)."""
    if name not in STRATEGY_NAMES:
        raise ValueError(f"distribution must be one of {STRATEGY_NAMES}, got {name!r}")
    if name == "tpu":
        return _tpu_strategy(tpu_address)
    if name == "multi_worker" or (name == "auto" and tf_config_workers() > 1):
        if num_cpu_devices > 1:
            configure_cpu_devices(num_cpu_devices)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        logging.info("MultiWorkerMirroredStrategy: %d workers, %d replicas in sync",
                     tf_config_workers(), strategy.num_replicas_in_sync)
        return strategy
    configure_cpu_devices(num_cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        device = gpus[0].name if gpus else "/cpu:0"
        logging.info("OneDeviceStrategy on %s", device)
        return tf.distribute.OneDeviceStrategy(device)
    if gpus:
        devices = [d.name for d in gpus]
    elif num_cpu_devices > 1:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    elif name == "auto":
        logging.info("no GPU: OneDeviceStrategy on /cpu:0")
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    else:
        devices = ["/cpu:0"]
    # NCCL only exists on GPUs; CPU devices reduce through one device.
    cross_device_ops = None if gpus else tf.distribute.ReductionToOneDevice()
    logging.info("MirroredStrategy over %s", devices)
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)


def _tpu_strategy(tpu_address: str | None) -> tf.distribute.Strategy:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu="" if tpu_address in (None, "local") else tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
    logging.info("TPUStrategy with %d cores", strategy.num_replicas_in_sync)
    return strategy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, summaries and the final model."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_id(strategy: tf.distribute.Strategy) -> str:
    """`"<task_type>_<task_id>"` under MultiWorkerMirroredStrategy, else `"chief"`."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "chief"
    return f"{resolver.task_type}_{resolver.task_id}"
