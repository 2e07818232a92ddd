"""Raw text in google-research/bert's format: one sentence per line, a blank line between
documents. The end of a file also ends a document.

Example:
    >>> files = expand_input_patterns("data/corpus/*.txt")          # doctest: +SKIP
    >>> docs = read_documents(files)                                # doctest: +SKIP
    >>> docs[0].sentences[:1], docs[0].source                       # doctest: +SKIP
    (['The quick brown fox.'], 'data/corpus/a.txt:1')
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Sequence

import tensorflow as tf

from kbert.pretraining.settings import PretrainingDataError

TEXT_SUFFIXES = (".txt", ".text")
_GLOB_CHARS = set("*?[")


@dataclasses.dataclass(frozen=True)
class Document:
    """A document: its sentences (stripped, non-empty) and where it starts (`file:line`)."""

    sentences: tuple[str, ...]
    source: str


def split_patterns(patterns: str | Sequence[str]) -> list[str]:
    """`"a/*.txt, b.txt"` or `["a/*.txt", "b.txt"]` → `["a/*.txt", "b.txt"]`."""
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    return [p.strip() for p in patterns if p and p.strip()]


def _text_files_in(directory: str) -> list[str]:
    found = []
    for root, _, names in tf.io.gfile.walk(directory):
        found.extend(os.path.join(root, n) for n in names
                     if n.endswith(TEXT_SUFFIXES) and not n.startswith("."))
    return sorted(found)


def expand_input_patterns(patterns: str | Sequence[str], flag: str = "--input_file") -> list[str]:
    """Comma-separated globs, files or directories → a sorted, de-duplicated file list.

    A directory stands for the `.txt`/`.text` files under it. Raises PretrainingDataError
    naming the pattern that matched nothing, the file that is missing, or the directory
    without text files.

    Example:
        >>> expand_input_patterns("/nonexistent/*.txt")
        Traceback (most recent call last):
        ...
        kbert.pretraining.settings.PretrainingDataError: --input_file pattern '/nonexistent/*.txt' matches no file
    """
    items = split_patterns(patterns)
    if not items:
        raise PretrainingDataError(f"{flag} is empty: give comma-separated files or globs")
    files: list[str] = []
    for item in items:
        if _GLOB_CHARS & set(item):
            matched = sorted(m for m in tf.io.gfile.glob(item) if not tf.io.gfile.isdir(m))
            if not matched:
                raise PretrainingDataError(f"{flag} pattern {item!r} matches no file")
            files.extend(matched)
        elif tf.io.gfile.isdir(item):
            found = _text_files_in(item)
            if not found:
                raise PretrainingDataError(
                    f"{flag} directory {item!r} holds no text files ({', '.join(TEXT_SUFFIXES)})")
            files.extend(found)
        elif tf.io.gfile.exists(item):
            files.append(item)
        else:
            raise PretrainingDataError(f"{flag} file not found: {item}")
    unique = list(dict.fromkeys(files))
    return unique


def _decoded_lines(path: str) -> Iterable[tuple[int, str]]:
    with tf.io.gfile.GFile(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise PretrainingDataError(
                    f"{path}, line {number}: not valid UTF-8 ({e.reason} at byte {e.start})"
                ) from e


def read_documents(files: Sequence[str]) -> list[Document]:
    """Documents of the files in order; empty documents are dropped.

    Raises PretrainingDataError naming the files when they hold no text at all.
    """
    documents: list[Document] = []
    for path in files:
        sentences: list[str] = []
        start = None
        for number, line in _decoded_lines(path):
            line = line.strip()
            if line:
                if not sentences:
                    start = number
                sentences.append(line)
            elif sentences:
                documents.append(Document(tuple(sentences), f"{path}:{start}"))
                sentences = []
        if sentences:
            documents.append(Document(tuple(sentences), f"{path}:{start}"))
    if not documents:
        shown = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "")
        raise PretrainingDataError(f"the corpus is empty: no text in {shown}")
    return documents
