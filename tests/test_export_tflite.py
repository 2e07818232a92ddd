"""Tests of the export stage's conversion: every mode verified, builtin-op check, the
strings signature's ids, metadata round trip, and the command's bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kbert.export import converter, flatbuffer, metadata
from kbert.export.labelled import read_labelled_file
from kbert.export.pipeline import ExportSettings, export_tflite
from kbert.export.runtime import LiteRTClassifier
from kbert.export.signatures import ExportModule
from kbert.export.task_model import TaskInfo
from kbert.export.verify import Thresholds, VerificationError
from kbert.tokenizers import BertTokenizer
from tests import export_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    directory = tmp_path_factory.mktemp("export_task")
    train, validation = fx.make_task_files(str(directory))
    model_dir = fx.tiny_model_dir(str(directory / "model"), train)
    return {"dir": directory, "train": train, "validation": validation, "model": model_dir}


def _export(task, mode, output, with_tokenizer=False, thresholds=Thresholds()):
    representative = read_labelled_file(task["train"], label_column="label")
    validation = read_labelled_file(task["validation"])
    settings = ExportSettings(mode=mode, with_tokenizer=with_tokenizer, thresholds=thresholds,
                              num_calibration_examples=60, qat_epochs=1)
    return export_tflite(task["model"], str(output), settings, representative, validation,
                         log=lambda m: None)


@pytest.mark.parametrize("mode", ["fp32", "fp16", "dynamic_int8", "qat"])
def test_each_mode_converts_and_passes_verification(task, tmp_path, mode):
    output = tmp_path / f"{mode}.tflite"
    report = _export(task, mode, output)
    check = report["verification"]
    assert check["passed"] and check["examples"] == 80
    if mode == "fp32":
        assert check["max_abs_logit_diff"] <= 1e-4
    else:
        assert check["top1_agreement"] >= 0.99 and check["accuracy_drop"] <= 1.0
    assert "Flex" not in " ".join(report["ops"])
    kernels = flatbuffer.op_kernel_types(output.read_bytes())
    int8_fc = kernels.get(("FULLY_CONNECTED", "INT8", "INT8"), 0)
    if mode == "qat":  # fake-quant ranges become int8 kernels
        assert int8_fc > 0, kernels
    if mode == "fp32":
        assert int8_fc == 0
    if mode == "dynamic_int8":  # every matmul weight and the token table are int8
        assert kernels[("FULLY_CONNECTED", "FLOAT32", "INT8")] == 2 * 6 + 2, kernels
        assert kernels.get(("FULLY_CONNECTED", "FLOAT32", "FLOAT32"), 0) == 0, kernels
        assert kernels[("GATHER", "INT8", "INT32")] >= 1, kernels
    assert metadata.read_tflite_metadata(str(output))["mode"] == mode
    # The file written (metadata added after verification) runs and gives the same answers.
    texts = read_labelled_file(task["validation"])[0][:16]
    tokenizer = BertTokenizer(os.path.join(task["model"], "vocab.txt"))
    from kbert.export.labelled import encode_texts
    logits = LiteRTClassifier(str(output)).classify_ids(*encode_texts(tokenizer, texts, 32))
    reference = LiteRTClassifier(model_content=output.read_bytes()).classify_ids(
        *encode_texts(tokenizer, texts, 32))
    np.testing.assert_array_equal(logits["logits"], reference["logits"])
    assert logits["logits"].shape == (16, len(fx.LABELS))


def test_calibration_batches_are_padded_like_real_batches(task):
    """Single unpadded texts would leave the attention-mask path without a range (padded
    keys then get attended to in int8): calibration batches must contain padding."""
    from kbert.export.pipeline import representative_dataset
    tokenizer = BertTokenizer(os.path.join(task["model"], "vocab.txt"))
    texts = read_labelled_file(task["train"])[0][:29]
    samples = list(representative_dataset(tokenizer, texts, 32, with_tokenizer=True)())
    ids_batches = [inputs for name, inputs in samples if name == "serving_default"]
    assert {len(b["input_ids"]) for b in ids_batches} == {8}
    assert sum(len(b["input_ids"]) for b in ids_batches) == 32
    assert any((b["attention_mask"] == 0).any() for b in ids_batches)
    strings = [inputs["text"] for name, inputs in samples if name == "serving_strings"]
    assert sum(len(t) for t in strings) == 32 and set(strings[-1][-3:]) <= set(texts[:3])


def test_full_int8_with_tokenizer_signature(task, tmp_path):
    output = tmp_path / "full.tflite"
    report = _export(task, "full_int8", output, with_tokenizer=True)
    assert report["verification"]["strings_signature_agreement"] >= 0.99
    kernels = flatbuffer.op_kernel_types(output.read_bytes())
    assert kernels[("FULLY_CONNECTED", "INT8", "INT8")] >= 2 * 6  # 2 layers × 6 dense
    runner = LiteRTClassifier(str(output))
    assert set(runner.signatures) == {"serving_default", "serving_strings"}
    texts, labels = read_labelled_file(task["validation"])
    probs = runner.classify_texts(texts[:20])["probabilities"]
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-2)
    predicted = np.array([fx.LABELS[i] for i in probs.argmax(-1)])
    # As accurate as the float model it came from (the tiny model's own accuracy varies).
    from kbert.export.task_model import load_task_model
    from kbert.export.verify import keras_logits
    model, info = load_task_model(task["model"], None)
    tokenizer = BertTokenizer(os.path.join(task["model"], "vocab.txt"))
    float_predicted = np.array(fx.LABELS)[keras_logits(model, tokenizer, texts[:20], 32).argmax(-1)]
    gold = np.array(labels[:20])
    assert np.mean(predicted == gold) >= np.mean(float_predicted == gold) - 0.1
    assert np.mean(predicted == float_predicted) >= 0.9


def test_failed_verification_says_by_how_much_and_writes_nothing(task, tmp_path):
    output = tmp_path / "strict.tflite"
    with pytest.raises(VerificationError, match=r"fp32 logits differ from Keras by up to"):
        _export(task, "fp32", output, thresholds=Thresholds(fp32_tolerance=1e-12))
    assert os.listdir(tmp_path) == []


class _DeterminantModule:
    """A duck-typed ExportModule whose graph needs a Flex op (MatrixDeterminant)."""

    tokenizer = None

    def save(self, path):
        module = tf.Module()
        module.f = tf.function(lambda x: {"logits": tf.linalg.det(
            tf.reshape(tf.tile(x, [1, 3]), [-1, 3, 3]))},
            input_signature=[tf.TensorSpec([None, 3], tf.float32, "x")])
        tf.saved_model.save(module, path,
                            signatures={"serving_default": module.f.get_concrete_function()})
        return ["serving_default"]


def test_flex_op_graphs_are_refused_with_the_ops_named():
    with pytest.raises(converter.FlexOpsError, match="MatrixDeterminant"):
        converter.convert(_DeterminantModule(), "fp32")
    # A flatbuffer that does hold a Flex op (converted with Select TF ops allowed).
    module = tf.Module()
    module.f = tf.function(lambda x: tf.linalg.det(tf.reshape(tf.tile(x, [1, 3]), [-1, 3, 3])),
                           input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()],
                                                           module)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                      tf.lite.OpsSet.SELECT_TF_OPS]
    data = conv.convert()
    with pytest.raises(converter.FlexOpsError, match=r"FlexMatrixDeterminant ×1"):
        converter.check_builtin_ops(data)
    # ... while builtins pass.
    module.g = tf.function(lambda x: tf.reduce_sum(x, -1),
                           input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    plain = tf.lite.TFLiteConverter.from_concrete_functions([module.g.get_concrete_function()],
                                                            module).convert()
    assert converter.check_builtin_ops(plain) == {"SUM": 1}


class _EchoIds(keras.Model):
    """Returns its token ids as float 'logits', so a signature's ids can be read back."""

    def call(self, features):
        return {"logits": tf.cast(features["token_ids"], tf.float32)}


