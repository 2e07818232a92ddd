"""Keras task model -> `.tflite` bytes, in one of five modes, with LiteRT builtins only.

Modes: `fp32`; `fp16` (float16 weights); `dynamic_int8` (int8 weights — one scale per
output channel for every matmul, per vocabulary row for the token embeddings — and float
activations quantized on the fly; built with ai-edge-quantizer, whose per-channel dynamic
recipe kept 99.4% top-1 agreement on the fortunes student where the converter's own
dynamic-range mode kept 98.2%); `full_int8` (int8 weights and activations, calibrated on a
representative dataset; inputs stay int32 ids and outputs float32, and ops without int8
kernels stay float: that is the choice made here); `qat` (a model fine-tuned with
fake-quant nodes, see `kbert.export.qat`, then converted like `full_int8`: the converter
keeps the fake-quant ranges of the Dense inputs and the weights it quantizes already lie
on the int8 grid they were trained on; grappler folds fake-quant of a constant kernel into
a float constant, so without calibration the FC kernels would stay float).

The conversion goes through a SavedModel (`from_saved_model`; `from_keras_model` fails on
kbert's dict-input models). Quantized modes trace the model with the attention mask's
additive value clipped to `QUANTIZED_MASK_VALUE` (−120 instead of −10 000): calibration
sets one int8 scale per tensor from its observed range, and a score tensor spanning
[−10 000, 10] leaves ~40 units per int8 step, so every real attention score rounds to the
same value. exp(−120) ≈ 1e-52 still removes padded keys completely.

Example:
    >>> data = convert(module, "dynamic_int8")                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
import tempfile

import tensorflow as tf
import tensorflow_text as tf_text

from kbert import console
from kbert.export import flatbuffer
from kbert.export.int8_embeddings import int8_token_embeddings
from kbert.export.task_model import ExportError
from kbert.layers import attention

MODES = ("fp32", "fp16", "dynamic_int8", "full_int8", "qat")
QUANTIZED_MODES = ("fp16", "dynamic_int8", "full_int8", "qat")
QUANTIZED_MASK_VALUE = -120.0
# tensorflow-text's LiteRT custom ops (registered by tensorflow_text.tflite_registrar).
TFTEXT_CUSTOM_OPS = frozenset({
    "FastBertNormalize", "FastWordpieceTokenize", "FastWordpieceTokenizeWithOffsets",
    "FastWordpieceDetokenize", "WhitespaceTokenize", "NgramsStringJoin", "ByteSplit",
    "ByteSplitByOffsets", "FastSentencepieceTokenize", "FastSentencepieceDetokenize",
    "RoundRobinGenerateMasks", "RoundRobinTrim", "SentenceFragmenterV2", "Utf8Binarize",
    "RaggedTensorToTensor"})


class FlexOpsError(ExportError):
    """The graph needs ops outside LiteRT's builtins (Flex / Select TF ops)."""


@contextlib.contextmanager
def attention_mask_value(value: float):
    """Trace attention with another additive mask value (see the module docstring)."""
    saved = attention.MASK_VALUE
    attention.MASK_VALUE = value
    try:
        yield
    finally:
        attention.MASK_VALUE = saved


def check_builtin_ops(data: bytes, allowed_custom=TFTEXT_CUSTOM_OPS) -> dict:
    """Raise `FlexOpsError` listing every op that is Flex or an unknown custom op;
    return the op counts otherwise."""
    counts = flatbuffer.op_names(data)
    foreign = {name: n for name, n in counts.items()
               if name.startswith("Flex") or (name not in flatbuffer._BUILTIN_NAMES.values()
                                              and name not in allowed_custom)}
    if foreign:
        listed = ", ".join(f"{name} ×{n}" for name, n in sorted(foreign.items()))
        raise FlexOpsError(f"the converted graph needs ops LiteRT's builtins lack "
                           f"(Flex/Select TF or unknown custom ops): {listed}")
    return dict(counts)


