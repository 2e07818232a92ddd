"""`python -m trainers.pretrain` as a user runs it: flags, refusals before training, a full
run producing a model directory and loss.png, `kill -9` at random moments then resume, and
a NaN stop that keeps the last good checkpoint."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.harness import REPO as ROOT
from tests.harness import command_env, make_workspace, metrics_history, micro_config
from tests.harness import pretrain_command as harness_pretrain_command
from tests.faults import hidden_leftovers

STEPS = 16


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("pretrain_cli"))


def pretrain_command(workspace, output_dir, *extra):
    return harness_pretrain_command(workspace, output_dir, STEPS, 2, "--eval_batch_size=8",
                                    "--keep_checkpoints=2", *extra)


def run(command, timeout=600):
    return subprocess.run(command, cwd=ROOT, env=command_env(), capture_output=True, text=True,
                          timeout=timeout)


def train_losses(output_dir):
    return {r["step"]: r["loss"] for r in metrics_history(output_dir) if r["split"] == "train"}


# ------------------------------------------------------------------------------ flags
def test_helpfull_lists_the_flags():
    result = run([sys.executable, "-m", "trainers.pretrain", "--helpfull"])
    for name in ("input_file", "output_dir", "bert_config_file", "init_checkpoint",
                 "max_seq_length", "max_predictions_per_seq", "train_batch_size",
                 "eval_batch_size", "learning_rate", "num_train_steps", "num_warmup_steps",
                 "save_checkpoints_steps", "model_size", "vocab_file", "raw_text", "optimizer",
                 "weight_decay", "clip_norm", "grad_accum_steps", "mixed_precision",
                 "jit_compile", "xla_fusion", "phase2_max_seq_length", "phase2_fraction",
                 "keep_checkpoints", "resume", "eval_every_steps", "eval_steps",
                 "log_every_steps", "distribution", "num_cpu_devices", "num_attention_heads",
                 "initializer_range"):
        assert f"--{name}:" in result.stdout or f"--[no]{name}:" in result.stdout, name


@pytest.mark.parametrize("arguments,message", [
    (["--train_batch_size=abc"], "--train_batch_size=abc"),
    (["--train_batch_size=0"], "--train_batch_size"),
    (["--optimizer=sgd"], "--optimizer"),
    (["--flagfile=/no/such/file.flags"], "/no/such/file.flags"),
    (["--num_train_steps=5", "--num_warmup_steps=10"], "--num_warmup_steps"),
    (["--train_batch_size=6", "--grad_accum_steps=4"], "--grad_accum_steps"),
    (["--bert_config_file=/no/config.json"], "/no/config.json"),
    (["--phase2_max_seq_length=128"], "--phase2_input_file"),
    (["--num_attention_heads=3"], "--num_attention_heads=3"),
])
def test_bad_flags_are_refused_naming_the_flag(workspace, tmp_path, arguments, message):
    result = run(pretrain_command(workspace, tmp_path / "out", *arguments))
    assert result.returncode != 0
    assert message in result.stderr
    assert not os.path.exists(tmp_path / "out" / "checkpoints")


def test_records_with_another_vocabulary_are_refused(workspace, tmp_path):
    other_vocab = tmp_path / "vocab.txt"
    tokens = open(workspace["vocab"], encoding="utf-8").read().split("\n")
    tokens[2000], tokens[2001] = tokens[2001], tokens[2000]    # same size, other ids
    other_vocab.write_text("\n".join(tokens), encoding="utf-8")
    command = pretrain_command(workspace, tmp_path / "out") + [f"--vocab_file={other_vocab}"]
    result = run(command)
    assert result.returncode == 2
    assert "manifest.json" in result.stderr and "vocab" in result.stderr
    assert str(other_vocab) in result.stderr


def test_from_scratch_overrides_reach_the_model(workspace, tmp_path):
    """--num_attention_heads and --initializer_range change the config the run trains and
    saves, and the starting weights' scale."""
    import kbert
    result = run(pretrain_command(workspace, tmp_path / "out") + [
        "--num_train_steps=1", "--num_warmup_steps=1", "--learning_rate=1e-9",
        "--num_attention_heads=4", "--initializer_range=0.2",
        "--gradient_checkpointing"])     # and the training loop takes recomputed blocks
    assert result.returncode == 0, result.stderr[-3000:]
    model = kbert.load(str(tmp_path / "out" / "pretrained_model"))
    assert model.config.num_attention_heads == 4 and model.config.initializer_range == 0.2
    table = model.encoder.embeddings.position_embedding.embeddings.numpy()
    assert 0.15 < table.std() < 0.2     # truncated normal of stddev 0.2 (0.02 by default)