EDGE_CASES = [
    "Hello, World!", "un-want-ed running", "Café crème brûlée", "naïve façade résumé",
    "中文字符 and 日本語", "emoji 😀 here", "tabs\tand\nnewlines  and   spaces", "",
    "MIXED case WORDS", "numbers 3.14159 and 1,000,000", "quotes “curly” and 'straight'",
    "a " * 80, "supercalifragilisticexpialidocious", "e-mail: someone@example.com",
]


def test_strings_signature_gives_kbert_tokenizer_ids(tmp_path):
    vocab = fx.minilm_vocab()
    fast = BertTokenizer(vocab, normalization="fast")
    exact = BertTokenizer(vocab)
    echo = _EchoIds(name="echo_ids")
    echo({"token_ids": np.ones((1, 2), np.int32)})
    module = ExportModule(echo, max_seq_length=32, tokenizer=fast)
    runner = LiteRTClassifier(model_content=converter.convert(module, "fp32"))
    for text in EDGE_CASES:
        got = runner.classify_texts([text])["logits"][0].astype(int).tolist()
        pieces = fast.tokenize([text]).to_list()[0][:30]
        want = [fast.cls_id] + pieces + [fast.sep_id]
        assert got == want, text
        # These edge cases are ones the fast normaliser shares with the exact one.
        assert exact.tokenize([text]).to_list()[0][:30] == pieces, text
    # A batch pads to its longest row with [PAD] = 0 after [SEP].
    batch = runner.classify_texts(["hello", "hello world again"])["logits"].astype(int)
    assert batch.shape == (2, 5) and batch[0].tolist()[3:] == [0, 0]


