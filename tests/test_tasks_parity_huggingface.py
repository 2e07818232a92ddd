"""Task heads vs Hugging Face transformers with identical weights (max abs diff <= 1e-4):
BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering,
BertForMultipleChoice. Every parameter is random, so a mis-mapped tensor shows."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from kbert.checkpoints import import_huggingface  # noqa: E402
from kbert.tasks import MultipleChoice, QuestionAnswerer, TextClassifier, TokenClassifier  # noqa: E402
from tests.test_parity_huggingface import random_batch, randomize_, tiny_hf_config  # noqa: E402

TOLERANCE = 1e-4


def _kbert_model(hf_model, tmp_path, build):
    """Save the HF model, import its encoder into kbert, put a kbert head on it."""
    directory = str(tmp_path / "hf")
    hf_model.save_pretrained(directory)
    encoder = import_huggingface(directory, heads="encoder", allow_missing=["pooler.*"],
                                 ignore_unexpected=["classifier.*", "qa_outputs.*"])
    return build(encoder)


def _copy_dense(torch_linear, keras_dense):
    keras_dense.set_weights([torch_linear.weight.detach().numpy().T,
                             torch_linear.bias.detach().numpy()])


def _inputs(batch):
    return {"token_ids": batch["input_ids"].astype("int32"),
            "segment_ids": batch["token_type_ids"].astype("int32"),
            "padding_mask": batch["attention_mask"].astype("int32")}


def _torch(batch):
    return {k: torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask",
                                                   "token_type_ids")}


def test_sequence_classification_matches(tmp_path):
    hf = randomize_(transformers.BertForSequenceClassification(tiny_hf_config(num_labels=5)))
    model = _kbert_model(hf, tmp_path, lambda e: TextClassifier(e, 5))
    _copy_dense(hf.classifier, model.classifier)
    batch = random_batch()
    with torch.no_grad():
        expected = hf(**_torch(batch)).logits.numpy()
    diff = np.abs(np.asarray(model(_inputs(batch))["logits"]) - expected).max()
    assert diff <= TOLERANCE and np.std(expected) > 0.1


def test_token_classification_matches(tmp_path):
    hf = randomize_(transformers.BertForTokenClassification(tiny_hf_config(num_labels=4)))
    model = _kbert_model(hf, tmp_path, lambda e: TokenClassifier(e, 4))
    _copy_dense(hf.classifier, model.classifier)
    batch = random_batch(seed=1)
    with torch.no_grad():
        expected = hf(**_torch(batch)).logits.numpy()
    mask = batch["attention_mask"].astype(bool)
    got = np.asarray(model(_inputs(batch))["logits"])
    assert np.abs(got - expected)[mask].max() <= TOLERANCE and np.std(expected) > 0.1


def test_question_answering_matches(tmp_path):
    hf = randomize_(transformers.BertForQuestionAnswering(tiny_hf_config()))
    model = _kbert_model(hf, tmp_path, lambda e: QuestionAnswerer(e))
    _copy_dense(hf.qa_outputs, model.qa_outputs)
    batch = random_batch(seed=2)
    with torch.no_grad():
        out = hf(**_torch(batch))
    got = model(_inputs(batch))
    mask = batch["attention_mask"].astype(bool)
    for key, expected in (("start_logits", out.start_logits), ("end_logits", out.end_logits)):
        assert np.abs(np.asarray(got[key]) - expected.numpy())[mask].max() <= TOLERANCE


def test_multiple_choice_matches(tmp_path):
    hf = randomize_(transformers.BertForMultipleChoice(tiny_hf_config()))
    model = _kbert_model(hf, tmp_path, lambda e: MultipleChoice(e))
    _copy_dense(hf.classifier, model.classifier)
    first, second = random_batch(seed=3), random_batch(seed=4)
    stacked = {k: np.stack([first[k], second[k]], axis=0) for k in first if k != "positions"}
    with torch.no_grad():
        expected = hf(**_torch(stacked)).logits.numpy()      # [2 examples, 3 choices]
    got = np.asarray(model(_inputs(stacked))["logits"])
    assert got.shape == expected.shape == (2, 3)
    assert np.abs(got - expected).max() <= TOLERANCE and np.std(expected) > 0.1
