"""Tests of kbert.text: normalisation, decoding, documents, sentences, the shipped corpus."""

import os

import pytest

from kbert import text

# --------------------------------------------------------------------------- normalisation


def test_clean_text_removes_controls_and_maps_spaces():
    # NUL, BEL, zero-width space (Cf), soft hyphen (Cf), U+FFFD are dropped;
    # tab, newline, no-break space and ideographic space become " ".
    raw = "a\x00b\x07c\u200bd\u00ade\ufffdf\tg\nh\u00a0i\u3000j"
    assert text.clean_text(raw) == "abcdef g h i j"


def test_strip_accents():
    assert text.strip_accents("Crème brûlée à São Paulo") == "Creme brulee a Sao Paulo"
    # Letters that do not decompose keep their shape (as in BERT).
    assert text.strip_accents("Łódź ø") == "Łodz ø"


def test_basic_tokenize_uncased_and_cased():
    assert text.basic_tokenize("Héllo, WORLD!") == ["hello", ",", "world", "!"]
    assert text.basic_tokenize("Héllo, WORLD!", lower_case=False) == ["Héllo", ",", "WORLD", "!"]


def test_cjk_characters_become_words():
    assert text.basic_tokenize("ab你好cd") == ["ab", "你", "好", "cd"]
    # Kana are not in BERT's CJK blocks: they stay inside the word; uncased BERT strips
    # the voicing mark (NFD gives が = か + U+3099, a non-spacing mark).
    assert text.basic_tokenize("ひらがな", lower_case=False) == ["ひらがな"]
    assert text.basic_tokenize("ひらがな") == ["ひらかな"]


def test_punctuation_split_includes_unicode_and_ascii_symbols():
    # "$" and "`" are ASCII non-alphanumerics: BERT treats them as punctuation.
    assert text.basic_tokenize("a$b`c—d“e”") == ["a", "$", "b", "`", "c", "—", "d", "“", "e", "”"]