def test_metadata_round_trips(tmp_path):
    vocab = fx.minilm_vocab()
    module = ExportModule(fx.make_classifier(fx.tiny_config(30522)), max_seq_length=24)
    data = converter.convert(module, "fp32")
    info = TaskInfo(labels=("x", "y", "z"), max_seq_length=24, do_lower_case=False,
                    vocab_file=vocab)
    stamped = metadata.embed_metadata(data, info, "fp32", ["serving_default"],
                                      extra={"note": "é"})
    found = metadata.read_tflite_metadata(stamped)
    assert found["labels"] == ["x", "y", "z"] and found["max_seq_length"] == 24
    assert found["do_lower_case"] is False and found["note"] == "é"
    import kbert
    assert found["kbert_version"] == kbert.__version__
    with open(vocab, encoding="utf-8") as f:
        assert found["vocab"] == f.read().splitlines()
    # Re-stamping replaces kbert's entries instead of adding copies; the model still runs.
    again = metadata.embed_metadata(stamped, info, "fp16", ["serving_default"])
    assert metadata.read_tflite_metadata(again)["mode"] == "fp16"
    assert list(flatbuffer.read_metadata_buffers(again)).count("kbert_metadata") == 1
    ids = np.array([[101, 7592, 102]], np.int32)
    out = LiteRTClassifier(model_content=again).classify_ids(ids, np.ones_like(ids))
    assert out["logits"].shape == (1, 3)
    with pytest.raises(ValueError, match="no kbert metadata"):
        metadata.read_tflite_metadata(data)


