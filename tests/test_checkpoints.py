"""Checkpoint import: formats, the shared name map, refusals that name tensors, the CLI."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import kbert
from kbert.checkpoints import (CheckpointError, CheckpointMismatchError, detect_format,
                               import_checkpoint, import_google, import_huggingface)
from kbert.checkpoints.google import google_do_lower_case
from kbert.checkpoints.mapping import (canonical_huggingface_name, google_to_canonical,
                                       weight_targets)
from kbert.configs import ConfigError
from kbert.convert import main as convert_main

NUM_LAYERS = 2


# ------------------------------------------------------------------------- fixtures
def tiny_hf_config(**overrides):
    values = dict(vocab_size=99, hidden_size=32, num_hidden_layers=NUM_LAYERS,
                  num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
    values.update(overrides)
    return transformers.BertConfig(**values)


def random_hf_model(seed=0, **config_overrides):
    model = transformers.BertForPreTraining(tiny_hf_config(**config_overrides))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2
                        + (1.0 if "LayerNorm.weight" in name else 0.0))
    return model.eval()


def write_vocab(path, size=99):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(size - 5)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")


@pytest.fixture(scope="module")
def hf_model():
    return random_hf_model()


@pytest.fixture(scope="module")
def state(hf_model):
    """The Hugging Face state dict as numpy arrays (keys with the `bert.` prefix)."""
    return {k: v.detach().numpy().copy() for k, v in hf_model.state_dict().items()}


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("hf"))
    hf_model.save_pretrained(directory)
    write_vocab(os.path.join(directory, "vocab.txt"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False}, f)
    return directory


@pytest.fixture(scope="module")
def reference_model(hf_dir):
    return import_huggingface(hf_dir)


def sample_features(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 99, size=(2, 9)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids * mask, "input_mask": mask,
            "segment_ids": (np.arange(9)[None] >= 4).astype("int32") * mask,
            "masked_lm_positions": np.array([[1, 3, 8], [0, 2, 5]], "int32")}


def max_output_diff(model_a, model_b, features=None):
    features = features or sample_features()
    a, b = model_a(features), model_b(features)
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)


def assert_same_weights(model_a, model_b):
    wa, wb = model_a.get_weights(), model_b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def write_hf_dir(directory, tensors, config=None, vocab=True):
    os.makedirs(directory, exist_ok=True)
    safetensors_numpy.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                                os.path.join(directory, "model.safetensors"))
    (config or tiny_hf_config()).save_pretrained(directory)
    if vocab:
        write_vocab(os.path.join(directory, "vocab.txt"))
    return directory


# ---------------------------------------------------------------- Google checkpoints
def google_variables(state):
    """google-research/bert's variable names for a Hugging Face state dict, written out
    independently of kbert's map (modeling.py's scopes; kernels are [in, out])."""
    out = {}

    def dense(google, hf):
        out[f"{google}/kernel"] = state[f"{hf}.weight"].T
        out[f"{google}/bias"] = state[f"{hf}.bias"]

    def norm(google, hf):
        out[f"{google}/LayerNorm/gamma"] = state[f"{hf}.LayerNorm.weight"]
        out[f"{google}/LayerNorm/beta"] = state[f"{hf}.LayerNorm.bias"]

    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"bert/embeddings/{table}"] = state[f"bert.embeddings.{table}.weight"]
    norm("bert/embeddings", "bert.embeddings")
    for i in range(NUM_LAYERS):
        g, h = f"bert/encoder/layer_{i}", f"bert.encoder.layer.{i}"
        for part in ("query", "key", "value"):
            dense(f"{g}/attention/self/{part}", f"{h}.attention.self.{part}")
        dense(f"{g}/attention/output/dense", f"{h}.attention.output.dense")
        norm(f"{g}/attention/output", f"{h}.attention.output")
        dense(f"{g}/intermediate/dense", f"{h}.intermediate.dense")
        dense(f"{g}/output/dense", f"{h}.output.dense")
        norm(f"{g}/output", f"{h}.output")
    dense("bert/pooler/dense", "bert.pooler.dense")
    dense("cls/predictions/transform/dense", "cls.predictions.transform.dense")
    norm("cls/predictions/transform", "cls.predictions.transform")
    out["cls/predictions/output_bias"] = state["cls.predictions.bias"]
    out["cls/seq_relationship/output_weights"] = state["cls.seq_relationship.weight"]  # [2, H]
    out["cls/seq_relationship/output_bias"] = state["cls.seq_relationship.bias"]
    return out


def write_google_checkpoint(directory, variables, hidden_act="gelu"):
    """A TF1 checkpoint as google-research/bert's run_pretraining.py writes one."""
    import tensorflow as tf
    os.makedirs(directory, exist_ok=True)
    with tf.Graph().as_default():
        tf_vars = [tf.compat.v1.Variable(np.asarray(v), name=name)
                   for name, v in variables.items()]
        saver = tf.compat.v1.train.Saver(tf_vars)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.path.join(directory, "bert_model.ckpt"))
    config = tiny_hf_config().to_dict()
    google_keys = ("attention_probs_dropout_prob", "hidden_dropout_prob", "hidden_size",
                   "initializer_range", "intermediate_size", "max_position_embeddings",
                   "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size")
    config = {k: config[k] for k in google_keys}
    config["hidden_act"] = hidden_act
    with open(os.path.join(directory, "bert_config.json"), "w") as f:
        json.dump(config, f)
    write_vocab(os.path.join(directory, "vocab.txt"))
    return directory


