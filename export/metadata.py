r"""Print what a kbert `.tflite` carries: kbert's metadata (labels, max length, casing, version,
signatures, verification) and, under `tflite_model_metadata`, the standard TFLite Model
Metadata an app-ready file carries for MediaPipe (tokenizer unit, tensors, labels file,
the associated files packed at the end; null when the file has none).

    python -m export.metadata fortunes.tflite            # JSON (vocabulary summarised)
    python -m export.metadata fortunes.tflite --vocab    # also every vocabulary token
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from export import flags as export_flags

flags.DEFINE_bool("vocab", False, "Print the whole vocabulary too.")
FLAGS = flags.FLAGS


def describe_file(path: str, with_vocab: bool = False) -> dict:
    """What `python -m export.metadata` prints: kbert's metadata, the vocabulary summarised,
    and the standard TFLite Model Metadata under `tflite_model_metadata` (None without)."""
    from kbert.export import app_metadata
    from kbert.export.metadata import read_tflite_metadata
    from kbert.export.task_model import ExportError
    try:
        found = read_tflite_metadata(path)
    except FileNotFoundError:
        raise ExportError(f"file not found: {path}") from None
    vocab = found.pop("vocab", [])
    found["vocab_size"] = len(vocab)
    found["tokenizer_files"] = {name: f"{len(data)} bytes" for name, data
                                in found.pop("tokenizer_files", {}).items()}
    if with_vocab:
        found["vocab"] = vocab
    with open(path, "rb") as f:
        found["tflite_model_metadata"] = app_metadata.describe(f.read())
    return found


def main(argv) -> int:
    if len(argv) != 2:
        print("metadata: error: give one .tflite path", file=sys.stderr)
        return export_flags.EXIT_BAD_INPUT
    return export_flags.run_command("metadata", lambda: print(json.dumps(
        describe_file(argv[1], FLAGS.vocab), indent=1, sort_keys=True)))


if __name__ == "__main__":
    app.run(main)
