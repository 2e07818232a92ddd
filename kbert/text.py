"""Raw text in: decoding, BERT normalisation, sentence splitting, documents.

The normalisation follows google-research/bert `tokenization.BasicTokenizer`: control
characters removed, every Unicode space turned into " ", each CJK ideograph made a word of
its own, and (uncased) lower-casing plus accent stripping (NFD, drop marks `Mn`); then words
are split at whitespace and around every punctuation character.

Corpus files use google-research/bert's pre-training input format: one sentence per line,
a blank line between documents.

Example:
    >>> basic_tokenize("Héllo, WORLD! 你好")
    ['hello', ',', 'world', '!', '你', '好']
    >>> basic_tokenize("Héllo, WORLD!", lower_case=False)
    ['Héllo', ',', 'WORLD', '!']
    >>> decode_utf8(b"caf\\xc3\\xa9 \\xff!")
    ('café \\ufffd!', 1)
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from typing import Iterable, Iterator, Sequence

TEXT_FILE_SUFFIXES = (".txt",)


# --------------------------------------------------------------------------- characters
def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or any Unicode space separator (Zs)."""
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """A control/format/unassigned character (category C*), except tab and newlines."""
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """Every ASCII non-alphanumeric printable character, and Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(char: str) -> bool:
    """A CJK Unified Ideograph (the blocks google-research/bert splits into single words)."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


# --------------------------------------------------------------------------- normalisation
def clean_text(text: str) -> str:
    """Drop NUL, U+FFFD and control characters; turn every whitespace character into " "."""
    out = []
    for char in text:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or is_control(char):
            continue
        out.append(" " if is_whitespace(char) else char)
    return "".join(out)


def strip_accents(text: str) -> str:
    """NFD-decompose and drop non-spacing marks: "Crème brûlée" -> "Creme brulee"."""
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")


def _space_cjk(text: str) -> str:
    return "".join(f" {c} " if is_cjk(c) else c for c in text)


def _split_punctuation(word: str) -> list[str]:
    pieces, current = [], []
    for char in word:
        if is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


def basic_tokenize(text: str, lower_case: bool = True) -> list[str]:
    """BERT's words: cleaned, CJK split, (lower-cased, accents stripped), punctuation split.

    Example:
        >>> basic_tokenize("Don't\\tstop\\u00a0 believing…")
        ['don', "'", 't', 'stop', 'believing', '…']
    """
    text = _space_cjk(clean_text(text))
    words = []
    for word in text.split():
        if lower_case:
            word = strip_accents(word.lower())
        words.extend(_split_punctuation(word))
    return words


def normalize(text: str, lower_case: bool = True) -> str:
    """`basic_tokenize` joined with single spaces: the text WordPiece sees.

    Example:
        >>> normalize("Ça va? 好!")
        'ca va ? 好 !'
    """
    return " ".join(basic_tokenize(text, lower_case=lower_case))


# --------------------------------------------------------------------------- decoding
def decode_utf8(data: bytes) -> tuple[str, int]:
    """Decode UTF-8, replacing each invalid byte by U+FFFD; return (text, invalid byte count).

    Never raises on bad bytes. (A leading byte-order mark is dropped.)
    """
    text = data.decode("utf-8", errors="surrogateescape")
    invalid = sum(1 for c in text if "\udc80" <= c <= "\udcff")
    if invalid:
        text = re.sub("[\udc80-\udcff]", "\ufffd", text)
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, invalid


def read_text_lines(path: str) -> tuple[list[str], int]:
    """Lines of a UTF-8 text file (newline characters removed) and its invalid byte count.

    Raises FileNotFoundError / IsADirectoryError naming the path.

    Example:
        >>> lines, bad = read_text_lines("data/corpus/python_docs_00.txt")  # doctest: +SKIP
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"text file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"expected a text file, got a directory: {path}")
    with open(path, "rb") as f:
        text, invalid = decode_utf8(f.read())
    if invalid:
        logging.warning("%s: %d invalid UTF-8 byte(s) replaced by U+FFFD", path, invalid)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines], invalid


# --------------------------------------------------------------------------- files and documents
def list_text_files(paths: str | Sequence[str]) -> list[str]:
    """Expand files and directories (searched recursively for *.txt) into a sorted file list.

    Raises FileNotFoundError for a missing path, ValueError for a directory without text.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("no input paths given")
    files = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isfile(path):
            files.append(path)
        elif os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(path) for name in names
                if name.endswith(TEXT_FILE_SUFFIXES) and not name.startswith("."))
            if not found:
                raise ValueError(f"directory has no text files (*.txt): {path}")
            files.extend(found)
        else:
            raise FileNotFoundError(f"input path not found: {path}")
    return files