@pytest.fixture(scope="module")
def google_dir(state, tmp_path_factory):
    variables = google_variables(state)
    # Training state that run_pretraining.py saves beside the weights.
    variables["bert/pooler/dense/kernel/adam_m"] = np.zeros_like(
        variables["bert/pooler/dense/kernel"])
    variables["bert/pooler/dense/kernel/adam_v"] = np.zeros_like(
        variables["bert/pooler/dense/kernel"])
    variables["global_step"] = np.array(1000, np.int64)
    return write_google_checkpoint(str(tmp_path_factory.mktemp("uncased_L-2_H-32_A-4")),
                                   variables)


def test_google_checkpoint_has_google_names(google_dir):
    import tensorflow as tf
    names = dict(tf.train.list_variables(os.path.join(google_dir, "bert_model.ckpt")))
    assert names["bert/encoder/layer_0/attention/self/query/kernel"] == [32, 32]
    assert names["cls/seq_relationship/output_weights"] == [2, 32]
    assert names["cls/predictions/output_bias"] == [99]
    assert "global_step" in names


def test_google_import_equals_huggingface_import(google_dir, reference_model):
    assert detect_format(google_dir) == "google"
    model = import_google(google_dir, hidden_act="gelu")  # Hugging Face's exact GELU
    assert type(model).__name__ == "BertPretrainer"
    assert_same_weights(model, reference_model)
    assert max_output_diff(model, reference_model) == 0.0


def test_google_prefix_path_and_default_tanh_gelu(google_dir, hf_dir):
    """"gelu" in bert_config.json is google-research/bert's tanh form = HF "gelu_new"."""
    model = import_checkpoint(os.path.join(google_dir, "bert_model.ckpt.index"))
    assert model.config.hidden_act == "gelu_approximate"
    reference = transformers.BertForPreTraining.from_pretrained(
        hf_dir, hidden_act="gelu_new").eval()
    features = sample_features()
    with torch.no_grad():
        out = reference(input_ids=torch.from_numpy(features["input_ids"]).long(),
                        attention_mask=torch.from_numpy(features["input_mask"]).long(),
                        token_type_ids=torch.from_numpy(features["segment_ids"]).long())
    nsp_diff = np.max(np.abs(np.asarray(model(features)["nsp_logits"])
                             - out.seq_relationship_logits.numpy()))
    assert nsp_diff <= 1e-4
    same_activation = import_huggingface(hf_dir, hidden_act="gelu_approximate")
    assert max_output_diff(model, same_activation, features) == 0.0


def test_google_name_map():
    assert google_to_canonical("bert/encoder/layer_11/output/LayerNorm/beta") == (
        "encoder.layer.11.output.LayerNorm.bias", False)
    assert google_to_canonical("bert/embeddings/word_embeddings") == (
        "embeddings.word_embeddings.weight", False)
    assert google_to_canonical("cls/predictions/transform/dense/kernel") == (
        "cls.predictions.transform.dense.weight", True)
    assert canonical_huggingface_name("bert.embeddings.LayerNorm.beta") == \
        "embeddings.LayerNorm.bias"


