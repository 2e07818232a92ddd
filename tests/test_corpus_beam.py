"""trainers.prepare_corpus --engine=beam (kbert.corpus.beam_pipeline) on Beam's direct runner
(FnApiRunner, what `--runner=DirectRunner` runs batch pipelines on, named directly so that
DirectRunner's download of the Prism runner never happens) with 2 workers: the same text
shards and manifest.json, byte for byte, as the plain path on a real-format dump plus JSON
lines, with the spool files gone; a retried cleaning bundle; the same TFRecords and manifest from create_pretraining_data on Beam; a damaged
input and an unknown Beam option refused in one line, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("apache_beam")

from kbert import corpus  # noqa: E402
from kbert.corpus import beam_pipeline  # noqa: E402
from tests import corpus_fixtures as fx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "trainers.prepare_corpus", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)


def _tree(directory) -> dict[str, bytes]:
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory)) if not name.startswith(".")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    pages = [fx.Page(f"Article {i}", fx.TURING if i % 3 else fx.KOREAN) for i in range(90)]
    pages += fx.standard_pages()
    dump = fx.write_dump(str(root / "enwiki-p1p30302.bz2"), pages, "multistream")
    records = [{"text": f"Document {i}. It ends here, Mr. Smith said."} for i in range(120)]
    jsonl = fx.write_jsonl(str(root / "docs.jsonl.gz"), records + [{"text": "  "}], "gzip")
    return root, [dump, jsonl]


def test_beam_on_two_workers_writes_the_plain_paths_shards(inputs, tmp_path):
    _, files = inputs
    plain = tmp_path / "plain"
    manifest = corpus.prepare_corpus(files, str(plain), max_shard_bytes=15000)
    beam = tmp_path / "beam"
    done = _run(f"--input_file={','.join(files)}", f"--output_dir={beam}", "--max_shard_mb=1",
                "--engine=beam", "--num_workers=2")   # the default: 2 direct-runner processes
    assert done.returncode == 0, done.stderr[-3000:]
    # The CLI's shard size is in MB: the same split through the library, 15 kB shards, the
    # inputs spooled in batches of 5,000 characters (shards span several spool batches and
    # batches span shard boundaries).
    beam_small = tmp_path / "beam_small"
    beam_manifest = beam_pipeline.prepare_corpus_on_beam(
        files, str(beam_small), beam_pipeline.default_options(2), max_shard_bytes=15000,
        batch_chars=5000)
    assert len(manifest["shards"]) > 2
    assert manifest["skipped"] == {"empty": 2, "namespace": 2, "redirect": 1}
    assert [i["documents"] for i in manifest["inputs"]] == [91, 120]
    assert beam_manifest == manifest
    assert _tree(beam_small) == _tree(plain)
    # The spools are gone: nothing but the shards, the manifest and kbert's marker.
    assert sorted(os.listdir(beam_small)) == sorted(os.listdir(plain))
    assert sorted(os.listdir(beam)) == [".kbert-output.json", "corpus-00000-of-00001.txt",
                                        "manifest.json"]
    # One shard from the CLI, with the same documents in the same order.
    cli = _tree(beam)
    shards = [n for n in cli if n.startswith("corpus-")]
    assert shards == ["corpus-00000-of-00001.txt"]
    assert cli[shards[0]] == b"".join(v for n, v in _tree(plain).items()
                                      if n.startswith("corpus-"))
    cli_manifest = json.loads(cli["manifest.json"])
    for key in ("documents", "sentences", "characters", "skipped", "inputs"):
        assert cli_manifest[key] == manifest[key]


def test_records_on_beam_are_the_plain_paths_records(inputs, tmp_path, vocab_file):
    from kbert import data as ptd
    from kbert.data.beam_records import create_pretraining_data_on_beam
    from tests.harness import SMALL, shard_bytes
    _, files = inputs
    text = str(tmp_path / "text")
    corpus.prepare_corpus(files, text)
    shards = os.path.join(text, "corpus-*.txt")
    settings = ptd.PretrainingDataSettings(**SMALL)
    plain = str(tmp_path / "plain")
    manifest = ptd.create_pretraining_data(shards, vocab_file, output_dir=plain,
                                           settings=settings)
    beam = str(tmp_path / "beam")
    beam_manifest = create_pretraining_data_on_beam(
        shards, vocab_file, beam, settings, num_workers=2,
        pipeline_options=["--runner=FnApiRunner", "--direct_num_workers=2",
                          "--direct_running_mode=multi_threading"])
    assert manifest["num_examples"] > 100 and len(shard_bytes(plain)) == 3
    assert beam_manifest == manifest
    assert shard_bytes(beam) == shard_bytes(plain)
    assert _tree(beam)["manifest.json"] == _tree(plain)["manifest.json"]
    assert not [n for n in os.listdir(beam) if n.startswith("manifest-worker")]


def test_damaged_input_on_beam_is_one_line_and_nothing_written(inputs, tmp_path):
    root, files = inputs
    data = open(files[0], "rb").read()
    truncated = root / "truncated.xml.bz2"
    truncated.write_bytes(data[:len(data) * 2 // 3])
    out = tmp_path / "out"
    done = _run(f"--input_file={files[1]},{truncated}", f"--output_dir={out}",
                "--engine=beam", "--", "--runner=FnApiRunner", "--direct_num_workers=2",
                "--direct_running_mode=multi_threading")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("prepare_corpus: error: ") and "truncated" in lines[0]
    assert "truncated.xml.bz2" in lines[0]
    assert not out.exists() and os.listdir(tmp_path) == []


def test_unknown_beam_option_is_one_line_and_nothing_written(inputs, tmp_path):
    _, files = inputs
    out = tmp_path / "out"
    done = _run(f"--input_file={files[1]}", f"--output_dir={out}", "--engine=beam", "--",
                "--runner=FnApiRunner", "--direct_num_worker=2")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert lines == ["prepare_corpus: error: unknown Beam pipeline option(s) after `--`: "
                     "--direct_num_worker"], done.stderr[-3000:]
    assert not out.exists()


def test_a_retried_clean_batch_finds_its_work_done(tmp_path):
    """A bundle retried after its batch was cleaned (the raw spool already removed) returns
    the same summary instead of failing; the spools hold the documents and their sizes."""
    work = str(tmp_path)
    raw = beam_pipeline._spool_path(work, "raw", (0, 3))
    items = [("paragraphs", ["One. Two."]), ("paragraphs", ["  "]), ("sentences", ["Three."])]
    beam_pipeline._dump(items, raw)
    first = beam_pipeline._clean_batch(((0, 3), raw), work, "en")
    assert not os.path.exists(raw)
    assert first["documents"] == 2 and first["empty"] == 1
    assert beam_pipeline._clean_batch(((0, 3), raw), work, "en") == first
    assert beam_pipeline._undump(first["path"]) == [["One.", "Two."], ["Three."]]
    assert os.path.getsize(first["path"] + ".sizes") == 16
    assert sorted(os.listdir(work)) == ["clean-00000-00000003", "clean-00000-00000003.json",
                                        "clean-00000-00000003.sizes"]
