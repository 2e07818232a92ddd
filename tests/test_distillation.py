"""Tests of kbert.distillation and the export.distill / export.evaluate commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kbert.distillation import (DistillationSettings, distill_task, encoder_of,
                                hidden_state_loss, soft_target_loss, student_from_teacher)
from kbert.distillation.task import encode_pieces, predict_logits
from kbert.export.labelled import label_ids, read_labelled_file
from kbert.tokenizers import BertTokenizer
from tests import export_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    directory = tmp_path_factory.mktemp("distill_task")
    train, validation = fx.make_task_files(str(directory))
    model_dir = fx.tiny_model_dir(str(directory / "model"), train, layers=3)
    return {"dir": directory, "train": train, "validation": validation, "model": model_dir}


def test_soft_target_loss_matches_kl_times_t_squared():
    s = np.array([[1.0, 0.0, -1.0]], np.float32)
    t = np.array([[0.0, 2.0, 0.5]], np.float32)
    p = tf.nn.softmax(t / 2.0).numpy()
    q = tf.nn.softmax(s / 2.0).numpy()
    expected = 4.0 * np.sum(p * (np.log(p) - np.log(q)))
    np.testing.assert_allclose(float(soft_target_loss(s, t, 2.0)), expected, rtol=1e-5)
    assert float(soft_target_loss(t, t, 2.0)) == pytest.approx(0.0, abs=1e-6)
    states = np.random.default_rng(0).normal(size=(2, 4, 8)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert float(hidden_state_loss(states, states, mask)) == pytest.approx(0.0, abs=1e-6)
    changed = states.copy()
    changed[0, 2:] = -changed[0, 2:]  # under the mask: no effect
    assert float(hidden_state_loss(states, changed, mask, "mse")) == pytest.approx(0.0, abs=1e-6)
    assert float(hidden_state_loss(states, -states, mask)) == pytest.approx(2.0, abs=1e-5)


def test_student_takes_the_chosen_teacher_layers(task):
    import kbert
    teacher = kbert.load(task["model"])
    student = student_from_teacher(teacher, layers=[0, 2])
    t_enc, s_enc = encoder_of(teacher), encoder_of(student)
    assert s_enc.config.num_hidden_layers == 2
    for s_block, t_index in zip(s_enc.transformer_layers, [0, 2]):
        for a, b in zip(s_block.weights, t_enc.transformer_layers[t_index].weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    head = student.get_layer("classifier").weights[0]
    np.testing.assert_array_equal(np.asarray(head), np.asarray(
        teacher.get_layer("classifier").weights[0]))
    assert student_from_teacher(teacher).count_params() < teacher.count_params()
    with pytest.raises(ValueError, match="teacher block indexes"):
        student_from_teacher(teacher, layers=[0, 5])


@pytest.mark.parametrize("hidden_loss", ["none", "cosine"])
def test_distillation_lowers_soft_loss_and_beats_chance(task, hidden_loss):
    import kbert
    teacher = kbert.load(task["model"])
    # A narrower student from scratch starts at chance (and needs the projection).
    student = student_from_teacher(teacher, num_layers=1, hidden_size=16,
                                   num_attention_heads=2)
    tokenizer = BertTokenizer(fx.minilm_vocab())
    texts, labels = read_labelled_file(task["train"])
    y = label_ids(labels, fx.LABELS)
    settings = DistillationSettings(num_train_epochs=8, learning_rate=3e-3, batch_size=16,
                                    max_seq_length=32, hidden_loss=hidden_loss)
    history = distill_task(teacher, student, tokenizer, texts, y, settings, log=lambda m: None)
    assert history["soft"][-1] < 0.5 * history["soft"][0], history["soft"]
    if hidden_loss == "cosine":
        assert history["hidden"][-1] < history["hidden"][0]
    v_texts, v_labels = read_labelled_file(task["validation"])
    predicted = predict_logits(student, encode_pieces(tokenizer, v_texts, 32)).argmax(-1)
    accuracy = np.mean(predicted == label_ids(v_labels, fx.LABELS))
    assert accuracy > 0.6, accuracy  # chance is 1/3


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _distill(argv):
    from export.flags import define_distill_flags
    return fx.run_in_process("export.distill", define_distill_flags, argv)[0]


def test_distill_and_evaluate_commands(task, tmp_path, capsys):
    out = tmp_path / "student"
    assert _distill([f"--teacher_model={task['model']}", f"--train_file={task['train']}",
                     f"--validation_file={task['validation']}", "--student_layers=0,2",
                     "--num_train_epochs=1", f"--output_dir={out}"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["student"]["layers"] == 2 and report["teacher"]["layers"] == 3
    assert 0.0 <= report["student"]["validation"]["accuracy"] <= 1.0
    assert report["student"]["validation"]["examples"] == 80
    import kbert
    assert encoder_of(kbert.load(str(out / "model"))).config.num_hidden_layers == 2
    # A student directory whose vocabulary differs from the teacher's is refused.
    other = tmp_path / "other_vocab"
    shutil.copytree(out / "model", other)
    with open(other / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("zzzextra\n")
    assert _distill([f"--teacher_model={task['model']}", f"--train_file={task['train']}",
                     f"--student_init={other}", f"--output_dir={tmp_path / 'x'}"]) == 2
    assert "vocabularies differ" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # An output directory holding someone else's files is refused.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert _distill([f"--teacher_model={task['model']}", f"--train_file={task['train']}",
                     f"--output_dir={foreign}"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert os.listdir(foreign) == ["notes.txt"]
    # Even with --overwrite, a foreign file named like kbert's output is refused and kept.
    (foreign / "eval.json").write_text("my results")
    assert _distill([f"--teacher_model={task['model']}", f"--train_file={task['train']}",
                     f"--output_dir={foreign}", "--overwrite"]) == 2
    assert "eval.json was not written by kbert" in capsys.readouterr().err
    assert (foreign / "eval.json").read_text() == "my results"
    # An output inside an input (here the teacher's directory) is refused.
    inside = os.path.join(task["model"], "student")
    assert _distill([f"--teacher_model={task['model']}", f"--train_file={task['train']}",
                     f"--output_dir={inside}"]) == 2
    assert "is inside the input" in capsys.readouterr().err
    assert not os.path.exists(inside)
    # export.evaluate on a converted student.
    from kbert.export.pipeline import ExportSettings, export_tflite
    tflite = tmp_path / "student.tflite"
    export_tflite(str(out / "model"), str(tflite), ExportSettings(mode="dynamic_int8"),
                  validation=read_labelled_file(task["validation"]), log=lambda m: None)
    scores_file = tmp_path / "scores.json"
    run = _cli("export.evaluate", f"--tflite={tflite}", f"--test_file={task['validation']}",
               f"--output_json={scores_file}")
    assert run.returncode == 0, run.stderr[-2000:]
    scores = json.loads(scores_file.read_text())
    assert scores["examples"] == 80 and scores["mode"] == "dynamic_int8"
    assert abs(scores["accuracy"] - report["student"]["validation"]["accuracy"]) <= 0.02
    assert '"macro_f1"' in run.stdout
    from export.flags import define_evaluate_flags
    status, _ = fx.run_in_process("export.evaluate", define_evaluate_flags,
                                  [f"--tflite={tflite}", f"--test_file={tmp_path / 'no.csv'}"])
    assert status == 2 and "file not found" in capsys.readouterr().err


def test_general_distillation_lowers_soft_loss(tmp_path, capsys):
    """DistilBERT-style: a BertPretrainer teacher → a 1-layer student on the corpus."""
    from kbert.models import BertEncoder, BertPretrainer, save_pretrained
    # A wide initialisation makes the (untrained) teacher's MLM distributions peaked, so
    # the soft targets carry something for the narrower from-scratch student to learn.
    teacher = BertPretrainer(BertEncoder(
        fx.tiny_config(30522, layers=2).replace(initializer_range=0.3)))
    teacher(teacher.example_inputs())
    teacher_dir = str(tmp_path / "teacher")
    save_pretrained(teacher, teacher_dir, vocab_file=fx.minilm_vocab())
    corpus = os.path.join(ROOT, "data", "corpus", "python_docs_00.txt")
    out = tmp_path / "general"
    status = _distill(["--distillation=general", f"--teacher_model={teacher_dir}",
                       f"--corpus={corpus}", "--student_num_layers=1", "--num_train_steps=40",
                       "--student_hidden_size=16", "--student_num_attention_heads=2",
                       "--train_batch_size=8", "--max_seq_length=32", "--learning_rate=1e-3",
                       f"--output_dir={out}"])
    assert status == 0, capsys.readouterr().err
    report = json.loads((out / "eval.json").read_text())
    soft = report["history"]["soft"]
    assert soft[-1] < soft[0], soft
    assert report["student"]["layers"] == 1 and report["teacher"]["layers"] == 2
    # Scored on held-out text (every 20th document, which training leaves out).
    assert report["held_out"]["batches"] > 0 and "every 20th" in report["held_out"]["text"]
    assert 0 <= report["student"]["mlm_accuracy"] <= 1
    import kbert
    assert type(kbert.load(str(out / "model"))).__name__ == "BertPretrainer"
    # A teacher without an MLM head is refused with one line.
    status = _distill(["--distillation=general", f"--teacher_model={out / 'model'}x",
                       f"--corpus={corpus}", f"--output_dir={tmp_path / 'y'}"])
    assert status == 2 and "model directory not found" in capsys.readouterr().err


def test_onnx_peer_matches_keras(task, tmp_path):
    import kbert
    import onnxruntime as ort
    from kbert.export.onnx_peer import export_onnx, quantize_onnx_dynamic
    model = kbert.load(task["model"])
    path = str(tmp_path / "m.onnx")
    assert export_onnx(model, path) < 1e-4  # transformers' logits vs Keras
    ids = np.array([[101, 7592, 2088, 102, 0]], np.int64)
    mask = (ids > 0).astype(np.int64)
    want = np.asarray(model({"token_ids": ids.astype(np.int32), "segment_ids": 0 * mask.astype(
        np.int32), "padding_mask": mask.astype(np.int32)})["logits"])
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids, "attention_mask": mask,
                             "token_type_ids": 0 * ids})[0]
    np.testing.assert_allclose(got, want, atol=1e-4)
    quantize_onnx_dynamic(path, str(tmp_path / "q.onnx"))
    assert os.path.getsize(tmp_path / "q.onnx") < os.path.getsize(path)
    # Per channel: each quantized MatMul weight carries one scale per output column.
    import onnx
    quantized = onnx.load(str(tmp_path / "q.onnx"))
    scales = [init for init in quantized.graph.initializer
              if init.name.endswith("_scale") and "MatMul" in init.name]
    assert scales and all(len(init.dims) == 1 and init.dims[0] > 1 for init in scales), \
        [(init.name, list(init.dims)) for init in scales[:5]]
    q = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    got_q = q.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": 0 * ids})[0]
    assert got_q.argmax(-1) == want.argmax(-1)


def test_pruned_vocabulary_student(task, tmp_path, monkeypatch):
    """--prune_vocabulary: a smaller embedding, the kept rows equal the teacher's, and the
    student directory carries the pruned vocab.txt. (Also: the steps reach the progress file
    a parent such as export.road names in KBERT_PROGRESS_FILE.)"""
    import kbert
    from kbert.training.progress import read_progress
    progress = str(tmp_path / "progress.json")
    monkeypatch.setenv("KBERT_PROGRESS_FILE", progress)
    out = tmp_path / "pruned"
    assert _distill([f"--teacher_model={task['model']}", f"--train_file={task['train']}",
                     f"--validation_file={task['validation']}", "--student_num_layers=1",
                     "--prune_vocabulary", "--num_train_epochs=2", "--learning_rate=1e-9",
                     f"--output_dir={out}"]) == 0
    state = read_progress(progress)
    assert state["done"] == state["total"] > 2 and state["epoch"] == state["epochs"] == 2
    vocab = (out / "model" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    full = BertTokenizer(fx.minilm_vocab())
    assert 1000 < len(vocab) < 5000 and "[MASK]" in vocab and "##z" in vocab
    assert {"football", "cheese", "software"} <= set(vocab)
    student, teacher = kbert.load(str(out / "model")), kbert.load(task["model"])
    s_table = np.asarray(encoder_of(student).token_embedding.embeddings)
    t_table = np.asarray(encoder_of(teacher).token_embedding.embeddings)
    assert s_table.shape[0] == len(vocab)
    for token in ("football", "[CLS]", "##z"):  # ~no learning: rows are the teacher's
        np.testing.assert_allclose(s_table[vocab.index(token)],
                                   t_table[full.token_to_id(token)], atol=1e-5)
    report = json.loads((out / "eval.json").read_text())
    assert report["student"]["vocab_size"] == len(vocab)
    assert report["student"]["validation"]["accuracy"] > 0.6


def test_long_texts_are_scored_as_averaged_windows():
    """Scores read every piece: a text over the length becomes overlapping windows whose
    logits are averaged; short texts are one row, in any batch order."""
    from kbert.export.labelled import window_rows, windowed_logits
    tokenizer = BertTokenizer(fx.minilm_vocab())
    long_text = " ".join(f"word{i}" for i in range(60))
    texts = ["a short one", long_text, "another short text here"]
    rows, index = window_rows(tokenizer, texts, max_seq_length=16)
    pieces = tokenizer.tokenize(texts).to_list()
    assert max(len(r) for r in rows) <= 16 and index.tolist().count(0) == 1
    long_rows = [r[1:-1] for r, i in zip(rows, index) if i == 1]
    assert len(long_rows) > 2
    covered = set()
    for r in long_rows:  # windows are contiguous slices of the text's pieces
        start = next(s for s in range(len(pieces[1])) if pieces[1][s:s + len(r)] == r)
        covered.update(range(start, start + len(r)))
    assert covered == set(range(len(pieces[1])))

    def predict(ids, mask, types):  # logit = number of real tokens, and the first piece id
        return np.stack([mask.sum(1), ids[:, 1]], axis=1).astype(np.float32)
    logits = windowed_logits(predict, tokenizer, texts, 16, batch_size=2)
    expected_long = np.mean([[len(r) + 2, r[0]] for r in long_rows], axis=0)
    np.testing.assert_allclose(logits[1], expected_long, rtol=1e-6)
    np.testing.assert_allclose(logits[0], [len(pieces[0]) + 2, pieces[0][0]])
    np.testing.assert_allclose(logits[2], [len(pieces[2]) + 2, pieces[2][0]])
