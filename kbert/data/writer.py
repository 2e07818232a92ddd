"""Write sharded pre-training TFRecords in parallel processes, then `manifest.json`.

The corpus is read as a stream (`corpus.DocumentStream`, one line at a time) and cut into
chunks of documents, the unit of work (`examples.stream_chunks`: documents shuffled in
windows of `SHUFFLE_WINDOW_CHUNKS` chunks). Processes build the chunks' records in
parallel, at most two chunks per process in flight. Output shard `s` of N holds the
records of chunks `s, s + N, s + 2N, ...`, spooled to a hidden file as they come and
written at the end through a shuffle buffer seeded by (`random_seed`, `s`). A shard's bytes
therefore depend only on the settings and the corpus: any `num_processes` gives
byte-identical files, and machine `i` of `--num_shards=W` writes shards `i, i + W, ...` —
the union of all machines' files is exactly the single-machine output. Memory holds one
window of documents, the chunks in flight and one shuffle buffer: flat in the corpus size.

On one machine the whole output directory is staged beside it and swapped in when every
shard and the manifest are written (`kbert.outputs.replace_directory`): an existing data set
is replaced only with `overwrite`, and a failure or kill leaves it whole. Workers of a
multi-machine run write their shards in place (hidden temporary file, then rename) and
their manifest last; on an error this run's shards are removed.

Example:
    >>> manifest = create_pretraining_data(                         # doctest: +SKIP
    ...     "data/corpus/*.txt", "vocab.txt", output_dir="/tmp/pretrain",
    ...     settings=PretrainingDataSettings(dupe_factor=2, num_output_shards=4),
    ...     num_processes=2)
    >>> manifest["num_examples"] > 0                                # doctest: +SKIP
    True
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import struct
import glob
import logging
import multiprocessing
import os
import random
import time
from typing import Sequence

from kbert import fileio, outputs
from kbert.data import manifest as manifest_lib
from kbert.data.corpus import DocumentStream, expand_input_patterns
from kbert.data.examples import (create_chunk_examples, derive_seed, make_masker,
                                 shards_of_worker, stream_chunks)
from kbert.data.pairs import tokenize_documents
from kbert.data.settings import PretrainingDataError, PretrainingDataSettings

SHARD_SUFFIX = ".tfrecord"
DATA_KIND = "pretraining_data"


def shard_file_name(shard: int, num_output_shards: int, prefix: str = "pretrain") -> str:
    """`pretrain-00003-of-00008.tfrecord`."""
    return f"{prefix}-{shard:05d}-of-{num_output_shards:05d}{SHARD_SUFFIX}"


@functools.lru_cache(maxsize=4)
def cached_tokenizer(vocab_file: str, lower_case: bool, family: str = "bert"):
    """The tokenizer of `family` (WordPiece `vocab.txt`; RoBERTa's `vocab.json` with
    `merges.txt` beside it; ALBERT's `spiece.model`), cached per process.

    Raises PretrainingDataError naming `--vocab_file` when the files are unusable.
    """
    from kbert.tokenizers import BertTokenizer
    from kbert.tokenizers.families import load_family_tokenizer
    try:
        if family in ("bert", "distilbert"):
            return BertTokenizer(vocab_file, lower_case=lower_case)
        return load_family_tokenizer(family, vocab_file, lower_case=lower_case)
    except (ValueError, OSError) as e:
        raise PretrainingDataError(f"--vocab_file: {e}") from e


def settings_tokenizer(vocab_file: str, settings: PretrainingDataSettings):
    """`cached_tokenizer` for the family and casing of `settings`."""
    return cached_tokenizer(vocab_file, settings.do_lower_case, settings.family)


@functools.lru_cache(maxsize=4)
def _masker(vocab_file: str, settings: PretrainingDataSettings):
    return make_masker(settings_tokenizer(vocab_file, settings), settings)


# What `next_sentence_labels` means under each sentence objective (said in the manifest).
LABEL_MEANINGS = {"nsp": "0 = IsNext (B follows A), 1 = NotNext (B is random)",
                  "sop": "0 = A before B as in the text, 1 = swapped (sentence order)",
                  "none": "always 0: one packed segment (FULL-SENTENCES), no sentence task"}


@dataclasses.dataclass
class ChunkJob:
    """Everything a process needs to build the records of one chunk."""

    chunk_id: int
    document_ids: list[int]
    sentences: list[tuple[str, ...]]  # per document
    vocab_file: str
    settings: PretrainingDataSettings


def build_chunk_records(job: ChunkJob) -> tuple[int, list[bytes], int, int]:
    """Tokenize, pair, mask and serialize one chunk.

    Returns (chunk id, serialized examples, number of NotNext examples, number of sentences
    longer than `max_seq_length - 3` tokens, which pairs truncate).
    """
    settings = job.settings
    tokenizer = settings_tokenizer(job.vocab_file, settings)
    documents = tokenize_documents(job.sentences, tokenizer, document_ids=job.document_ids)
    examples = create_chunk_examples(job.chunk_id, documents, tokenizer, settings,
                                     _masker(job.vocab_file, settings))
    serialized = [e.serialize(settings.max_seq_length, settings.max_predictions_per_seq)
                  for e in examples]
    long_sentences = sum(len(s) > settings.max_num_tokens for d in documents
                         for s in d.sentences)
    return (job.chunk_id, serialized, sum(e.is_random_next for e in examples),
            long_sentences)


# A shard's records are shuffled through a buffer of this many (an exact shuffle of any
# shard up to that size, as before streaming; a bounded one beyond it, issue 19).
SHUFFLE_BUFFER_RECORDS = 1 << 15


def write_shard(path: str, shard: int, chunk_records: Iterable[list[bytes]],
                random_seed: int, buffer_records: int = SHUFFLE_BUFFER_RECORDS) -> int:
    """Shuffle the records of a shard's chunks (seeded by the shard) through a buffer of
    `buffer_records` and write them atomically; returns the number of records."""
    import tensorflow as tf
    rng = random.Random(derive_seed(random_seed, "shard", shard))
    buffer: list[bytes] = []
    written = 0
    with fileio.atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(tmp) as writer:
            for chunk in chunk_records:
                for record in chunk:
                    if len(buffer) < buffer_records:
                        buffer.append(record)
                        continue
                    index = rng.randrange(len(buffer))
                    writer.write(buffer[index])
                    buffer[index] = record
                    written += 1
            rng.shuffle(buffer)
            for record in buffer:
                writer.write(record)
            written += len(buffer)
    logging.info("wrote %s: %d examples", path, written)
    return written


class ShardSpool:
    """A shard's chunk records appended as they are built (a hidden file beside the
    shard), read back chunk by chunk when the shard is written: memory holds no shard."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "wb")

    def add(self, records: list[bytes]) -> None:
        self._file.write(struct.pack("<Q", len(records)))
        for record in records:
            self._file.write(struct.pack("<Q", len(record)))
            self._file.write(record)

    def chunks(self) -> Iterator[list[bytes]]:
        self._file.close()
        with open(self.path, "rb") as f:
            while header := f.read(8):
                (count,) = struct.unpack("<Q", header)
                chunk = []
                for _ in range(count):
                    (size,) = struct.unpack("<Q", f.read(8))
                    chunk.append(f.read(size))
                yield chunk

    def remove(self) -> None:
        self._file.close()
        if os.path.exists(self.path):
            os.remove(self.path)