def test_google_missing_tensor_is_named_in_both_spellings(state, tmp_path):
    variables = google_variables(state)
    del variables["bert/encoder/layer_1/intermediate/dense/kernel"]
    variables["bert/encoder/layer_1/intermediate/extra/kernel"] = np.zeros((3, 3), "float32")
    directory = write_google_checkpoint(str(tmp_path / "g"), variables)
    with pytest.raises(CheckpointMismatchError) as error:
        import_google(directory)
    message = str(error.value)
    assert "encoder.layer.1.intermediate.dense.weight" in message
    assert "bert/encoder/layer_1/intermediate/extra/kernel" in message
    assert "bert_model.ckpt" in message


def test_google_casing_from_release_names():
    assert google_do_lower_case("/x/uncased_L-12_H-768_A-12") is True
    assert google_do_lower_case("/x/multi_cased_L-12_H-768_A-12/") is False
    assert google_do_lower_case("/x/my_cased_model") is None


# -------------------------------------------------------------- Hugging Face variants
def test_pytorch_bin_with_legacy_names_equals_safetensors(state, reference_model, tmp_path):
    legacy = {}
    for name, value in state.items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta")
        legacy[name] = torch.from_numpy(value)
    legacy["cls.predictions.decoder.weight"] = legacy["bert.embeddings.word_embeddings.weight"]
    legacy["cls.predictions.decoder.bias"] = legacy["cls.predictions.bias"]
    legacy["bert.embeddings.position_ids"] = torch.arange(64)[None]
    torch.save(legacy, str(tmp_path / "pytorch_model.bin"))
    tiny_hf_config().save_pretrained(str(tmp_path))
    model = import_huggingface(str(tmp_path))
    assert_same_weights(model, reference_model)


def test_untied_decoder_is_refused(state, tmp_path):
    tensors = dict(state)
    tensors["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"] + 1
    write_hf_dir(str(tmp_path), tensors)
    with pytest.raises(CheckpointMismatchError,
                       match="cls.predictions.decoder.weight differs from embeddings"):
        import_huggingface(str(tmp_path))


def test_bfloat16_and_sharded_safetensors(state, tmp_path):
    import tensorflow as tf
    from safetensors.tensorflow import save_file
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[:10],
              "model-00002-of-00002.safetensors": names[10:]}
    for shard, keys in shards.items():
        save_file({k: tf.cast(state[k], tf.bfloat16) for k in keys}, str(tmp_path / shard))
    with open(tmp_path / "model.safetensors.index.json", "w") as f:
        json.dump({"weight_map": {k: s for s, keys in shards.items() for k in keys}}, f)
    tiny_hf_config().save_pretrained(str(tmp_path))
    model = import_huggingface(str(tmp_path))
    targets = weight_targets(model)
    value = np.asarray(targets["encoder.layer.1.output.dense.weight"].variable).T
    expected = state["bert.encoder.layer.1.output.dense.weight"]
    np.testing.assert_array_equal(value, tf.cast(tf.cast(expected, tf.bfloat16), tf.float32))


def test_encoder_only_checkpoint_gives_encoder(state, reference_model, tmp_path):
    tensors = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
    model = import_huggingface(write_hf_dir(str(tmp_path), tensors))
    assert type(model).__name__ == "BertEncoder"
    assert_same_weights(model, reference_model.encoder)
    with pytest.raises(CheckpointMismatchError, match="cls.seq_relationship.weight"):
        import_huggingface(str(tmp_path), heads="pretraining")


def test_heads_can_be_dropped_deliberately(hf_dir, reference_model):
    model = import_huggingface(hf_dir, heads="encoder")
    assert type(model).__name__ == "BertEncoder"
    assert_same_weights(model, reference_model.encoder)


