"""The peer runtime: the same kbert classifier as ONNX (via PyTorch `transformers`), run by
ONNX Runtime in fp32 and with `quantize_dynamic` int8 weights.

The kbert weights are copied into a Hugging Face `BertForSequenceClassification` (the name
map of `kbert.checkpoints.mapping`, inverted), checked to give the same logits, then
exported with `torch.onnx.export` (dynamic batch and length).

Example:
    >>> export_onnx(model, "student.onnx")                                 # doctest: +SKIP
    >>> quantize_onnx_dynamic("student.onnx", "student_int8.onnx")         # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from kbert.checkpoints.mapping import weight_targets
from kbert.distillation.students import encoder_of


def huggingface_classifier(model):
    """A `transformers.BertForSequenceClassification` holding `model`'s weights."""
    import torch
    import transformers
    encoder = encoder_of(model)
    config = encoder.config
    if config.family != "bert":
        raise ValueError(f"the ONNX peer maps BERT classifiers only; this model is "
                         f"{config.family}")
    head = model.get_layer("classifier")
    kernel, bias = (np.asarray(w) for w in head.weights)
    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, hidden_act=config.hidden_act,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size, layer_norm_eps=config.layer_norm_eps,
        num_labels=kernel.shape[1], attn_implementation="eager")
    hf = transformers.BertForSequenceClassification(hf_config).eval()
    state = {"bert." + name: torch.from_numpy(np.ascontiguousarray(
        np.asarray(t.variable).T if t.transpose else np.asarray(t.variable)))
        for name, t in weight_targets(encoder).items()}
    state["classifier.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.T))
    state["classifier.bias"] = torch.from_numpy(bias)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"weights did not map onto BertForSequenceClassification: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return hf


def export_onnx(model, path: str, check_inputs: dict | None = None, opset: int = 17) -> float:
    """Write `model` as ONNX; returns the max |logit difference| vs Keras on a check batch."""
    import torch
    hf = huggingface_classifier(model)
    rng = np.random.default_rng(0)
    ids = check_inputs["input_ids"] if check_inputs else rng.integers(
        1000, 2000, size=(2, 16)).astype(np.int64)
    mask = check_inputs["attention_mask"] if check_inputs else np.ones_like(ids)
    args = tuple(torch.from_numpy(np.asarray(a, np.int64)) for a in
                 (ids, mask, np.zeros_like(ids)))
    with torch.no_grad():
        torch_logits = hf(*args).logits.numpy()
        torch.onnx.export(
            hf, args, path, input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"], opset_version=opset, dynamo=False,
            dynamic_axes={name: {0: "batch", 1: "length"} for name in
                          ("input_ids", "attention_mask", "token_type_ids")} |
            {"logits": {0: "batch"}})
    keras_out = model({"token_ids": np.asarray(ids, np.int32),
                       "segment_ids": np.zeros_like(ids, np.int32),
                       "padding_mask": np.asarray(mask, np.int32)})
    keras_logits = np.asarray(keras_out["logits"] if isinstance(keras_out, dict) else keras_out)
    return float(np.max(np.abs(keras_logits - torch_logits)))


def quantize_onnx_dynamic(source: str, target: str) -> None:
    """ONNX Runtime's dynamic quantization as its users run it at its best: int8 weights
    with one scale per output channel (as kbert's `dynamic_int8` and LiteRT's converter
    quantize), activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
