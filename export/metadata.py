r"""Print what a kbert `.tflite` carries: labels, max length, casing, version, signatures.

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


def main(argv) -> int:
    if len(argv) != 2:
        print("metadata: error: give one .tflite path", file=sys.stderr)
        return export_flags.EXIT_BAD_INPUT

    def body():
        from kbert.export.metadata import read_tflite_metadata
        from kbert.export.task_model import ExportError
        try:
            found = read_tflite_metadata(argv[1])
        except FileNotFoundError:
            raise ExportError(f"file not found: {argv[1]}") from None
        vocab = found.pop("vocab", [])
        found["vocab_size"] = len(vocab)
        found["tokenizer_files"] = {name: f"{len(data)} bytes" for name, data
                                    in found.pop("tokenizer_files", {}).items()}
        if FLAGS.vocab:
            found["vocab"] = vocab
        print(json.dumps(found, indent=1, sort_keys=True))
    return export_flags.run_command("metadata", body)


if __name__ == "__main__":
    app.run(main)
