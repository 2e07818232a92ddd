"""RoBERTa, ALBERT and DistilBERT through the shared harness; sharing options; a DistilBERT
student from a BERT teacher; convert + load of each family's Hugging Face directory."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import kbert
from kbert.configs import BertConfig, ConfigError
from kbert.models import (BertEncoder, BertPretrainer, distilbert_from_teacher,
                          pretraining_losses, student_layer_indices)
from tests.harness import run_model_test
from tests.test_models import encoder_inputs, pretrainer_inputs


def tiny(family, **overrides):
    values = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=32, max_position_embeddings=34)
    values.update(overrides)
    return BertConfig.named("tiny", family=family, **values)


@pytest.mark.parametrize("family", ["roberta", "albert", "distilbert"])
def test_pretrainer_harness(family, tmp_path):
    config = tiny(family, embedding_size=8) if family == "albert" else tiny(family)
    config = config.replace(type_vocab_size=max(config.type_vocab_size, 1))
    if family == "roberta":  # masked LM only trains no pooler: leave it out, as
        config = config.replace(use_pooler=False)  # RobertaForMaskedLM does
    float32_keys = ("mlm_logits", "nsp_logits") if family == "albert" else ("mlm_logits",)

    def make_inputs(batch, length):  # RoBERTa has one token type
        inputs = pretrainer_inputs(batch, length)
        inputs["segment_ids"] = np.minimum(inputs["segment_ids"], config.type_vocab_size - 1)
        return inputs

    run_model_test(
        make_model=lambda: BertPretrainer(BertEncoder(config)),
        make_inputs=make_inputs, tmp_dir=str(tmp_path), output_key="mlm_logits",
        loss_fn=lambda x, y: pretraining_losses(x, y)["loss"],
        padding_key="input_mask", token_key="input_ids", float32_keys=float32_keys)


def test_distilbert_encoder_harness(tmp_path):
    run_model_test(
        make_model=lambda: BertEncoder(tiny("distilbert"), output_hidden_states=True,
                                       output_attentions=True),
        make_inputs=encoder_inputs, tmp_dir=str(tmp_path), output_key="sequence_output",
        loss_fn=lambda x, y: tf.reduce_sum(y["sequence_output"] ** 2),
        padding_key="padding_mask", token_key="token_ids")


def test_family_defaults_and_objectives():
    assert BertConfig.named("base", family="distilbert").num_hidden_layers == 6
    roberta = BertConfig.named("base", family="roberta")
    assert (roberta.type_vocab_size, roberta.position_offset, roberta.max_sequence_length) == \
        (1, 2, 512)
    objectives = {f: BertPretrainer(BertEncoder(tiny(f))).sentence_objective
                  for f in ("bert", "roberta", "albert", "distilbert")}
    assert objectives == {"bert": "nsp", "roberta": "none", "albert": "sop",
                          "distilbert": "none"}
    # The switch: BERT without NSP; DistilBERT (no pooler) cannot have a sentence head.
    model = BertPretrainer(BertEncoder(tiny("bert")), sentence_objective="none")
    assert set(model(model.example_inputs())) == {"mlm_logits"}
    with pytest.raises(ValueError, match="use_pooler"):
        BertPretrainer(BertEncoder(tiny("distilbert")), sentence_objective="nsp")
    with pytest.raises(ValueError, match="type_vocab_size=1"):   # RoBERTa: one token type
        BertPretrainer(BertEncoder(tiny("roberta")), sentence_objective="sop")
    with pytest.raises(ConfigError, match="share_layers"):
        tiny("albert", share_layers="everything")
    with pytest.raises(ConfigError, match="family"):
        BertConfig.named("tiny", family="electra")


def test_roberta_positions_count_real_tokens_only():
    """Left padding shifts nothing: position ids start after the padding index at the
    first real token, as Hugging Face's RoBERTa."""
    encoder = BertEncoder(tiny("roberta"))
    ids = np.array([[5, 6, 7, 8]], "int32")
    right = encoder({"token_ids": ids, "segment_ids": np.zeros_like(ids),
                     "padding_mask": np.ones_like(ids)})["sequence_output"]
    padded = np.array([[1, 1, 5, 6, 7, 8]], "int32")
    left = encoder({"token_ids": padded, "segment_ids": np.zeros_like(padded),
                    "padding_mask": np.array([[0, 0, 1, 1, 1, 1]], "int32")})["sequence_output"]
    np.testing.assert_allclose(np.asarray(right)[0], np.asarray(left)[0, 2:], atol=1e-5)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        encoder({"token_ids": np.ones((1, 33), "int32"), "segment_ids": np.zeros((1, 33), "int32"),
                 "padding_mask": np.ones((1, 33), "int32")})


@pytest.mark.parametrize("share, shared_part, distinct_part", [
    ("all", "attention", "feed_forward_layer_norm"),
    ("attention", "attention", "feed_forward"),
    ("feed_forward", "feed_forward", "attention"),
])
def test_cross_layer_sharing_options(share, shared_part, distinct_part, tmp_path):
    config = tiny("albert", num_hidden_layers=3, embedding_size=8, share_layers=share)
    model = BertPretrainer(BertEncoder(config))
    model(model.example_inputs())
    blocks = model.encoder.transformer_layers
    assert all(getattr(b, shared_part) is getattr(blocks[0], shared_part) for b in blocks)
    distinct = {id(getattr(b, distinct_part)) for b in blocks}
    assert len(distinct) == (1 if share == "all" else 3)
    unshared = BertPretrainer(BertEncoder(config.replace(share_layers="none")))
    unshared(unshared.example_inputs())
    assert model.count_params() < unshared.count_params()
    # Shared weights survive a save/load round trip (stored once, loaded into all layers).
    kbert.save_pretrained(model, str(tmp_path / "m"))
    inputs = model.example_inputs(batch_size=2, seq_length=9)
    np.testing.assert_allclose(np.asarray(kbert.load(str(tmp_path / "m"))(inputs)["mlm_logits"]),
                               np.asarray(model(inputs)["mlm_logits"]), atol=1e-6)