def spool_path(shard_path: str) -> str:
    directory, name = os.path.split(shard_path)
    return os.path.join(directory, f".{name}.spool.tmp")


def _init_worker_process() -> None:
    # One TensorFlow thread per process: the processes are the parallelism.
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _process_context():
    """Never plain fork: TensorFlow's threads do not survive it. A fork server that has
    imported (but not started) TensorFlow starts workers in milliseconds; spawn, where
    there is no fork server, pays a TensorFlow import per worker."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["kbert.console_preload", __name__])
        return context
    return multiprocessing.get_context("spawn")


def _chunk_results(jobs: Iterable[ChunkJob], num_processes: int):
    """Yield `build_chunk_records` of each job, in order, using `num_processes` with at
    most two jobs per process in flight (the jobs are read from a stream as needed)."""
    if num_processes <= 1:
        for job in jobs:
            yield build_chunk_records(job)
        return
    with _process_context().Pool(num_processes, initializer=_init_worker_process) as pool:
        pending: collections.deque = collections.deque()
        for job in jobs:
            pending.append(pool.apply_async(build_chunk_records, (job,)))
            if len(pending) >= 2 * num_processes:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _write_shards(stream: DocumentStream, shards: list[int], paths: list[str],
                  vocab_file: str, settings: PretrainingDataSettings, num_processes: int
                  ) -> tuple[dict[int, tuple[int, int]], int, int]:
    """Stream the documents into chunks, build the chunks of `shards` (chunk c goes to
    shard c mod N) into spools, then write each shard from its spool.

    Returns ({shard: (examples, NotNext examples)}, sentences longer than a pair holds,
    number of chunks)."""
    num_output_shards = settings.num_output_shards
    spools = {s: ShardSpool(spool_path(paths[s])) for s in shards}
    not_next = dict.fromkeys(shards, 0)
    long_sentences = num_chunks = 0

    def jobs():
        nonlocal num_chunks
        for chunk_id, chunk in enumerate(stream_chunks(stream, settings)):
            num_chunks = chunk_id + 1
            if chunk_id % num_output_shards in spools:
                yield ChunkJob(chunk_id, [i for i, _ in chunk],
                               [d.sentences for _, d in chunk], vocab_file, settings)

    try:
        results = _chunk_results(jobs(), num_processes)
        try:
            for chunk_id, records, chunk_not_next, chunk_long in results:
                spools[chunk_id % num_output_shards].add(records)
                not_next[chunk_id % num_output_shards] += chunk_not_next
                long_sentences += chunk_long
        finally:
            results.close()  # stops the worker processes
        _check_stream(stream, settings, num_chunks)
        counts = {}
        for shard in shards:
            counts[shard] = (write_shard(paths[shard], shard, spools[shard].chunks(),
                                         settings.random_seed), not_next[shard])
            spools[shard].remove()
    finally:
        for spool in spools.values():
            spool.remove()
    return counts, long_sentences, num_chunks


def number_of_chunks(num_documents: int, documents_per_chunk: int) -> int:
    """How many chunks `stream_chunks` cuts `num_documents` into."""
    chunks = -(-num_documents // documents_per_chunk)
    return chunks - 1 if chunks > 1 and num_documents % documents_per_chunk == 1 else chunks


def _check_counts(files: list[str], num_documents: int,
                  settings: PretrainingDataSettings) -> None:
    """The errors a corpus's document count shows."""
    if num_documents < 2 and settings.sentence_objective == "nsp":
        raise PretrainingDataError(
            f"the corpus ({', '.join(files[:3])}) has only one document: NotNext "
            "pairs need at least two (separate documents with a blank line)")
    num_chunks = number_of_chunks(num_documents, settings.documents_per_chunk)
    if num_chunks < settings.num_output_shards:
        raise PretrainingDataError(
            f"--num_output_shards={settings.num_output_shards} exceeds the number of work "
            f"chunks ({num_chunks} = {num_documents} documents / "
            f"--documents_per_chunk={settings.documents_per_chunk}); lower one of the two")


