"""Raw text in google-research/bert's format: one sentence per line, a blank line between
documents. The end of a file also ends a document.

Example:
    >>> files = expand_input_patterns("data/corpus/*.txt")          # doctest: +SKIP
    >>> docs = read_documents(files)                                # doctest: +SKIP
    >>> docs[0].sentences[:1], docs[0].source                       # doctest: +SKIP
    (['The quick brown fox.'], 'data/corpus/a.txt#0')
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import os
from typing import Sequence

from kbert import text
from kbert.corpus.errors import CorpusError
from kbert.data.settings import PretrainingDataError

_GLOB_CHARS = set("*?[")


@dataclasses.dataclass(frozen=True)
class Document:
    """A document: its sentences (stripped, non-empty) and where it is (`file#index`)."""

    sentences: tuple[str, ...]
    source: str


def split_patterns(patterns: str | Sequence[str]) -> list[str]:
    """`"a/*.txt, b.txt"` or `["a/*.txt", "b.txt"]` → `["a/*.txt", "b.txt"]`."""
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    return [p.strip() for p in patterns if p and p.strip()]


def expand_input_patterns(patterns: str | Sequence[str], flag: str = "--input_file") -> list[str]:
    """Comma-separated globs, files or directories → a de-duplicated file list (each
    glob's and directory's files sorted; items in the order given).

    A directory stands for the `*.txt` files under it (searched recursively). Raises
    PretrainingDataError naming the pattern that matched nothing, the file that is
    missing, or the directory without text files.

    Example:
        >>> expand_input_patterns("/nonexistent/*.txt")
        Traceback (most recent call last):
        ...
        kbert.data.settings.PretrainingDataError: --input_file pattern '/nonexistent/*.txt' matches no file
    """
    items = split_patterns(patterns)
    if not items:
        raise PretrainingDataError(f"{flag} is empty: give comma-separated files or globs")
    files: list[str] = []
    for item in items:
        if _GLOB_CHARS & set(item):
            matched = sorted(m for m in glob.glob(item) if os.path.isfile(m))
            if not matched:
                raise PretrainingDataError(f"{flag} pattern {item!r} matches no file")
            files.extend(matched)
        elif os.path.isdir(item):
            try:
                files.extend(text.list_text_files(item))
            except ValueError as e:
                raise PretrainingDataError(f"{flag} directory {item!r}: {e}") from e
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise PretrainingDataError(f"{flag} file not found: {item}")
    return list(dict.fromkeys(files))


def read_documents(files: Sequence[str]) -> list[Document]:
    """Documents of the files in order (read by `kbert.text.read_documents`: invalid UTF-8
    bytes become U+FFFD with a warning); empty documents are dropped.

    Raises PretrainingDataError naming the files when they hold no text at all.
    """
    documents: list[Document] = []
    for path in files:
        try:
            for index, sentences in enumerate(text.read_documents([path])):
                documents.append(Document(tuple(sentences), f"{path}#{index}"))
        except (OSError, ValueError) as e:
            raise PretrainingDataError(f"cannot read {path}: {e}") from e
    if not documents:
        shown = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "")
        raise PretrainingDataError(f"the corpus is empty: no text in {shown}")
    return documents


def refuse_non_text(path: str) -> None:
    """PretrainingDataError when `path` is not plain text: a compressed file, a MediaWiki
    dump, JSON lines, or binary data (decoded, they would be trained on as garbage); the
    message says to run `trainers.prepare_corpus` first. Text with a few invalid UTF-8
    bytes passes (they become U+FFFD with a warning)."""
    from kbert.corpus.errors import CorpusError, UndecodableText
    from kbert.corpus.sniff import sniff
    try:
        kind = sniff(path)
    except UndecodableText:
        return
    except CorpusError as e:
        raise PretrainingDataError(f"{e}; --input_file takes plain text (one sentence a "
                                   "line, a blank line between documents)") from e
    if kind.format != "text" or kind.compression != "none" or kind.encoding not in (
            "utf-8", "utf-8-sig"):
        what = {"mediawiki": f"a MediaWiki XML dump (schema {kind.schema})",
                "jsonl": "JSON lines", "text": "text"}[kind.format]
        how = [kind.compression + "-compressed"] if kind.compression != "none" else []
        how += [kind.encoding] if kind.encoding not in ("utf-8", "utf-8-sig") else []
        raise PretrainingDataError(
            f"{path}: {what}{' (' + ', '.join(how) + ')' if how else ''}, not plain UTF-8 "
            f"text; turn it into text shards first: python -m trainers.prepare_corpus "
            f"--input_file={path} --output_dir=DIR")


class DocumentStream:
    """Documents of text files read one line at a time (memory flat in the corpus size),
    their lines split into sentences as `split_documents` does; empty documents dropped.

    Counts as it goes: `num_documents`, `num_sentences`, `num_single` (documents of one
    sentence), `num_split_lines`. `check()` refuses files that are not plain text
    (`refuse_non_text`) and a corpus without text before any work.

    `corpus`: a `kbert.corpus.CorpusDocuments(files, keep_plain_text=True)` reads the files
    that are not plain text (MediaWiki dumps, JSON lines, compressed text) as
    `trainers.prepare_corpus` would; its `CorpusError`s become PretrainingDataErrors with
    the same message.

    Example:
        >>> stream = DocumentStream(["data/corpus/python_docs_00.txt"])   # doctest: +SKIP
        >>> first = next(iter(stream)); stream.num_documents              # doctest: +SKIP
        1
    """

    def __init__(self, files: Sequence[str], mode: str = "auto", corpus=None):
        self.files = list(files)
        self.mode = mode
        self.corpus = corpus
        self.num_documents = self.num_sentences = self.num_single = self.num_split_lines = 0

    def _documents_of(self, path: str):
        if self.corpus is not None and not self.corpus.plain_text(path):
            return self.corpus.documents(path)
        return text.read_documents([path])

    def __iter__(self):
        for path in self.files:
            try:
                for index, sentences in enumerate(self._documents_of(path)):
                    [document], split = split_documents(
                        [Document(tuple(sentences), f"{path}#{index}")], self.mode)
                    self.num_split_lines += split
                    self.num_documents += 1
                    self.num_sentences += len(document.sentences)
                    self.num_single += len(document.sentences) < 2
                    yield document
            except CorpusError as e:   # names the file (and line) already
                raise PretrainingDataError(str(e)) from e
            except (OSError, ValueError) as e:
                if isinstance(e, PretrainingDataError):
                    raise
                raise PretrainingDataError(f"cannot read {path}: {e}") from e

    def check(self, enough: int = 1) -> int:
        """Before any work: every file plain text (`refuse_non_text`; with `corpus`, any
        file it reads) and some text in them; PretrainingDataError naming them if not.
        Reads documents until `enough` are found (or the corpus ends) and returns how many
        it read: bounded work, however large the corpus."""
        if self.corpus is None:   # with one, every file was recognised when it was made
            for path in self.files:
                refuse_non_text(path)
        probe = DocumentStream(self.files, self.mode, self.corpus)
        found = sum(1 for _ in itertools.islice(probe, max(1, enough)))
        if not found:
            raise probe.empty_error()
        return found

    def empty_error(self) -> PretrainingDataError:
        shown = ", ".join(self.files[:5]) + (" ..." if len(self.files) > 5 else "")
        return PretrainingDataError(f"the corpus is empty: no text in {shown}")

    def no_pair_reason(self) -> str:
        """Why the documents gave no sentence pair (see `no_pair_reason`)."""
        return pair_reason_text(self.num_documents, self.num_sentences, self.num_single)


def split_documents(documents: Sequence[Document], mode: str = "auto"
                    ) -> tuple[list[Document], int]:
    """Documents with their lines split into sentences by `kbert.text.split_sentences`;
    returns (documents, number of lines that became several sentences).

    `mode`: "auto" splits only one-line documents (one paragraph per line, which would give
    no sentence pair), "always" every line, "never" none.

    Example:
        >>> docs, split = split_documents([Document(("One. Two.",), "a.txt#0")])
        >>> docs[0].sentences, split
        (('One.', 'Two.'), 1)
    """
    if mode == "never":
        return list(documents), 0
    result, num_split = [], 0
    for document in documents:
        if mode == "auto" and len(document.sentences) > 1:
            result.append(document)
            continue
        sentences: list[str] = []
        for line in document.sentences:
            parts = text.split_sentences(line) or [line]
            num_split += len(parts) > 1
            sentences.extend(parts)
        result.append(Document(tuple(sentences), document.source))
    return result, num_split


def no_pair_reason(documents: Sequence[Document]) -> str:
    """Why documents give no sentence pair: counts of documents and sentences."""
    return pair_reason_text(len(documents), sum(len(d.sentences) for d in documents),
                            sum(len(d.sentences) < 2 for d in documents))


def pair_reason_text(documents: int, sentences: int, single: int) -> str:
    """`no_pair_reason` from the counts."""
    return (f"{documents} documents with {sentences} sentences were read and "
            f"{single} of them have fewer than two sentences; a pair needs a document of "
            f"at least two sentences (one sentence per line, a blank line between "
            f"documents) and at least two documents")