# ----------------------------------------------------------------- DistilBERT student
def test_student_layer_rule():
    assert student_layer_indices(12, 6) == [0, 2, 4, 7, 9, 11]  # the DistilBERT authors'
    assert student_layer_indices(6, 3) == [0, 3, 5]
    assert student_layer_indices(4, 4) == [0, 1, 2, 3]
    assert student_layer_indices(5, 1) == [0]
    with pytest.raises(ValueError, match="between 1 and 4"):
        student_layer_indices(4, 5)


def test_distilbert_student_copies_teacher_layers():
    teacher = BertPretrainer(BertEncoder(tiny("bert", num_hidden_layers=4),
                                         output_hidden_states=True))
    features = teacher.example_inputs(batch_size=2, seq_length=7)
    features["input_ids"] = np.arange(14, dtype="int32").reshape(2, 7) % 59 + 1
    teacher(features)
    student = distilbert_from_teacher(teacher)
    assert student.config.family == "distilbert" and student.config.num_hidden_layers == 2
    assert student.sentence_objective == "none" and student.encoder.pooler is None
    taken = student_layer_indices(4, 2)
    assert taken == [0, 3]
    for i, t in enumerate(taken):
        for ours, theirs in zip(student.encoder.transformer_layers[i].weights,
                                teacher.encoder.transformer_layers[t].weights):
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    np.testing.assert_array_equal(np.asarray(student.mlm_head.output_bias),
                                  np.asarray(teacher.mlm_head.output_bias))
    # Segment 0 folded into positions: single-segment inputs embed exactly as the teacher.
    inputs = {"token_ids": features["input_ids"], "segment_ids": np.zeros((2, 7), "int32"),
              "padding_mask": np.ones((2, 7), "int32")}
    student_encoder = BertEncoder(student.config, output_hidden_states=True)
    student_encoder.set_weights(student.encoder.get_weights())
    np.testing.assert_allclose(np.asarray(student_encoder(inputs)["hidden_states"][0]),
                               np.asarray(teacher.encoder(inputs)["hidden_states"][0]),
                               atol=1e-6)
    explicit = distilbert_from_teacher(teacher.encoder, layers=[1])
    np.testing.assert_array_equal(
        np.asarray(explicit.transformer_layers[0].attention.query.kernel),
        np.asarray(teacher.encoder.transformer_layers[1].attention.query.kernel))
    with pytest.raises(ValueError, match="shared layers"):
        distilbert_from_teacher(BertEncoder(tiny("albert")))


# --------------------------------------------------------------- convert every family
TOKENIZER_FILES = {"roberta": {"vocab.json": "{}", "merges.txt": "#version: 0.2\n"},
                   "albert": {"spiece.model": "not read by convert"},
                   # as many tokens as the random DistilBERT's vocab_size (99): load checks it
                   "distilbert": {"vocab.txt": "".join(
                       f"{t}\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                           *(f"w{i}" for i in range(94))])}}


@pytest.mark.parametrize("family", sorted(TOKENIZER_FILES))
def test_convert_and_load_every_family(family, tmp_path):
    transformers = pytest.importorskip("transformers")
    from tests.test_parity_variants import VARIANTS
    from kbert.convert import convert_checkpoint
    source = tmp_path / "hf"
    VARIANTS[family][0]().save_pretrained(str(source))
    for name, text in TOKENIZER_FILES[family].items():
        (source / name).write_text(text)
    if family == "distilbert":
        (source / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    output = str(tmp_path / "kbert")
    assert convert_checkpoint(str(source), output) == "huggingface"
    assert sorted(n for n in os.listdir(output) if not n.startswith(".")) == sorted(
        ["config.json", "model.weights.h5", *TOKENIZER_FILES[family]])
    model = kbert.load(output)
    assert model.config.family == family and isinstance(model, BertPretrainer)
    # A missing tokenizer file is refused naming it.
    os.remove(source / sorted(TOKENIZER_FILES[family])[0])
    with pytest.raises(ValueError, match=sorted(TOKENIZER_FILES[family])[0]):
        convert_checkpoint(str(source), str(tmp_path / "again"))
    assert transformers  # the reference library built the source


@pytest.mark.parametrize("family, sentence_metrics", [("albert", {"sop_loss", "sop_accuracy"}),
                                                      ("roberta", set())])
def test_fit_names_sentence_metrics_after_the_objective(family, sentence_metrics):
    import keras
    model = BertPretrainer(BertEncoder(tiny(family, type_vocab_size=2)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = tf.data.Dataset.from_tensor_slices(pretrainer_inputs(4, 12)).batch(4)
    names = set(model.fit(data, epochs=1, verbose=0).history)
    assert {"loss", "mlm_loss", "mlm_accuracy"} <= names
    assert {n for n in names if n.startswith(("nsp_", "sop_"))} == sentence_metrics