def _check_stream(stream: DocumentStream, settings: PretrainingDataSettings,
                  num_chunks: int) -> None:
    """The same checks once the corpus is read (it may have changed meanwhile)."""
    if stream.num_documents == 0:
        raise stream.empty_error()
    _check_counts(stream.files, stream.num_documents, settings)
    assert num_chunks == number_of_chunks(stream.num_documents,
                                          settings.documents_per_chunk), num_chunks


def _remove_temporaries(path: str) -> None:
    directory, name = os.path.split(path)
    for tmp in glob.glob(os.path.join(directory or ".", "." + glob.escape(name) + ".*.tmp")):
        try:
            os.remove(tmp)
        except OSError:
            pass


def resolve_output_paths(output_dir: str | None, output_files: Sequence[str] | str | None,
                         num_output_shards: int) -> tuple[str, list[str]]:
    """(manifest directory, shard paths) from `--output_dir` and/or `--output_file`."""
    if isinstance(output_files, str):
        output_files = [f.strip() for f in output_files.split(",") if f.strip()]
    if not output_dir and not output_files:
        raise PretrainingDataError("give --output_dir or --output_file")
    if output_files:
        if len(output_files) != num_output_shards:
            raise PretrainingDataError(
                f"--output_file names {len(output_files)} files but --num_output_shards="
                f"{num_output_shards}")
        paths = [os.path.join(output_dir, f) if output_dir else f for f in output_files]
        paths = [os.path.abspath(p) for p in paths]
        if len(set(paths)) != len(paths):
            raise PretrainingDataError("--output_file names the same file twice")
        directory = os.path.abspath(output_dir) if output_dir else os.path.dirname(paths[0])
        return directory, paths
    directory = os.path.abspath(output_dir)
    return directory, [os.path.join(directory, shard_file_name(s, num_output_shards))
                       for s in range(num_output_shards)]


