"""Run a kbert `.tflite` in LiteRT (`ai_edge_litert`), tensorflow-text custom ops included.

Example:
    >>> runner = LiteRTClassifier("model.tflite", num_threads=2)          # doctest: +SKIP
    >>> runner.classify_texts(["a fortune"])["probabilities"].shape      # doctest: +SKIP
    (1, 16)
"""

from __future__ import annotations

import numpy as np
import tensorflow_text as tf_text
from ai_edge_litert import interpreter as litert

from kbert import console
from kbert.export.signatures import APP_INPUTS, DEFAULT_SIGNATURE, STRINGS_SIGNATURE


def make_interpreter(model_path: str | None = None, model_content: bytes | None = None,
                     num_threads: int = 1):
    """A LiteRT interpreter with tensorflow-text's custom ops registered (XNNPACK on)."""
    with console.litert_quiet():
        return litert.InterpreterWithCustomOps(
            custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
            model_path=model_path, model_content=model_content, num_threads=num_threads)


def _check_integrity(path_or_bytes) -> None:
    """A kbert `.tflite` whose weights no longer match its recorded `weights_sha256`, or a
    truncated one, is refused before the interpreter reads it (ValueError naming it).
    Files without kbert's metadata (another tool's) load as they are."""
    from kbert.export import metadata
    try:
        metadata.read_tflite_metadata(path_or_bytes)
    except ValueError as e:
        if "holds no kbert metadata" not in str(e):
            raise


def log_probabilities(probabilities) -> np.ndarray:
    """Natural log of probabilities (floored at float32's tiny): they rank as logits do."""
    return np.log(np.maximum(probabilities, np.finfo(np.float32).tiny)).astype(np.float32)


class LiteRTClassifier:
    """A `.tflite` classifier's signatures as numpy functions.

    An app-ready file (`serving_default(ids, mask, segment_ids)` on one text, probabilities
    out) is run one row at a time without its padding, as MediaPipe feeds it; its `logits`
    are the log-probabilities (same ranking, same argmax).
    """

    def __init__(self, model_path: str | None = None, model_content: bytes | None = None,
                 num_threads: int = 1):
        _check_integrity(model_path if model_content is None else model_content)
        self.interpreter = make_interpreter(model_path, model_content, num_threads)
        self.signatures = self.interpreter.get_signature_list()
        self.app_ready = sorted(self.signatures.get(DEFAULT_SIGNATURE, {})
                                .get("inputs", [])) == sorted(APP_INPUTS)
        self._runners = {}

    def _runner(self, name):
        if name not in self.signatures:
            raise ValueError(f"the model has no signature {name!r} "
                             f"(it has {sorted(self.signatures)})")
        if name not in self._runners:
            with console.litert_quiet():
                runner = self.interpreter.get_signature_runner(name)

            def first_call(**inputs):   # XNNPACK announces itself on the first call
                self._runners[name] = runner
                with console.litert_quiet():
                    return runner(**inputs)
            return first_call
        return self._runners[name]

    def classify_ids(self, input_ids, attention_mask, token_type_ids=None) -> dict:
        """Outputs of `serving_default` for int32 [batch, length] arrays."""
        input_ids = np.asarray(input_ids, np.int32)
        if token_type_ids is None:
            token_type_ids = np.zeros_like(input_ids)
        if self.app_ready:
            return self._classify_rows(input_ids, np.asarray(attention_mask, np.int32),
                                       np.asarray(token_type_ids, np.int32))
        return self._runner(DEFAULT_SIGNATURE)(
            input_ids=input_ids, attention_mask=np.asarray(attention_mask, np.int32),
            token_type_ids=np.asarray(token_type_ids, np.int32))

    def _classify_rows(self, ids, mask, types) -> dict:
        rows = []
        for i in range(ids.shape[0]):
            length = max(int(mask[i].sum()), 1)   # right padding dropped, as an app feeds it
            rows.append(self._runner(DEFAULT_SIGNATURE)(
                ids=ids[i:i + 1, :length], mask=mask[i:i + 1, :length],
                segment_ids=types[i:i + 1, :length])["probabilities"])
        probabilities = (np.concatenate(rows) if rows else np.zeros((0, 0), np.float32))
        return {"probabilities": probabilities, "logits": log_probabilities(probabilities)}

    def classify_texts(self, texts) -> dict:
        """Outputs of `serving_strings` for a list of UTF-8 strings."""
        return self._runner(STRINGS_SIGNATURE)(text=np.array(list(texts), dtype=object))
