"""create_pretraining_data as a stream (issue 19): documents in shuffled windows, NotNext
segments from the chunk (a bounded pool), shards spooled and shuffled through a bounded
buffer, and inputs that are not plain text refused before anything is decoded."""

from __future__ import annotations

import os

import pytest

from kbert import data as ptd
from kbert.data import examples, writer
from tests import corpus_fixtures as fx
from tests.harness import SMALL, all_records, shard_bytes


def test_stream_chunks_take_every_document_once_in_windows(monkeypatch):
    monkeypatch.setattr(examples, "SHUFFLE_WINDOW_CHUNKS", 3)
    settings = ptd.PretrainingDataSettings(documents_per_chunk=4)
    for n in (1, 2, 5, 12, 13, 25, 100):
        chunks = ptd.plan_chunks(n, settings)
        flat = [i for chunk in chunks for i in chunk]
        assert sorted(flat) == list(range(n))
        assert len(chunks) == writer.number_of_chunks(n, 4)
        assert all(len(c) >= 2 for c in chunks) or n < 2
        # Windows of 12 documents: no chunk mixes two windows (except the merged tail).
        for chunk in chunks[:-1]:
            assert len({i // 12 for i in chunk}) == 1, chunks
    windowed = ptd.plan_chunks(100, settings)
    monkeypatch.setattr(examples, "SHUFFLE_WINDOW_CHUNKS", 64)
    assert ptd.plan_chunks(100, settings) != windowed   # one window: the whole corpus


def test_bounded_shuffle_writes_the_same_records(small_corpus, vocab_file, tmp_path,
                                                 monkeypatch):
    settings = ptd.PretrainingDataSettings(**SMALL)
    whole = str(tmp_path / "whole")
    ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=whole, settings=settings)
    monkeypatch.setattr(writer, "SHUFFLE_BUFFER_RECORDS", 7)
    monkeypatch.setattr(writer.write_shard, "__defaults__", (7,))
    bounded = str(tmp_path / "bounded")
    ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=bounded, settings=settings)
    assert all_records(bounded) == all_records(whole)
    assert shard_bytes(bounded) != shard_bytes(whole)     # the order is another one
    assert not [n for n in os.listdir(bounded) if n.startswith(".") and "spool" in n]


def test_windows_keep_nsp_exact_and_next_sentences_in_the_chunk(small_corpus, vocab_file,
                                                               tmp_path, monkeypatch):
    monkeypatch.setattr(examples, "SHUFFLE_WINDOW_CHUNKS", 2)
    settings = ptd.PretrainingDataSettings(**dict(SMALL, dupe_factor=4))
    manifest = ptd.create_pretraining_data(small_corpus, vocab_file,
                                           output_dir=str(tmp_path / "out"), settings=settings)
    share = manifest["num_not_next"] / manifest["num_examples"]
    # Each pair is NotNext with probability 1/2 (google-research/bert's rule) whatever the
    # pool; a binomial 4-sigma band around 0.5.
    sigma = (0.25 / manifest["num_examples"]) ** 0.5
    assert abs(share - 0.5) < 4 * sigma, (share, manifest["num_examples"])
    assert manifest["num_chunks"] == writer.number_of_chunks(manifest["num_documents"],
                                                             SMALL["documents_per_chunk"])


@pytest.mark.parametrize("kind", ["dump_bz2", "dump_xml", "jsonl", "binary", "gzip_text"])
def test_inputs_that_are_not_plain_text_are_refused(tmp_path, vocab_file, kind):
    path = tmp_path / "input.txt"       # the name says text; the content decides
    if kind.startswith("dump"):
        fx.write_dump(str(path), fx.standard_pages(),
                      "bz2" if kind == "dump_bz2" else "none")
    elif kind == "jsonl":
        fx.write_jsonl(str(path), [{"text": "One. Two."}] * 3)
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 16)
    else:
        import gzip
        path.write_bytes(gzip.compress(b"One sentence.\nAnother.\n\nDoc two.\nMore.\n"))
    out = tmp_path / "out"
    saying = {"dump_bz2": "MediaWiki XML dump", "dump_xml": "MediaWiki XML dump",
              "jsonl": "JSON lines", "binary": "binary data", "gzip_text": "gzip"}[kind]
    with pytest.raises(ptd.PretrainingDataError, match=saying) as raised:
        ptd.create_pretraining_data(str(path), vocab_file, output_dir=str(out),
                                    settings=ptd.PretrainingDataSettings(**SMALL))
    assert "input.txt" in str(raised.value)
    if kind != "binary":
        assert "prepare_corpus" in str(raised.value)
    assert not out.exists()


def test_prepare_corpus_output_feeds_create_pretraining_data(tmp_path, vocab_file):
    pages = [fx.Page(f"A{i}", fx.TURING) for i in range(12)] + fx.standard_pages()
    dump = fx.write_dump(str(tmp_path / "dump.bz2"), pages, "multistream")
    from kbert import corpus
    corpus.prepare_corpus(dump, str(tmp_path / "text"))
    manifest = ptd.create_pretraining_data(
        str(tmp_path / "text" / "corpus-*.txt"), vocab_file, output_dir=str(tmp_path / "rec"),
        settings=ptd.PretrainingDataSettings(**dict(SMALL, num_output_shards=1)))
    assert manifest["num_documents"] == 13 and manifest["num_examples"] > 0
