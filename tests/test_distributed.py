"""Distribution on one machine: MirroredStrategy over 2 logical CPU devices gives the loss
curve of one device at the same global batch; two MultiWorkerMirroredStrategy workers (two
processes over 127.0.0.1) finish with identical weights."""

import json
import os
import re
import socket
import subprocess

import numpy as np
import pytest

from tests.harness import REPO as ROOT
from tests.harness import command_env, make_workspace, metrics_history, pretrain_command

STEPS = 6


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("distributed"))


def command(workspace, output_dir, *extra):
    # Dropout off: replicas draw their own dropout masks, one device draws one set.
    return pretrain_command(workspace, output_dir, STEPS, 1, "--hidden_dropout_prob=0",
                            "--attention_probs_dropout_prob=0", *extra)


def start(cmd, extra_env=None):
    env = command_env(**(extra_env or {}))
    env.pop("TF_CONFIG", None)
    env.update(extra_env or {})
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process, timeout=600):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


def train_losses(output_dir):
    return [r["loss"] for r in metrics_history(output_dir) if r["split"] == "train"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_cpu_replicas_with_accumulation_match_one_device(workspace, tmp_path):
    one = start(command(workspace, tmp_path / "one", "--distribution=one_device"))
    two = start(command(workspace, tmp_path / "two", "--distribution=mirrored",
                        "--num_cpu_devices=2", "--grad_accum_steps=2"))
    one_log, two_log = finish(one), finish(two)
    assert "global batch 8 = 1 replicas x 8 per replica" in one_log
    assert "global batch 8 = 2 replicas x 4 per replica (2 micro-batches of 2)" in two_log
    expected, actual = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert len(expected) == len(actual) == STEPS
    np.testing.assert_allclose(actual, expected, rtol=1e-4)
    assert expected[-1] < expected[0]
    import kbert
    a = kbert.load(str(tmp_path / "one" / "pretrained_model")).get_weights()
    b = kbert.load(str(tmp_path / "two" / "pretrained_model")).get_weights()
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_two_workers_over_localhost_agree_on_the_final_weights(workspace, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    output_dir = tmp_path / "multi"
    workers = [start(command(workspace, output_dir, "--distribution=auto"),
                     {"TF_CONFIG": json.dumps({"cluster": cluster,
                                               "task": {"type": "worker", "index": i}})})
               for i in range(2)]
    logs = [finish(worker) for worker in workers]
    assert all("MultiWorkerMirroredStrategy: 2 workers, 2 replicas in sync" in log
               for log in logs)
    fingerprints = [re.search(r"final weights on worker_\d: (sha1=\w+)", log).group(1)
                    for log in logs]
    assert fingerprints[0] == fingerprints[1]
    # The chief (worker 0) wrote the run's outputs; checkpoints resumed from step 6.
    assert len(train_losses(output_dir)) == STEPS
    assert os.path.isfile(output_dir / "pretrained_model" / "model.weights.h5")
    assert os.path.isfile(output_dir / "checkpoints" / f"ckpt-{STEPS}.index")
