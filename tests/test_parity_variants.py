"""RoBERTa, ALBERT and DistilBERT: kbert reproduces Hugging Face transformers (PyTorch, CPU).

For each family a small `transformers` model with every parameter random is saved, imported
with `kbert.import_checkpoint`, and its outputs compared: masked-LM logits (and ALBERT's
sentence-order logits), every hidden state and every attention map, within 1e-4. Base
parameter counts equal transformers' exactly.
"""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from kbert.checkpoints import CheckpointError, import_huggingface  # noqa: E402
from kbert.configs import BertConfig  # noqa: E402
from kbert.models import BertEncoder, BertPretrainer  # noqa: E402
from tests.test_parity_huggingface import (TOLERANCE, max_diff_at_real_positions,  # noqa: E402
                                           random_batch, randomize_)

SMALL = dict(vocab_size=99, max_position_embeddings=64, attn_implementation="eager")


def hf_config(family, **kwargs):
    """A small transformers config of `family` (the architectures' shapes as below)."""
    kwargs = {**SMALL, **kwargs}
    if family == "roberta":
        return transformers.RobertaConfig(hidden_size=32, num_hidden_layers=2,
                                          num_attention_heads=4, intermediate_size=37,
                                          type_vocab_size=1, pad_token_id=1, **kwargs)
    if family == "albert":
        return transformers.AlbertConfig(embedding_size=16, hidden_size=32, num_hidden_layers=3,
                                         num_attention_heads=4, intermediate_size=37,
                                         hidden_act="gelu_new", **kwargs)
    return transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=37, **kwargs)


def hf_inputs(family, batch):
    """(`batch` made valid for `family`, the torch inputs of its transformers model)."""
    batch = dict(batch)
    if family == "roberta":  # padding must be RoBERTa's pad id (1) for its position ids
        batch["input_ids"] = np.where(batch["attention_mask"] == 1, batch["input_ids"], 1)
        batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
    inputs = {"input_ids": torch.from_numpy(batch["input_ids"]),
              "attention_mask": torch.from_numpy(batch["attention_mask"])}
    if family != "distilbert":
        inputs["token_type_ids"] = torch.from_numpy(batch["token_type_ids"])
    return batch, inputs


# family -> (builder, number of layers, whether it has a sentence (SOP) head)
VARIANTS = {"roberta": (lambda: transformers.RobertaForMaskedLM(hf_config("roberta")), 2, False),
            "albert": (lambda: transformers.AlbertForPreTraining(hf_config("albert")), 3, True),
            "distilbert": (lambda: transformers.DistilBertForMaskedLM(hf_config("distilbert")),
                           2, False)}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, tmp_path_factory):
    family = request.param
    build, layers, sentence_head = VARIANTS[family]
    directory = str(tmp_path_factory.mktemp(f"hf_{family}"))
    model = randomize_(build())
    model.save_pretrained(directory)
    batch, inputs = hf_inputs(family, random_batch())
    with torch.no_grad():
        reference = model(**inputs, output_hidden_states=True, output_attentions=True)
    return family, directory, batch, reference, layers, sentence_head


def _features(batch):
    return {"input_ids": batch["input_ids"].astype("int32"),
            "input_mask": batch["attention_mask"].astype("int32"),
            "segment_ids": batch["token_type_ids"].astype("int32"),
            "masked_lm_positions": batch["positions"].astype("int32")}


def test_logits_match(variant):
    family, directory, batch, reference, _, sentence_head = variant
    model = import_huggingface(directory)
    assert isinstance(model, BertPretrainer) and model.config.family == family
    out = model(_features(batch))
    logits = reference.prediction_logits if family == "albert" else reference.logits
    expected = np.take_along_axis(logits.numpy(), batch["positions"][:, :, None], axis=1)
    mlm_diff = float(np.max(np.abs(np.asarray(out["mlm_logits"]) - expected)))
    print(f"{family} max abs diff: mlm {mlm_diff:.3g}")
    assert mlm_diff <= TOLERANCE
    assert float(np.std(expected)) > 0.1  # far from trivially equal
    assert ("nsp_logits" in out) == sentence_head
    if sentence_head:
        assert model.sentence_objective == "sop"
        sop_diff = float(np.max(np.abs(np.asarray(out["nsp_logits"]) -
                                       reference.sop_logits.numpy())))
        print(f"{family} max abs diff: sop {sop_diff:.3g}")
        assert sop_diff <= TOLERANCE


