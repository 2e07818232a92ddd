"""Rebuild kbert's embedded default corpus (data/corpus/) from Debian's python3.11-doc.

The corpus is the English prose of the Python 3.11 documentation (PSF License Agreement;
Debian package `python3.11-doc`, reST sources under html/_sources). Code examples, tables,
directives and markup are removed; paragraphs are split into sentences; output follows
google-research/bert's pre-training format: one sentence per line, a blank line between
documents (a document is a section of a page, short sections merged with the next).

Usage (run from the repository root; needs apt-get, dpkg-deb and the network to Debian):
    python3 scripts/build_corpus.py --output_dir=data/corpus
    python3 scripts/build_corpus.py --deb=/tmp/python3.11-doc_3.11.2-6+deb12u9_all.deb

The output directory is replaced atomically: a failed run leaves the old corpus intact.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kbert import fileio, text  # noqa: E402

PACKAGE = "python3.11-doc"
EXPECTED_VERSION = "3.11.2-6+deb12u9"

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a script, so importing this module (tests) adds no flags."""
    flags.DEFINE_string("output_dir", "data/corpus", "Where the corpus goes (replaced whole).")
    flags.DEFINE_string("deb", None, f"A downloaded {PACKAGE} .deb; default: apt-get download.")
    flags.DEFINE_integer("shard_bytes", 2_000_000, "Approximate size of each output .txt file.")
    flags.DEFINE_integer("min_document_sentences", 4,
                         "A section with fewer sentences is merged with the next section.")


# Directives whose body is prose worth keeping (the directive line itself is dropped).
PROSE_DIRECTIVES = {
    "note", "warning", "important", "tip", "hint", "attention", "caution", "danger", "error",
    "admonition", "seealso", "versionadded", "versionchanged", "deprecated",
    "deprecated-removed", "impl-detail", "topic", "sidebar", "rubric", "centered",
    "function", "method", "classmethod", "staticmethod", "class", "attribute", "data",
    "exception", "decorator", "decoratormethod", "describe", "module", "currentmodule",
    "abstractmethod", "coroutinefunction", "coroutinemethod", "awaitablefunction",
    "awaitablemethod", "property", "c:function", "c:macro", "c:type", "c:member",
    "c:var", "c:struct", "c:data", "cmdoption", "option", "envvar", "opcode", "pdbcommand",
    "2to3fixer", "availability", "glossary", "productionlist-not", "only",
}

_UNDERLINE = re.compile(r"""([=\-~^"*+#`:.'_])\1{2,}""")
_DIRECTIVE = re.compile(r"\.\.\s+([\w:-]+)::(.*)")
_BULLET = re.compile(r"^(?:[*+\-•]|#\.|\d+\.|\(?[a-z0-9]\)|[a-z]\.)\s+")
_FIELD = re.compile(r"^:[\w .()-]+:(?![\w:+.-]*`)\s*")

_ROLE = re.compile(r":[\w:.+-]+:`([^`]*)`")
_LITERAL = re.compile(r"``(.+?)``")
_LINK = re.compile(r"`([^`<]*?)\s*(?:<[^>`]*>)?`_{1,2}")
_INTERPRETED = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*\\])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
_FOOTNOTE = re.compile(r"\s*\[(?:#\w*|\d+|\*)\]_")
_SUBSTITUTION = re.compile(r"\|([\w -]+)\|")


def role_text(inner: str) -> str:
    """`:func:`text <target>`` -> "text"; `~a.b.c` -> "c"; `!name` -> "name"."""
    match = re.match(r"(.*?)\s*<[^>]*>$", inner, re.S)
    if match and match.group(1):
        return match.group(1)
    inner = inner.lstrip("!")
    if inner.startswith("~"):
        inner = inner[1:].rsplit(".", 1)[-1]
    return inner


SUBSTITUTIONS = {"nbsp": "\u00a0", "release": "3.11", "version": "3.11"}


def substitution_text(name: str) -> str:
    """`|nbsp|` -> no-break space, `|version|` -> "3.11", `|func-list|` -> "list()"."""
    if name in SUBSTITUTIONS:
        return SUBSTITUTIONS[name]
    if name.startswith("func-"):
        return name[len("func-"):] + "()"
    return name


