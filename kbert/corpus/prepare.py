"""One pass from dumps, JSON lines and text to clean google-research/bert text shards.

Inputs are recognised by content (`sniff`), all of them before any work, so a bad file is
refused at once. Pages and documents are read as a stream; cleaning and sentence splitting
run in `num_workers` processes over ordered batches, so the shards are byte-identical
whatever the worker count. The output directory is written through
`kbert.outputs.replace_directory`: shards plus `manifest.json`, or nothing at all.

Example:
    >>> manifest = prepare_corpus(["enwiki-*.xml.bz2", "books/*.txt"], "/tmp/corpus",
    ...                           num_workers=2)                         # doctest: +SKIP
    >>> manifest["documents"], manifest["skipped"]                       # doctest: +SKIP
    (6123456, {'empty': 1203, 'namespace': 0, 'redirect': 10512})
"""

from __future__ import annotations

import collections
import contextlib
import glob
import itertools
import json
import multiprocessing
import os
from typing import Iterable, Iterator, Sequence

from kbert import outputs
from kbert.corpus.errors import CorpusError
from kbert.corpus.jsonl import JsonLinesReader
from kbert.corpus.mediawiki import CATEGORY_NAMESPACE, FILE_NAMESPACE, MediaWikiDump
from kbert.corpus.plaintext import LAYOUTS, PlainTextReader
from kbert.corpus.sentences import LANGUAGES, split_sentences
from kbert.corpus.sniff import Kind, read_head, sniff
from kbert.corpus.wikitext import clean_wikitext

MANIFEST_FORMAT = "kbert.corpus/1"
SKIP_REASONS = ("redirect", "namespace", "empty")
_BATCH = 64


def expand_inputs(patterns: str | Sequence[str], flag: str = "--input_file") -> list[str]:
    """Comma-separated globs, files or directories (every non-hidden file under it) → files
    in order, each once; CorpusError naming what matched nothing."""
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    items = [p.strip() for p in patterns if p and p.strip()]
    if not items:
        raise CorpusError(f"{flag} is empty: give comma-separated files, globs or directories")
    files: list[str] = []
    for item in items:
        if set("*?[") & set(item):
            matched = sorted(m for m in glob.glob(item, recursive=True) if os.path.isfile(m))
            if not matched:
                raise CorpusError(f"{flag} pattern {item!r} matches no file")
            files.extend(matched)
        elif os.path.isdir(item):
            found = sorted(os.path.join(root, name) for root, dirs, names in os.walk(item)
                           for name in names if not name.startswith("."))
            if not found:
                raise CorpusError(f"{flag} directory {item!r} has no files")
            files.extend(found)
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise CorpusError(f"{flag} file not found: {item}")
    return list(dict.fromkeys(files))


# ----------------------------------------------------------------------------- the work items
# A work item is a tuple a worker turns into a document's sentences:
#   ("wiki", wikitext, file namespace names, category namespace names)
#   ("paragraphs", [paragraph, ...])     split into sentences
#   ("sentences", [sentence, ...])       kept as they are
def to_sentences(item: tuple, language: str = "auto") -> list[str]:
    """The sentences of one work item (empty when nothing is left)."""
    if item[0] == "wiki":
        paragraphs = clean_wikitext(item[1], item[2], item[3])
    elif item[0] == "paragraphs":
        paragraphs = item[1]
    else:
        return [s for s in item[1] if s.strip()]
    sentences: list[str] = []
    for paragraph in paragraphs:
        sentences.extend(split_sentences(paragraph, language))
    return sentences


def _batch_to_sentences(args: tuple[list[tuple], str]) -> list[list[str]]:
    items, language = args
    return [to_sentences(item, language) for item in items]


class _Source:
    """One input file: its kind and a reader that yields work items."""

    def __init__(self, path: str, text_field: str, text_layout: str):
        self.path = path
        self.kind: Kind = sniff(path)
        self.reader = None
        self.documents = 0
        if self.kind.format == "mediawiki":
            self.reader = MediaWikiDump(path)
        elif self.kind.format == "jsonl":
            self.reader = JsonLinesReader(path, self.kind, text_field)
        else:
            head, _ = read_head(path)
            head_text = head.decode(self.kind.encoding, errors="ignore")
            self.reader = PlainTextReader(path, self.kind, text_layout, head_text)

    def items(self) -> Iterator[tuple]:
        if self.kind.format == "mediawiki":
            for page in self.reader.pages():
                names = self.reader.namespaces
                yield ("wiki", page.text, tuple(sorted(names.get(FILE_NAMESPACE, ()))),
                       tuple(sorted(names.get(CATEGORY_NAMESPACE, ()))))
        elif self.kind.format == "jsonl":
            for paragraphs in self.reader.documents():
                yield ("paragraphs", paragraphs)
        else:
            for layout, lines in self.reader.documents():
                yield ("paragraphs" if layout == "documents" else "sentences", lines)

    def manifest(self) -> dict:
        entry = {"path": os.path.abspath(self.path), "sha256": self.reader.sha256,
                 "bytes": self.reader.num_bytes, "format": self.kind.format,
                 "compression": self.kind.compression, "encoding": self.kind.encoding,
                 "documents": self.documents}
        if self.kind.schema:
            entry["schema"] = self.kind.schema
        if self.kind.format == "text":
            entry["layout"] = self.reader.layout
        if self.kind.format == "mediawiki":
            entry["skipped"] = dict(sorted(self.reader.skipped.items()))
        return entry


