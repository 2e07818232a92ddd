"""Nothing lost by any command: every command and every output flag through the same cases.

The table `ROWS` lists every command of kbert (each module with a `__main__` block under
trainers/, export/, kbert/) with its output flags; a command without a row, or an output
flag the row does not list, fails `test_every_command_and_output_flag_has_a_row`. Each row
then runs through the same cases, in one driver process per command
(tests/contract_driver.py) plus real SIGKILLs:

  is_input          the output is one of the command's inputs
  inside_input      the output is inside an input directory
  foreign_file      a user's file at the output, without and with --overwrite
  foreign_dir       a user's directory (with a file) at the output, without and with --overwrite
  own_again         kbert's own earlier output, without --overwrite
  user_file_inside  a user's file inside kbert's output directory, after --overwrite
  read_only         the output on a read-only disk (a tmpfs remounted ro)
  full_disk         the output on a full disk (a tmpfs), replacing kbert's earlier output
  kill              SIGKILL at commit points of the final write (tests/kill_at.py)

Every refusal is one line `<command>: error: ...`, exit status 2, no traceback, and the
inputs, the user's files and kbert's earlier output are byte for byte as before. Cases
that cannot apply to a row say why in the row (`skip`).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import subprocess
import sys
from typing import Callable

import pytest

from kbert import outputs
from tests.faults import CAN_MOUNT, hidden_leftovers, kill_at, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "contract_driver.py")
CASES = ("is_input", "inside_input", "foreign_file", "foreign_dir", "own_again",
         "user_file_inside", "read_only", "full_disk", "kill")


@dataclasses.dataclass
class Row:
    """One command. `outputs`: output flag -> "file" | "dir" | "run" (a run directory).
    `args(ws, out)`: a cheap valid command line writing its output to `out`.
    `inputs(ws)`: input flag -> path (files or directories) the command reads.
    `input_dir(ws)`: one input that is a directory (for inside_input), or None.
    `kill_points`: commit points of kbert.outputs to SIGKILL the final write at.
    `skip`: case -> why it cannot apply."""
    module: str
    outputs: dict[str, str]
    args: Callable | None = None
    inputs: Callable | None = None
    input_dir: Callable | None = None
    kill_points: tuple[str, ...] = ()
    skip: dict[str, str] = dataclasses.field(default_factory=dict)
    overwrite_flag: str = "--overwrite"


def _flags(**values):
    return [f"--{k}={v}" for k, v in values.items() if v is not None]


ROWS = [
    Row("kbert.convert", {"output": "dir"},
        args=lambda ws, out: ["--source", ws["hf"], "--output", out],
        inputs=lambda ws: {"source": ws["hf"]}, input_dir=lambda ws: ws["hf"],
        kill_points=("dir:half-swapped", "dir:swapped")),
    Row("trainers.learn_vocab", {"output": "file"},
        args=lambda ws, out: _flags(input=ws["text_dir"], output=out, vocab_size=120,
                                    min_count=1),
        inputs=lambda ws: {"input": ws["text_dir"]}, input_dir=lambda ws: ws["text_dir"],
        kill_points=("file:pending", "file:renamed")),
    Row("trainers.create_pretraining_data", {"output_dir": "dir", "output_file": "dir"},
        args=lambda ws, out: _flags(input_file=ws["text_dir"], vocab_file=ws["vocab"],
                                    output_dir=out, max_seq_length=32,
                                    max_predictions_per_seq=4, dupe_factor=1,
                                    documents_per_chunk=2),
        inputs=lambda ws: {"input_file": ws["text_dir"], "vocab_file": ws["vocab"]},
        input_dir=lambda ws: ws["text_dir"], kill_points=("dir:half-swapped",),
        skip={"*output_file": "--output_file names shards placed in --output_dir (the "
                             "--output_dir row covers the directory they are written in)"}),
    Row("trainers.prepare_corpus", {"output_dir": "dir"},
        args=lambda ws, out: _flags(input_file=ws["text_dir"], output_dir=out),
        inputs=lambda ws: {"input_file": ws["text_dir"]}, input_dir=lambda ws: ws["text_dir"],
        kill_points=("dir:half-swapped", "dir:swapped")),
    Row("trainers.pretrain", {"output_dir": "run"},
        args=lambda ws, out: _flags(
            input_file=ws["records"], vocab_file=ws["vocab"], bert_config_file=ws["config"],
            output_dir=out, max_seq_length=64, max_predictions_per_seq=8,
            train_batch_size=4, num_train_steps=2, num_warmup_steps=1, log_every_steps=1,
            save_checkpoints_steps=2, eval_steps=0),
        inputs=lambda ws: {"input_file": ws["records"], "vocab_file": ws["vocab"],
                           "bert_config_file": ws["config"]},
        input_dir=lambda ws: ws["records"], kill_points=("dir:staged", "dir:swap")),
    Row("trainers.finetune", {"output_dir": "run"},
        args=lambda ws, out: _flags(
            init_model=ws["encoder"], train_file=ws["train"], validation_file=ws["validation"],
            output_dir=out, max_seq_length=32, doc_stride=16, train_batch_size=8,
            num_train_epochs=1),
        inputs=lambda ws: {"init_model": ws["encoder"], "train_file": ws["train"],
                           "validation_file": ws["validation"]},
        input_dir=lambda ws: ws["encoder"], kill_points=("file:renamed#1", "file:pending#2")),
    Row("export.tflite", {"output": "file"},
        args=lambda ws, out: _flags(model_dir=ws["model"], mode="fp32",
                                    validation_file=ws["validation"], output=out,
                                    num_verification_examples=8),
        inputs=lambda ws: {"model_dir": ws["model"], "validation_file": ws["validation"]},
        input_dir=lambda ws: ws["model"], kill_points=("file:pending", "file:renamed")),
    Row("export.evaluate", {"output_json": "file"},
        args=lambda ws, out: _flags(tflite=ws["tflite"], test_file=ws["test"],
                                    output_json=out),
        inputs=lambda ws: {"tflite": ws["tflite"], "test_file": ws["test"]},
        kill_points=("file:pending", "file:renamed"),
        skip={"inside_input": "reads only files (a .tflite and a task file)"}),
    Row("export.distill", {"output_dir": "dir"},
        args=lambda ws, out: _flags(teacher_model=ws["model"], train_file=ws["train"],
                                    student_layers="0", num_train_epochs=0.2,
                                    train_batch_size=8, output_dir=out),
        inputs=lambda ws: {"teacher_model": ws["model"], "train_file": ws["train"]},
        input_dir=lambda ws: ws["model"], kill_points=("dir:half-swapped",)),
    Row("export.benchmark", {"output_dir": "dir"},
        args=lambda ws, out: _flags(student_model=ws["model"], train_file=ws["train"],
                                    validation_file=ws["validation"], test_file=ws["test"],
                                    modes="fp32", threads="1", repeats=1, runs=2,
                                    num_latency_examples=2, output_dir=out) + [
                                        "--noonnx_peer"],
        inputs=lambda ws: {"student_model": ws["model"], "test_file": ws["test"]},
        input_dir=lambda ws: ws["model"], kill_points=("dir:half-swapped",)),
    Row("export.road", {"output_dir": "run"},
        args=lambda ws, out: _flags(output_dir=out, init_model=ws["model"]),
        inputs=lambda ws: {"init_model": ws["model"],
                           "output_dir": os.path.join(ROOT, "data", "tasks", "fortunes")},
        input_dir=lambda ws: ws["model"],
        skip={case: "the road's files are written by its stage commands (their rows) through "
                    "kbert.outputs.RunDirectory (tests/test_outputs.py); a road run takes "
                    "minutes" for case in ("user_file_inside", "full_disk", "kill")}
        | {"foreign_dir+overwrite": "starts a whole road run (minutes)"}),
    Row("kbert.inspect", {"output_dir": "dir"},
        args=lambda ws, out: _flags(model=ws["encoder"], text="a small text", output_dir=out)
        + ["--attention"],
        inputs=lambda ws: {"model": ws["encoder"]}, input_dir=lambda ws: ws["encoder"],
        kill_points=("dir:half-swapped", "dir:swapped")),
    Row("export.metadata", {}),
    Row("export.latency_probe", {}),
    Row("export.serve", {}),
]


# ----------------------------------------------------------------------------- the workspace
@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tiny inputs for every command, made once: a text corpus, a vocabulary, records, a
    micro config, a tiny trained classifier, its .tflite, task files, a Hugging Face dir."""
    from kbert.export.pipeline import ExportSettings, export_tflite
    from tests import export_fixtures as fx
    from tests.harness import gt_vocab_file, make_records, micro_config
    from tests.test_checkpoints import random_hf_model, write_vocab
    root = tmp_path_factory.mktemp("contract")
    found = {"root": str(root), "vocab": gt_vocab_file()}
    text_dir = root / "text"
    text_dir.mkdir()
    with open(os.path.join(ROOT, "data", "corpus", "python_docs_03.txt"), encoding="utf-8") as f:
        lines = f.readlines()[:120]
    (text_dir / "corpus.txt").write_text("".join(lines), encoding="utf-8")
    found["text_dir"] = str(text_dir)
    found["records"] = make_records(root, found["vocab"], num_lines=120)
    found["config"] = micro_config(root / "micro.json")
    tasks = root / "task"
    tasks.mkdir()
    train, validation = fx.make_task_files(str(tasks), n_train=24, n_validation=8)
    found.update(train=train, validation=validation, test=validation)
    found["model"] = fx.tiny_model_dir(str(root / "model"), train, layers=1, hidden=16, epochs=1)
    from kbert.configs import BertConfig
    from kbert.models import BertEncoder, save_pretrained
    found["encoder"] = str(root / "encoder")      # a pre-trained encoder to fine-tune
    save_pretrained(BertEncoder(BertConfig(hidden_size=16, num_hidden_layers=1,
                                           num_attention_heads=2, intermediate_size=32,
                                           max_position_embeddings=64)),
                    found["encoder"], vocab_file=found["vocab"])
    found["tflite"] = str(root / "model.tflite")
    from kbert.export.labelled import read_labelled_file
    export_tflite(found["model"], found["tflite"], ExportSettings(mode="fp32"),
                  validation=read_labelled_file(validation), inputs=[validation])
    hf = root / "hf"
    random_hf_model().save_pretrained(str(hf))
    write_vocab(str(hf / "vocab.txt"))
    (hf / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    found["hf"] = str(hf)
    return found


# ----------------------------------------------------------------------------- the cases
def _commands() -> set[str]:
    found = set()
    for package in ("trainers", "export", "kbert"):
        for path in glob.glob(os.path.join(ROOT, package, "**", "*.py"), recursive=True):
            with open(path, encoding="utf-8") as f:
                if re.search(r'^if __name__ == "__main__":', f.read(), re.M):
                    found.add(os.path.relpath(path, ROOT)[:-3].replace(os.sep, "."))
    return found


def _cases(row: Row, ws: dict, work: str) -> list[dict]:
    """(name, flag, case for the driver) for every output flag and case of `row`."""
    planned = []
    over = [row.overwrite_flag]
    for flag, kind in row.outputs.items():
        if f"*{flag}" in row.skip:
            continue
        base = os.path.join(work, flag)
        os.makedirs(base)
        ext = ".out" if kind == "file" else ""

        def add(name, out, extra=(), before=(), watch=()):
            planned.append((name, flag, {"args": row.args(ws, out) + list(extra),
                                         "before": [list(op) for op in before],
                                         "output": out,
                                         "watch": [*row.inputs(ws).values(), *watch]}))
        for input_flag, path in row.inputs(ws).items():
            add(f"is_input:{input_flag}", path, over)
        if row.input_dir and "inside_input" not in row.skip:
            add("inside_input", os.path.join(row.input_dir(ws), "out" + ext), over)
        user_file = os.path.join(base, "foreign_file" + ext)
        add("foreign_file", user_file, (), [("write", user_file, "mine")], [user_file])
        add("foreign_file+overwrite", user_file, over, (), [user_file])
        folder = os.path.join(base, "folder")
        notes = os.path.join(folder, "notes.txt")
        # File outputs sit inside a folder of the user's: kbert's file goes beside theirs.
        out = os.path.join(folder, "kbert" + ext) if kind == "file" else folder
        add("foreign_dir", folder, (), [("write", notes, "mine")], [folder])
        if "foreign_dir+overwrite" not in row.skip:
            add("foreign_dir+overwrite", out, over, (), [notes])
            add("own_again", out, (), (), [folder])
            if "user_file_inside" not in row.skip:
                add("user_file_inside", out, over, (), [notes])
        mount_ro = os.path.join(work, f"{flag}.ro")
        if CAN_MOUNT and "read_only" not in row.skip:
            add("read_only", os.path.join(mount_ro, "out" + ext), over,
                [("small_copy", folder, mount_ro), ("read_only", mount_ro)])
            planned.append(("unmount", flag, {"args": None, "before": [["unmount", mount_ro]]}))
        mount_full = os.path.join(work, f"{flag}.full")
        if CAN_MOUNT and "full_disk" not in row.skip:
            copied = os.path.join(mount_full, "folder")
            add("full_disk", os.path.join(copied, "kbert" + ext) if kind == "file" else copied,
                over, [("small_copy", folder, mount_full), ("fill", mount_full)], [copied])
            planned.append(("unmount", flag, {"args": None, "before": [["unmount", mount_full]]}))
    return planned


def _error_lines(stderr: str, command: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{command}: error:")]


REFUSED_SAYING = {   # case -> what the one error line says (None: any reason)
    "is_input": "input", "inside_input": "inside the input", "foreign_file": None,
    "foreign_file+overwrite": None, "foreign_dir": None, "own_again": "--overwrite",
    "read_only": "Read-only file system", "full_disk": "No space left on device"}


def _check(name, row, flag, case, result):
    """Refused: one error line, exit 2, every watched path exactly as before. Written:
    exit 0, the inputs and the user's files exactly as before."""
    kind = row.outputs[flag]
    command = {"convert": "kbert.convert", "inspect": "kbert.inspect"}.get(row.module.split(".")[-1],
                                               row.module.split(".")[-1])
    assert not result["traceback"], (name, result["stderr"][-2000:])
    errors = _error_lines(result["stderr"], command)
    case_name = name.split(":")[0]
    if case_name == "own_again" and kind == "run":     # a finished run: resumed, or refused
        wanted = "refused" if result["code"] == 2 else "written"
    else:
        wanted = "refused" if case_name in REFUSED_SAYING else "written"
    if wanted == "refused":
        assert result["code"] == 2 and len(errors) == 1, (
            name, flag, result["code"], result["stderr"][-1500:])
        saying = REFUSED_SAYING.get(case_name)
        assert saying is None or saying in errors[0], (name, errors[0])
        assert result["after"] == result["before"], (name, "changed while refusing")
    else:
        assert result["code"] in (0, None) and not errors, (
            name, flag, result["code"], result["stderr"][-1500:])
        for path in case["watch"]:          # the inputs and the user's file
            assert result["after"][path] == result["before"][path], (name, path)


def _run_driver(row, planned, work):
    cases_file = os.path.join(work, "cases.json")
    with open(cases_file, "w") as f:
        json.dump([case for _, _, case in planned], f)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, DRIVER, row.module, cases_file], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the tests
def test_every_command_and_output_flag_has_a_row():
    assert _commands() == {row.module for row in ROWS}, (
        "a command without a row in ROWS, or a row for a command that is gone")


@pytest.fixture
def work(tmp_path):
    yield str(tmp_path)
    with open("/proc/mounts") as f:      # a failed case may leave its tmpfs mounted
        mounts = [line.split()[1] for line in f if str(tmp_path) in line]
    for mount in mounts:
        subprocess.run(["umount", mount], capture_output=True)


@pytest.mark.parametrize("row", ROWS, ids=[row.module for row in ROWS])
def test_command_keeps_every_file_it_did_not_write(row, ws, work):
    if not row.outputs:    # a command that writes nothing: it writes nothing
        _no_outputs(row, ws, work)
        return
    planned = _cases(row, ws, work)
    inputs_before = {p: _state(p) for p in row.inputs(ws).values()}
    found = _run_driver(row, planned, work)
    assert found["output_flags"] == sorted(row.outputs), (
        f"{row.module} has output flags {found['output_flags']}; list each in its row")
    for (name, flag, case), result in zip(planned, found["results"]):
        if name != "unmount":
            _check(name, row, flag, case, result)
    assert {p: _state(p) for p in row.inputs(ws).values()} == inputs_before, "an input changed"
    for flag, kind in row.outputs.items():
        if f"*{flag}" in row.skip:
            continue
        folder = os.path.join(work, flag, "folder")
        assert hidden_leftovers(folder) == [], hidden_leftovers(folder)
        out = os.path.join(folder, "kbert.out") if kind == "file" else folder
        _kills(row, ws, out, kind, work)


def _state(path):
    from tests.contract_driver import _state as state
    return state(path)


def _complete(out: str, kind: str) -> bool:
    """kbert's output at `out` is whole: every entry its marker records is there as written."""
    if kind == "file":
        return outputs.is_own(out)
    marker = outputs.read_marker(out)
    if marker is None:
        return False
    files = {n for n, e in marker["entries"].items() if not e.get("tree")}
    own = set(outputs._own_entries(out, marker))
    if kind == "run":    # a killed run resumes: the files it recorded are as written
        return files <= own
    return own == set(marker["entries"])


def _kills(row, ws, out, kind, work):
    """SIGKILL the command's final write at each kill point (its --overwrite rerun of `out`):
    the output is then whole (old or new; a run directory: every file it recorded as
    written, resumable, the earlier run kept aside), the user's file untouched, and what the
    kill left is gone once the next write cleans up."""
    if "kill" in row.skip or not row.kill_points:
        return
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    notes = os.path.join(os.path.dirname(out) if kind == "file" else out, "notes.txt")
    for point in row.kill_points:
        done = subprocess.run(kill_at(point, ["-m", row.module, *row.args(ws, out),
                                              row.overwrite_flag]),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == -9, (point, done.returncode, done.stderr[-2000:])
        outputs.clean_leftovers(out)                 # what the next run does first
        assert _complete(out, kind), (row.module, point, snapshot(os.path.dirname(out)))
        assert open(notes).read() == "mine"
        assert hidden_leftovers(os.path.dirname(out)) == [], (point, "leftovers")


def _serve_and_stop(tflite, env):
    """export.serve: its page and model answer; Ctrl-C stops it with status 0."""
    import signal
    import urllib.request
    process = subprocess.Popen([sys.executable, "-m", "export.serve", f"--tflite={tflite}",
                                "--port=0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serve: http://"), (line, process.stderr.read()[-2000:])
        with urllib.request.urlopen(line.split()[1] + "model.tflite", timeout=30) as answer:
            assert answer.read() == open(tflite, "rb").read()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0


def _no_outputs(row, ws, work):
    """export.metadata, export.latency_probe and export.serve read and print (serve: and
    answer HTTP); their inputs' folders are unchanged afterwards."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    folder = os.path.dirname(ws["tflite"])
    before = snapshot(folder)
    if row.module == "export.serve":     # serves an app-ready file until Ctrl-C
        from kbert.export.labelled import read_labelled_file
        from kbert.export.pipeline import ExportSettings, export_tflite
        app_file = os.path.join(work, "app", "model.tflite")
        os.makedirs(os.path.dirname(app_file))
        export_tflite(ws["model"], app_file, ExportSettings(mode="fp32", signature="app"),
                      validation=read_labelled_file(ws["validation"]), log=lambda m: None)
        before = snapshot(os.path.dirname(app_file))
        _serve_and_stop(app_file, env)
        assert snapshot(os.path.dirname(app_file)) == before
        return
    if row.module == "export.metadata":
        args = [ws["tflite"]]
    else:
        from kbert.export.benchmark import write_probe_inputs
        from kbert.tokenizers import BertTokenizer
        npz = os.path.join(work, "inputs.npz")
        write_probe_inputs(npz, BertTokenizer(ws["vocab"]), ["a text", "another"], 32, 32)
        args = [f"--model={ws['tflite']}", f"--inputs={npz}", "--runs=2", "--warmup=0"]
    done = subprocess.run([sys.executable, "-m", row.module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert snapshot(folder) == before
