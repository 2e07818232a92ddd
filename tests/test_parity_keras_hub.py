"""kbert's BertEncoder computes what keras-hub's BertBackbone computes, given the same weights.

keras-hub's BERT uses the tanh GELU (`gelu_approximate`), so these models use it too.
Two routes to "the same weights": (1) copy kbert's variables into a BertBackbone, reshaping
the attention kernels to keras-hub's einsum layout; (2) load one Hugging Face directory
with kbert's importer and with keras-hub's own converter (`BertBackbone.from_preset`).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from kbert.checkpoints import import_huggingface
from kbert.configs import BertConfig
from kbert.models import BertEncoder

TOLERANCE = 1e-5
CONFIG = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=37, max_position_embeddings=64,
                    hidden_act="gelu_approximate")


def padded_inputs(seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([12, 9, 3])
    mask = (np.arange(12)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(5, CONFIG.vocab_size, size=(3, 12)).astype("int32") * mask
    segments = (np.arange(12)[None, :] >= 5).astype("int32") * mask
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def randomize_(model, seed=1, scale=0.2):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        noise = rng.normal(0.0, scale, size=variable.shape).astype("float32")
        is_scale = variable.path.endswith("gamma")
        variable.assign(noise + (1.0 if is_scale else 0.0))
    return model


def keras_hub_backbone():
    return keras_hub.models.BertBackbone(
        vocabulary_size=CONFIG.vocab_size, num_layers=CONFIG.num_hidden_layers,
        num_heads=CONFIG.num_attention_heads, hidden_dim=CONFIG.hidden_size,
        intermediate_dim=CONFIG.intermediate_size,
        max_sequence_length=CONFIG.max_position_embeddings, num_segments=CONFIG.type_vocab_size)


def copy_kbert_into_keras_hub(encoder, backbone):
    """kbert's [hidden, hidden] projections -> keras-hub's einsum [hidden, heads, head_dim]
    (query/key/value) and [heads, head_dim, hidden] (attention output)."""
    heads, head_size = CONFIG.num_attention_heads, CONFIG.head_size
    emb = encoder.embeddings
    backbone.get_layer("token_embedding").embeddings.assign(emb.token_embedding.embeddings)
    backbone.get_layer("position_embedding").position_embeddings.assign(
        emb.position_embedding.embeddings)
    backbone.get_layer("segment_embedding").embeddings.assign(emb.segment_embedding.embeddings)
    norm = backbone.get_layer("embeddings_layer_norm")
    norm.gamma.assign(emb.layer_norm.gamma)
    norm.beta.assign(emb.layer_norm.beta)
    for i, block in enumerate(encoder.transformer_layers):
        theirs = backbone.get_layer(f"transformer_layer_{i}")
        attention = theirs._self_attention_layer
        for ours, their_dense in ((block.attention.query, attention.query_dense),
                                  (block.attention.key, attention.key_dense),
                                  (block.attention.value, attention.value_dense)):
            their_dense.kernel.assign(np.reshape(ours.kernel, (-1, heads, head_size)))
            their_dense.bias.assign(np.reshape(ours.bias, (heads, head_size)))
        attention.output_dense.kernel.assign(
            np.reshape(block.attention.output_dense.kernel, (heads, head_size, -1)))
        attention.output_dense.bias.assign(block.attention.output_dense.bias)
        for ours, their_norm in ((block.attention_layer_norm, theirs._self_attention_layer_norm),
                                 (block.feed_forward_layer_norm, theirs._feedforward_layer_norm)):
            their_norm.gamma.assign(ours.gamma)
            their_norm.beta.assign(ours.beta)
        for ours, their_dense in (
                (block.feed_forward.intermediate_dense, theirs._feedforward_intermediate_dense),
                (block.feed_forward.output_dense, theirs._feedforward_output_dense)):
            their_dense.kernel.assign(ours.kernel)
            their_dense.bias.assign(ours.bias)
    backbone.get_layer("pooled_dense").kernel.assign(encoder.pooler.kernel)
    backbone.get_layer("pooled_dense").bias.assign(encoder.pooler.bias)


def max_differences(ours, theirs, inputs):
    a, b = ours(inputs), theirs(inputs)
    real = inputs["padding_mask"].astype(bool)
    seq = np.abs(np.asarray(a["sequence_output"]) - np.asarray(b["sequence_output"]))
    pooled = np.abs(np.asarray(a["pooled_output"]) - np.asarray(b["pooled_output"]))
    return float(seq[real].max()), float(seq.max()), float(pooled.max())


def test_same_weights_copied_into_keras_hub_give_same_outputs():
    encoder = randomize_(BertEncoder(CONFIG))
    backbone = keras_hub_backbone()
    assert encoder.count_params() == backbone.count_params()
    copy_kbert_into_keras_hub(encoder, backbone)
    inputs = padded_inputs()
    seq_real, seq_all, pooled = max_differences(encoder, backbone, inputs)
    print(f"kbert vs keras-hub (copied): sequence {seq_real:.3g} (all positions "
          f"{seq_all:.3g}), pooled {pooled:.3g}")
    assert seq_real <= TOLERANCE and pooled <= TOLERANCE
    # The check can fail: one changed value in one layer is visible in the outputs.
    layer = encoder.transformer_layers[1].feed_forward.output_dense
    layer.bias.assign(np.asarray(layer.bias) + np.eye(1, CONFIG.hidden_size, 3)[0] * 1e-2)
    assert max_differences(encoder, backbone, inputs)[0] > TOLERANCE


def test_huggingface_directory_loads_the_same_in_kbert_and_keras_hub(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.BertConfig(
        vocab_size=CONFIG.vocab_size, hidden_size=CONFIG.hidden_size,
        num_hidden_layers=CONFIG.num_hidden_layers,
        num_attention_heads=CONFIG.num_attention_heads,
        intermediate_size=CONFIG.intermediate_size,
        max_position_embeddings=CONFIG.max_position_embeddings, hidden_act="gelu_new")
    hf_model = transformers.BertModel(hf_config)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in hf_model.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2
                        + (1.0 if "LayerNorm.weight" in name else 0.0))
    hf_model.save_pretrained(str(tmp_path))
    encoder = import_huggingface(str(tmp_path))
    assert encoder.config.hidden_act == "gelu_new"
    backbone = keras_hub.models.BertBackbone.from_preset(str(tmp_path))
    seq_real, seq_all, pooled = max_differences(encoder, backbone, padded_inputs(seed=3))
    print(f"kbert vs keras-hub (both from one HF directory): sequence {seq_real:.3g} "
          f"(all positions {seq_all:.3g}), pooled {pooled:.3g}")
    assert seq_real <= TOLERANCE and pooled <= TOLERANCE
