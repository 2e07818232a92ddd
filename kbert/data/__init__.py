"""Data for the BERT family: pre-training examples, records, manifests, input pipelines.

One module per job; this package's namespace is the public surface callers use:

- `settings`: `PretrainingDataSettings` and `PretrainingDataError` (flag-naming validation)
- `corpus`: input globs → files → documents (one sentence per line, blank line = new doc)
- `pairs`: google-research/bert's document-aware A/B pairs and random truncation
- `masking`: static 15% / 80-10-10 masking (whole-word option)
- `dynamic_masking`: the same rules in-graph for tf.data (new masks every epoch)
- `examples`: chunks (the unit of work) → masked `[CLS] A [SEP] B [SEP]` examples
- `records`: tf.train.Example with google's feature names and dtypes
- `manifest`: `manifest.json` (and per-worker manifests) reading/writing/merging
- `writer`: parallel, deterministic, atomic shard writing (`create_pretraining_data`)
- `pipelines`: tf.data input pipelines over shards (`pretraining_dataset`) or raw text
  (`raw_text_dataset`), sharded per input pipeline, static or dynamic masks

Records keep google-research/bert's feature names and dtypes, so shards written here train
in google's `run_pretraining.py` and google's shards train here. `next_sentence_labels`:
0 = IsNext, 1 = NotNext.

Example:
    >>> from kbert import data
    >>> settings = data.PretrainingDataSettings(max_seq_length=128, dupe_factor=5,
    ...                                         num_output_shards=4)
    >>> manifest = data.create_pretraining_data(                       # doctest: +SKIP
    ...     "data/corpus/*.txt", "vocab.txt", output_dir="/tmp/pretrain",
    ...     settings=settings, num_processes=2)
    >>> data.read_manifest("/tmp/pretrain")["num_examples"]             # doctest: +SKIP
    2345
    >>> ds = data.pretraining_dataset("/tmp/pretrain", batch_size=32,  # doctest: +SKIP
    ...                               max_seq_length=128, max_predictions_per_seq=20)
"""

from kbert.data.corpus import Document, expand_input_patterns, read_documents
from kbert.data.dynamic_masking import DynamicMasker
from kbert.data.examples import (PretrainingExample, build_example, create_chunk_examples,
                                 derive_seed, plan_chunks)
from kbert.data.manifest import (MANIFEST_NAME, merge_worker_manifests, read_manifest,
                                 write_manifest)
from kbert.data.masking import StaticMasker, num_to_predict
from kbert.data.pairs import (Sentence, SentencePair, TokenizedDocument,
                              create_pairs_from_document, tokenize_documents, truncate_seq_pair)
from kbert.data.pipelines import (check_records, pretraining_dataset, raw_text_dataset,
                                  raw_text_stream, record_files)
from kbert.data.records import FEATURE_NAMES, IS_NEXT, NOT_NEXT, feature_spec, serialize_example
from kbert.data.settings import PretrainingDataError, PretrainingDataSettings
from kbert.data.writer import create_pretraining_data, shard_file_name

__all__ = [
    "Document", "DynamicMasker", "FEATURE_NAMES", "IS_NEXT", "MANIFEST_NAME", "NOT_NEXT",
    "PretrainingDataError", "PretrainingDataSettings", "PretrainingExample",
    "Sentence", "SentencePair", "StaticMasker", "TokenizedDocument", "build_example",
    "check_records", "create_chunk_examples", "create_pairs_from_document",
    "create_pretraining_data", "derive_seed", "expand_input_patterns", "feature_spec",
    "merge_worker_manifests", "num_to_predict", "plan_chunks", "pretraining_dataset",
    "raw_text_dataset", "raw_text_stream", "read_documents", "read_manifest", "record_files",
    "serialize_example", "shard_file_name", "tokenize_documents", "truncate_seq_pair",
    "write_manifest",
]