class DocumentReader:
    """Iterates documents (lists of non-empty lines) from text files; blank line = new document.

    Counts what it read: `num_files`, `num_lines`, `num_documents`, `num_invalid_bytes`.
    A file boundary always ends a document.

    Example:
        >>> reader = DocumentReader(["data/corpus"])                     # doctest: +SKIP
        >>> first = next(iter(reader))                                    # doctest: +SKIP
        >>> reader.num_invalid_bytes                                      # doctest: +SKIP
        0
    """

    def __init__(self, paths: str | Sequence[str]):
        self.files = list_text_files(paths)
        self.num_files = 0
        self.num_lines = 0
        self.num_documents = 0
        self.num_invalid_bytes = 0

    def __iter__(self) -> Iterator[list[str]]:
        for path in self.files:
            self.num_files += 1
            document: list[str] = []
            for line in self._lines(path):
                line = line.strip()
                if line:
                    document.append(line)
                    self.num_lines += 1
                elif document:
                    self.num_documents += 1
                    yield document
                    document = []
            if document:
                self.num_documents += 1
                yield document

    def _lines(self, path: str) -> Iterator[str]:
        """The file's lines, read one at a time (memory flat in the file's size)."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"text file not found: {path}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"expected a text file, got a directory: {path}")
        invalid = 0
        with open(path, "rb") as f:
            for number, raw in enumerate(f):
                line, bad = decode_utf8(raw if number else raw.removeprefix(b"\xef\xbb\xbf"))
                invalid += bad
                yield line.rstrip("\n").rstrip("\r")
        self.num_invalid_bytes += invalid
        if invalid:
            logging.warning("%s: %d invalid UTF-8 byte(s) replaced by U+FFFD", path, invalid)


def read_documents(paths: str | Sequence[str]) -> Iterator[list[str]]:
    """Documents (lists of lines) from files/directories; see `DocumentReader`.

    Example:
        >>> docs = list(read_documents("data/corpus"))                   # doctest: +SKIP
    """
    return iter(DocumentReader(paths))


def iter_lines(paths: str | Sequence[str]) -> Iterator[str]:
    """Every non-empty line of the given files/directories, in order."""
    for document in read_documents(paths):
        yield from document


# --------------------------------------------------------------------------- the shipped corpus
def default_corpus_dir() -> str:
    """The embedded corpus directory (`data/corpus` in the repository).

    Raises FileNotFoundError if kbert was installed without its data (use an editable
    install, `pip install -e .`).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(here), "data", "corpus")
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"the embedded corpus is not at {path}; install kbert from its repository "
            "(pip install -e .) or pass your own text files")
    return path


def default_corpus_files() -> list[str]:
    """The embedded corpus's text files, sorted."""
    return list_text_files(default_corpus_dir())


# --------------------------------------------------------------------------- sentences
# Words ending in "." that do not end a sentence.
ABBREVIATIONS = frozenset("""
e.g i.e etc vs cf al mr mrs ms dr prof st jr sr no nos fig figs eq eqs sec ch vol pp p approx
inc ltd co corp dept est jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m
""".split())

_SENTENCE_END = re.compile(
    r"""(?<=[.!?])["')\]]*\s+(?=["'(\[]*[A-Z0-9])""")


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph at ". ", "! ", "? " followed by a capital or digit.

    Abbreviations ("e.g.", "Dr.", ...) and single initials ("J. Smith") do not end a
    sentence. Whitespace inside the paragraph is collapsed.

    Example:
        >>> split_sentences("It works, e.g. Python. See Dr. Who! Done? 3 more.")
        ['It works, e.g. Python.', 'See Dr. Who!', 'Done?', '3 more.']
    """
    paragraph = " ".join(paragraph.split())
    if not paragraph:
        return []
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        # The word before the break, stripped of closing quotes/brackets.
        head = paragraph[start:match.start()].rstrip("\"')]")
        last_word = head.rsplit(None, 1)[-1] if head.split() else ""
        if last_word.endswith("."):
            stem = last_word[:-1].lstrip("\"'([").lower()
            if stem in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha()):
                continue
        sentences.append(paragraph[start:match.end()].strip())
        start = match.end()
    tail = paragraph[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences
