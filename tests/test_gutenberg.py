"""scripts/gutenberg_to_jsonl.py / kbert.corpus.gutenberg: a Project Gutenberg book in its
published layout (licence header, hard-wrapped paragraphs, licence footer) becomes one
document of clean sentences through trainers.prepare_corpus; a non-Gutenberg file is one
error line, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kbert import corpus
from kbert.corpus.gutenberg import book_paragraphs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BOOK = """\ufeffThe Project Gutenberg eBook of A Tiny Tale

This ebook is for the use of anyone anywhere in the United States and
most other parts of the world at no cost and with almost no restrictions
whatsoever. You may copy it, give it away or re-use it under the terms
of the Project Gutenberg License included with this ebook.

Title: A Tiny Tale

*** START OF THE PROJECT GUTENBERG EBOOK A TINY TALE ***




CHAPTER I.

It was a bright cold day in April, and Mr. Smith walked
slowly home. He carried 3.5 pounds of bread.

"Is it far?" asked the child. It was not far.

*** END OF THE PROJECT GUTENBERG EBOOK A TINY TALE ***

Updated editions will replace the previous one--the old editions will
be renamed. START: FULL LICENSE. THE FULL PROJECT GUTENBERG LICENSE
"""


def test_header_and_footer_stripped_and_paragraphs_reflowed():
    assert book_paragraphs(BOOK.replace("\n", "\r\n")) == [
        "CHAPTER I.",
        "It was a bright cold day in April, and Mr. Smith walked slowly home. "
        "He carried 3.5 pounds of bread.",
        '"Is it far?" asked the child. It was not far.']
    older = BOOK.replace("START OF THE PROJECT GUTENBERG EBOOK",
                         "START OF THIS PROJECT GUTENBERG E-BOOK")
    assert book_paragraphs(older)[0] == "CHAPTER I."


def test_books_become_one_document_each_without_licence(tmp_path):
    books = []
    for i in range(2):
        path = tmp_path / f"book{i}.txt"
        path.write_text(BOOK.replace("April", f"April {i}"), encoding="utf-8")
        books.append(str(path))
    jsonl = tmp_path / "books.jsonl"
    done = subprocess.run([sys.executable, "scripts/gutenberg_to_jsonl.py",
                           f"--output={jsonl}", *books], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = str(tmp_path / "out")
    manifest = corpus.prepare_corpus(str(jsonl), out)
    text = open(os.path.join(out, manifest["shards"][0]["file"]), encoding="utf-8").read()
    assert manifest["documents"] == 2
    assert "License" not in text and "Gutenberg" not in text and "ebook" not in text
    assert "It was a bright cold day in April 0, and Mr. Smith walked slowly home.\n" in text


@pytest.mark.parametrize("content", ["Just some text.\n", BOOK.split("*** END")[0]])
def test_not_a_gutenberg_book_is_one_line_and_nothing_written(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_text(content, encoding="utf-8")
    jsonl = tmp_path / "books.jsonl"
    done = subprocess.run([sys.executable, "scripts/gutenberg_to_jsonl.py",
                           f"--output={jsonl}", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("gutenberg_to_jsonl: error: ") and "notes.txt" in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