# ------------------------------------------------------------------------ refusals
def test_every_mismatch_is_refused_and_named_at_once(state, tmp_path):
    tensors = {k: v for k, v in state.items() if not k.startswith("cls.predictions.decoder")}
    del tensors["bert.encoder.layer.1.output.dense.bias"]
    tensors["bert.encoder.layer.2.output.dense.bias"] = np.zeros(32, "float32")
    tensors["classifier.weight"] = np.zeros((3, 32), "float32")
    tensors["bert.embeddings.word_embeddings.weight"] = np.zeros((100, 32), "float32")
    tensors["bert.pooler.dense.bias"] = np.full(32, np.nan, "float32")
    write_hf_dir(str(tmp_path), tensors)
    with pytest.raises(CheckpointMismatchError) as error:
        import_huggingface(str(tmp_path))
    e = error.value
    assert e.missing == ["encoder.layer.1.output.dense.bias"]
    assert e.unexpected == ["classifier.weight", "encoder.layer.2.output.dense.bias"]
    assert e.mismatched == {"embeddings.word_embeddings.weight": ((100, 32), (99, 32))}
    assert e.invalid == ["pooler.dense.bias"]
    message = str(e)
    for name in ("encoder.layer.1.output.dense.bias", "classifier.weight",
                 "encoder.layer.2.output.dense.bias", "[100, 32]", "[99, 32]",
                 "pooler.dense.bias", "ignore_unexpected",
                 os.path.join(str(tmp_path), "model.safetensors")):
        assert name in message


def test_extra_tensors_can_be_dropped_deliberately(state, reference_model, tmp_path):
    tensors = dict(state)
    tensors["bert.encoder.layer.2.output.dense.bias"] = np.zeros(32, "float32")
    tensors["classifier.weight"] = np.zeros((3, 32), "float32")
    write_hf_dir(str(tmp_path), tensors)
    model = import_huggingface(str(tmp_path),
                               ignore_unexpected=["classifier.*", "encoder.layer.2.*"])
    assert_same_weights(model, reference_model)


def test_many_missing_tensors_are_counted(state, tmp_path):
    tensors = {k: v for k, v in state.items() if ".encoder." not in k}
    write_hf_dir(str(tmp_path), tensors)
    with pytest.raises(CheckpointMismatchError) as error:
        import_huggingface(str(tmp_path))
    count = len([k for k in state if ".encoder." in k])
    assert len(error.value.missing) == count
    assert f"{count} missing tensors" in str(error.value)
    assert f"and {count - 20} more" in str(error.value)


def test_missing_pooler_needs_explicit_permission(state, reference_model, tmp_path):
    tensors = {k[len("bert."):]: v for k, v in state.items()
               if k.startswith("bert.") and "pooler" not in k}
    write_hf_dir(str(tmp_path), tensors)
    with pytest.raises(CheckpointMismatchError, match="allow_missing"):
        import_huggingface(str(tmp_path))
    model = import_huggingface(str(tmp_path), allow_missing=["pooler.*"])
    ours = dict(zip([w.path for w in model.weights], model.get_weights()))
    theirs = dict(zip([w.path for w in reference_model.encoder.weights],
                      reference_model.encoder.get_weights()))
    for path, value in ours.items():
        if "pooler" in path:
            assert not np.array_equal(value, theirs[path])
        else:
            np.testing.assert_array_equal(value, theirs[path])


def test_same_tensor_under_two_names_is_refused(state, tmp_path):
    tensors = dict(state)
    tensors["pooler.dense.bias"] = state["bert.pooler.dense.bias"]
    write_hf_dir(str(tmp_path), tensors)
    with pytest.raises(CheckpointError, match="pooler.dense.bias"):
        import_huggingface(str(tmp_path))


@pytest.mark.parametrize("change, message", [
    ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
    ({"model_type": "electra"}, "model_type"),
    ({"model_type": "deberta-v2"}, "model_type"),
    ({"hidden_act": "silu"}, "hidden_act"),
])
def test_unsupported_configs_are_refused_naming_the_file(state, tmp_path, change, message):
    write_hf_dir(str(tmp_path), state)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    config.update(change)
    path.write_text(json.dumps(config))
    with pytest.raises((CheckpointError, ConfigError), match=message) as error:
        import_huggingface(str(tmp_path))
    assert str(path) in str(error.value)


def test_unknown_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        import_checkpoint(str(tmp_path))
    with pytest.raises(CheckpointError, match="not found"):
        import_checkpoint(str(tmp_path / "absent"))