def test_normalize_matches_hugging_face_bert_normalizer():
    """HF's Rust BertNormalizer + BertPreTokenizer implement the same BasicTokenizer."""
    from tokenizers import normalizers, pre_tokenizers

    pre = pre_tokenizers.BertPreTokenizer()
    samples = ["Héllo, wörld! 你好世界 a\x00b\tc\u200bd", "Ｆｕｌｌ ｗｉｄｔｈ ² ™ ﬁ",
               "İstanbul ǅ ß ſ Ⅰ K", "x\u3000y\u00a0z", "don't… “quoted” – — −",
               "Łódź Ø ı 😀 naïve café"]
    samples += list(_corpus_sample(3000))
    for lower in (True, False):
        norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                          strip_accents=None, lowercase=lower)
        for line in samples:
            expected = [w for w, _ in pre.pre_tokenize_str(norm.normalize_str(line))]
            assert text.basic_tokenize(line, lower_case=lower) == expected, line


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("data, expected_text, expected_invalid", [
    (b"plain", "plain", 0),
    ("café".encode("utf-8"), "café", 0),
    (b"ok \xff\xfe end", "ok \ufffd\ufffd end", 2),        # bytes never valid in UTF-8
    (b"cut \xe4\xbd", "cut \ufffd\ufffd", 2),              # truncated 3-byte sequence
    (b"\xc0\xaf", "\ufffd\ufffd", 2),                      # overlong encoding of "/"
    (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd", 3),            # encoded surrogate
    (b"\xef\xbb\xbfbom", "bom", 0),                        # byte-order mark dropped
])
def test_decode_utf8_counts_invalid_bytes(data, expected_text, expected_invalid):
    assert text.decode_utf8(data) == (expected_text, expected_invalid)


def test_read_text_lines_survives_invalid_bytes(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"first line\r\nsecond \x80\x81 line\n\nlast")
    lines, invalid = text.read_text_lines(str(path))
    assert lines == ["first line", "second \ufffd\ufffd line", "", "last"]
    assert invalid == 2


def test_read_text_lines_errors_name_the_path(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        text.read_text_lines(missing)
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        text.read_text_lines(str(tmp_path))


# --------------------------------------------------------------------------- documents


def test_read_documents_blank_lines_and_file_boundaries(tmp_path):
    (tmp_path / "a.txt").write_text("s1\ns2\n\n\n  \ns3\n", encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.txt").write_bytes(b"s4 \xff\ns5\n")
    (tmp_path / "notes.md").write_text("not read\n", encoding="utf-8")
    reader = text.DocumentReader([str(tmp_path)])
    documents = list(reader)
    assert documents == [["s1", "s2"], ["s3"], ["s4 \ufffd", "s5"]]
    assert (reader.num_files, reader.num_documents, reader.num_lines) == (2, 3, 5)
    assert reader.num_invalid_bytes == 1


def test_read_documents_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        list(text.read_documents([str(tmp_path / "missing_dir")]))
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (empty / "readme.md").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="empty_dir"):
        list(text.read_documents(str(empty)))
    with pytest.raises(ValueError, match="no input"):
        list(text.read_documents([]))


# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize("paragraph, sentences", [
    ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
    ("Use e.g. Python or i.e. Perl. Next sentence.",
     ["Use e.g. Python or i.e. Perl.", "Next sentence."]),
    ("Dr. Smith met J. R. Tolkien. They talked.", ["Dr. Smith met J. R. Tolkien.", "They talked."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("Pi is 3.14 roughly. 42 is next.", ["Pi is 3.14 roughly.", "42 is next."]),
    ("Call os.path.join. it stays", ["Call os.path.join. it stays"]),
    ("  spaced \n out.  ", ["spaced out."]),
    ("", []),
])
def test_split_sentences(paragraph, sentences):
    assert text.split_sentences(paragraph) == sentences


# --------------------------------------------------------------------------- the shipped corpus


def _corpus_sample(step_lines):
    for i, line in enumerate(text.iter_lines(text.default_corpus_dir())):
        if i % step_lines == 0:
            yield line


def test_default_corpus_is_large_clean_and_documented():
    corpus = text.default_corpus_dir()
    assert os.path.isfile(os.path.join(corpus, "LICENSE"))
    assert "PSF" in open(os.path.join(corpus, "README.md"), encoding="utf-8").read()
    total_bytes = sum(os.path.getsize(f) for f in text.default_corpus_files())
    assert total_bytes < 15 * 2**20
    reader = text.DocumentReader(corpus)
    words = 0
    for document in reader:
        for line in document:
            words += len(line.split())
    assert words >= 1_000_000
    assert reader.num_invalid_bytes == 0
    assert reader.num_documents >= 1000
    assert reader.num_lines >= 50_000


def test_corpus_builder_keeps_prose_and_drops_code_and_markup():
    """scripts/build_corpus.py's reST cleaner, on a page in the Python docs' style."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "scripts", "build_corpus.py")
    spec = importlib.util.spec_from_file_location("build_corpus_under_test", path)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    page = """.. _tut-if:

:keyword:`!if` Statements
=========================

Perhaps the most well-known statement type is the :keyword:`if` statement.  For
example::

   >>> x = int(input("Please enter an integer: "))

There can be zero or more :keyword:`elif` parts, see :func:`~os.path.join` and
`the docs <https://example.org>`_.  It is *really* **useful**.

.. code-block:: python

   print("dropped")

.. note::
   :noindex:

   Notes are kept, e.g. this one.  Versions like |version| are filled in.

* A list item that is long enough to keep.
* ``x = 1``

Second Section
--------------

A new section starts a new document here.  It has two more sentences.  Three.  Four.
"""
    documents = list(builder.page_documents(page, min_sentences=1))
    assert documents == [
        ["Perhaps the most well-known statement type is the if statement.",
         "There can be zero or more elif parts, see join and the docs.",
         "It is really useful.",
         "Notes are kept, e.g. this one.",
         "Versions like 3.11 are filled in.",
         "A list item that is long enough to keep."],
        ["A new section starts a new document here.", "It has two more sentences."],
    ]
