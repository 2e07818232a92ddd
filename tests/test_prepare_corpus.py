"""trainers.prepare_corpus / kbert.corpus: dumps in the real export schema (0.10, 0.11;
plain, bz2, multistream bz2, gzip, UTF-16), JSON lines (plain, gzip, zstd), plain text in
both layouts, every bad input refused in one line with nothing written, and output
byte-identical for 1 and 2 workers."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys

import pytest

from kbert import corpus
from kbert.corpus.sentences import split_sentences
from tests import corpus_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def _read_documents(out: str) -> list[list[str]]:
    manifest = json.load(open(os.path.join(out, "manifest.json"), encoding="utf-8"))
    text = "".join(open(os.path.join(out, s["file"]), encoding="utf-8").read()
                   for s in manifest["shards"])
    return [block.split("\n") for block in text.split("\n\n") if block.strip()]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "trainers.prepare_corpus", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- cleaning
def test_wikitext_keeps_link_text_and_removes_every_construct():
    paragraphs = corpus.clean_wikitext(fx.TURING)
    text = "\n".join(paragraphs)
    for gone in fx.TURING_GONE:
        assert gone not in text, (gone, text)
    sentences = [s for p in paragraphs for s in split_sentences(p, "en")]
    assert sentences == fx.TURING_SENTENCES


def test_wikitext_visible_category_link_and_line_breaks():
    assert corpus.clean_wikitext("See [[:Category:Birds|bird lists]].<br/>Next line here.") \
        == ["See bird lists.", "Next line here."]


# ----------------------------------------------------------------------------- dumps
DUMP_CASES = [("0.10", "none", "utf-8"), ("0.11", "none", "utf-8"), ("0.11", "bz2", "utf-8"),
              ("0.10", "multistream", "utf-8"), ("0.11", "gzip", "utf-8"),
              ("0.11", "none", "utf-16"), ("0.10", "bz2", "utf-16")]


@pytest.mark.parametrize("schema,compression,encoding", DUMP_CASES,
                         ids=["-".join(c) for c in DUMP_CASES])
def test_dump_becomes_clean_shards(tmp_path, schema, compression, encoding):
    # A name that says nothing of the format: it is recognised by content.
    dump = fx.write_dump(str(tmp_path / "enwiki-p1p30302"), fx.standard_pages(), compression,
                         schema, encoding=encoding)
    out = str(tmp_path / "out")
    manifest = corpus.prepare_corpus(dump, out)
    assert _read_documents(out) == [fx.TURING_SENTENCES]
    assert manifest["skipped"] == {"empty": 1, "namespace": 2, "redirect": 1}
    assert manifest["documents"] == 1 and manifest["sentences"] == len(fx.TURING_SENTENCES)
    assert manifest["characters"] == sum(len(s) for s in fx.TURING_SENTENCES)
    source = manifest["inputs"][0]
    assert source["format"] == "mediawiki" and source["schema"] == schema
    assert source["compression"] == {"multistream": "bz2"}.get(compression, compression)
    import hashlib
    assert source["sha256"] == hashlib.sha256(open(dump, "rb").read()).hexdigest()
    assert source["bytes"] == os.path.getsize(dump)


def test_korean_dump_uses_its_local_namespace_names(tmp_path):
    dump = fx.write_dump(str(tmp_path / "kowiki.xml.bz2"), [fx.Page("서울", fx.KOREAN)],
                         "multistream", language="ko")
    out = str(tmp_path / "out")
    corpus.prepare_corpus(dump, out)
    assert _read_documents(out) == [fx.KOREAN_SENTENCES]


# ----------------------------------------------------------------------------- JSONL, text
@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_jsonl(tmp_path, compression):
    path = fx.write_jsonl(str(tmp_path / "c4-train.00000"), [
        {"url": "u1", "body": "First document. It has two sentences.\nA second paragraph!"},
        {"url": "u2", "body": "   "},
        {"url": "u3", "body": "오늘은 날씨가 좋다. 내일도 좋을까요?"}], compression)
    out = str(tmp_path / "out")
    manifest = corpus.prepare_corpus(path, out, text_field="body")
    assert _read_documents(out) == [
        ["First document.", "It has two sentences.", "A second paragraph!"],
        ["오늘은 날씨가 좋다.", "내일도 좋을까요?"]]
    assert manifest["skipped"]["empty"] == 1
    assert manifest["inputs"][0]["format"] == "jsonl"
    assert manifest["inputs"][0]["compression"] == compression


def test_plain_text_both_layouts(tmp_path):
    sentences = tmp_path / "bert_layout.txt"
    sentences.write_text("Line one stays whole. Even with two sentences.\nLine two.\n\n"
                         "Second doc.\n", encoding="utf-8")
    paragraphs = tmp_path / "one_doc_per_line.txt"
    paragraphs.write_text("Mr. Smith paid 3.5 dollars. He left.\n今天天气很好。明天呢？\n",
                          encoding="utf-8")
    out = str(tmp_path / "out")
    manifest = corpus.prepare_corpus(f"{sentences},{paragraphs}", out)
    assert _read_documents(out) == [
        ["Line one stays whole. Even with two sentences.", "Line two."], ["Second doc."],
        ["Mr. Smith paid 3.5 dollars.", "He left."], ["今天天气很好。", "明天呢？"]]
    assert [i["layout"] for i in manifest["inputs"]] == ["sentences", "documents"]


def test_workers_give_byte_identical_output(tmp_path):
    pages = [fx.Page(f"Article {i}", fx.TURING if i % 3 else fx.KOREAN) for i in range(120)]
    pages += fx.standard_pages()
    dump = fx.write_dump(str(tmp_path / "dump.bz2"), pages, "multistream")
    jsonl = fx.write_jsonl(str(tmp_path / "docs.jsonl"),
                           [{"text": f"Document {i}. It ends here."} for i in range(150)])
    trees = []
    for workers in (1, 2):
        out = str(tmp_path / f"out{workers}")
        corpus.prepare_corpus([dump, jsonl], out, num_workers=workers, max_shard_bytes=20000)
        trees.append({name: open(os.path.join(out, name), "rb").read()
                      for name in sorted(os.listdir(out)) if not name.startswith(".")})
    assert len([n for n in trees[0] if n.startswith("corpus-")]) > 1
    assert trees[0] == trees[1]


# ----------------------------------------------------------------------------- bad inputs
def _bad_inputs(root) -> dict[str, tuple[str, str, list[str]]]:
    """name -> (path, what the error line must say, extra flags)."""
    pages = fx.standard_pages() * 30
    good = fx.write_dump(str(root / "good.bz2"), pages, "bz2")
    data = open(good, "rb").read()
    truncated = root / "truncated.xml.bz2"
    truncated.write_bytes(data[:len(data) * 2 // 3])
    jsonl = fx.write_jsonl(str(root / "docs"), [{"text": "Hello there. " * 40}] * 300)
    for name, compress in (("truncated.jsonl.gz", lambda d: gzip.compress(d, mtime=0)),
                           ("truncated.jsonl.zst", _zstd)):
        whole = compress(open(jsonl, "rb").read())
        (root / name).write_bytes(whole[:len(whole) // 2])
    plain = fx.write_dump(str(root / "plain.xml"), pages)
    (root / "truncated.xml").write_bytes(open(plain, "rb").read()[:20000])
    other_xml = root / "feed.xml"
    other_xml.write_text('<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>\n')
    old_schema = root / "old.xml"
    old_schema.write_text(fx.dump_parts([], "0.3")[0].replace("export-0.3", "export-0.3")
                          + "</mediawiki>\n")
    no_field = fx.write_jsonl(str(root / "nofield.jsonl"),
                              [{"text": "Fine."}, {"text": "Fine too."}, {"body": "x"}])
    only_redirects = fx.write_dump(str(root / "redirects.xml"),
                                   [fx.Page("A", "#REDIRECT [[B]]", redirect="B"),
                                    fx.Page("Talk:A", "Talk.", ns=1)])
    binary = root / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    xz = root / "corpus.txt.xz"
    xz.write_bytes(lzma.compress(b"Some text.\n"))
    gz_binary = root / "model.gz"
    gz_binary.write_bytes(gzip.compress(bytes(range(256)) * 64))
    latin1 = root / "latin1.txt"
    latin1.write_bytes("First line.\nCaf\xe9 au lait.\n".encode("latin-1"))
    return {"truncated_bz2": (str(truncated), "truncated", []),
            "truncated_gzip": (str(root / "truncated.jsonl.gz"), "truncated gzip", []),
            "truncated_zstd": (str(root / "truncated.jsonl.zst"), "truncated zstd", []),
            "truncated_xml": (str(root / "truncated.xml"), "not well-formed XML", []),
            "non_dump_xml": (str(other_xml), "root is <rss>", []),
            "old_schema": (str(old_schema), "schema 0.3", []),
            "jsonl_without_field": (no_field, "nofield.jsonl:3: no field 'text'", []),
            "empty_result": (only_redirects, "no documents", []),
            "binary": (str(binary), "binary data", []),
            "xz": (str(xz), "xz data", []),
            "gzip_binary": (str(gz_binary), "binary data (gzip-compressed)", []),
            "invalid_utf8": (str(latin1), "latin1.txt:2: not valid utf-8", []),
            "missing": (str(root / "nothing*.bz2"), "matches no file", [])}


def _zstd(data: bytes) -> bytes:
    import zstandard
    return zstandard.ZstdCompressor().compress(data)


BAD = ["truncated_bz2", "truncated_gzip", "truncated_zstd", "truncated_xml", "non_dump_xml",
       "old_schema", "jsonl_without_field", "empty_result",
       "binary", "xz", "gzip_binary", "invalid_utf8", "missing"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return _bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_one_line_and_nothing_written(bad_inputs, tmp_path, name):
    path, saying, extra = bad_inputs[name]
    out = tmp_path / "out"
    done = _run(f"--input_file={path}", f"--output_dir={out}", *extra)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("prepare_corpus: error: "), done.stderr
    assert saying in lines[0], lines[0]
    if name != "missing":
        assert os.path.basename(path) in lines[0]
    assert not out.exists() and os.listdir(tmp_path) == []


def test_cli_writes_shards(tmp_path):
    dump = fx.write_dump(str(tmp_path / "d.bz2"), fx.standard_pages(), "bz2")
    out = tmp_path / "out"
    done = _run(f"--input_file={dump}", f"--output_dir={out}", "--num_workers=2")
    assert done.returncode == 0, done.stderr
    assert _read_documents(str(out)) == [fx.TURING_SENTENCES]
    again = _run(f"--input_file={dump}", f"--output_dir={out}")
    assert again.returncode == 2 and "--overwrite" in again.stderr


# ----------------------------------------------------------------------------- sentences
@pytest.mark.parametrize("name", ["en", "ko", "zh", "ja", "ko_heldout", "ja_heldout"])
def test_sentence_splitter_on_hand_checked_sets(name):
    from kbert.corpus.sentence_eval import read_gold, score
    language = name.split("_")[0]
    gold = read_gold(os.path.join(DATA, f"sentences_{name}.txt"), language)
    assert len(gold) >= 8
    found = score(lambda p: split_sentences(p, "auto"), gold)
    # Measured 2026-12-05 (BUILD_NOTES, issue 19): F1 1.000 on every set but ko_heldout
    # (0.947: an ellipsis that does end a Korean sentence is kept, by the rule).
    assert found["f1"] >= (0.94 if name == "ko_heldout" else 0.99), found


@pytest.mark.parametrize("paragraph,sentences", [
    ("It costs 3.14 dollars. Really.", ["It costs 3.14 dollars.", "Really."]),
    ("Dr. Kim met Prof. Lee, e.g. at noon. Fine.", ["Dr. Kim met Prof. Lee, e.g. at noon.",
                                                    "Fine."]),
    ("I think... maybe not. Ok.", ["I think... maybe not.", "Ok."]),
    ("정말요?! 네. 좋아요.", ["정말요?!", "네.", "좋아요."]),
    ("이것은... 예시다.다음 문장이다.", ["이것은... 예시다.", "다음 문장이다."]),
    ("价格是3.14元……太贵了！真的吗？", ["价格是3.14元……太贵了！", "真的吗？"]),
    ("「はい。」と答えた。次へ。", ["「はい。」と答えた。", "次へ。"]),
])
def test_decimals_abbreviations_ellipses_not_split(paragraph, sentences):
    assert split_sentences(paragraph) == sentences


def test_titles_with_a_colon_are_links_not_interlanguage_links():
    assert corpus.clean_wikitext("He watched [[ABC: The Show]] and [[Star Trek: Voyager]]. "
                                 "[[fr:Série]][[zh-yue:劇集]]") == [
        "He watched ABC: The Show and Star Trek: Voyager."]
