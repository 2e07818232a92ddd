"""Documents of any input `prepare_corpus` reads, streamed: the text `trainers.pretrain
--raw_text` and `trainers.learn_vocab` train on.

Every file is recognised by content (`sniff`) when the reader is made, so a bad file is
refused before any work. Then each pass reads the files again, one document at a time, with
prepare_corpus's own readers, cleaning and sentence splitting (`prepare._Source`,
`prepare.to_sentences`): a document's sentences are exactly the lines prepare_corpus writes
for it. Errors are `CorpusError`s naming the file, as in prepare_corpus.

`keep_plain_text=True` leaves uncompressed UTF-8 text (and text with a few invalid UTF-8
bytes) to the caller's own reader: `plain_text(path)` says which files those are, and
`lines()` reads them with `kbert.text`, so plain text gives what it gave before.

Example:
    >>> docs = CorpusDocuments(["enwiki-p1p41242.bz2", "c4-0000.json.gz"])  # doctest: +SKIP
    >>> next(iter(docs))[:1]                                               # doctest: +SKIP
    ['Alan Mathison Turing was an English mathematician.']
"""

from __future__ import annotations

import collections
import os
from typing import Iterator, Sequence

from kbert.corpus import prepare
from kbert.corpus.errors import CorpusError, UndecodableText
from kbert.corpus.plaintext import LAYOUTS
from kbert.corpus.sentences import LANGUAGES
from kbert.corpus.sniff import Kind, sniff

PLAIN_ENCODINGS = ("utf-8", "utf-8-sig")


def is_plain_text(kind: Kind) -> bool:
    """Uncompressed UTF-8 text: what kbert's own line readers take as it is."""
    return (kind.format == "text" and kind.compression == "none"
            and kind.encoding in PLAIN_ENCODINGS)


class CorpusDocuments:
    """Iterable of documents (lists of sentences) of `files`, in order, re-read each pass.

    `skipped` counts what the last passes left out (redirect, namespace, empty)."""

    def __init__(self, files: Sequence[str], *, text_field: str = "text",
                 language: str = "auto", text_layout: str = "auto",
                 keep_plain_text: bool = False):
        if language not in LANGUAGES:
            raise CorpusError(f"--language={language!r}: use one of {', '.join(LANGUAGES)}")
        if text_layout not in LAYOUTS:
            raise CorpusError(f"--text_layout={text_layout!r}: use one of "
                              f"{', '.join(LAYOUTS)}")
        self.files = list(files)
        self.text_field, self.language, self.text_layout = text_field, language, text_layout
        self.kinds: dict[str, Kind | None] = {}
        for path in self.files:
            try:
                self.kinds[path] = sniff(path)
            except UndecodableText:
                if not keep_plain_text:
                    raise
                self.kinds[path] = None   # text with invalid bytes: the caller's reader
        self.keep_plain_text = keep_plain_text
        self.skipped: collections.Counter = collections.Counter(
            {reason: 0 for reason in prepare.SKIP_REASONS})

    def plain_text(self, path: str) -> bool:
        """True when `path` is left to the caller's reader (`keep_plain_text`)."""
        kind = self.kinds[path]
        return self.keep_plain_text and (kind is None or is_plain_text(kind))

    def documents(self, path: str) -> Iterator[list[str]]:
        """The non-empty documents of one file, as prepare_corpus writes them."""
        source = prepare._Source(path, self.text_field, self.text_layout)
        yield from prepare._documents([source], self.language, None, 0, self.skipped)
        if source.kind.format == "mediawiki":
            self.skipped.update(source.reader.skipped)

    def __iter__(self) -> Iterator[list[str]]:
        for path in self.files:
            yield from self.documents(path)

    def lines(self) -> Iterator[str]:
        """Every sentence of every file, in order: what a vocabulary is learned from (the
        cleaned text, never markup or JSON). Files left to the caller (`plain_text`) give
        their non-empty lines as `kbert.text.iter_lines` reads them."""
        from kbert import text
        for path in self.files:
            if self.plain_text(path):
                yield from text.iter_lines([path])
            else:
                for document in self.documents(path):
                    yield from document


def as_text_files(files: Sequence[str], directory: str, **options) -> list[str]:
    """`files` for a learner that reads plain text files: plain UTF-8 text as it is, the
    cleaned sentences of the others (dumps, JSON lines, compressed text) written one a
    line to `directory/<n>-<name>.txt`. `options` as for `CorpusDocuments`.

    Example:
        >>> as_text_files(["a.txt", "wiki.bz2"], "/tmp/x")               # doctest: +SKIP
        ['a.txt', '/tmp/x/1-wiki.bz2.txt']
    """
    documents = CorpusDocuments(files, keep_plain_text=True, **options)
    result = []
    for number, path in enumerate(documents.files):
        if documents.plain_text(path):
            result.append(path)
            continue
        text_path = os.path.join(directory, f"{number}-{os.path.basename(path)}.txt")
        with open(text_path, "w", encoding="utf-8") as f:
            for document in documents.documents(path):
                f.write("\n".join(document) + "\n\n")
        result.append(text_path)
    return result
