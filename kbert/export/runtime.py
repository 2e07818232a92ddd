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
from kbert.export.signatures import DEFAULT_SIGNATURE, STRINGS_SIGNATURE


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


class LiteRTClassifier:
    """A `.tflite` classifier's two signatures as numpy functions."""

    def __init__(self, model_path: str | None = None, model_content: bytes | None = None,
                 num_threads: int = 1):
        _check_integrity(model_path if model_content is None else model_content)
        self.interpreter = make_interpreter(model_path, model_content, num_threads)
        self.signatures = self.interpreter.get_signature_list()
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
        return self._runner(DEFAULT_SIGNATURE)(
            input_ids=input_ids, attention_mask=np.asarray(attention_mask, np.int32),
            token_type_ids=np.asarray(token_type_ids, np.int32))

    def classify_texts(self, texts) -> dict:
        """Outputs of `serving_strings` for a list of UTF-8 strings."""
        return self._runner(STRINGS_SIGNATURE)(text=np.array(list(texts), dtype=object))
