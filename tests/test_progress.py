"""kbert.training.progress and the road's progress line (issue 16, item 7): a stage reports
its steps to a file, the road shows epoch/step and an ETA on one updating line."""

import io
import json
import subprocess
import sys
import time

import numpy as np

from kbert.training import progress
from kbert.training.progress import ProgressFile, ProgressLine, describe, read_progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_file_is_replaced_whole_and_throttled(tmp_path):
    path = str(tmp_path / "p.json")
    assert read_progress(path) is None
    reporter = ProgressFile(path, interval=3600)
    reporter.update(1, 10, epoch=1, epochs=2)
    reporter.update(5, 10, epoch=1, epochs=2)          # within the interval: skipped
    assert read_progress(path)["done"] == 1
    reporter.update(10, 10, epoch=2, epochs=2)          # the last step is always written
    assert read_progress(path) | {"elapsed": 0} == {"done": 10, "total": 10, "epoch": 2,
                                                    "epochs": 2, "elapsed": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]   # no staging left
    (tmp_path / "p.json").write_text('{"done": 3')      # half-written by someone else
    assert read_progress(path) is None


def test_describe_gives_the_eta_from_the_pace_so_far():
    assert describe({"done": 40, "total": 90, "epoch": 2, "epochs": 3}, elapsed=40) == \
        "epoch 2/3, step 40/90 (44 %), ETA 50 s"
    assert describe({"done": 10, "total": 100}, elapsed=60) == "step 10/100 (10 %), ETA 9 min"
    assert describe({"done": 100, "total": 100}, elapsed=60) == "step 100/100 (100 %)"


def test_line_rewrites_itself_on_a_terminal_and_prints_plain_lines_elsewhere():
    tty = Terminal()
    line = ProgressLine(tty)
    line.show("step 1/10 long text")
    line.show("step 2/10")
    line.clear()
    assert tty.getvalue() == ("\rstep 1/10 long text" + "\rstep 2/10" + " " * 10
                              + "\r" + " " * 9 + "\r")
    plain = io.StringIO()
    line = ProgressLine(plain, plain_every=0)
    line.show("step 1/10")
    line.show("step 2/10")
    assert plain.getvalue() == "step 1/10\nstep 2/10\n"
    quiet = io.StringIO()
    line = ProgressLine(quiet, plain_every=3600)
    line.show("step 1/10")
    assert quiet.getvalue() == ""


def test_keras_callback_counts_steps_across_epochs(tmp_path):
    import keras
    path = str(tmp_path / "p.json")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((12, 3), np.float32), np.zeros((12, 1), np.float32)
    seen = []
    reporter = ProgressFile(path, interval=0)
    original = reporter.update
    reporter.update = lambda done, total, **kw: (seen.append((done, total, kw["epoch"])),
                                                 original(done, total, **kw))
    model.fit(x, y, batch_size=4, epochs=2, verbose=0,
              callbacks=[reporter.keras_callback(steps_per_epoch=3, epochs=2)])
    assert seen == [(1, 6, 1), (2, 6, 1), (3, 6, 1), (4, 6, 2), (5, 6, 2), (6, 6, 2)]
    assert read_progress(path)["done"] == 6


def test_road_follows_a_stage_on_one_line(tmp_path, monkeypatch):
    from tests.harness import import_command_isolated
    Road = import_command_isolated("export.road").Road
    path = str(tmp_path / "stage.progress.json")
    # A stage as the road sees it (written by hand: importing kbert would load TensorFlow).
    script = ("import json, os, sys, time\n"
              "for i in range(1, 5):\n"
              "    json.dump({'done': i, 'total': 4, 'epoch': 1, 'epochs': 1},"
              " open(sys.argv[1] + '.tmp', 'w'))\n"
              "    os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(0.6)")
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tty = Terminal()
    monkeypatch.setattr(progress, "ProgressLine", lambda: ProgressLine(tty))
    road = Road.__new__(Road)
    road.started = time.time()
    process = subprocess.Popen([sys.executable, "-c", script, path, root])
    road.follow("finetune", process, path, time.time())
    shown = tty.getvalue()
    assert process.returncode == 0
    assert "finetune: epoch 1/1, step 1/4 (25 %), ETA" in shown, shown
    assert "\r" in shown and shown.endswith("\r") and "\n" not in shown
    assert json.load(open(path))["done"] == 4
