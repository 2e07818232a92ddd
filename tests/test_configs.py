import json

import pytest

from kbert.configs import BertConfig, ConfigError, NAMED_SIZES


def test_named_sizes_follow_turc_et_al():
    expected = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8),
                "medium": (8, 512, 8), "base": (12, 768, 12), "large": (24, 1024, 16)}
    for name, (layers, hidden, heads) in expected.items():
        cfg = BertConfig.named(name)
        assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (
            layers, hidden, heads)
        assert cfg.intermediate_size == 4 * hidden
    assert set(NAMED_SIZES) == set(expected)


def test_json_round_trip_and_file(tmp_path):
    cfg = BertConfig.named("mini", vocab_size=1234, hidden_dropout_prob=0.0)
    assert BertConfig.from_json(cfg.to_json()) == cfg
    path = tmp_path / "config.json"
    cfg.save(str(path))
    assert BertConfig.from_json(str(path)) == cfg


def test_reads_google_and_huggingface_files(tmp_path):
    google = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
              "intermediate_size": 3072, "max_position_embeddings": 512,
              "num_attention_heads": 12, "num_hidden_layers": 12, "type_vocab_size": 2,
              "vocab_size": 30522}
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(google))
    assert BertConfig.from_json(str(path)) == BertConfig.named("base")
    hf = dict(google, architectures=["BertModel"], model_type="bert", layer_norm_eps=1e-7)
    assert BertConfig.from_dict(hf).layer_norm_eps == 1e-7
    with pytest.raises(ConfigError, match="architectures"):
        BertConfig.from_dict(hf, strict=True)


@pytest.mark.parametrize("changes, message", [
    (dict(hidden_size=100, num_attention_heads=3), "divisible by num_attention_heads"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(num_hidden_layers=2.5), "num_hidden_layers"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
    (dict(hidden_act="swishy"), "hidden_act"),
    (dict(layer_norm_eps=-1.0), "layer_norm_eps"),
])
def test_invalid_values_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        BertConfig(**changes)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found: .*missing.json"):
        BertConfig.from_json(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"hidden_size": 64,\n "num_attention_heads": }')
    with pytest.raises(ConfigError, match=r"bad.json is not valid JSON \(line 2"):
        BertConfig.from_json(str(bad))
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"hidden_size": 100, "num_attention_heads": 3}')
    with pytest.raises(ConfigError, match="wrong.json"):
        BertConfig.from_json(str(wrong))


def test_unknown_size_lists_choices():
    with pytest.raises(ConfigError, match="tiny"):
        BertConfig.named("gigantic")
