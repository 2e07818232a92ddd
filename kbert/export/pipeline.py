"""One call from a fine-tuned model directory to a verified `.tflite` at its final path.

Steps: load the task model → (mode `qat`: fake-quant fine-tune) → SavedModel → LiteRT
conversion with builtin ops only → metadata inside (the standard TFLite Model Metadata too
for the app-ready signature) → verification of those bytes on held-out examples → the
report added to kbert's metadata, the final bytes checked to give the verified outputs
exactly → atomic write. Nothing reaches `output` unless every step passed.

Example:
    >>> report = export_tflite("runs/fortunes/model", "fortunes.tflite", "full_int8",
    ...                        representative=(texts, None), validation=(texts, labels))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np

from kbert import outputs
from kbert.export import converter, flatbuffer, metadata, qat
from kbert.export.labelled import batches, encode_texts, label_ids
from kbert.export.signatures import ExportModule
from kbert.distillation.students import encoder_of
from kbert.export.task_model import (ExportError, load_task_model, read_task_info,
                                     task_tokenizer)
from kbert.export.verify import Thresholds, keras_logits, verify_tflite


# What the file's signature is: `app` (MediaPipe Tasks' TextClassifier loads it: one
# signature, ids/mask/segment_ids of one text, probabilities, TFLite Model Metadata), `ids`
# (batched serving_default: logits and probabilities), `strings` (ids + serving_strings with
# tensorflow-text's tokenizer inside, for apps that register its custom ops).
SIGNATURES = ("app", "ids", "strings")


@dataclasses.dataclass
class ExportSettings:
    mode: str = "fp32"
    with_tokenizer: bool = False   # the same as signature="strings"
    signature: str = "ids"
    max_seq_length: int | None = None
    num_calibration_examples: int = 200
    num_verification_examples: int = 500
    thresholds: Thresholds = dataclasses.field(default_factory=Thresholds)
    qat_epochs: int = 1
    qat_learning_rate: float = 1e-5
    overwrite: bool = False

    def __post_init__(self):
        if self.signature not in SIGNATURES:
            raise ExportError(f"--signature={self.signature}: choose one of "
                              f"{', '.join(SIGNATURES)}")
        if self.with_tokenizer:
            if self.signature == "app":
                raise ExportError("--with_tokenizer adds a second signature; an app-ready "
                                  "file (--signature=app) has one: use --signature=strings")
            self.signature = "strings"
        self.with_tokenizer = self.signature == "strings"

    @property
    def app(self) -> bool:
        return self.signature == "app"


TFLITE_KIND = "tflite"


def check_output_path(output: str, overwrite: bool, inputs=()) -> None:
    """The output's directory must exist; the rest is the output contract
    (`kbert.outputs`): not an input, kbert's own earlier file only with `overwrite`, a file
    kbert did not write never."""
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise ExportError(f"--output directory does not exist: {directory}")
    outputs.check_output(output, TFLITE_KIND, inputs, overwrite, is_file=True, flag="--output")


# Why a family's tokenizer cannot be the in-graph strings signature (see docs/EDGE.md).
NO_STRINGS_SIGNATURE = {
    "roberta": "RoBERTa's byte-level BPE tokenizer cannot go into a .tflite (its in-graph "
               "merges loop has no LiteRT kernels)",
    "albert": "ALBERT's SentencePiece normalisation (NFKD, accent stripping, lower-casing, "
              "quote rewriting) uses TensorFlow string ops that are not LiteRT builtins",
}


def check_strings_signature(info) -> None:
    """Refuse `--with_tokenizer` for a family whose tokenizer cannot run inside LiteRT."""
    reason = NO_STRINGS_SIGNATURE.get(info.family)
    if reason:
        raise ExportError(f"--with_tokenizer: {reason}; export without it and tokenize in "
                          f"the app: the serving_default signature takes token ids (the "
                          f"tokenizer files travel in the .tflite's metadata)")


# Why a family cannot be the app-ready file (TFLite Model Metadata has no unit for it).
NO_APP_PROFILE = {
    "roberta": "RoBERTa's byte-level BPE tokenizer has no TFLite Model Metadata process unit "
               "(MediaPipe Tasks reads WordPiece and SentencePiece ones)",
}


def check_app_profile(info) -> None:
    """Refuse `--signature=app` for a family MediaPipe cannot tokenize for."""
    reason = NO_APP_PROFILE.get(info.family)
    if reason:
        raise ExportError(f"--signature=app: {reason}; export with --signature=ids and "
                          f"tokenize in the app (the tokenizer files travel in the .tflite)")


CALIBRATION_BATCH = 8


def representative_dataset(tokenizer, texts, max_seq_length, with_tokenizer,
                           batch_size: int = CALIBRATION_BATCH, fixed_width: bool = False,
                           app: bool = False):
    """Calibration samples for each signature: batches of `batch_size` texts, padded to
    the batch's longest, as apps and the verification run them.

    `fixed_width` pads every batch to `max_seq_length`: needed when positions come from the
    attention mask (RoBERTa's `position_offset`): LiteRT's calibrator then fails to
    re-prepare the position path for a batch wider than the first ("Given shapes, [8,32,32]
    and [8,31,32], are not broadcastable", 2026-11-26).

    Padding matters: calibrating on single unpadded texts leaves the attention-mask path
    with the range [0, 0], so int8 cannot represent the mask and padded keys are attended
    to in every padded batch (the fortunes student's full_int8 agreement rose from 73.9%
    to 93.3% with padded calibration batches).
    """
    if not texts:
        raise ExportError("the representative dataset is empty")

    size = min(batch_size, len(texts))

    def generate():
        if app:     # one text a time, unpadded, under the app-ready signature's names
            for text in texts:
                ids, mask, types = encode_texts(tokenizer, [text], max_seq_length)
                yield "serving_default", {"ids": ids, "mask": mask, "segment_ids": types}
            return
        for start in range(0, len(texts), size):
            # Equal batch sizes (the last wraps around): LiteRT's calibrator cannot resize a
            # string input between samples.
            chunk = (list(texts) * 2)[start:start + size]
            ids, mask, types = encode_texts(tokenizer, chunk, max_seq_length)
            if fixed_width:
                ids, mask, types = pad_to_width(ids, mask, types, max_seq_length,
                                                tokenizer.pad_id)
            yield "serving_default", {"input_ids": ids, "attention_mask": mask,
                                      "token_type_ids": types}
            if with_tokenizer:
                yield "serving_strings", {"text": np.array(chunk, dtype=object)}
    return generate


def positions_from_mask(model) -> bool:
    """Whether the model's encoder counts positions from the attention mask (RoBERTa)."""
    try:
        return bool(encoder_of(model).config.position_offset)
    except TypeError:   # no kbert encoder inside
        return False


def pad_to_width(ids, mask, types, width: int, pad_id: int):
    """Encoded arrays padded on the right to `width` columns."""
    extra = width - ids.shape[1]
    return (np.pad(ids, ((0, 0), (0, extra)), constant_values=pad_id),
            np.pad(mask, ((0, 0), (0, extra))), np.pad(types, ((0, 0), (0, extra))))


def _qat(model, tokenizer, info, texts, labels, settings):
    if labels is None:
        raise ExportError("mode qat fine-tunes the model: the representative file needs "
                          "a label column")
    length = info.max_seq_length
    calibration = list(batches(tokenizer, texts[:settings.num_calibration_examples], length))
    ranges = qat.add_fake_quant(model, calibration)
    ids = label_ids(labels, info.labels, "representative file")
    train = [(*batch, ids[i * 32:(i + 1) * 32])
             for i, batch in enumerate(batches(tokenizer, texts, length, 32))]
    history = qat.qat_finetune(model, train, settings.qat_epochs, settings.qat_learning_rate)
    return {"fake_quant_layers": len(ranges), "qat_epoch_losses": history}


def check_final_bytes(data: bytes, verified_logits, tokenizer, texts, max_seq_length):
    """The bytes to be written (metadata with the verification report inside) give the
    verified outputs exactly: only the metadata changed since the verification."""
    from kbert.export.runtime import LiteRTClassifier
    from kbert.export.verify import tflite_logits
    final = tflite_logits(LiteRTClassifier(model_content=data), tokenizer, texts,
                          max_seq_length)
    if not np.array_equal(final, verified_logits):
        raise ExportError(f"the final .tflite (with its metadata) gives other outputs than "
                          f"the verified one (up to "
                          f"{np.max(np.abs(final - verified_logits)):.3g}); nothing written")


def export_tflite(model_dir: str, output: str, settings: ExportSettings,
                  representative=None, validation=None, log=logging.info,
                  inputs=()) -> dict:
    """Convert, verify and write; returns the report (also stored in the metadata).

    `representative` / `validation` are `(texts, labels or None)`; `inputs`: the files they
    came from (with `model_dir`, never written over).
    """
    inputs = [model_dir, *inputs]
    check_output_path(output, settings.overwrite, inputs)
    started = time.time()
    info = read_task_info(model_dir, settings.max_seq_length)   # refusals before loading
    if settings.with_tokenizer:
        check_strings_signature(info)
    if settings.app:
        check_app_profile(info)
        if not info.do_lower_case and info.is_wordpiece:
            log("warning: MediaPipe lower-cases ASCII letters before WordPiece, so this cased "
                "model sees lower-cased text in apps (docs/EDGE.md)")
    model, info = load_task_model(model_dir, settings.max_seq_length)
    tokenizer = task_tokenizer(info)
    rep_texts, rep_labels = representative or ([], None)
    if settings.mode in ("full_int8", "qat") and not rep_texts:
        raise ExportError(f"mode {settings.mode} needs a representative dataset "
                          f"(--representative_file) and it is empty")
    if not (validation is not None and validation[0]):
        raise ExportError("no held-out examples to verify the .tflite on "
                          "(--validation_file)")
    texts, labels = validation
    texts = texts[:settings.num_verification_examples]
    ids = (label_ids(labels[:len(texts)], info.labels, "validation file")
           if labels is not None else None)
    extra, reference = {}, None
    if settings.mode == "qat":
        # The bar is the fine-tuned model as it came, not the fake-quant-trained one: a QAT
        # run that loses accuracy must fail verification, not pass against itself.
        reference = keras_logits(model, tokenizer, texts, info.max_seq_length)
        log("qat: fake-quant fine-tuning on %d examples" % len(rep_texts))
        extra["qat"] = _qat(model, tokenizer, info, rep_texts, rep_labels, settings)
    fast = task_tokenizer(info, normalization="fast") if settings.with_tokenizer else None
    module = ExportModule(model, info.max_seq_length, tokenizer=fast, app=settings.app)
    calib = rep_texts[:settings.num_calibration_examples]
    dataset = (representative_dataset(tokenizer, calib, info.max_seq_length,
                                      settings.with_tokenizer,
                                      fixed_width=positions_from_mask(model), app=settings.app)
               if settings.mode in ("full_int8", "qat") else None)
    log(f"converting ({settings.mode}{', with tokenizer' if fast else ''})")
    data = converter.convert(module, settings.mode, dataset)
    report = {"mode": settings.mode, "bytes": len(data),
              "ops": dict(flatbuffer.op_names(data))}
    kernels = flatbuffer.op_kernel_types(data)
    report["int8_kernels"] = sum(n for key, n in kernels.items()
                                 if key[0] in ("FULLY_CONNECTED", "BATCH_MATMUL")
                                 and "INT8" in key[2:])

    def stamped(verification=None):
        return metadata.embed_metadata(
            data, info, settings.mode, module.signature_names(),
            extra={"verification": verification} if verification else None,
            tokenizer=tokenizer, app=settings.app)
    log(f"verifying on {len(texts)} held-out examples")
    verified = {}
    report["verification"] = verify_tflite(
        stamped(), model, settings.mode, tokenizer, texts, ids, info.max_seq_length,
        settings.thresholds, reference_logits=reference, keep=verified)
    report["verification"]["reference"] = (
        "the fine-tuned model before fake-quant training" if reference is not None
        else "the float model")
    report.update(extra)
    report["seconds"] = round(time.time() - started, 1)
    data = stamped(report["verification"])
    check_final_bytes(data, verified["logits"], tokenizer, texts, info.max_seq_length)
    with outputs.replace_file(output, TFLITE_KIND, inputs, settings.overwrite,
                              flag="--output") as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    report["bytes"] = len(data)
    return report
