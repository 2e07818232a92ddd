"""`--xla_fusion`: XLA fuses a step's element-wise ops (`kbert.training.xla_fusion`).

The mode resolves as measured (on for mixed_bfloat16 without a GPU), TF_XLA_FLAGS keeps the
user's own flags, it refuses once TensorFlow has started (the flags would be ignored), and a
pre-training run with it really compiles XLA clusters and trains as the run without does.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from kbert.training import xla_fusion
from tests.harness import REPO, command_env, make_workspace, metrics_history
from tests.harness import pretrain_command, run_together

XLA_COMPILED = "Compiled cluster using XLA"


@pytest.mark.parametrize("mode,precision,jit_compile,gpu,expected", [
    ("auto", "mixed_bfloat16", False, False, "elementwise"),
    ("auto", "none", False, False, "none"),              # float32: measured 1.00x
    ("auto", "mixed_float16", False, False, "none"),
    ("auto", "mixed_bfloat16", True, False, "none"),     # the whole step is XLA already
    ("auto", "mixed_bfloat16", False, True, "none"),     # unmeasured on a GPU
    ("none", "mixed_bfloat16", False, False, "none"),
    ("elementwise", "none", False, True, "elementwise"),
])
def test_modes_resolve_as_measured(mode, precision, jit_compile, gpu, expected):
    assert xla_fusion.resolve_xla_fusion(mode, precision, jit_compile, gpu=gpu) == expected


def test_unknown_mode_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="auto, none, elementwise"):
        xla_fusion.resolve_xla_fusion("fast", "none", gpu=False)


def test_the_users_own_xla_flags_are_kept():
    assert xla_fusion.merged_xla_flags(None) == " ".join(xla_fusion.ELEMENTWISE_FLAGS)
    merged = xla_fusion.merged_xla_flags("--tf_xla_auto_jit=1 --tf_xla_min_cluster_size=8")
    assert merged.split() == ["--tf_xla_auto_jit=1", "--tf_xla_min_cluster_size=8",
                              "--tf_xla_cpu_global_jit", "--tf_xla_ops_to_cluster=FUSIBLE"]


def test_hidden_gpus_do_not_count():
    assert not xla_fusion.has_nvidia_gpu({"CUDA_VISIBLE_DEVICES": "-1"})
    assert not xla_fusion.has_nvidia_gpu({"CUDA_VISIBLE_DEVICES": ""})


def test_refused_once_tensorflow_has_started_and_nothing_is_set():
    import tensorflow as tf
    float(tf.constant(1.0) + 1.0)       # this process's TensorFlow has read its flags
    environ = {"TF_XLA_FLAGS": "--tf_xla_min_cluster_size=8"}
    with pytest.raises(RuntimeError, match="before TensorFlow runs its first op"):
        xla_fusion.enable_elementwise_fusion(environ)
    assert environ == {"TF_XLA_FLAGS": "--tf_xla_min_cluster_size=8"}


STEP = """
import sys
from kbert.training import xla_fusion
if sys.argv[1] == "elementwise":
    xla_fusion.enable_elementwise_fusion()
import tensorflow as tf

@tf.function
def step(x, w):
    y = tf.matmul(x, w)
    return tf.reduce_sum(tf.nn.gelu(y) * 3.0 + tf.math.erf(y))

print(float(step(tf.ones([32, 32]), tf.ones([32, 32]) / 32)))
"""


@pytest.mark.parametrize("mode", ["none", "elementwise"])
def test_enabled_before_tensorflow_starts_it_compiles_clusters(mode):
    env = dict(command_env(), TF_CPP_MIN_LOG_LEVEL="0", TF_XLA_FLAGS="")
    result = subprocess.run([sys.executable, "-c", STEP, mode], cwd=REPO, text=True,
                            capture_output=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (XLA_COMPILED in result.stderr) == (mode == "elementwise")
    assert float(result.stdout.split()[-1]) == pytest.approx(1024 * (0.8413447 * 3 + 0.8427008),
                                                             rel=1e-4)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("xla_fusion"))


def test_pretraining_with_fusion_compiles_clusters_and_trains_the_same(workspace, tmp_path):
    """mixed_bfloat16 with --xla_fusion=auto (on) against --xla_fusion=none: the fused run
    compiles XLA clusters, the other none, and their losses agree step by step."""
    env = command_env(KBERT_TF_LOG="all")
    env.pop("TF_XLA_FLAGS", None)
    fused, plain = run_together(
        [pretrain_command(workspace, tmp_path / "fused", 6, 2, "--mixed_precision=mixed_bfloat16"),
         pretrain_command(workspace, tmp_path / "plain", 6, 2, "--mixed_precision=mixed_bfloat16",
                          "--xla_fusion=none")], cwd=REPO, env=env)
    assert fused.returncode == 0, fused.stderr[-3000:]
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert XLA_COMPILED in fused.stderr and "--tf_xla_ops_to_cluster=FUSIBLE" in fused.stderr
    assert XLA_COMPILED not in plain.stderr

    def losses(output_dir):
        return [r["loss"] for r in metrics_history(output_dir) if r["split"] == "train"]

    fused_losses, plain_losses = losses(tmp_path / "fused"), losses(tmp_path / "plain")
    assert len(fused_losses) == len(plain_losses) == 6
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-4)   # 5e-6 measured


def test_elementwise_in_a_started_process_is_an_error_naming_the_flag(monkeypatch):
    """A caller whose TensorFlow already runs gets the flag named, not a silent no-op."""
    from absl import flags

    from trainers import flags as pretrain_flags
    from trainers import xla_fusion_flag
    import tensorflow as tf
    float(tf.constant(1.0) + 1.0)
    values = flags.FlagValues()
    pretrain_flags.define_pretrain_flags(values)
    values(["pretrain", "--input_file=x", "--output_dir=y", "--model_size=tiny",
            "--mixed_precision=mixed_bfloat16", "--xla_fusion=elementwise"])
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    with pytest.raises(ValueError, match="--xla_fusion=elementwise"):
        xla_fusion_flag.enable(values, "mixed_bfloat16")
    values["xla_fusion"].value = "auto"    # auto only warns and leaves it off
    assert xla_fusion_flag.enable(values, "mixed_bfloat16") == "none"
    assert "TF_XLA_FLAGS" not in os.environ
