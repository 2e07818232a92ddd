"""tf.data input for pre-training: TFRecord shards, or NSP pairs built on the fly from text.

Both functions yield batches as dicts of google-research/bert's feature names:
`input_ids`, `input_mask`, `segment_ids` (int32 `[batch, max_seq_length]`),
`masked_lm_positions`, `masked_lm_ids` (int32 `[batch, P]`), `masked_lm_weights`
(float32 `[batch, P]`) and `next_sentence_labels` (int32 `[batch]`, 0 = IsNext,
1 = NotNext). Under `tf.distribute`, pass the `tf.distribute.InputContext`: the batch size
you give is the global one, each input pipeline reads its own part of the data and yields
per-replica batches.

Example:
    >>> ds = pretraining_dataset("/tmp/pretrain", batch_size=32, max_seq_length=128,
    ...                          max_predictions_per_seq=20, seed=1)         # doctest: +SKIP
    >>> batch = next(iter(ds)); batch["input_ids"].shape                     # doctest: +SKIP
    TensorShape([32, 128])
    >>> # Under a strategy: strategy.distribute_datasets_from_function(
    >>> #     lambda ctx: pretraining_dataset(dir, 256, 128, 20, input_context=ctx))
"""

from __future__ import annotations

import logging
import os
import random
import re
from typing import Sequence

import numpy as np
import tensorflow as tf

from kbert.data import manifest as manifest_lib
from kbert.corpus.documents import CorpusDocuments
from kbert.corpus.errors import CorpusError
from kbert.data.corpus import DocumentStream, expand_input_patterns, split_patterns
from kbert.data.dynamic_masking import DynamicMasker
from kbert.data.examples import build_example, derive_seed
from kbert.data.packing import pack_full_sentences
from kbert.data.pairs import create_pairs_from_document
from kbert.data.records import feature_spec
from kbert.data.settings import PretrainingDataError, PretrainingDataSettings
from kbert.data.text_pools import POOL_DOCUMENTS, TextPools
from kbert.data.writer import SHARD_SUFFIX

__all__ = ["check_records", "dynamic_mask_fn", "parse_batch", "pretraining_dataset",
           "raw_text_dataset", "raw_text_stream", "record_files"]


# --------------------------------------------------------------------------- record files
def record_files(input_patterns_or_dir: str | Sequence[str]
                 ) -> tuple[list[str], dict | None, str | None]:
    """(shard files, manifest or None, where the manifest came from) of the input.

    A directory means the shards its manifest lists (or, without one, its `*.tfrecord`
    files); otherwise comma-separated globs/files. Raises PretrainingDataError naming the
    pattern, directory or missing shard.
    """
    items = split_patterns(input_patterns_or_dir)
    if not items:
        raise PretrainingDataError("no input files given for the pre-training records")
    if len(items) == 1 and tf.io.gfile.isdir(items[0]):
        directory = items[0]
        if not manifest_lib.has_manifest(directory):
            shards = _shards_in(directory)
            raise PretrainingDataError(
                f"{directory} holds no {manifest_lib.MANIFEST_NAME}" + (
                    f" but {len(shards)} *{SHARD_SUFFIX} files: the data set is incomplete "
                    "(creation was interrupted?); recreate it, or name the files with a "
                    "glob to read them unchecked" if shards else
                    f" and no *{SHARD_SUFFIX} files"))
        manifest = manifest_lib.read_manifest(directory)
        return _check_shard_set(directory, manifest), manifest, directory
    files: list[str] = []
    for item in items:
        matched = sorted(tf.io.gfile.glob(item))
        if not matched:
            raise PretrainingDataError(f"input pattern {item!r} matches no file")
        files.extend(matched)
    files = list(dict.fromkeys(files))
    directories = {os.path.dirname(os.path.abspath(f)) for f in files}
    if len(directories) == 1:
        directory = directories.pop()
        if manifest_lib.has_manifest(directory):
            return files, manifest_lib.read_manifest(directory), directory
    return files, None, None


_SHARD_NAME = re.compile(r"^.*-\d{5}-of-\d{5}" + re.escape(SHARD_SUFFIX) + "$")


