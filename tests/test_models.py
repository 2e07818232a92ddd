"""BertEncoder and BertPretrainer through the shared harness, plus training and directories."""

import json
import shutil
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kbert
from kbert.outputs import OutputError
from kbert.configs import BertConfig
from kbert.models import BertEncoder, BertPretrainer, pretraining_losses
from tests.harness import run_model_test

CONFIG = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=32, max_position_embeddings=32)


def encoder_inputs(batch, length):
    rng = np.random.default_rng(batch * 100 + length)
    ids = rng.integers(1, 60, size=(batch, length)).astype("int32")
    seg = np.zeros_like(ids)
    seg[:, length // 2:] = 1
    return {"token_ids": ids, "segment_ids": seg, "padding_mask": np.ones_like(ids)}


def pretrainer_inputs(batch, length):
    base = encoder_inputs(batch, length)
    rng = np.random.default_rng(length)
    positions = np.stack([rng.choice(np.arange(1, min(length, 8)), 3, replace=False)
                          for _ in range(batch)]).astype("int32")
    return {"input_ids": base["token_ids"], "segment_ids": base["segment_ids"],
            "input_mask": base["padding_mask"], "masked_lm_positions": positions,
            "masked_lm_ids": rng.integers(1, 60, size=(batch, 3)).astype("int32"),
            "masked_lm_weights": np.array([[1.0, 1.0, 0.0]] * batch, "float32"),
            "next_sentence_labels": rng.integers(0, 2, size=(batch,)).astype("int32")}


def test_encoder_harness(tmp_path):
    run_model_test(
        make_model=lambda: BertEncoder(CONFIG, output_hidden_states=True,
                                       output_attentions=True),
        make_inputs=encoder_inputs, tmp_dir=str(tmp_path), output_key="sequence_output",
        loss_fn=lambda x, y: tf.reduce_sum(y["sequence_output"] ** 2)
        + tf.reduce_sum(y["pooled_output"]),
        padding_key="padding_mask", token_key="token_ids", float32_keys=())


def test_pretrainer_harness(tmp_path):
    run_model_test(
        make_model=lambda: BertPretrainer(BertEncoder(CONFIG)),
        make_inputs=pretrainer_inputs, tmp_dir=str(tmp_path), output_key="mlm_logits",
        loss_fn=lambda x, y: pretraining_losses(x, y)["loss"],
        padding_key="input_mask", token_key="input_ids",
        float32_keys=("mlm_logits", "nsp_logits"))


def test_encoder_optional_outputs():
    encoder = BertEncoder(CONFIG, output_hidden_states=True, output_attentions=True)
    out = encoder(encoder_inputs(2, 7))
    assert len(out["hidden_states"]) == CONFIG.num_hidden_layers + 1
    np.testing.assert_allclose(out["hidden_states"][-1], out["sequence_output"])
    assert len(out["attentions"]) == CONFIG.num_hidden_layers
    probs = np.asarray(out["attentions"][0])
    assert probs.shape == (2, 4, 7, 7)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert set(BertEncoder(CONFIG)(encoder_inputs(1, 3))) == {"sequence_output",
                                                             "pooled_output"}


def test_bidirectional_context():
    """A token's output depends on tokens to its right as well as its left."""
    encoder = BertEncoder(CONFIG)
    x = encoder_inputs(1, 8)
    changed = {k: np.array(v) for k, v in x.items()}
    changed["token_ids"][0, 6] = (changed["token_ids"][0, 6] % 58) + 1
    before = np.asarray(encoder(x)["sequence_output"])[0, 2]
    after = np.asarray(encoder(changed)["sequence_output"])[0, 2]
    assert not np.allclose(before, after)


def test_mlm_head_is_tied_to_token_embedding():
    model = BertPretrainer(BertEncoder(CONFIG))
    model(pretrainer_inputs(1, 8))
    table = model.encoder.token_embedding.embeddings
    refs = [v for v in model.weights if v is table]
    assert len(refs) == 1  # one variable, shared, not a copy
    assert model.mlm_head.token_embedding.embeddings is table


def test_fit_learns_a_fixed_batch():
    model = BertPretrainer(BertEncoder(CONFIG.replace(hidden_dropout_prob=0.0,
                                                      attention_probs_dropout_prob=0.0)))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = tf.data.Dataset.from_tensor_slices(pretrainer_inputs(8, 12)).batch(8).repeat(40)
    history = model.fit(data, epochs=1, verbose=0).history
    assert set(history) >= {"loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy"}
    metrics = model.evaluate(tf.data.Dataset.from_tensor_slices(pretrainer_inputs(8, 12))
                             .batch(8), verbose=0, return_dict=True)
    assert metrics["loss"] < 0.5 * (np.log(60) + np.log(2))
    assert metrics["mlm_accuracy"] > 0.9 and metrics["nsp_accuracy"] > 0.9


def test_mlm_loss_ignores_padding_predictions():
    model = BertPretrainer(BertEncoder(CONFIG))
    x = pretrainer_inputs(2, 10)
    out = model(x)
    y = dict(x, masked_lm_ids=np.array(x["masked_lm_ids"]))
    y["masked_lm_ids"][:, 2] = (y["masked_lm_ids"][:, 2] % 58) + 1  # weight-0 slot
    np.testing.assert_allclose(pretraining_losses(x, out)["mlm_loss"],
                               pretraining_losses(y, out)["mlm_loss"], rtol=1e-6)


def test_accuracies_count_the_weighted_top1_hits_in_one_argmax_pass():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 50)).astype("float32")
    labels = rng.integers(0, 50, size=(3, 4)).astype("int32")
    labels[0, :2] = logits[0, :2].argmax(-1)          # two sure hits
    weights = np.ones((3, 4), "float32")
    weights[2, 3] = 0.0                                 # a padding prediction
    labels[2, 3] = logits[2, 3].argmax(-1)            # a hit that must not count
    nsp = rng.normal(size=(3, 2)).astype("float32")
    features = {"masked_lm_ids": labels, "masked_lm_weights": weights,
                "next_sentence_labels": np.array([[0], [1], [1]], "int32")}
    got = pretraining_losses(features, {"mlm_logits": logits, "nsp_logits": nsp})
    hits = (logits.argmax(-1) == labels) * weights
    assert float(got["mlm_accuracy"]) == pytest.approx(hits.sum() / (weights.sum() + 1e-5))
    assert float(got["nsp_accuracy"]) == pytest.approx(np.mean(nsp.argmax(-1) == [0, 1, 1]))
    # One ArgMax over the logits, not Keras' -0.0 rewrite (five more passes over them).
    graph = tf.function(pretraining_losses).get_concrete_function(
        {k: tf.TensorSpec(np.shape(v), tf.as_dtype(np.asarray(v).dtype))
         for k, v in features.items()},
        {"mlm_logits": tf.TensorSpec((3, 4, 50)), "nsp_logits": tf.TensorSpec((3, 2))}).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("ArgMax") == 2 and "BitwiseAnd" not in types and "SelectV2" not in types


