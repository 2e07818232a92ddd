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
import os
from typing import Sequence

from kbert import text
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