def test_raw_text_two_phase_evaluates_at_the_final_length(workspace, tmp_path):
    corpus = str(workspace["root"] / "corpus.txt")
    command = pretrain_command(workspace, tmp_path / "out") + [
        "--raw_text", f"--input_file={corpus}", f"--eval_input_file={corpus}",
        "--max_seq_length=32", "--max_predictions_per_seq=4", "--num_train_steps=4",
        "--phase2_fraction=0.5", "--phase2_max_seq_length=64", "--eval_steps=1",
        "--eval_every_steps=2"]
    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "at sequence length 64" in result.stderr
    with open(tmp_path / "out" / "metrics_history.json") as f:
        evals = [r for r in json.load(f) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4] and all(np.isfinite(r["loss"]) for r in evals)


# ------------------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def reference(workspace):
    """An uninterrupted run (dropout on) whose output other tests read."""
    output_dir = workspace["root"] / "reference"
    result = run(pretrain_command(workspace, output_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir


# Evaluation every 5 steps (and at the end), a log row every 2 steps, a checkpoint every 3:
# windows cut by saves, a final evaluation after the last periodic one.
FAULT_FLAGS = ("--log_every_steps=2", "--eval_every_steps=5", "--eval_steps=2")


def fault_command(workspace, output_dir):
    return pretrain_command(workspace, output_dir, *FAULT_FLAGS,
                            f"--eval_input_file={workspace['records']}")


def comparable_history(output_dir):
    return [{k: v for k, v in r.items() if k not in ("steps_per_second", "examples_per_second")}
            for r in metrics_history(output_dir)]


def final_fingerprint(stderr):
    return re.findall(r"final weights on \S+: (sha1=\w+)", stderr)[-1]


def _kill_on(process, pattern, delay):
    """SIGKILL `process` `delay` seconds after a stderr line matches `pattern` (a save
    follows the progress line of a save step at once; "final weights" precedes the model
    directory write). Returns the stderr lines read."""
    lines, hit = [], threading.Event()

    def reader():
        for line in process.stderr:
            lines.append(line)
            if re.search(pattern, line):
                hit.set()
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    deadline = time.time() + 300
    while not hit.is_set() and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    thread.join(timeout=5)
    return lines


def test_sigkill_at_random_moments_then_resume_equals_an_unbroken_run(workspace, tmp_path):
    """Killed with SIGKILL under several seeds — inside checkpoint saves, between steps,
    after the final checkpoint, inside the model directory write — and resumed: the final
    step, the weights (hash) and the whole metrics history equal an unbroken run's."""
    reference = tmp_path / "reference"
    result = run(fault_command(workspace, reference))
    assert result.returncode == 0, result.stderr[-3000:]
    expected_history = comparable_history(reference)
    assert [r["step"] for r in expected_history if r["split"] == "eval"] == [5, 10, 15, 16]
    expected_fingerprint = final_fingerprint(result.stderr)
    with open(reference / "loss.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    import kbert
    assert kbert.load(str(reference / "pretrained_model")).config.hidden_size == 32

    interrupted = tmp_path / "interrupted"
    moments = [  # (what the kill waits for, delay range in seconds)
        (r"\bstep (3|6|9|12)/16 \|", (0.0, 0.05)),     # inside a checkpoint save
        (r"\bstep \d+/16 \|", (0.0, 0.8)),             # anywhere
        (r"saved checkpoint .*ckpt-16", (0.0, 0.02)),   # after the final checkpoint
        (r"final weights on", (0.0, 0.05)),             # inside the model directory write
    ]
    logs, codes = [], []
    for seed, (pattern, (low, high)) in enumerate(moments):
        rng = random.Random(seed)
        process = subprocess.Popen(fault_command(workspace, interrupted),
                                   cwd=ROOT, env=command_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        logs.append(_kill_on(process, pattern, rng.uniform(low, high)))
        codes.append(process.returncode)
    killed = "\n".join(f"--- killed run {i + 1}:\n" + "".join(log[-6:])
                       for i, log in enumerate(logs))
    # The model directory write may finish before its kill lands; the others must be hit.
    assert codes[:3] == [-signal.SIGKILL] * 3, (codes, killed)
    result = run(fault_command(workspace, interrupted))
    assert result.returncode == 0, killed + result.stderr[-3000:]
    history = comparable_history(interrupted)
    assert [(r["split"], r["step"]) for r in history] == [
        (r["split"], r["step"]) for r in expected_history], killed
    for got, want in zip(history, expected_history):
        for key, value in want.items():
            assert got[key] == (value if isinstance(value, str)
                                else pytest.approx(value, rel=1e-5)), (key, got, killed)
    assert final_fingerprint(result.stderr) == expected_fingerprint, killed
    assert kbert.load(str(interrupted / "pretrained_model")).config.hidden_size == 32
    # Only the output record (.kbert-output.json) stays hidden; no staging or backup leftovers.
    assert not [n for n in os.listdir(interrupted)
                if n.startswith(".") and n != ".kbert-output.json"], killed
    assert not hidden_leftovers(str(interrupted)), killed


def test_resuming_with_another_config_is_refused(workspace, reference, tmp_path):
    other = micro_config(tmp_path / "wider.json", hidden=64)
    result = run(pretrain_command(workspace, reference) + [f"--bert_config_file={other}"])
    assert result.returncode == 2
    assert str(reference / "checkpoints") in result.stderr and "model_config" in result.stderr


def test_non_finite_loss_exits_and_keeps_the_last_good_checkpoint(workspace, reference,
                                                                  tmp_path):
    import shutil

    import tensorflow as tf
    output_dir = tmp_path / "diverging"
    shutil.copytree(reference, output_dir)
    # A loss that turns NaN (absurd learning rate) stops the run; the last good checkpoint
    # stays the newest one.
    result = run(pretrain_command(workspace, output_dir) + [
        f"--num_train_steps={STEPS + 6}", "--learning_rate=1e30", "--num_warmup_steps=0",
        "--clip_norm=0", "--save_checkpoints_steps=100"])
    assert result.returncode == 3, result.stderr[-2000:]
    assert "loss became" in result.stderr and "last good checkpoint" in result.stderr
    assert tf.train.latest_checkpoint(str(output_dir / "checkpoints")).endswith(f"ckpt-{STEPS}")


# ------------------------------------------------------------------------------ flagfiles
@pytest.mark.parametrize("name", ["demo", "bert_base", "bert_large", "bert_large_lamb"])
def test_shipped_flagfiles_parse_and_validate(workspace, name):
    from absl import flags

    from trainers.flags import define_pretrain_flags, validate_pretrain_flags
    values = flags.FlagValues()
    define_pretrain_flags(values)
    paths = [f"--input_file={workspace['records']}", f"--vocab_file={workspace['vocab']}",
             f"--phase2_input_file={workspace['records']}", "--output_dir=/tmp/unused"]
    if name == "demo":   # the demo names its own inputs and learns its vocabulary
        paths = []
    values(["pretrain", f"--flagfile={os.path.join(ROOT, 'trainers', 'configs', name)}.flags",
            *paths])
    cwd = os.getcwd()
    os.chdir(ROOT)   # the demo's paths are relative to the repository
    try:
        validate_pretrain_flags(values)
    finally:
        os.chdir(cwd)
    if name == "bert_large_lamb":
        assert values.optimizer == "lamb" and values.train_batch_size == 65536
        from trainers.flags import phase1_steps
        assert phase1_steps(values) == 7038    # NVIDIA's phase-1 steps; 1563 in phase 2
    if name in ("bert_base", "bert_large"):
        from trainers.flags import phase1_steps
        assert phase1_steps(values) == 900000 and values.phase2_max_seq_length == 512


def test_two_phase_lamb_with_per_phase_accumulation(workspace, reference, tmp_path):
    """A miniature of bert_large_lamb.flags: phase 1 at sequence 32, phase 2 at 64 with its
    own batch, accumulation, and restarted learning-rate schedule; weights initialised from
    the reference run's model directory."""
    from kbert import data as ptd
    short = tmp_path / "records32"
    ptd.create_pretraining_data(
        str(workspace["root"] / "corpus.txt"), workspace["vocab"], output_dir=str(short),
        settings=ptd.PretrainingDataSettings(max_seq_length=32, max_predictions_per_seq=4,
                                             dupe_factor=1, documents_per_chunk=10))
    command = pretrain_command(workspace, tmp_path / "out") + [
        f"--input_file={short}", "--max_seq_length=32", "--max_predictions_per_seq=4",
        "--optimizer=lamb", "--learning_rate=6e-3", "--num_train_steps=8",
        "--phase2_fraction=0.25", "--phase2_max_seq_length=64",
        f"--phase2_input_file={workspace['records']}", "--phase2_max_predictions_per_seq=8",
        "--phase2_train_batch_size=4", "--phase2_grad_accum_steps=2",
        "--phase2_learning_rate=4e-3", "--phase2_warmup_steps=1", "--decay_power=0.5",
        f"--init_checkpoint={reference / 'pretrained_model'}"]
    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "phase seq32: global batch 8 = 1 replicas x 8 per replica (1 micro-batches of 8)" \
        in result.stderr
    assert "phase seq64: global batch 4 = 1 replicas x 4 per replica (2 micro-batches of 2)" \
        in result.stderr
    with open(tmp_path / "out" / "metrics_history.json") as f:
        rates = {r["step"]: r["learning_rate"] for r in json.load(f) if r["split"] == "train"}
    # The rate logged for step s is the one step s trained with (old code logged step
    # s + 1's): phase 2's first step (7) restarts at 0 and warms up to 4e-3 in one step.
    assert rates[6] > 0
    assert rates[7] == pytest.approx(0.0, abs=1e-9)
    assert rates[8] == pytest.approx(4e-3, rel=1e-4)
    assert "initialised weights from" in result.stderr
    # The reference run's training shows: its first step already beats a fresh model's.
    first_step = train_losses(tmp_path / "out")[1]
    assert first_step < train_losses(reference)[1] - 0.1
