"""Verify a converted `.tflite` against the Keras model before it reaches its final path.

fp32: every logit within `fp32_tolerance` (1e-4) of Keras. Quantized modes: top-1
agreement with the float model ≥ `min_agreement` (0.99) and, with labels, an accuracy
drop ≤ `max_accuracy_drop` points (1.0). The strings signature (when present) must agree
with the ids signature on the same texts. A failure raises `VerificationError` saying
which bar was missed and by how much.

Example:
    >>> report = verify_tflite(data, model, "full_int8", tokenizer, texts, labels)  # doctest: +SKIP
    >>> report["top1_agreement"] >= 0.99                                            # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kbert.export.labelled import batches
from kbert.export.runtime import LiteRTClassifier
from kbert.export.signatures import STRINGS_SIGNATURE
from kbert.export.task_model import ExportError, classifier_logits, encoder_features


class VerificationError(ExportError):
    """The `.tflite` does not match the model closely enough."""


@dataclasses.dataclass(frozen=True)
class Thresholds:
    fp32_tolerance: float = 1e-4
    min_agreement: float = 0.99
    max_accuracy_drop: float = 1.0  # accuracy points (percent)

    def lowered(self) -> list:
        """Which bars are below the defaults (reported, never silent)."""
        default = Thresholds()
        return [f"{f.name}={getattr(self, f.name)} (default {getattr(default, f.name)})"
                for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(default, f.name)]


def keras_logits(model, tokenizer, texts, max_seq_length, batch_size=32) -> np.ndarray:
    out = [np.asarray(classifier_logits(model, encoder_features(ids, mask, types)))
           for ids, mask, types in batches(tokenizer, texts, max_seq_length, batch_size)]
    return np.concatenate(out).astype(np.float32)


def softmax(logits) -> np.ndarray:
    shifted = np.exp(logits - np.max(logits, -1, keepdims=True))
    return shifted / np.sum(shifted, -1, keepdims=True)


def tflite_outputs(runner: LiteRTClassifier, tokenizer, texts, max_seq_length,
                   batch_size=32) -> dict:
    """{output name: float32 array over `texts`} of the ids signature."""
    out = [runner.classify_ids(ids, mask, types)
           for ids, mask, types in batches(tokenizer, texts, max_seq_length, batch_size)]
    return {name: np.concatenate([o[name] for o in out]).astype(np.float32)
            for name in out[0]}


def tflite_logits(runner: LiteRTClassifier, tokenizer, texts, max_seq_length,
                  batch_size=32) -> np.ndarray:
    return tflite_outputs(runner, tokenizer, texts, max_seq_length, batch_size)["logits"]


def text_signature_logits(runner: LiteRTClassifier, texts, batch_size=32) -> np.ndarray:
    out = [runner.classify_texts(texts[i:i + batch_size])["logits"]
           for i in range(0, len(texts), batch_size)]
    return np.concatenate(out).astype(np.float32)


def _accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, -1) == labels) * 100.0)


def verify_tflite(data: bytes, model, mode: str, tokenizer, texts, labels=None,
                  max_seq_length: int = 128, thresholds: Thresholds = Thresholds(),
                  reference_logits=None, keep: dict | None = None) -> dict:
    """Check `data` (a `.tflite`) on `texts`; return the report or raise. `keep` (a dict)
    receives the `.tflite`'s `logits` on `texts`."""
    runner = LiteRTClassifier(model_content=data)
    reference = (keras_logits(model, tokenizer, texts, max_seq_length)
                 if reference_logits is None else reference_logits)
    outputs = tflite_outputs(runner, tokenizer, texts, max_seq_length)
    converted = outputs["logits"]
    # An app-ready file outputs probabilities only: fp32 is held to them.
    compared = "probability" if runner.app_ready else "logit"
    difference = (outputs["probabilities"] - softmax(reference) if runner.app_ready
                  else converted - reference)
    report = {"mode": mode, "examples": len(texts),
              f"max_abs_{compared}_diff": float(np.max(np.abs(difference))),
              "top1_agreement": float(np.mean(np.argmax(converted, -1)
                                              == np.argmax(reference, -1))),
              "thresholds": dataclasses.asdict(thresholds),
              "lowered_thresholds": thresholds.lowered()}
    failures = []
    if mode == "fp32":
        if report[f"max_abs_{compared}_diff"] > thresholds.fp32_tolerance:
            failures.append(f"fp32 {compared}s differ from Keras by up to "
                            f"{report[f'max_abs_{compared}_diff']:.3g} (allowed "
                            f"{thresholds.fp32_tolerance:g})")
    elif report["top1_agreement"] < thresholds.min_agreement:
        failures.append(f"top-1 agreement with the float model is "
                        f"{report['top1_agreement']:.2%}, {thresholds.min_agreement - report['top1_agreement']:.2%} "
                        f"below the {thresholds.min_agreement:.0%} bar")
    if labels is not None:
        report["float_accuracy"] = _accuracy(reference, labels)
        report["tflite_accuracy"] = _accuracy(converted, labels)
        report["accuracy_drop"] = report["float_accuracy"] - report["tflite_accuracy"]
        if mode != "fp32" and report["accuracy_drop"] > thresholds.max_accuracy_drop:
            failures.append(f"accuracy drops {report['accuracy_drop']:.2f} points "
                            f"({report['float_accuracy']:.2f} -> {report['tflite_accuracy']:.2f}), "
                            f"{report['accuracy_drop'] - thresholds.max_accuracy_drop:.2f} over "
                            f"the {thresholds.max_accuracy_drop:g}-point bar")
    if STRINGS_SIGNATURE in runner.signatures:
        from_text = text_signature_logits(runner, list(texts))
        report["strings_signature_agreement"] = float(
            np.mean(np.argmax(from_text, -1) == np.argmax(converted, -1)))
        if report["strings_signature_agreement"] < thresholds.min_agreement:
            failures.append(f"the strings signature agrees with the ids signature on only "
                            f"{report['strings_signature_agreement']:.2%} of examples")
    if keep is not None:
        keep["logits"] = converted
    report["passed"] = not failures
    if failures:
        raise VerificationError(f"{mode} .tflite failed verification on {len(texts)} "
                                f"held-out examples: " + "; ".join(failures))
    return report
