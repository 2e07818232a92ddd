"""The app-ready `.tflite` in MediaPipe Tasks' `TextClassifier` (the `mediapipe` wheel, the C++
core of Android's tasks-text, iOS's MediaPipeTasksText and the web's @mediapipe/tasks-text):
loaded unchanged, labels from its metadata, the same top-1 as kbert's LiteRT run and
`export.evaluate`; MediaPipe's tokenizer ids against kbert's (docs/EDGE.md lists every
difference); ALBERT through the SentencePiece unit; RoBERTa and label-less models refused."""

from __future__ import annotations

import json
import os
import unicodedata

import numpy as np
import pytest

from kbert.export import app_metadata, flatbuffer, metadata
from kbert.export.evaluation import evaluate_tflite, tokenizer_from_metadata
from kbert.export.labelled import encode_texts, read_labelled_file
from kbert.export.mediapipe_check import mediapipe_scores, mediapipe_token_ids
from kbert.export.runtime import LiteRTClassifier
from kbert.export.verify import tflite_outputs
from tests import export_fixtures as fx

pytest.importorskip("mediapipe.tasks.python.text")

# Texts longer than the model's 32 tokens: MediaPipe feeds them whole (dynamic input
# shapes); the graph cuts them as kbert does.
LONG_TEXTS = ["football " * 40 + "bread", "Bread cheese soup. " * 12 + "server code"]
# Hard cases for the tokenizer comparison, and the ones MediaPipe tokenizes differently
# from kbert's uncased WordPiece (no accent stripping, no Unicode lower-casing, no removal
# of format characters in MediaPipe's BertTokenizer; docs/EDGE.md).
HARD_CASES = {
    "accents": "Café naïve résumé", "combining accents": "e\u0301te\u0301",
    "CJK": "我喜欢机器学习", "Hangul": "한국어 텍스트입니다", "emoji": "I love it 😀🎉",
    "very long word": "a" * 150, "long word": "supercalifragilisticexpialidocious",
    "empty": "", "upper case": "HELLO World", "punctuation": "don't stop-believing, 3.14!",
    "Cyrillic upper case": "Привет мир", "tab and newline": "tab\there\nnewline",
    "zero-width space": "zero\u200bwidth", "full width": "ＦＵＬＬ width",
    "upper-case accents": "Ünïcödé ÀÉÎ", "sharp s": "straße", "dotted capital I": "İstanbul",
    "control character": "There *_\x08is* no such thing",   # from the fortunes test split
}
DIFFERS_IN_MEDIAPIPE = {"accents", "combining accents", "Hangul", "Cyrillic upper case",
                        "zero-width space", "upper-case accents", "dotted capital I",
                        "control character"}
# ALBERT (kbert's SentencePiece tokenizer normalises as AlbertTokenizerFast: `` '' -> ",
# NFKD, accents stripped, lower-cased; MediaPipe lower-cases ASCII only).
ALBERT_DIFFERS_IN_MEDIAPIPE = {"accents", "combining accents", "full width",
                               "upper-case accents", "dotted capital I"}


def app_normalize(text: str) -> str:
    """What docs/EDGE.md tells an app to do before `classify` for an uncased WordPiece
    model: NFD, drop combining marks, format characters and control characters other than
    tab / newline / carriage return, lower-case."""
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if c in "\t\n\r" or unicodedata.category(c)
                   not in ("Mn", "Cf", "Cc")).lower()


def app_normalize_albert(text: str) -> str:
    """docs/EDGE.md's app-side normalisation for an ALBERT model: `` and '' to ", NFKD,
    combining marks dropped, lower-cased."""
    text = unicodedata.normalize("NFKD", text.replace("``", '"').replace("''", '"'))
    return "".join(c for c in text if unicodedata.category(c) != "Mn").lower()


@pytest.fixture(scope="module")
def task(app_task):
    """A tiny fine-tuned BERT exported by `export.tflite`'s defaults (the app-ready file;
    conftest's session fixture, shared with tests/test_web_demo.py)."""
    return app_task


def test_default_export_is_one_signature_with_mediapipe_inputs(task):
    data = open(task["tflite"], "rb").read()
    runner = LiteRTClassifier(task["tflite"])
    assert runner.signatures == {"serving_default": {
        "inputs": ["ids", "mask", "segment_ids"], "outputs": ["probabilities"]}}
    details = runner.interpreter.get_input_details()
    assert [d["dtype"] for d in details] == [np.int32] * 3
    assert all(d["shape_signature"].tolist() == [1, -1] for d in details)
    out = runner.interpreter.get_output_details()
    assert len(out) == 1 and out[0]["dtype"] == np.float32 and out[0]["shape"].tolist() == [1, 3]
    from ai_edge_litert import schema_py_generated as tfl
    assert tfl.Model.GetRootAsModel(data, 0).SubgraphsLength() == 1
    assert task["report"]["verification"]["passed"]
    assert task["report"]["verification"]["top1_agreement"] >= 0.99