def test_hidden_states_and_attentions_match(variant):
    family, directory, batch, reference, layers, _ = variant
    model = import_huggingface(directory, output_hidden_states=True, output_attentions=True)
    out = model.encoder({"token_ids": batch["input_ids"].astype("int32"),
                         "segment_ids": batch["token_type_ids"].astype("int32"),
                         "padding_mask": batch["attention_mask"].astype("int32")})
    mask = batch["attention_mask"]
    assert len(out["hidden_states"]) == len(reference.hidden_states) == layers + 1
    assert len(out["attentions"]) == len(reference.attentions) == layers
    for i, (ours, theirs) in enumerate(zip(out["hidden_states"], reference.hidden_states)):
        diff = max_diff_at_real_positions(ours, theirs.numpy(), mask)
        print(f"{family} hidden_states[{i}] max abs diff {diff:.3g}")
        assert diff <= TOLERANCE, f"hidden_states[{i}]"
    query_is_real = mask.astype(bool)[:, None, :, None].repeat(4, 1).repeat(10, 3)
    for i, (ours, theirs) in enumerate(zip(out["attentions"], reference.attentions)):
        ours, theirs = np.asarray(ours), theirs.numpy()
        assert ours.shape == theirs.shape == (3, 4, 10, 10)
        diff = float(np.max(np.abs(ours - theirs)[query_is_real]))
        print(f"{family} attentions[{i}] max abs diff {diff:.3g}")
        assert diff <= TOLERANCE, f"attentions[{i}]"


def test_albert_shares_one_layer_and_distilbert_has_no_pooler(variant):
    family, directory, *_ = variant
    encoder = import_huggingface(directory, heads="encoder")
    blocks = encoder.transformer_layers
    if family == "albert":
        assert all(block is blocks[0] for block in blocks)
        assert encoder.embedding_projection is not None
        assert encoder.embeddings.token_embedding.output_dim == 16
    else:
        assert len({id(block) for block in blocks}) == len(blocks)
    inputs = {"token_ids": np.ones((1, 4), "int32"), "segment_ids": np.zeros((1, 4), "int32"),
              "padding_mask": np.ones((1, 4), "int32")}
    # MaskedLM checkpoints of RoBERTa/DistilBERT carry no pooler; ALBERT's has one.
    assert ("pooled_output" in encoder(inputs)) == (family == "albert")


# ------------------------------------------------------------------- parameter counts
def _hf_count(model_class, config):
    with torch.device("meta"):
        return sum(p.numel() for p in model_class(config).parameters())


@pytest.mark.parametrize("family, size, hf, approx", [
    ("roberta", "base", lambda t: (t.RobertaModel, t.RobertaConfig(
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
        layer_norm_eps=1e-5)), 125e6),
    ("albert", "base", lambda t: (t.AlbertModel, t.AlbertConfig(
        hidden_size=768, num_attention_heads=12, intermediate_size=3072)), 12e6),
    ("albert", "large", lambda t: (t.AlbertModel, t.AlbertConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096)), 18e6),
    ("distilbert", "base", lambda t: (t.DistilBertModel, t.DistilBertConfig()), 66e6),
])
def test_base_parameter_counts_equal_transformers(family, size, hf, approx):
    model_class, hf_config = hf(transformers)
    hf_count = _hf_count(model_class, hf_config)
    config = BertConfig.from_dict(hf_config.to_dict())
    assert config == BertConfig.named(size, family=family), "named size differs from HF's"
    kbert_count = BertEncoder(config).count_params()
    print(f"{family}-{size} parameters: kbert {kbert_count:,}, transformers {hf_count:,}")
    assert kbert_count == hf_count
    assert abs(kbert_count - approx) / approx < 0.05


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("model_type", ["electra", "deberta-v2"])
def test_unsupported_model_type_names_the_supported_ones(variant, tmp_path, model_type):
    _, directory, *_ = variant
    import json
    import shutil
    target = str(tmp_path / "other")
    shutil.copytree(directory, target)
    path = os.path.join(target, "config.json")
    config = json.load(open(path))
    config["model_type"] = model_type
    json.dump(config, open(path, "w"))
    with pytest.raises((CheckpointError, ValueError)) as error:
        import_huggingface(target)
    message = str(error.value)
    assert model_type in message and path in message
    for supported in ("albert", "bert", "distilbert", "roberta"):
        assert supported in message