def _flex_ops_in_message(message: str) -> list:
    ops = re.findall(r"\btf\.(\w+)", message) + re.findall(r"'(Flex\w+)'", message)
    return sorted(set(ops))


def _configure(converter, mode, representative_dataset, has_custom_ops):
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    # Weights become constants (resource variables would need an initializer call in
    # every app and stay float in quantized modes).
    converter.experimental_enable_resource_variables = False
    converter.allow_custom_ops = has_custom_ops
    if has_custom_ops:  # calibration runs the strings signature too
        converter.target_spec._experimental_custom_op_registerers = list(
            tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
    if mode == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode in ("full_int8", "qat"):
        if representative_dataset is None:
            raise ExportError(f"mode {mode} needs a representative dataset "
                              "(--representative_file)")
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]


# Ops kept float in full_int8 / qat (the matmuls — FULLY_CONNECTED, BATCH_MATMUL, the
# compute — run int8). Quantizing these too cost the fortunes student 7 accuracy points
# (LayerNorm statistics, softmax and GELU outputs, and the residual stream's outlier
# dimensions do not fit one int8 scale per tensor).
FLOAT_OPS = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT", "SOFTMAX", "GELU", "TANH", "ADD", "SUB",
             "MUL", "NEG")


def _selective_quantize(converter, float_ops) -> bytes:
    """Calibrate, then quantize every op except `float_ops`."""
    from tensorflow.lite.python.convert import mlir_quantize
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    return mlir_quantize(calibrated, denylisted_ops=list(float_ops))


def dynamic_int8_matmuls(data: bytes) -> bytes:
    """A float `.tflite` with every FULLY_CONNECTED weight int8 per output channel and
    dynamically quantized activations (ai-edge-quantizer's dynamic_wi8_afp32 recipe)."""
    from ai_edge_quantizer import quantizer, recipe
    quant = quantizer.Quantizer(bytearray(data), recipe.dynamic_wi8_afp32())
    return bytes(quant.quantize(enable_progress_bar=False,
                                 enable_progress_report=False).quantized_model)


def convert(module, mode: str, representative_dataset=None, float_ops=FLOAT_OPS) -> bytes:
    """Convert an `ExportModule` to `.tflite` bytes (builtin ops checked). In `full_int8`
    and `qat`, `float_ops` stay float (empty: quantize everything the converter can)."""
    with console.litert_quiet():
        return _convert(module, mode, representative_dataset, float_ops)


def _convert(module, mode, representative_dataset, float_ops) -> bytes:
    if mode not in MODES:
        raise ExportError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "dynamic_int8":
        with int8_token_embeddings(module.model):
            data = _convert(module, "fp32", None, ())
        data = dynamic_int8_matmuls(data)
        check_builtin_ops(data)
        return data
    mask_value = QUANTIZED_MASK_VALUE if mode in ("full_int8", "qat") else attention.MASK_VALUE
    with tempfile.TemporaryDirectory(prefix="kbert_export_") as saved_model, \
            attention_mask_value(mask_value):
        signatures = module.save(saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model, signature_keys=list(signatures))
        _configure(converter, mode, representative_dataset, module.tokenizer is not None)
        try:
            if mode in ("full_int8", "qat") and float_ops:
                data = _selective_quantize(converter, float_ops)
            else:
                data = converter.convert()
        except Exception as e:  # noqa: BLE001 - the converter raises several types
            message = str(e)
            if "Flex" in message or "Select TF" in message or "not supported" in message:
                ops = _flex_ops_in_message(message)
                raise FlexOpsError(
                    f"mode {mode} cannot be met with LiteRT builtin ops; the graph needs "
                    f"{', '.join(ops) or 'unsupported ops'} (converter: "
                    f"{message.strip().splitlines()[0][:200]})") from e
            raise
    check_builtin_ops(data)
    return data