def strip_inline_markup(line: str) -> str:
    line = _ROLE.sub(lambda m: role_text(m.group(1)), line)
    line = _LITERAL.sub(lambda m: m.group(1), line)
    line = _LINK.sub(lambda m: m.group(1), line)
    line = _INTERPRETED.sub(lambda m: role_text(m.group(1)), line)
    line = _STRONG.sub(lambda m: m.group(1), line)
    line = _EMPHASIS.sub(lambda m: m.group(1), line)
    line = _FOOTNOTE.sub("", line)
    line = _SUBSTITUTION.sub(lambda m: substitution_text(m.group(1)), line)
    line = line.replace("\\ ", "").replace("\\", "")
    return line


def rst_blocks(source: str):
    """Yield ("title", None) at section titles and ("para", text) for prose paragraphs."""
    lines = source.split("\n")
    paragraph: list[str] = []
    skip_indent = None       # skip blank lines and lines indented deeper than this
    skip_to_blank = False    # skip until the next blank line (doctest blocks, tables)
    in_options = False       # directly after a directive: skip ":option:" lines

    def flush():
        nonlocal paragraph
        out = paragraph
        paragraph = []
        yield from split_items(out)

    for number, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if skip_to_blank:
            if stripped:
                continue
            skip_to_blank = False
        if not stripped:
            in_options = False
            yield from flush()
            continue
        if in_options and _FIELD.match(stripped):
            continue
        in_options = False
        if _UNDERLINE.fullmatch(stripped):
            # An over/underline: the paragraph collected so far (one line) is a title.
            if paragraph and len(paragraph) == 1:
                paragraph = []
                yield ("title", None)
            else:
                yield from flush()
            continue
        if stripped.startswith(".."):
            yield from flush()
            match = _DIRECTIVE.match(stripped)
            if match and match.group(1) in PROSE_DIRECTIVES:
                in_options = True
                argument = match.group(2).strip()
                if match.group(1) in ("rubric", "centered", "topic", "sidebar", "admonition"):
                    yield ("title", None)
                elif match.group(1) in ("versionadded", "versionchanged", "deprecated"):
                    words = argument.split(None, 1)
                    if len(words) == 2:
                        paragraph.append(words[1])
                continue
            skip_indent = indent
            continue
        if stripped.startswith((">>>", "+-", "+=", "|")) or re.match(r"^=+(\s+=+)+$", stripped):
            yield from flush()
            skip_to_blank = True
            continue
        paragraph.append(line)
        if stripped.endswith("::"):
            last = paragraph[-1].rstrip()
            paragraph[-1] = last[:-2].rstrip() + (":" if not last[:-2].endswith(" ") else "")
            if not paragraph[-1].strip() or paragraph[-1].strip() == ":":
                paragraph.pop()
            base = len(paragraph[0]) - len(paragraph[0].lstrip()) if paragraph else indent
            yield from flush()
            skip_indent = min(base, indent)
    yield from flush()


def split_items(lines: list[str]):
    """Split a paragraph into list items; yield ("para", text) for each."""
    items: list[list[str]] = []
    for line in lines:
        stripped = line.strip()
        if not items or _BULLET.match(stripped) or _FIELD.match(stripped):
            items.append([stripped])
        else:
            items[-1].append(stripped)
    for item in items:
        first = _FIELD.sub("", _BULLET.sub("", item[0]))
        joined = " ".join([first] + item[1:]).strip()
        if joined:
            yield ("para", joined)


_WORD = re.compile(r"[A-Za-z][a-z]*[,.;:!?)]*")


def is_prose(sentence: str) -> bool:
    """At least 3 ordinary words and mostly letters: drops leftover code and signatures."""
    if sum(bool(_WORD.fullmatch(w)) for w in sentence.split()) < 3:
        return False
    letters = sum(c.isalpha() or c == " " for c in sentence)
    if letters < 0.75 * len(sentence):
        return False
    if re.search(r"[{};]\s*$|^\s*(def|class|import|from|return)\s|=\s*\(|\)\s*->", sentence):
        return False
    return True