def test_model_directory_layout(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                               + [f"w{i}" for i in range(55)]) + "\n")
    model = BertPretrainer(BertEncoder(CONFIG))
    model(pretrainer_inputs(1, 8))
    out_dir = tmp_path / "model"
    kbert.save_pretrained(model, str(out_dir), vocab_file=str(vocab))
    assert sorted(os.listdir(out_dir)) == [".kbert-output.json", "config.json",
                                           "model.weights.h5", "vocab.txt"]
    config = json.loads((out_dir / "config.json").read_text())
    assert BertConfig.from_dict(config) == CONFIG  # readable by Google/HF-style tools
    assert config["kbert"]["class_name"] == "BertPretrainer"
    # Saving again replaces the directory atomically; a failed save leaves it intact.
    before = (out_dir / "model.weights.h5").read_bytes()
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        kbert.save_pretrained(model, str(out_dir), vocab_file=str(tmp_path / "nope.txt"))
    assert (out_dir / "model.weights.h5").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model", "vocab.txt"]
    # A directory kbert did not write is refused; with overwrite the user's files stay.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not written by kbert"):
        kbert.save_pretrained(model, str(foreign), vocab_file=str(vocab))
    kbert.save_pretrained(model, str(foreign), vocab_file=str(vocab), overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(OutputError, match="contains the input"):
        kbert.save_pretrained(model, str(tmp_path), vocab_file=str(vocab), overwrite=True)


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        kbert.load(str(tmp_path / "absent"))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(ValueError, match="kbert.convert"):
        kbert.load(str(tmp_path / "hf"))


def test_longer_than_max_positions_fails_clearly():
    encoder = BertEncoder(CONFIG)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        encoder(encoder_inputs(1, CONFIG.max_position_embeddings + 1))


def test_tokenizer_comes_from_the_model_directory(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s"]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(tokens) + "\n")
    config = CONFIG.replace(vocab_size=len(tokens))
    kbert.save_pretrained(BertEncoder(config), str(tmp_path / "m"), vocab_file=str(vocab),
                          do_lower_case=True)
    tokenizer = kbert.load_tokenizer(str(tmp_path / "m"))
    assert tokenizer.vocab == tokens and tokenizer.lower_case
    assert tokenizer.tokenize(["Hello Worlds"]).to_list() == [[5, 6, 7]]


def test_damaged_model_directories_are_named_errors(tmp_path):
    """Old code: a short vocab.txt loaded (index errors at inference), a truncated weights
    file gave a bare h5py message, a missing field went unnoticed."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(55)]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(tokens) + "\n")
    good = tmp_path / "good"
    kbert.save_pretrained(BertEncoder(CONFIG), str(good), vocab_file=str(vocab))

    def damaged(name, change):
        directory = tmp_path / name
        shutil.copytree(good, directory)
        change(directory)
        return str(directory)

    short_vocab = damaged("vocab", lambda d: (d / "vocab.txt").write_text(
        "\n".join(tokens[:-10]) + "\n"))
    for loader in (kbert.load, kbert.load_tokenizer):
        with pytest.raises(ValueError, match=r"vocab.txt has 50 tokens but .*config.json says "
                                             r"vocab_size 60"):
            loader(short_vocab)

    def truncate(d):
        data = (d / "model.weights.h5").read_bytes()
        (d / "model.weights.h5").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"model.weights.h5 does not match the checksum in .*config.json .*damaged or truncated"):
        kbert.load(damaged("weights", truncate))

    def drop_field(d):
        config = json.loads((d / "config.json").read_text())
        del config["hidden_size"]
        (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json: missing config field 'hidden_size'"):
        kbert.load(damaged("field", drop_field))

    def bad_field(d):
        config = json.loads((d / "config.json").read_text())
        config["num_attention_heads"] = 5
        (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json"):
        kbert.load(damaged("heads", bad_field))


def test_a_disk_too_full_for_the_weights_is_refused_before_h5py_writes(tmp_path, monkeypatch):
    """Old code: h5py failed mid-write on a full disk, and kbert.convert once ended in a
    segmentation fault (reproduced on a 400 KiB tmpfs); now the room is checked first."""
    import collections

    from kbert import outputs
    encoder = BertEncoder(CONFIG)
    kbert.save_pretrained(encoder, str(tmp_path / "m"))
    before = (tmp_path / "m" / "model.weights.h5").read_bytes()
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: usage(10 ** 9, 0, 50_000))
    with pytest.raises(OutputError, match=r"cannot write .*m: No space left on device "
                                          r"\(needs about .*, 49 KiB free\)"):
        kbert.save_pretrained(encoder, str(tmp_path / "m"))
    assert (tmp_path / "m" / "model.weights.h5").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m"]