def _batches(items: Iterable[tuple]) -> Iterator[list[tuple]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, _BATCH)):
        yield batch


def _ordered_map(pool, function, arguments: Iterable, window: int) -> Iterator:
    """`map(function, arguments)` on `pool`, in order, with at most `window` batches in
    flight (`Pool.imap` would read the whole input ahead: unbounded memory)."""
    pending: collections.deque = collections.deque()
    for argument in arguments:
        pending.append(pool.apply_async(function, (argument,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _documents(sources: list[_Source], language: str, pool, window: int, skipped):
    """Sentences of every non-empty document, in input order."""
    for source in sources:
        batches = ((batch, language) for batch in _batches(source.items()))
        if pool is not None:
            results = _ordered_map(pool, _batch_to_sentences, batches, window)
        else:
            results = map(_batch_to_sentences, batches)
        yield from _non_empty(source, results, skipped)


def _non_empty(source, results, skipped):
    for batch in results:
        for sentences in batch:
            if sentences:
                source.documents += 1
                yield sentences
            else:
                skipped["empty"] += 1


def write_manifest(staging: str, shards, skipped, files, inputs, settings) -> dict:
    """manifest.json in `staging` (counts, skips by reason, inputs, settings, shards); the
    plain and Beam paths both end here. An empty result is a CorpusError naming the files."""
    if not shards:
        shown = ", ".join(files[:3]) + (" ..." if len(files) > 3 else "")
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(skipped.items()) if n)
        raise CorpusError(f"no documents in {shown}: every page or document was "
                          f"skipped ({reasons or 'none read'})")
    manifest = {
        "format": MANIFEST_FORMAT,
        "documents": sum(s["documents"] for s in shards),
        "sentences": sum(s["sentences"] for s in shards),
        "characters": sum(s["characters"] for s in shards),
        "skipped": dict(sorted(skipped.items())),
        "settings": settings,
        "inputs": inputs,
        "shards": shards,
    }
    with open(os.path.join(staging, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return manifest


def prepare_corpus(input_patterns: str | Sequence[str], output_dir: str, *,
                   text_field: str = "text", language: str = "auto",
                   text_layout: str = "auto", num_workers: int = 1,
                   max_shard_bytes: int = 128 << 20, overwrite: bool = False) -> dict:
    """Write `output_dir` (shards + manifest.json, see the module docstring); returns the
    manifest. CorpusError for a bad input or an empty result (then nothing is written),
    OutputError for a refused output."""
    from kbert.corpus.shards import ShardWriter
    if language not in LANGUAGES:
        raise CorpusError(f"--language={language!r}: use one of {', '.join(LANGUAGES)}")
    if text_layout not in LAYOUTS:
        raise CorpusError(f"--text_layout={text_layout!r}: use one of {', '.join(LAYOUTS)}")
    if num_workers < 1:
        raise CorpusError(f"--num_workers={num_workers}: must be at least 1")
    files = expand_inputs(input_patterns)
    patterns = input_patterns.split(",") if isinstance(input_patterns, str) else input_patterns
    inputs = files + [p.strip() for p in patterns if p and os.path.isdir(p.strip())]
    outputs.check_output(output_dir, "corpus", inputs, overwrite, flag="--output_dir")
    sources = [_Source(path, text_field, text_layout) for path in files]
    skipped = collections.Counter({reason: 0 for reason in SKIP_REASONS})
    with outputs.replace_directory(output_dir, "corpus", inputs, overwrite,
                                   flag="--output_dir") as staging:
        writer = ShardWriter(staging, max_shard_bytes)
        with contextlib.ExitStack() as stack:
            pool = None
            if num_workers > 1:
                pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(
                    num_workers))
            for sentences in _documents(sources, language, pool, 4 * num_workers, skipped):
                writer.add(sentences)
        shards = writer.close()
        for source in sources:
            if source.kind.format == "mediawiki":
                skipped.update(source.reader.skipped)
        manifest = write_manifest(
            staging, shards, skipped, files, [source.manifest() for source in sources],
            {"text_field": text_field, "language": language, "text_layout": text_layout,
             "max_shard_bytes": max_shard_bytes})
    return manifest
