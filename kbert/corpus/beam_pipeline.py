"""`prepare_corpus` as an Apache Beam pipeline: the same shards, from a laptop to a cluster.

The stages are the plain path's, with its own functions. No text passes through the
runner, only spool paths and small summaries: the direct runner, which holds each stage's
output in memory, stays flat in the corpus size (docs/CORPUS.md has the figures).
1. Spool: each input file is read by the plain path's reader (`prepare._Source`); its work
   items are written in batches of `batch_chars` characters to spool files in a hidden
   directory of the staging directory; each batch is an element (key (file index, batch
   index), path).
2. Clean: batches are spread over the workers (`Reshuffle`), cleaned and split by
   `prepare.to_sentences`; each writes its non-empty documents' sentences and their byte
   sizes (8 bytes a document) beside it and removes its raw spool.
3. Plan: on one worker, `ShardWriter`'s rule (a new shard once one reaches
   `max_shard_bytes`) over the sizes, streamed batch by batch in key order, gives each
   shard's document ranges (spool path, first, end).
4. Write: shards are spread over the workers; each reads its ranges and writes them with
   `ShardWriter`. The launcher writes manifest.json and removes the spools.
So shards and manifest.json are byte-identical to the plain path's, on any runner and any
number of workers.

Beam's own pipeline options pick the runner: the direct runner (the default here, see
`default_options`) or
`--runner=FlinkRunner --flink_master=...`, `--runner=SparkRunner ...`,
`--runner=DataflowRunner --project=... --region=... --temp_location=gs://...`
(docs/CORPUS.md). The output goes through `kbert.outputs.replace_directory` as on the
plain path; on a cluster, its staging directory must be on a filesystem every worker
mounts (the workers write the spools and shards there). The spools take temporary disk
there (zlib-compressed text, removed at the end).

Example:
    >>> prepare_corpus_on_beam("dumps/*.bz2", "/tmp/wiki",                 # doctest: +SKIP
    ...     ["--runner=FnApiRunner", "--direct_num_workers=2"])
"""

from __future__ import annotations

import array
import collections
import contextlib
import json
import os
import pickle
import shutil
import uuid
import zlib
from typing import Iterator, Sequence

from kbert import outputs
from kbert.corpus import prepare
from kbert.corpus.errors import CorpusError
from kbert.corpus.shards import ShardWriter

_WORK = ".beam-work"     # hidden directory in the staging directory, removed at the end
BATCH_CHARS = 4 << 20    # characters of input text per spool batch (one unit of cleaning)


def import_beam():
    """`apache_beam`, imported without its root-logger warning that the optional Google
    Cloud clients are missing ("apitools not found ..."), so errors stay one line."""
    import logging
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        import apache_beam
    finally:
        root.setLevel(level)
    return apache_beam


def default_options(num_workers: int = 1) -> list[str]:
    """Beam options used when none are given: the direct runner's engine for batch
    pipelines (FnApiRunner) in `num_workers` processes. Named directly because Beam 2.77's
    `--runner=DirectRunner` first tries to download the Prism runner from GitHub (network at
    run time; offline it falls back to FnApiRunner at once)."""
    return ["--runner=FnApiRunner", f"--direct_num_workers={num_workers}",
            "--direct_running_mode=multi_processing",
            "--default_sdk_harness_log_level=WARNING"]


def unknown_options(pipeline_options: Sequence[str]) -> list[str]:
    """The options in `pipeline_options` that no Beam options class knows (a typo such as
    `--direct_num_worker=2` would otherwise be dropped with a warning and the run go on)."""
    import logging
    import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions
    options = PipelineOptions(list(pipeline_options))
    logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = logger.level
    logger.setLevel(logging.ERROR)   # Beam's own "Discarding unparseable args" warning
    try:
        known = set(options.get_all_options())
        found = options.get_all_options(retain_unknown_options=True)
    finally:
        logger.setLevel(level)
    return [f"--{name}" for name in sorted(set(found) - known)]


def document_bytes(sentences: list[str]) -> int:
    """The bytes `ShardWriter.add` writes for a document (0 for an empty one)."""
    if not sentences:
        return 0
    return len(("\n".join(sentences) + "\n\n").encode("utf-8"))


def _spool_path(work: str, stage: str, key: tuple[int, int]) -> str:
    return os.path.join(work, f"{stage}-{key[0]:05d}-{key[1]:08d}")


def _part(path: str) -> str:
    """A temporary name beside `path`, unique to this attempt: written, then renamed to
    `path`, so a retried or speculative bundle never sees (or writes into) half a file."""
    return f"{path}.{uuid.uuid4().hex}.part"


def _dump(value, path: str) -> None:
    """`value` pickled and zlib-compressed (level 1: fast), written atomically."""
    part = _part(path)
    with open(part, "wb") as f:
        f.write(zlib.compress(pickle.dumps(value, pickle.HIGHEST_PROTOCOL), 1))
    os.replace(part, path)