def _shards_in(directory: str) -> list[str]:
    return sorted(f for f in tf.io.gfile.glob(os.path.join(directory, "*" + SHARD_SUFFIX))
                  if not os.path.basename(f).startswith("."))


def _check_shard_set(directory: str, manifest: dict) -> list[str]:
    """The manifest's shard files; PretrainingDataError naming the missing, empty or
    unlisted shard when the directory does not hold exactly that data set."""
    where = os.path.join(directory, manifest_lib.MANIFEST_NAME)
    files = [os.path.join(directory, name) for name in manifest["shards"]]
    for path, count in zip(files, manifest["shards"].values()):
        if not tf.io.gfile.exists(path):
            raise PretrainingDataError(f"{where} lists shard {path}, which does not exist")
        if count and tf.io.gfile.stat(path).length == 0:
            raise PretrainingDataError(f"{path} is empty but {where} says it holds {count} "
                                       "examples")
    listed = {os.path.abspath(f) for f in files}
    for path in _shards_in(directory):
        if os.path.abspath(path) not in listed and _SHARD_NAME.match(os.path.basename(path)):
            raise PretrainingDataError(
                f"{path} is not listed in {where}: shards of another data set are mixed in "
                "(an interrupted --overwrite?); recreate the data set")
    if manifest.get("num_examples", 1) == 0:
        raise PretrainingDataError(f"{where} says the data set holds no example")
    return files


def _check_manifest(manifest: dict, where: str, flag: str | None = None, **expected) -> None:
    prefix = f"{flag}: " if flag else ""
    for name, value in expected.items():
        if name in manifest and manifest[name] != value:
            raise PretrainingDataError(
                f"{prefix}{name}={value} does not match the records in {where} ({name}="
                f"{manifest[name]} in {manifest_lib.MANIFEST_NAME}); pass --{name}="
                f"{manifest[name]} or recreate the data")


def check_records(input_patterns_or_dir: str | Sequence[str], flag: str, vocab_file,
                  vocab_size: int, max_seq_length: int, max_predictions_per_seq: int,
                  family: str = "bert", sentence_objective: str = "nsp") -> None:
    """Refuse records written with another vocabulary, shape, family or sentence objective,
    naming the manifest.

    `vocab_file`: the tokenizer file, or the family's files (RoBERTa's vocab.json and
    merges.txt). Records without a manifest cannot be checked (a warning says so). Raises
    PretrainingDataError naming `flag` and the manifest file. Manifests written before
    families existed are BERT/NSP records.

    Example:
        >>> check_records("/tmp/pretrain", "--input_file", "vocab.txt", 30522,  # doctest: +SKIP
        ...               128, 20)
    """
    from kbert.tokenizers.families import files_beside, tokenizer_hash
    _, manifest, where = record_files(input_patterns_or_dir)
    if manifest is None:
        logging.warning("%s=%s has no %s: its vocabulary cannot be checked", flag,
                        input_patterns_or_dir, manifest_lib.MANIFEST_NAME)
        return
    manifest_path = os.path.join(where, manifest_lib.MANIFEST_NAME)
    written = (manifest.get("family", "bert"), manifest.get("sentence_objective", "nsp"))
    if written != (family, sentence_objective):
        raise PretrainingDataError(
            f"{flag}: the records in {where} were written for --model={written[0]} with "
            f"--sentence_objective={written[1]} ({manifest_path}); this run trains "
            f"--model={family} with --sentence_objective={sentence_objective}. Write records "
            f"for it (trainers.create_pretraining_data --model={family} "
            f"--sentence_objective={sentence_objective}) or pass the records' flags")
    files = ([vocab_file] if isinstance(vocab_file, (str, os.PathLike)) else list(vocab_file))
    if len(files) == 1:
        files = files_beside(family, files[0])
    expected_hash = tokenizer_hash(family, files)
    if manifest.get("vocab_hash") not in (None, expected_hash):
        raise PretrainingDataError(
            f"{flag}: the records in {where} were written with a different vocabulary "
            f"(vocab_hash {manifest['vocab_hash']} in {manifest_path}) than "
            f"--vocab_file={files[0]} (vocab_hash {expected_hash})")
    if manifest.get("vocab_size") not in (None, vocab_size):
        raise PretrainingDataError(
            f"{flag}: {manifest_path} says vocab_size {manifest['vocab_size']}, the model "
            f"has {vocab_size}")
    _check_manifest(manifest, where, flag, max_seq_length=max_seq_length,
                    max_predictions_per_seq=max_predictions_per_seq)