def _check_output_is_free(directory: str, paths: Sequence[str], own_manifest: str,
                          overwrite: bool) -> None:
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise PretrainingDataError(f"--output_dir {directory} exists and is not a directory")
    occupied = [p for p in (os.path.join(directory, manifest_lib.MANIFEST_NAME), own_manifest,
                            *paths) if os.path.exists(p)]
    if occupied and not overwrite:
        raise PretrainingDataError(
            f"output already exists: {occupied[0]}"
            f"{f' (and {len(occupied) - 1} more)' if len(occupied) > 1 else ''}; "
            "pass --overwrite to replace it")


def _write_in_place(directory, paths, shards, manifest_path, write) -> dict:
    """Write this worker's shards into a shared directory (several machines, or
    --output_file names); on an error this run's shards are removed."""
    os.makedirs(directory, exist_ok=True)
    for stale in (os.path.join(directory, manifest_lib.MANIFEST_NAME), manifest_path):
        if os.path.exists(stale):  # only with overwrite: old data is no longer whole
            os.remove(stale)
    own_paths = [paths[s] for s in shards]
    existed = {p for p in own_paths if os.path.exists(p)}
    try:
        return write(paths, manifest_path)
    except BaseException:
        for path in own_paths:
            _remove_temporaries(path)
            if path not in existed and os.path.exists(path):
                os.remove(path)
        raise