def _undump(path: str):
    with open(path, "rb") as f:
        return pickle.loads(zlib.decompress(f.read()))


def item_chars(item: tuple) -> int:
    """Characters of text in one work item (what a spool batch is measured in)."""
    if item[0] == "wiki":
        return len(item[1])
    return sum(len(text) for text in item[1])


def _spool_file(element, work: str, text_field: str, text_layout: str,
                batch_chars: int) -> Iterator:
    """(file index, path) → ((file index, batch index), raw spool path) per batch of the
    file's work items, written into `work`; then the file's manifest entry (or its error)
    on the `inputs` output. Only paths travel through the runner, never text."""
    import apache_beam as beam
    file_index, path = element
    try:
        source = prepare._Source(path, text_field, text_layout)
        batch, chars, index = [], 0, 0
        for item in source.items():
            batch.append(item)
            chars += item_chars(item)
            if chars >= batch_chars:
                key = (file_index, index)
                _dump(batch, _spool_path(work, "raw", key))
                yield key, _spool_path(work, "raw", key)
                batch, chars, index = [], 0, index + 1
        if batch:
            key = (file_index, index)
            _dump(batch, _spool_path(work, "raw", key))
            yield key, _spool_path(work, "raw", key)
        yield beam.pvalue.TaggedOutput("inputs", (file_index, source.manifest(), None))
    except CorpusError as e:
        yield beam.pvalue.TaggedOutput("inputs", (file_index, None, str(e)))


def _clean_batch(element, work: str, language: str) -> dict:
    """A raw spool batch → its non-empty documents' sentences (spooled) and their byte sizes
    (a `.sizes` file, 8 bytes a document); the raw spool is removed. Returns the batch's
    summary: key, paths, documents kept, empty ones."""
    key, raw = element
    key = tuple(key)
    path = _spool_path(work, "clean", key)
    if not os.path.exists(raw) and os.path.exists(path + ".json"):
        return _load(path + ".json")     # a retried bundle: this batch is already done
    documents = [prepare.to_sentences(item, language) for item in _undump(raw)]
    kept = [sentences for sentences in documents if sentences]
    _dump(kept, path)
    part = _part(path + ".sizes")
    with open(part, "wb") as f:
        array.array("q", map(document_bytes, kept)).tofile(f)
    os.replace(part, path + ".sizes")
    summary = {"key": list(key), "path": path, "documents": len(kept),
               "empty": len(documents) - len(kept)}
    part = _part(path + ".json")
    _save(summary, part)
    os.replace(part, path + ".json")
    with contextlib.suppress(FileNotFoundError):    # a speculative twin may have removed it
        os.remove(raw)
    return summary


def plan_shards(batches: list[dict], max_shard_bytes: int) -> Iterator:
    """ShardWriter's rule over the batches' document sizes, streamed from their `.sizes`
    files in key order (one batch's sizes in memory at a time): yields
    (shard index, shard count, [(spool path, first document, end), ...]) per shard, then
    on the `plan` output the documents per input file and the empty documents."""
    import apache_beam as beam
    shards: list[list[list]] = []
    filled = None
    for batch in sorted(batches, key=lambda b: b["key"]):
        sizes = array.array("q")
        with open(batch["path"] + ".sizes", "rb") as f:
            sizes.frombytes(f.read())
        for index, size in enumerate(sizes):
            if filled is None:
                shards.append([])
                filled = 0
            ranges = shards[-1]
            if ranges and ranges[-1][0] == batch["path"]:
                ranges[-1][2] = index + 1
            else:
                ranges.append([batch["path"], index, index + 1])
            filled += size
            if filled >= max_shard_bytes:
                filled = None
    for index, ranges in enumerate(shards):
        yield index, len(shards), ranges
    per_file: collections.Counter = collections.Counter()
    for batch in batches:
        per_file[batch["key"][0]] += batch["documents"]
    yield beam.pvalue.TaggedOutput("plan", {
        "empty": sum(batch["empty"] for batch in batches),
        "documents": {str(k): n for k, n in sorted(per_file.items())}})


def _write_shard(element, directory: str) -> dict:
    """One shard's document ranges, read from the clean spools in order, through
    ShardWriter; its manifest entry."""
    index, total, ranges = element
    scratch = os.path.join(directory, _WORK, f"shard-{index:05d}-{uuid.uuid4().hex}")
    os.makedirs(scratch)
    writer = ShardWriter(scratch, max_shard_bytes=1 << 62)
    for path, start, end in ranges:
        for sentences in _undump(path)[start:end]:
            writer.add(sentences)
    (entry,) = writer.close()
    name = f"corpus-{index:05d}-of-{total:05d}.txt"
    os.replace(os.path.join(scratch, entry["file"]), os.path.join(directory, name))
    shutil.rmtree(scratch, ignore_errors=True)
    return dict(sorted({**entry, "file": name}.items()))


def _save(value, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)