# ---------------------------------------------------------------------------- CLI
def test_convert_cli_huggingface(hf_dir, reference_model, tmp_path):
    output = str(tmp_path / "converted")
    assert convert_main(["--source", hf_dir, "--output", output]) == 0
    config = json.loads(open(os.path.join(output, "config.json")).read())
    assert config["kbert"]["do_lower_case"] is False  # from tokenizer_config.json
    assert config["kbert"]["source_format"] == "huggingface"
    assert sorted(os.listdir(output)) == [".kbert-output.json", "config.json",
                                          "model.weights.h5", "vocab.txt"]
    loaded = kbert.load(output)
    assert max_output_diff(loaded, reference_model) == 0.0


def test_convert_cli_google_needs_casing(state, tmp_path, capsys):
    directory = write_google_checkpoint(str(tmp_path / "my_model"), google_variables(state))
    output = str(tmp_path / "out")
    assert convert_main(["--source", directory, "--output", output]) == 2
    assert "--do_lower_case" in capsys.readouterr().err
    assert not os.path.exists(output)
    assert convert_main(["--source", directory, "--output", output, "--heads", "encoder",
                         "--no_do_lower_case", "--no_verify"]) == 0
    loaded = kbert.load(output)
    assert type(loaded).__name__ == "BertEncoder"
    assert loaded.config.hidden_act == "gelu_approximate"


def test_convert_cli_bad_source_keeps_existing_output(tmp_path, capsys):
    output = tmp_path / "existing"
    output.mkdir()
    (output / "keep.txt").write_text("precious")
    missing = str(tmp_path / "no_such_checkpoint")
    assert convert_main(["--source", missing, "--output", str(output)]) == 2
    assert missing in capsys.readouterr().err
    assert (output / "keep.txt").read_text() == "precious"


def test_convert_cli_missing_vocab_names_the_file(state, tmp_path, capsys):
    directory = write_hf_dir(str(tmp_path / "hf"), state, vocab=False)
    assert convert_main(["--source", directory, "--output", str(tmp_path / "out"),
                         "--do_lower_case"]) == 2
    assert os.path.join(directory, "vocab.txt") in capsys.readouterr().err


def test_convert_cli_never_deletes_the_users_files(hf_dir, tmp_path, capsys):
    before = sorted(os.listdir(hf_dir))
    # Into its own source: refused (on the old code: exit 0, model.safetensors deleted).
    assert convert_main(["--source", hf_dir, "--output", hf_dir, "--overwrite"]) == 2
    assert "is the same as the input" in capsys.readouterr().err
    assert convert_main(["--source", hf_dir, "--output",
                         os.path.join(hf_dir, "converted")]) == 2
    assert sorted(os.listdir(hf_dir)) == before
    # Into a directory of the user's: refused; with --overwrite their files stay.
    output = tmp_path / "out"
    (output / "sub").mkdir(parents=True)
    (output / "notes.txt").write_text("mine")
    (output / "sub" / "x.txt").write_text("mine too")
    assert convert_main(["--source", hf_dir, "--output", str(output)]) == 2
    assert "not written by kbert" in capsys.readouterr().err
    assert sorted(os.listdir(output)) == ["notes.txt", "sub"]
    for _ in range(2):   # a second run replaces only kbert's own files
        assert convert_main(["--source", hf_dir, "--output", str(output), "--overwrite",
                             "--no_verify"]) == 0
    assert (output / "notes.txt").read_text() == "mine"
    assert (output / "sub" / "x.txt").read_text() == "mine too"
    assert type(kbert.load(str(output))).__name__ == "BertPretrainer"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_convert_cli_disk_full_keeps_previous_output(hf_dir, tmp_path, capsys, monkeypatch):
    import errno

    from kbert.models import saving
    output = str(tmp_path / "model")
    assert convert_main(["--source", hf_dir, "--output", output, "--no_verify"]) == 0
    good = open(os.path.join(output, "model.weights.h5"), "rb").read()

    def disk_full(model, directory, *args, **kwargs):
        with open(os.path.join(directory, "config.json"), "w") as f:
            f.write("{half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), directory)
    monkeypatch.setattr(saving, "write_model_files", disk_full)
    assert convert_main(["--source", hf_dir, "--output", output, "--no_verify",
                         "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kbert.convert: error: cannot write {output}: No space left on device"]
    assert open(os.path.join(output, "model.weights.h5"), "rb").read() == good
    assert type(kbert.load(output)).__name__ == "BertPretrainer"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