def create_pretraining_data(input_patterns: str | Sequence[str], vocab_file: str,
                            output_dir: str | None = None,
                            output_files: Sequence[str] | str | None = None,
                            settings: PretrainingDataSettings = PretrainingDataSettings(),
                            num_processes: int = 1, num_shards: int = 1, shard_index: int = 0,
                            overwrite: bool = False) -> dict:
    """Read raw text, write this worker's shards and its manifest; return the manifest.

    Args:
        input_patterns: comma-separated globs, files or directories (`--input_file`).
        vocab_file: the family's tokenizer file (`--vocab_file`): WordPiece `vocab.txt`,
            RoBERTa's `vocab.json` (`merges.txt` beside it), ALBERT's `spiece.model`.
        output_dir / output_files: where shards go (`--output_dir` / `--output_file`).
        settings: content settings (see `PretrainingDataSettings`).
        num_processes: parallel writer processes on this machine.
        num_shards / shard_index: split the work across machines.
        overwrite: replace existing output (the old manifest is removed first).

    Raises PretrainingDataError (naming the flag or file) before anything is written when
    the input, vocabulary or flags are bad.
    """
    for name, value in (("num_processes", num_processes), ("num_shards", num_shards)):
        if not isinstance(value, int) or value < 1:
            raise PretrainingDataError(f"--{name} must be a positive integer, got {value!r}")
    if not isinstance(shard_index, int) or not 0 <= shard_index < num_shards:
        raise PretrainingDataError(
            f"--shard_index={shard_index!r} must be in [0, --num_shards={num_shards})")
    directory, paths = resolve_output_paths(output_dir, output_files, settings.num_output_shards)
    tokenizer = settings_tokenizer(vocab_file, settings)
    files = expand_input_patterns(input_patterns)
    started = time.time()
    stream = DocumentStream(files, settings.sentence_splitting)
    # The checks a whole corpus used to be read for, from its first documents only.
    enough = settings.num_output_shards * settings.documents_per_chunk + 1
    found = stream.check(enough)
    if found < enough:   # the whole corpus was read: it is small
        _check_counts(stream.files, found, settings)
    shards = shards_of_worker(settings.num_output_shards, shard_index, num_shards)
    if not shards:
        raise PretrainingDataError(
            f"--shard_index={shard_index} has no output shard: --num_shards={num_shards} "
            f"exceeds --num_output_shards={settings.num_output_shards}")
    if num_shards == 1:
        manifest_path = os.path.join(directory, manifest_lib.MANIFEST_NAME)
    else:
        manifest_path = os.path.join(
            directory, manifest_lib.worker_manifest_name(shard_index, num_shards))
    from kbert.tokenizers.families import files_beside
    tokenizer_files = files_beside(settings.family, vocab_file)
    patterns = input_patterns.split(",") if isinstance(input_patterns, str) else input_patterns
    # A directory named as input is an input too, not only the files found in it.
    inputs = [*files, *tokenizer_files,
              *(p.strip() for p in patterns if os.path.isdir(p.strip()))]
    # One machine writing into --output_dir: the whole directory is staged and swapped in.
    whole_directory = num_shards == 1 and not output_files
    if whole_directory:
        outputs.check_output(directory, DATA_KIND, inputs, overwrite, replace_own=False)
    else:
        for path in paths:
            outputs.check_not_overlapping(path, inputs)
        _check_output_is_free(directory, [paths[s] for s in shards], manifest_path, overwrite)

    logging.info("streaming %d files; writing %d of %d shards with %d processes",
                 len(files), len(shards), settings.num_output_shards, num_processes)

    def write(shard_paths, manifest_file):
        counts, long_sentences, num_chunks = _write_shards(
            stream, shards, shard_paths, vocab_file, settings, num_processes)
        if stream.num_split_lines:
            logging.info("split %d lines into sentences (--sentence_splitting=%s)",
                         stream.num_split_lines, settings.sentence_splitting)
        manifest = {
            "format": manifest_lib.FORMAT,
            **settings.to_dict(),
            "vocab_file": os.path.abspath(vocab_file),
            "vocab_hash": tokenizer.vocab_hash(),
            "vocab_size": tokenizer.vocab_size,
            "input_files": [os.path.abspath(f) for f in files],
            "num_documents": stream.num_documents,
            "num_chunks": num_chunks,
            "num_split_lines": stream.num_split_lines,
            "num_truncated_sentences": long_sentences,
            "next_sentence_labels": LABEL_MEANINGS[settings.sentence_objective],
            "shards": {os.path.relpath(paths[s], directory): counts[s][0]
                       for s in sorted(counts)},
            "num_examples": sum(n for n, _ in counts.values()),
            "num_not_next": sum(k for _, k in counts.values()),
        }
        if num_shards > 1:
            manifest["worker"] = {"shard_index": shard_index, "num_shards": num_shards}
        if long_sentences:
            logging.warning("%d sentences are longer than --max_seq_length=%d allows for a "
                            "pair (%d tokens): pairs holding them are truncated",
                            long_sentences, settings.max_seq_length, settings.max_num_tokens)
        if manifest["num_examples"] == 0 and num_shards == 1:
            raise PretrainingDataError(f"no example came out of {', '.join(files[:3])}: "
                                       f"{stream.no_pair_reason()}")
        manifest_lib.write_manifest(manifest_file, manifest)
        return manifest

    if whole_directory:
        with outputs.replace_directory(directory, DATA_KIND, inputs, overwrite,
                                       replace_own=False) as staging:
            manifest = write([os.path.join(staging, os.path.basename(p)) for p in paths],
                             os.path.join(staging, os.path.basename(manifest_path)))
    else:
        manifest = _write_in_place(directory, paths, shards, manifest_path, write)
    logging.info("wrote %d examples in %d shards and %s in %.1fs", manifest["num_examples"],
                 len(shards), manifest_path, time.time() - started)
    return manifest
