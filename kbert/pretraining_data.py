"""Pre-training data for BERT: NSP pairs, 15% / 80-10-10 masking, sharded TFRecords.

A facade over `kbert.pretraining` (one module per job). Records keep google-research/bert's
feature names and dtypes, so shards written here train in google's `run_pretraining.py`
and google's shards train here. `next_sentence_labels`: 0 = IsNext, 1 = NotNext.

Example:
    >>> from kbert import pretraining_data as ptd
    >>> settings = ptd.PretrainingDataSettings(max_seq_length=128, dupe_factor=5,
    ...                                        num_output_shards=4)
    >>> manifest = ptd.create_pretraining_data(                       # doctest: +SKIP
    ...     "data/corpus/*.txt", "vocab.txt", output_dir="/tmp/pretrain",
    ...     settings=settings, num_processes=2)
    >>> ptd.read_manifest("/tmp/pretrain")["num_examples"]             # doctest: +SKIP
    2345
"""

from kbert.pretraining.corpus import Document, expand_input_patterns, read_documents
from kbert.pretraining.dynamic_masking import DynamicMasker
from kbert.pretraining.examples import (PretrainingExample, build_example, create_chunk_examples,
                                        derive_seed, plan_chunks)
from kbert.pretraining.manifest import (MANIFEST_NAME, merge_worker_manifests, read_manifest,
                                        write_manifest)
from kbert.pretraining.masking import SPECIAL_TOKENS, StaticMasker, num_to_predict
from kbert.pretraining.pairs import (Sentence, SentencePair, TokenizedDocument,
                                     create_pairs_from_document, tokenize_documents,
                                     truncate_seq_pair)
from kbert.pretraining.records import (FEATURE_NAMES, IS_NEXT, NOT_NEXT, feature_spec,
                                       serialize_example)
from kbert.pretraining.settings import PretrainingDataError, PretrainingDataSettings
from kbert.pretraining.writer import create_pretraining_data, load_tokenizer, shard_file_name

__all__ = [
    "Document", "DynamicMasker", "FEATURE_NAMES", "IS_NEXT", "MANIFEST_NAME", "NOT_NEXT",
    "PretrainingDataError", "PretrainingDataSettings", "PretrainingExample", "SPECIAL_TOKENS",
    "Sentence", "SentencePair", "StaticMasker", "TokenizedDocument", "build_example",
    "create_chunk_examples", "create_pairs_from_document",
    "create_pretraining_data", "derive_seed", "expand_input_patterns", "feature_spec",
    "load_tokenizer", "merge_worker_manifests", "num_to_predict", "plan_chunks",
    "read_documents", "read_manifest", "serialize_example", "shard_file_name",
    "tokenize_documents", "truncate_seq_pair", "write_manifest",
]