def page_documents(source: str, min_sentences: int):
    """The documents (lists of sentences) of one reST page."""
    document: list[str] = []
    for kind, paragraph in rst_blocks(source):
        if kind == "title":
            if len(document) >= min_sentences:
                yield document
                document = []
            continue
        paragraph = " ".join(strip_inline_markup(paragraph).split())
        for sentence in text.split_sentences(paragraph):
            if is_prose(sentence):
                document.append(sentence)
    if document:
        yield document


def fetch_deb(workdir: str) -> str:
    subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, check=True)
    debs = glob.glob(os.path.join(workdir, f"{PACKAGE}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {PACKAGE} produced no .deb in {workdir}")
    return debs[0]


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as workdir:
        deb = FLAGS.deb or fetch_deb(workdir)
        if not os.path.isfile(deb):
            raise app.UsageError(f"--deb: file not found: {deb}")
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        if version != EXPECTED_VERSION:
            logging.warning("%s is version %s; the shipped corpus came from %s", deb, version,
                            EXPECTED_VERSION)
        with open(deb, "rb") as f:
            deb_sha256 = hashlib.sha256(f.read()).hexdigest()
        extracted = os.path.join(workdir, "x")
        subprocess.run(["dpkg-deb", "-x", deb, extracted], check=True)
        sources = os.path.join(extracted, "usr/share/doc/python3.11/html/_sources")
        pages = sorted(glob.glob(os.path.join(sources, "**/*.rst.txt"), recursive=True))
        if not pages:
            raise RuntimeError(f"no reST sources under {sources}")
        skip = {"license.rst.txt", "copyright.rst.txt", "contents.rst.txt", "bugs.rst.txt"}
        documents = []
        for page in pages:
            if os.path.basename(page) in skip or "/whatsnew/changelog" in page:
                continue
            with open(page, "rb") as f:
                source, _ = text.decode_utf8(f.read())
            documents.extend(page_documents(source, FLAGS.min_document_sentences))
        license_text = open(os.path.join(extracted, "usr/share/doc", PACKAGE, "copyright"),
                            encoding="utf-8", errors="replace").read()

    words = sum(len(s.split()) for d in documents for s in d)
    sentences = sum(len(d) for d in documents)
    with fileio.atomic_directory(FLAGS.output_dir) as out:
        shard, size, shard_index = [], 0, 0
        shards = []

        def write_shard():
            name = f"python_docs_{len(shards):02d}.txt"
            fileio.atomic_write_text(os.path.join(out, name), "\n\n".join(shard) + "\n")
            shards.append(name)

        for document in documents:
            block = "\n".join(document)
            shard.append(block)
            size += len(block.encode("utf-8")) + 2
            if size >= FLAGS.shard_bytes:
                write_shard()
                shard, size = [], 0
        if shard:
            write_shard()
        fileio.atomic_write_text(os.path.join(out, "LICENSE"), license_text)
        fileio.atomic_write_text(os.path.join(out, "README.md", ), README.format(
            package=PACKAGE, version=version, sha256=deb_sha256, words=words,
            sentences=sentences, documents=len(documents), shards=len(shards)))
    logging.info("wrote %d documents, %d sentences, %d words in %d files to %s",
                 len(documents), sentences, words, len(shards), FLAGS.output_dir)


README = """# kbert's embedded default corpus

English prose from the Python 3.11 documentation, in google-research/bert's pre-training
format: one sentence per line, a blank line between documents (a document is a section of
a documentation page; sections shorter than 4 sentences are merged with the next).

- Source: Debian package `{package}` version `{version}` (sha256 of the .deb: `{sha256}`),
  reST sources under `usr/share/doc/python3.11/html/_sources/`. Code examples, tables,
  directives and markup removed; changelog, licence and contents pages left out.
- Licence: the Python documentation is distributed under the PSF License Agreement
  (see `LICENSE`, Debian's copyright file of the package, which carries it in full).
  Copyright (c) 2001-2023 Python Software Foundation; All Rights Reserved.
- Size: {documents} documents, {sentences} lines (sentences), {words} words
  (whitespace-separated) in {shards} files.
- Rebuild: `python3 scripts/build_corpus.py --output_dir=data/corpus` (downloads the
  package with `apt-get download`; `--deb=PATH` uses a downloaded one).
"""


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    define_flags()
    app.run(main)
