"""Imported first by kbert's worker-process servers (see `kbert.data.writer`): loads
TensorFlow through `kbert.console.import_tensorflow`, so workers start as quietly as the
command that started them (`KBERT_TF_LOG` applies to them too)."""

from kbert import console

console.import_tensorflow()