def test_standard_metadata_holds_tokenizer_labels_and_kbert_json(task):
    data = open(task["tflite"], "rb").read()
    found = app_metadata.describe(data)
    assert found["name"] and found["description"] and found["author"] == "kbert export.tflite"
    assert found["version"].startswith("kbert ") and found["min_parser_version"] == "1.1.0"
    graph, = found["subgraph_metadata"]
    assert [t["name"] for t in graph["input_tensor_metadata"]] == \
        app_metadata.input_order(data)
    unit, = graph["input_process_units"]
    assert unit["options_type"] == "BertTokenizerOptions"
    assert unit["options"]["vocab_file"] == [{
        "name": "vocab.txt", "description": unit["options"]["vocab_file"][0]["description"],
        "type": "VOCABULARY"}]
    output, = graph["output_tensor_metadata"]
    assert output["associated_files"][0]["name"] == "labels.txt"
    assert output["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    packed = app_metadata.associated_files(data)
    assert sorted(packed) == ["kbert_metadata.json", "labels.txt", "vocab.txt"]
    assert packed["labels.txt"].decode().splitlines() == list(fx.LABELS)
    assert packed["vocab.txt"] == open(fx.minilm_vocab(), "rb").read()
    # kbert's JSON rides along as an associated file; its weights_sha256 holds.
    kbert_json = json.loads(packed["kbert_metadata.json"])
    assert kbert_json == json.loads(flatbuffer.read_metadata_buffers(data)["kbert_metadata"])
    assert kbert_json["weights_sha256"] == flatbuffer.weights_sha256(data)
    assert kbert_json["verification"]["passed"] and kbert_json["profile"] == "app"
    found = metadata.read_tflite_metadata(data)
    assert found["labels"] == list(fx.LABELS) and len(found["vocab"]) == 30522
    # What `python -m export.metadata FILE` prints: both.
    from export.metadata import describe_file
    printed = json.loads(json.dumps(describe_file(task["tflite"])))
    assert printed["labels"] == list(fx.LABELS) and printed["vocab_size"] == 30522
    assert printed["tflite_model_metadata"]["subgraph_metadata"][0]["input_process_units"]
    assert printed["tflite_model_metadata"]["associated_files_packed"]["labels.txt"] > 0
    # No vocabulary copy in kbert's own buffers: the archive holds it once.
    assert not {"kbert_vocab", "vocab.txt"} & set(flatbuffer.read_metadata_buffers(data))
    assert {"TFLITE_METADATA", "kbert_metadata"} <= set(flatbuffer.read_metadata_buffers(data))


def test_mediapipe_loads_the_file_unchanged_and_agrees_with_kbert(task):
    texts, labels = read_labelled_file(task["validation"])
    texts = texts + LONG_TEXTS
    scores, names = mediapipe_scores(task["tflite"], texts)
    assert names == list(fx.LABELS)
    meta = metadata.read_tflite_metadata(task["tflite"])
    runner = LiteRTClassifier(task["tflite"])
    kbert = tflite_outputs(runner, tokenizer_from_metadata(meta), texts,
                           meta["max_seq_length"])["probabilities"]
    agreement = np.mean(np.argmax(scores, -1) == np.argmax(kbert, -1))
    assert agreement >= 0.99, agreement
    assert np.max(np.abs(scores - kbert)) < 1e-5     # the same bytes run on the same ids
    # export.evaluate (short texts: one window, the same truncation) scores the same.
    evaluated = evaluate_tflite(task["tflite"], texts[:-2], labels)
    mp_accuracy = np.mean(np.array(fx.LABELS)[np.argmax(scores[:-2], -1)] == np.array(labels))
    assert evaluated["accuracy"] == pytest.approx(mp_accuracy)


def test_mediapipe_tokenizer_ids_against_kbert(task):
    """Task texts: identical ids. Hard cases: the differences listed in docs/EDGE.md, and
    none once the app normalizes the text as EDGE.md says."""
    tokenizer = tokenizer_from_metadata(metadata.read_tflite_metadata(task["tflite"]))
    texts = read_labelled_file(task["validation"])[0][:40] + list(HARD_CASES.values())
    length = 64
    normalized = [app_normalize(t) for t in HARD_CASES.values()]
    found = mediapipe_token_ids("wordpiece", fx.minilm_vocab(), texts + normalized, length)

    def kbert_ids(text):
        ids, mask, _ = encode_texts(tokenizer, [text], length)
        return ids[0][mask[0] == 1].tolist()
    task_found, hard_found, normalized_found = (
        found[:40], found[40:40 + len(HARD_CASES)], found[40 + len(HARD_CASES):])
    assert task_found == [kbert_ids(t) for t in texts[:40]]
    differing = {name for (name, text), ids in zip(HARD_CASES.items(), hard_found)
                 if ids != kbert_ids(text)}
    assert differing == DIFFERS_IN_MEDIAPIPE
    assert normalized_found == [kbert_ids(t) for t in HARD_CASES.values()]
    assert hard_found[list(HARD_CASES).index("empty")] == [tokenizer.cls_id, tokenizer.sep_id]


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mediapipe_families")
    train, validation = fx.make_task_files(str(directory), n_train=160, n_validation=60)
    tokenizers = fx.learn_family_tokenizers(str(directory), train)
    albert = fx.family_model_dir(str(directory / "albert"), "albert", tokenizers["albert"],
                                 train, epochs=4)
    return {"dir": directory, "train": train, "validation": validation, "albert": albert,
            "tokenizers": tokenizers}


def test_albert_ships_a_sentencepiece_unit_and_runs_in_mediapipe(families, tmp_path):
    from kbert.export.pipeline import ExportSettings, export_tflite
    validation = read_labelled_file(families["validation"])
    output = str(tmp_path / "albert.tflite")
    export_tflite(families["albert"], output, ExportSettings(mode="fp32", signature="app"),
                  None, validation, log=lambda m: None)
    data = open(output, "rb").read()
    unit, = app_metadata.describe(data)["subgraph_metadata"][0]["input_process_units"]
    assert unit["options_type"] == "SentencePieceTokenizerOptions"
    assert unit["options"]["sentence_piece_model"][0]["name"] == "spiece.model"
    assert "spiece.model" in app_metadata.associated_files(data)
    texts = validation[0]
    scores, names = mediapipe_scores(output, texts)
    assert names == list(fx.LABELS)
    meta = metadata.read_tflite_metadata(output)
    kbert = tflite_outputs(LiteRTClassifier(output), tokenizer_from_metadata(meta), texts,
                           meta["max_seq_length"])["probabilities"]
    assert np.mean(np.argmax(scores, -1) == np.argmax(kbert, -1)) >= 0.99
    # The same ids as kbert's SentencePiece on the task's texts; the hard cases differ
    # where docs/EDGE.md says, and not once the app normalises as it says.
    tokenizer = tokenizer_from_metadata(meta)
    spiece = os.path.join(families["albert"], "spiece.model")
    hard = list(HARD_CASES.values())
    found = mediapipe_token_ids("sentencepiece", spiece, texts[:30] + hard + [
        app_normalize_albert(t) for t in hard], 64)

    def kbert_ids(text):
        packed, mask, _ = encode_texts(tokenizer, [text], 64)
        return packed[0][mask[0] == 1].tolist()
    assert found[:30] == [kbert_ids(t) for t in texts[:30]]
    differing = {name for (name, text), ids in zip(HARD_CASES.items(), found[30:30 + len(hard)])
                 if ids != kbert_ids(text)}
    assert differing == ALBERT_DIFFERS_IN_MEDIAPIPE
    assert found[30 + len(hard):] == [kbert_ids(t) for t in hard]


def _bad_model_dir(task, directory, **changes):
    """A copy of the task model's config.json with `changes` (no weights: the refusals come
    before the model is loaded)."""
    os.makedirs(directory)
    with open(os.path.join(task["model"], "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    for key, value in changes.items():
        if key == "labels":
            config["kbert"].pop("labels", None)
        else:
            config[key] = value
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    return str(directory)


@pytest.mark.parametrize("change, message", [
    ({"family": "roberta"}, "tflite: error: --signature=app: RoBERTa's byte-level BPE "
                            "tokenizer has no TFLite Model Metadata process unit"),
    ({"labels": None}, "tflite: error: model directory {dir} names no labels"),
])
def test_app_profile_refusals_are_one_line_and_write_nothing(task, tmp_path, capsys, change,
                                                             message):
    from export.flags import define_tflite_flags
    model_dir = _bad_model_dir(task, tmp_path / "model", **change)
    output = tmp_path / "out.tflite"
    status, _ = fx.run_in_process("export.tflite", define_tflite_flags, [
        f"--model_dir={model_dir}", "--mode=fp32", f"--validation_file={task['validation']}",
        f"--output={output}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(message.format(dir=model_dir)), err
    assert sorted(os.listdir(tmp_path)) == ["model"]
