"""kbert.console: commands start without TensorFlow's load-time log lines; KBERT_TF_LOG
brings them back."""

import os
import re
import subprocess
import sys

import pytest

from tests.harness import REPO

NOISE = re.compile(r"^[IWE]0000 |absl::InitializeLog|failed call to cuInit", re.M)
PROGRAM = ("from kbert import console\n"
           "console.quiet_tensorflow()\n"
           "tf = console.import_tensorflow()\n"
           "print('sum', int(tf.reduce_sum(tf.range(4))))\n")


def run_program(**env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CPP_MIN_LOG_LEVEL", "KBERT_TF_LOG")}
    environment.update(PYTHONPATH=REPO, **env)
    return subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_quiet_by_default_and_loud_on_request():
    quiet = run_program()
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "sum 6" in quiet.stdout
    assert not NOISE.search(quiet.stderr), quiet.stderr
    loud = run_program(KBERT_TF_LOG="all")
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert NOISE.search(loud.stderr), "KBERT_TF_LOG=all shows TensorFlow's own lines"


def test_a_bad_setting_names_the_variable(monkeypatch):
    from kbert import console
    monkeypatch.setenv("KBERT_TF_LOG", "loud")
    with pytest.raises(ValueError, match="KBERT_TF_LOG='loud'"):
        console.quiet_tensorflow()


def test_report_error_is_one_line_unless_verbose(capsys):
    from kbert import console
    error = PermissionError(13, "Permission denied", "/models/out")
    assert console.report_error("demo", error) == 2
    assert capsys.readouterr().err == "demo: error: /models/out: Permission denied\n"
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError as e:
        assert console.report_error("demo", e, verbosity=1) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("demo: error: bad value second line\n")


def test_a_multi_line_message_is_joined_into_one_line(capsys):
    """Old code: kbert.convert's checkpoint mismatch was cut at 'does not match the model:'."""
    from kbert import console
    error = ValueError("model.safetensors does not match the model:\n  missing: a.bias\n"
                       "  unexpected: b.weight")
    assert console.report_error("convert", error) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "does not match the model:" in err and "missing: a.bias" in err
    assert "unexpected: b.weight" in err