def _cli(*args, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _tflite(argv):
    from export.flags import define_tflite_flags
    return fx.run_in_process("export.tflite", define_tflite_flags, argv)[0]


def test_cli_bad_inputs_fail_cleanly(task, tmp_path, capsys):
    common = [f"--train_file={task['train']}", f"--validation_file={task['validation']}"]
    # Not a model directory.
    (tmp_path / "not_a_model").mkdir()
    assert _tflite([f"--model_dir={tmp_path / 'not_a_model'}", "--mode=fp32",
                    f"--output={tmp_path / 'a.tflite'}", *common]) == 2
    assert "tflite: error: not a kbert model directory" in capsys.readouterr().err
    # An output inside its own model directory is refused before any work.
    assert _tflite([f"--model_dir={task['model']}", "--mode=fp32",
                    f"--output={task['model']}/model.tflite", *common]) == 2
    assert "inside the input" in capsys.readouterr().err
    # Output in a missing directory.
    assert _tflite([f"--model_dir={task['model']}", "--mode=fp32",
                    f"--output={tmp_path / 'missing' / 'a.tflite'}", *common]) == 2
    assert "--output directory does not exist" in capsys.readouterr().err
    # Empty representative dataset.
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert _tflite([f"--model_dir={task['model']}", "--mode=full_int8",
                    f"--representative_file={empty}", f"--output={tmp_path / 'b.tflite'}",
                    *common]) == 2
    assert "empty.jsonl: empty file" in capsys.readouterr().err
    # A foreign file at --output is kept.
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(b"not mine")
    assert _tflite([f"--model_dir={task['model']}", "--mode=fp32", f"--output={foreign}",
                    *common]) == 2
    assert "was not written by kbert" in capsys.readouterr().err
    assert foreign.read_bytes() == b"not mine"
    assert sorted(os.listdir(tmp_path)) == ["empty.jsonl", "foreign.tflite", "not_a_model"]
    # Through the real entry point: exit status 2 and one line; the metadata reader too.
    run = _cli("export.tflite", f"--model_dir={task['model']}", "--mode=qat",
               f"--output={tmp_path / 'c.tflite'}", "--validation_file=nowhere.jsonl")
    assert run.returncode == 2, run.stderr[-1000:]
    assert run.stderr.strip().splitlines()[-1] == (
        "tflite: error: --mode=qat needs --representative_file (or --train_file)")
    run = _cli("export.metadata", str(foreign))
    assert run.returncode == 2 and "metadata: error:" in run.stderr


def test_evaluate_skips_null_texts_and_refuses_bad_inputs_in_one_line(task, tmp_path, capsys):
    """Issue 15: null and empty texts were scored as "None" and ""; an over-long
    --max_seq_length and a truncated .tflite were tracebacks; --output_json replaced any file,
    its own inputs included."""
    from export.flags import define_evaluate_flags
    model = tmp_path / "m.tflite"
    _export(task, "fp32", model)
    rows = [json.loads(line) for line in open(task["validation"])][:12]
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in rows)
                    + '{"text": null, "label": "food"}\n{"text": "  ", "label": "food"}\n')

    def evaluate(*extra):
        return fx.run_in_process("export.evaluate", define_evaluate_flags,
                                 [f"--tflite={model}", f"--test_file={test}", *extra])
    status, result = evaluate()
    assert status == 0 and result["examples"] == 12, result
    assert result["skipped"] == {"empty_text": 2}
    capsys.readouterr()
    status, _ = evaluate("--max_seq_length=1000")
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "--max_seq_length" in err, err
    before = model.read_bytes()
    for target in (test, model):                    # an input as --output_json
        status, _ = evaluate(f"--output_json={target}", "--overwrite")
        err = capsys.readouterr().err.strip()
        assert status == 2 and "error:" in err and len(err.splitlines()) == 1, err
    assert model.read_bytes() == before
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(before[: len(before) // 3])
    status, _ = fx.run_in_process("export.evaluate", define_evaluate_flags,
                                  [f"--tflite={truncated}", f"--test_file={test}"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "truncated.tflite" in err, err
    scrambled = tmp_path / "scrambled.tflite"       # 200 KB of noise in the middle
    middle = len(before) // 2
    noise = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    scrambled.write_bytes(before[:middle] + noise + before[middle + len(noise):])
    status, _ = fx.run_in_process("export.evaluate", define_evaluate_flags,
                                  [f"--tflite={scrambled}", f"--test_file={test}"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    assert "scrambled.tflite" in err and "damaged" in err, err
    with pytest.raises(ValueError, match="scrambled.tflite: is damaged"):
        LiteRTClassifier(str(scrambled))             # the runtime wrapper checks it too
    listed = _cli("export.metadata", str(scrambled))
    assert listed.returncode == 2 and "damaged" in listed.stderr, listed.stderr[-500:]


def _road_module():
    """export.road with its flags kept off the global FlagValues (export.distill defines
    some of the same names; each command runs alone in real use)."""
    from tests.harness import import_command_isolated
    return import_command_isolated("export.road")


def test_road_refuses_a_foreign_output_dir(tmp_path, capsys):
    from export.flags import define_road_flags
    _road_module()
    (tmp_path / "notes.txt").write_text("mine")
    status, _ = fx.run_in_process("export.road", define_road_flags,
                                  [f"--output_dir={tmp_path}"])
    assert status == 2
    assert "was not written by kbert" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_road_ships_the_first_mode_that_passes_and_lowers_the_bar_only_explicitly(tmp_path):
    """full_int8 missing → dynamic_int8 at the default bars; missing only the agreement bar
    → one retry at --fallback_min_agreement; an accuracy miss is never retried."""
    import types
    Road = _road_module().Road
    miss = ("stage x failed (exit 2; log L): tflite: error: {} .tflite failed verification "
            "on 341 held-out examples: top-1 agreement with the float model is 98.50%, 0.50% "
            "below the 99% bar")
    accuracy_miss = miss + "; accuracy drops 2.00 points (72.00 -> 70.00), 1.00 over the bar"

    def run(outcomes, fallback=0.98):
        fv = types.SimpleNamespace(ship_modes=["full_int8", "dynamic_int8"],
                                   fallback_min_agreement=fallback)
        road = Road.__new__(Road)
        road.fv, road.out, road.calls = fv, str(tmp_path), []
        road.say = lambda message: None

        def stage(name, args, done_when=None):
            road.calls.append((name, [a for a in args if a.startswith("--min_agreement")]))
            outcome = outcomes.pop(0)
            if outcome:
                raise RuntimeError(outcome.format(name))
        road.stage = stage
        shipped = road.convert("student", {"train": "t", "validation": "v"})
        return road, shipped

    road, shipped = run([miss, None])
    assert road.shipped_mode == "dynamic_int8" and shipped.endswith("dynamic_int8.tflite")
    assert road.calls == [("tflite_full_int8", []), ("tflite_dynamic_int8", [])]
    assert len(road.misses) == 1 and road.misses[0].startswith("full_int8: ")
    road, _ = run([miss, miss, None])
    assert road.calls[-1] == ("tflite_dynamic_int8_lowered_bar", ["--min_agreement=0.98"])
    with pytest.raises(RuntimeError, match="accuracy drops"):
        run([miss, accuracy_miss])
    with pytest.raises(RuntimeError, match="agreement"):
        run([miss, miss], fallback=None)


def test_qat_is_verified_against_the_model_before_fake_quant_training(task, tmp_path,
                                                                    monkeypatch):
    """Issue 16: QAT was verified against the QAT-trained model, so a QAT run that lost
    accuracy still passed. Here the 'training' scrambles the classifier: refused now."""
    from kbert.export import pipeline

    def ruinous_qat(model, *args, **kwargs):
        for weight in model.weights:
            if "classifier" in weight.path:
                weight.assign(np.random.default_rng(0).normal(
                    size=weight.shape).astype("float32") * 5)
        return {"fake_quant_layers": 0}
    monkeypatch.setattr(pipeline, "_qat", ruinous_qat)
    output = tmp_path / "qat.tflite"
    with pytest.raises(VerificationError, match="agreement with the float model"):
        _export(task, "qat", output)
    assert not output.exists()


def test_a_file_passed_at_a_lowered_bar_says_so_to_a_resumed_road(task, tmp_path):
    """Issue 16: `--resume` kept the shipped file but lost the record that it passed only
    at --fallback_min_agreement; the road now reads the bar from the file itself."""
    output = tmp_path / "lowered.tflite"
    _export(task, "dynamic_int8", output, thresholds=Thresholds(min_agreement=0.98))
    bar = _road_module().verification_bar(str(output))
    assert bar["min_agreement"] == 0.98
    assert bar["lowered"] == ["min_agreement=0.98 (default 0.99)"]
    verification = metadata.read_tflite_metadata(str(output))["verification"]
    assert verification["reference"] == "the float model"


def test_a_pair_classifier_is_refused_not_fed_one_text(task, tmp_path):
    """Issue 16: a pair classifier exported and scored on its first text alone (the second
    silently dropped). trainers.finetune records the pair column; export refuses it."""
    import json
    import shutil
    pair_model = tmp_path / "pair_model"
    shutil.copytree(task["model"], pair_model)
    config = json.loads((pair_model / "config.json").read_text())
    config["kbert"]["text_pair_column"] = "hypothesis"
    (pair_model / "config.json").write_text(json.dumps(config))
    output = tmp_path / "pair.tflite"
    run = _cli("export.tflite", f"--model_dir={pair_model}", f"--output={output}", "--mode=fp32",
               f"--validation_file={task['validation']}")
    err = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(err) == 1, run.stderr[-2000:]
    assert "is a pair classifier" in err[0] and "hypothesis" in err[0]
    assert not output.exists()