def _load(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_pipeline(files: Sequence[str], directory: str, pipeline_options: Sequence[str], *,
                 text_field: str = "text", language: str = "auto", text_layout: str = "auto",
                 max_shard_bytes: int = 128 << 20, batch_chars: int = BATCH_CHARS) -> dict:
    """Run the Beam pipeline over `files`, writing shards into `directory` (its spools in
    `directory/.beam-work`, removed at the end); returns
    {"shards": [...], "plan": ..., "inputs": [(index, entry, error), ...]}."""
    beam = import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    directory = os.path.abspath(directory)     # workers may run in another directory
    work = os.path.join(directory, _WORK)
    os.makedirs(work, exist_ok=True)
    files = [os.path.abspath(path) for path in files]
    options = PipelineOptions(list(pipeline_options))
    with beam.Pipeline(options=options) as pipeline:
        read = (pipeline
                | "Files" >> beam.Create(list(enumerate(files)))
                | "Spool" >> beam.FlatMap(_spool_file, work, text_field, text_layout,
                                          batch_chars)
                .with_outputs("inputs", main="batches"))
        planned = (read.batches
                   | "Spread" >> beam.Reshuffle()
                   | "CleanAndSplit" >> beam.Map(_clean_batch, work, language)
                   | "AllBatches" >> beam.combiners.ToList()
                   | "Plan" >> beam.FlatMap(plan_shards, max_shard_bytes)
                   .with_outputs("plan", main="shards"))
        shards = (planned.shards
                  | "SpreadShards" >> beam.Reshuffle()
                  | "WriteShard" >> beam.Map(_write_shard, directory))
        for name, collection in (("shards", shards), ("inputs", read.inputs),
                                 ("plan", planned.plan)):
            _ = (collection
                 | f"All{name}" >> beam.combiners.ToList()
                 | f"Save{name}" >> beam.Map(_save, os.path.join(work, f"{name}.json")))
    result = {name: _load(os.path.join(work, f"{name}.json"))
              for name in ("shards", "inputs", "plan")}
    result["plan"] = result["plan"][0] if result["plan"] else {"empty": 0, "documents": {}}
    shutil.rmtree(work)
    return result


def prepare_corpus_on_beam(input_patterns: str | Sequence[str], output_dir: str,
                           pipeline_options: Sequence[str] | None = None, *,
                           text_field: str = "text", language: str = "auto",
                           text_layout: str = "auto", max_shard_bytes: int = 128 << 20,
                           overwrite: bool = False, batch_chars: int = BATCH_CHARS) -> dict:
    """`prepare.prepare_corpus` on Beam (the same output, the same errors); returns the
    manifest. `pipeline_options`: Beam's own flags (default: `default_options()`);
    `batch_chars`: input characters per spool batch (the unit of work spread over workers;
    it changes no output byte)."""
    from kbert.corpus.plaintext import LAYOUTS
    from kbert.corpus.sentences import LANGUAGES
    if language not in LANGUAGES:
        raise CorpusError(f"--language={language!r}: use one of {', '.join(LANGUAGES)}")
    if text_layout not in LAYOUTS:
        raise CorpusError(f"--text_layout={text_layout!r}: use one of {', '.join(LAYOUTS)}")
    files = prepare.expand_inputs(input_patterns)
    patterns = input_patterns.split(",") if isinstance(input_patterns, str) else input_patterns
    inputs = files + [p.strip() for p in patterns if p and os.path.isdir(p.strip())]
    outputs.check_output(output_dir, "corpus", inputs, overwrite, flag="--output_dir")
    for path in files:     # every input recognised before any work, as on the plain path
        prepare._Source(path, text_field, text_layout)
    options = list(pipeline_options) if pipeline_options else default_options()
    unknown = unknown_options(options)
    if unknown:
        raise CorpusError(f"unknown Beam pipeline option(s) after `--`: {', '.join(unknown)}")
    with outputs.replace_directory(output_dir, "corpus", inputs, overwrite,
                                   flag="--output_dir") as staging:
        result = run_pipeline(files, staging, options, text_field=text_field,
                              language=language, text_layout=text_layout,
                              max_shard_bytes=max_shard_bytes, batch_chars=batch_chars)
        sources = sorted(result["inputs"], key=lambda s: s[0])
        errors = [error for _, _, error in sources if error]
        if errors:
            raise CorpusError(errors[0])
        plan = result["plan"]
        skipped = collections.Counter({reason: 0 for reason in prepare.SKIP_REASONS})
        skipped["empty"] += plan["empty"]
        entries = []
        for index, entry, _ in sources:
            entry["documents"] = plan["documents"].get(str(index), 0)
            skipped.update(entry.get("skipped", {}))
            entries.append(entry)
        shards = sorted(result["shards"], key=lambda s: s["file"])
        manifest = prepare.write_manifest(
            staging, shards, skipped, files, entries,
            {"text_field": text_field, "language": language, "text_layout": text_layout,
             "max_shard_bytes": max_shard_bytes})
    return manifest