# --------------------------------------------------------------------------- batch functions
def parse_batch(serialized, max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """Parse a batch of serialized records with google's feature spec; ids to int32,
    `next_sentence_labels` squeezed to `[batch]`."""
    parsed = tf.io.parse_example(serialized, feature_spec(max_seq_length, max_predictions_per_seq))
    features = {name: tf.cast(value, tf.int32) if value.dtype == tf.int64 else value
                for name, value in parsed.items()}
    features["next_sentence_labels"] = tf.squeeze(features["next_sentence_labels"], axis=-1)
    return features


def dynamic_mask_fn(masker: DynamicMasker, base_seed: int):
    """A `(batch_index, features) -> features` map function that masks with seed
    `(base_seed, batch_index)`: deterministic, and new masks for every batch and epoch."""
    def mask(batch_index, features):
        seed = tf.stack([tf.constant(base_seed, tf.int64), tf.cast(batch_index, tf.int64)])
        features = dict(features)
        features.update(masker(features["input_ids"], features["input_mask"], seed))
        return features
    return mask


def _pipeline(input_context) -> tuple[int, int]:
    if input_context is None:
        return 1, 0
    return input_context.num_input_pipelines, input_context.input_pipeline_id


def _per_replica_batch_size(batch_size: int, input_context) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise PretrainingDataError(f"batch_size must be a positive integer, got {batch_size!r}")
    if input_context is None:
        return batch_size
    return input_context.get_per_replica_batch_size(batch_size)


def _base_seed(seed: int | None, *parts) -> int:
    if seed is None:
        seed = random.SystemRandom().randrange(2 ** 62)
    return derive_seed(seed, *parts) % (2 ** 62)


def _dynamic_masking_tokenizer(vocab_file: str | None, manifest: dict | None,
                               where: str | None):
    """The vocabulary (WordPiece: its token list) or tokenizer (BPE, SentencePiece) that
    masks records written with --dynamic_masking; checked against the manifest's hash."""
    from kbert.tokenizers import load_vocab, vocab_hash
    from kbert.tokenizers.families import load_family_tokenizer
    if vocab_file is None and manifest is not None:
        vocab_file = manifest.get("vocab_file")
        if vocab_file and not os.path.isfile(vocab_file):
            raise PretrainingDataError(
                f"dynamic masking needs the vocabulary: {where}/{manifest_lib.MANIFEST_NAME} "
                f"names {vocab_file}, which does not exist; pass vocab_file")
    if vocab_file is None:
        raise PretrainingDataError("dynamic masking needs vocab_file (no manifest names one)")
    family = (manifest or {}).get("family", "bert")
    if family in ("bert", "distilbert"):
        vocab = load_vocab(vocab_file)
        found = vocab_hash(vocab)
    else:
        vocab = load_family_tokenizer(family, vocab_file,
                                      lower_case=manifest.get("do_lower_case", True))
        found = vocab.vocab_hash()
    if manifest is not None and manifest.get("vocab_hash") not in (None, found):
        raise PretrainingDataError(
            f"vocab_file {vocab_file} is not the vocabulary the records in {where} were "
            "written with (vocab_hash differs)")
    return vocab


# --------------------------------------------------------------------------- datasets
def pretraining_dataset(input_patterns_or_dir: str | Sequence[str], batch_size: int,
                        max_seq_length: int, max_predictions_per_seq: int,
                        is_training: bool = True,
                        input_context: tf.distribute.InputContext | None = None,
                        seed: int | None = None, *, dynamic_masking: bool | None = None,
                        vocab_file: str | None = None, masked_lm_prob: float | None = None,
                        do_whole_word_mask: bool | None = None,
                        shuffle_buffer_size: int = 10000, cycle_length: int = 8,
                        drop_remainder: bool | None = None) -> tf.data.Dataset:
    """Batches of pre-training features from TFRecord shards.

    Args:
        input_patterns_or_dir: a shard directory (with or without manifest.json) or
            comma-separated globs / a list of files.
        batch_size: the global batch size; per replica it is divided by the replicas of
            `input_context`.
        max_seq_length, max_predictions_per_seq: the record shapes; checked against the
            manifest when there is one.
        is_training: shuffle files and records, repeat forever, drop the last partial batch.
        input_context: `tf.distribute.InputContext`; each input pipeline reads disjoint
            files (or, with fewer files than pipelines, disjoint records).
        seed: makes shuffling and dynamic masks reproducible.
        dynamic_masking: mask in-graph with new masks every epoch. Default: what the
            manifest says (records written with --dynamic_masking), else False.
        vocab_file: the vocabulary, for dynamic masking (default: the manifest's).
        masked_lm_prob, do_whole_word_mask: dynamic masking settings (default: the
            manifest's, else 0.15 / False).
        shuffle_buffer_size, cycle_length: record shuffle buffer and files read at once.
        drop_remainder: default `is_training`.

    Returns:
        A `tf.data.Dataset` of feature dicts (see the module docstring).
    """
    files, manifest, where = record_files(input_patterns_or_dir)
    if manifest is not None:
        _check_manifest(manifest, where, max_seq_length=max_seq_length,
                        max_predictions_per_seq=max_predictions_per_seq)
    manifest_settings = manifest or {}
    if dynamic_masking is None:
        dynamic_masking = bool(manifest_settings.get("dynamic_masking", False))
    elif not dynamic_masking and manifest_settings.get("dynamic_masking"):
        raise PretrainingDataError(
            f"the records in {where} are unmasked (written with --dynamic_masking); "
            "read them with dynamic_masking=True")
    elif dynamic_masking and manifest is not None and not manifest_settings.get("dynamic_masking"):
        raise PretrainingDataError(
            f"the records in {where} are already masked; dynamic_masking=True would mask "
            "them twice (write them with --dynamic_masking)")
    per_replica = _per_replica_batch_size(batch_size, input_context)
    num_pipelines, pipeline_id = _pipeline(input_context)
    deterministic = seed is not None or not is_training
    if all(tf.io.gfile.stat(f).length == 0 for f in files):
        # repeat() over files without records would spin forever looking for one.
        raise PretrainingDataError(f"the record files hold no example: {', '.join(files[:3])}")

    dataset = tf.data.Dataset.from_tensor_slices(files)
    shard_by_file = num_pipelines > 1 and len(files) >= num_pipelines
    if shard_by_file or num_pipelines == 1:
        if shard_by_file:
            dataset = dataset.shard(num_pipelines, pipeline_id)
        num_files = len(files[pipeline_id::num_pipelines])
        if is_training:
            dataset = dataset.shuffle(num_files, seed=seed,
                                      reshuffle_each_iteration=True).repeat()
        dataset = dataset.interleave(
            tf.data.TFRecordDataset, cycle_length=max(1, min(cycle_length, num_files)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    else:
        # Fewer files than pipelines: every pipeline reads the records in the same fixed
        # order and takes every n-th, *then* repeats and shuffles its own share; shuffling
        # files first (seed None: differently in each pipeline) would make shares overlap.
        dataset = dataset.interleave(
            tf.data.TFRecordDataset, cycle_length=max(1, min(cycle_length, len(files))),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.shard(num_pipelines, pipeline_id)
        if is_training:
            dataset = dataset.repeat()
    if is_training:
        dataset = dataset.shuffle(shuffle_buffer_size,
                                  seed=None if seed is None else seed + pipeline_id)
    dataset = dataset.batch(per_replica, drop_remainder=is_training if drop_remainder is None
                            else drop_remainder)
    dataset = dataset.map(
        lambda serialized: parse_batch(serialized, max_seq_length, max_predictions_per_seq),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if dynamic_masking:
        vocab = _dynamic_masking_tokenizer(vocab_file, manifest, where)
        options = dict(
            masked_lm_prob=masked_lm_prob if masked_lm_prob is not None
            else manifest_settings.get("masked_lm_prob", 0.15),
            do_whole_word_mask=do_whole_word_mask if do_whole_word_mask is not None
            else manifest_settings.get("do_whole_word_mask", False),
            max_ngram=manifest_settings.get("max_ngram", 1))
        masker = (DynamicMasker(vocab, max_predictions_per_seq, **options)
                  if isinstance(vocab, list) else
                  DynamicMasker.for_tokenizer(vocab, max_predictions_per_seq, **options))
        dataset = dataset.enumerate().map(
            dynamic_mask_fn(masker, _base_seed(seed, "dynamic_masking", pipeline_id)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    logging.info("pretraining_dataset: %d files, per-replica batch %d, pipeline %d of %d, "
                 "dynamic_masking=%s", len(files), per_replica, pipeline_id, num_pipelines,
                 dynamic_masking)
    return dataset.prefetch(tf.data.AUTOTUNE)


def raw_text_stream(input_patterns: str | Sequence[str], sentence_splitting: str = "auto",
                    text_field: str = "text", language: str = "auto",
                    flag: str = "input_patterns") -> DocumentStream:
    """The documents `raw_text_dataset` reads: plain text as `kbert.text` reads it, dumps,
    JSON lines and compressed text as `kbert.corpus` does (every file recognised now: a
    PretrainingDataError naming a file no reader takes).

    Example:
        >>> stream = raw_text_stream("dumps/*.bz2", flag="--input_file")  # doctest: +SKIP
        >>> stream.check(enough=10_000)                                   # doctest: +SKIP
    """
    files = expand_input_patterns(input_patterns, flag=flag)
    try:
        corpus = CorpusDocuments(files, text_field=text_field, language=language,
                                 keep_plain_text=True)
    except CorpusError as e:
        raise PretrainingDataError(str(e)) from e
    return DocumentStream(files, sentence_splitting, corpus)


def raw_text_dataset(input_patterns: str | Sequence[str], tokenizer, batch_size: int,
                     max_seq_length: int, max_predictions_per_seq: int,
                     seed: int | None = None, *, is_training: bool = True,
                     input_context: tf.distribute.InputContext | None = None,
                     masked_lm_prob: float = 0.15, short_seq_prob: float = 0.1,
                     do_whole_word_mask: bool = False,
                     shuffle_buffer_size: int = 1000,
                     sentence_splitting: str = "auto", sentence_objective: str = "nsp",
                     max_ngram: int = 1, hold_out_every: int = 0,
                     held_out: bool = False, text_field: str = "text",
                     language: str = "auto",
                     pool_documents: int = POOL_DOCUMENTS) -> tf.data.Dataset:
    """Batches of pre-training features built on the fly from raw text, streamed.

    NSP pairs come from google's algorithm over pools of `pool_documents` documents (each
    input pipeline takes every n-th document; `kbert.data.text_pools`): memory holds one
    pool, and a corpus of one pool is paired as a whole, as google does. New pairs every
    epoch; masks are drawn in-graph per batch.
    `sentence_objective="sop"` makes ALBERT's sentence-order pairs instead (label 1 =
    swapped); `"none"` makes RoBERTa's FULL-SENTENCES inputs (`kbert.data.packing`:
    one segment, documents packed in a new order each epoch with an extra separator between
    them, `next_sentence_labels` 0).

    Args:
        input_patterns: comma-separated globs, files or directories of text (one
            sentence per line, blank line between documents) or of anything
            `trainers.prepare_corpus` reads, recognised by content: MediaWiki XML dumps
            (plain, bz2, gzip) and JSON lines (`text_field`; gzip, zstd), cleaned and split
            into sentences as prepare_corpus does (`kbert.corpus.CorpusDocuments`).
        tokenizer: a `kbert.tokenizers.BertTokenizer`.
        batch_size: the global batch size (see `pretraining_dataset`).
        max_seq_length, max_predictions_per_seq: output shapes.
        seed: makes pairs, shuffling and masks reproducible.
        is_training: repeat forever with new pairs, shuffle, drop the last partial batch;
            otherwise one deterministic pass.
        input_context: `tf.distribute.InputContext`.
        masked_lm_prob, short_seq_prob, do_whole_word_mask: as for record creation.
        shuffle_buffer_size: examples shuffled together.
        sentence_splitting: see `PretrainingDataSettings` ("auto" splits one-line documents).
        sentence_objective: "nsp", "sop" or "none" (see above).
        max_ngram: ALBERT's n-gram masking up to this many words (1: off).
        hold_out_every: with k > 0, every k-th document (0, k, 2k, ...) is held out: left
            out of this dataset, or (`held_out=True`) the only documents in it. Scores on
            the held-out part measure text the model did not train on.
        text_field, language: JSON lines' text field; sentence-splitting rules for dumps,
            JSON lines and compressed text (as prepare_corpus's flags).
        pool_documents: documents paired together (NotNext segments come from the pool).

    Raises PretrainingDataError for a bad input file (the `kbert.corpus` message naming it),
    and (counting documents and sentences) when no pool gives a sentence pair (or, with
    objective "none", no text), instead of looking for one forever.
    """
    settings = PretrainingDataSettings(
        max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
        masked_lm_prob=masked_lm_prob, short_seq_prob=short_seq_prob,
        do_whole_word_mask=do_whole_word_mask, sentence_splitting=sentence_splitting)
    per_replica = _per_replica_batch_size(batch_size, input_context)
    num_pipelines, pipeline_id = _pipeline(input_context)
    if sentence_objective not in ("nsp", "sop", "none"):
        raise ValueError(f"sentence_objective must be nsp, sop or none, got "
                         f"{sentence_objective!r}")
    stream = raw_text_stream(input_patterns, sentence_splitting, text_field, language)
    pools = TextPools(stream, tokenizer, pool_documents, hold_out_every, held_out,
                      num_pipelines, pipeline_id)
    pools.check(sentence_objective, ", ".join(stream.files[:3]))
    cls_id, sep_id = tokenizer.cls_id, tokenizer.sep_id
    pair_seed = _base_seed(seed, "raw_text_pairs", pipeline_id)

    def packed_examples(tokenized, order):
        for packed in pack_full_sentences(tokenized, max_seq_length - 2, sep_id, order):
            ids = np.zeros(max_seq_length, np.int32)
            mask = np.zeros(max_seq_length, np.int32)
            tokens = [cls_id, *packed.ids, sep_id]
            ids[:len(tokens)] = tokens
            mask[:len(tokens)] = 1
            yield {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids),
                   "next_sentence_labels": np.int32(0)}

    def examples():
        rng = random.Random(pair_seed)
        while True:
            produced = False
            for tokenized in pools:
                order = list(range(len(tokenized)))
                if is_training:
                    rng.shuffle(order)
                if sentence_objective == "none":
                    for example in packed_examples(tokenized, order):
                        produced = True
                        yield example
                    order = []
                for index in order:
                    for pair in create_pairs_from_document(
                            tokenized, index, settings.max_num_tokens, short_seq_prob, rng,
                            sentence_order=sentence_objective == "sop"):
                        example = build_example(pair, cls_id, sep_id, None, rng)
                        length = len(example.input_ids)
                        ids = np.zeros(max_seq_length, np.int32)
                        segments = np.zeros(max_seq_length, np.int32)
                        mask = np.zeros(max_seq_length, np.int32)
                        ids[:length] = example.input_ids
                        segments[:length] = example.segment_ids
                        mask[:length] = 1
                        produced = True
                        yield {"input_ids": ids, "input_mask": mask, "segment_ids": segments,
                               "next_sentence_labels": np.int32(pair.is_random_next)}
            if not is_training or not produced:   # never loop over a pass without pairs
                return

    vector = tf.TensorSpec([max_seq_length], tf.int32)
    dataset = tf.data.Dataset.from_generator(examples, output_signature={
        "input_ids": vector, "input_mask": vector, "segment_ids": vector,
        "next_sentence_labels": tf.TensorSpec([], tf.int32)})
    if is_training:
        dataset = dataset.shuffle(shuffle_buffer_size,
                                  seed=None if seed is None else seed + pipeline_id)
    dataset = dataset.batch(per_replica, drop_remainder=is_training)
    masker = DynamicMasker.for_tokenizer(tokenizer, max_predictions_per_seq,
                                         masked_lm_prob=masked_lm_prob,
                                         do_whole_word_mask=do_whole_word_mask,
                                         max_ngram=max_ngram)
    dataset = dataset.enumerate().map(
        dynamic_mask_fn(masker, _base_seed(seed, "raw_text_masks", pipeline_id)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
