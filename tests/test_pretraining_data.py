"""Pre-training data: NSP pairs, static masking, records, shards, manifest, bad input.

Statistics run over the embedded corpus (data/corpus; a synthetic corpus when it is
absent), well over 100,000 tokens each.
"""

from __future__ import annotations

import glob
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from kbert import data as ptd
from tests.harness import (REPO, SMALL, all_records, assert_masking_statistics,
                           gt_vocab_file, masking_counts, read_records, shard_bytes,
                           word_groups)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tokenized(documents, tokenizer):
    return ptd.tokenize_documents(documents, tokenizer)


def masked_examples(tokenized, tokenizer, min_tokens=150_000, **settings):
    """Chunk examples over the first chunks of the corpus until `min_tokens` tokens."""
    settings = ptd.PretrainingDataSettings(**settings)
    by_id = {d.document_id: d for d in tokenized}
    examples, tokens = [], 0
    for chunk_id, ids in enumerate(ptd.plan_chunks(max(by_id) + 1, settings)):
        chunk = ptd.create_chunk_examples(chunk_id, [by_id[i] for i in ids if i in by_id],
                                          tokenizer.vocab, settings)
        examples.extend(chunk)
        tokens += sum(len(e.input_ids) for e in chunk)
        if tokens >= min_tokens:
            break
    assert tokens >= min_tokens, "corpus too small for the statistics"
    return examples


# --------------------------------------------------------------------------- masking
def test_static_masking_statistics(tokenized, tokenizer, special_ids):
    examples = masked_examples(tokenized, tokenizer, max_seq_length=128,
                               max_predictions_per_seq=128, dupe_factor=1)
    for e in examples:
        assert e.masked_lm_positions == sorted(e.masked_lm_positions)
        assert e.masked_lm_ids == [e.original_ids[p] for p in e.masked_lm_positions]
        # [CLS] A [SEP] B [SEP] keeps its special tokens.
        sep = len(e.pair.tokens_a) + 1
        assert (e.input_ids[0], e.input_ids[sep], e.input_ids[-1]) == (
            tokenizer.cls_id, tokenizer.sep_id, tokenizer.sep_id)
    counts = masking_counts([e.input_ids for e in examples], [e.original_ids for e in examples],
                            [e.masked_lm_positions for e in examples], special_ids,
                            tokenizer.mask_id)
    assert_masking_statistics(counts)


def test_max_predictions_caps_the_count(tokenized, tokenizer):
    examples = masked_examples(tokenized, tokenizer, min_tokens=20_000, max_seq_length=128,
                               max_predictions_per_seq=5, dupe_factor=1)
    lengths = [len(e.masked_lm_positions) for e in examples]
    assert max(lengths) == 5 and min(lengths) >= 1


def test_whole_word_masking_chooses_whole_words(tokenized, tokenizer, special_ids):
    examples = masked_examples(tokenized, tokenizer, max_seq_length=128,
                               max_predictions_per_seq=128, dupe_factor=1,
                               do_whole_word_mask=True)
    multi_piece_words_chosen = 0
    for e in examples:
        chosen = set(e.masked_lm_positions)
        for group in word_groups(e.original_ids, tokenizer.vocab, special_ids):
            picked = [p in chosen for p in group]
            assert all(picked) or not any(picked), (group, e.masked_lm_positions)
            multi_piece_words_chosen += len(group) > 1 and all(picked)
    assert multi_piece_words_chosen > 100
    counts = masking_counts([e.input_ids for e in examples], [e.original_ids for e in examples],
                            [e.masked_lm_positions for e in examples], special_ids,
                            tokenizer.mask_id)
    # Words that would overshoot the count are skipped (google's rule), so a little under.
    assert 0.14 <= counts["chosen"] / counts["candidates"] <= 0.15 + 0.005
    for kind, rate in (("mask", 0.8), ("random", 0.1), ("kept", 0.1)):
        assert abs(counts[kind] / counts["chosen"] - rate) <= 0.01


def test_special_tokens_never_chosen_even_when_everything_is_chosen(tokenizer, special_ids):
    masker = ptd.StaticMasker(tokenizer.vocab, max_predictions_per_seq=64, masked_lm_prob=1.0)
    ids = [tokenizer.cls_id, 2000, tokenizer.unk_id, 2001, tokenizer.sep_id, 2002,
           tokenizer.mask_id, tokenizer.sep_id]
    out = masker.mask(ids, [True] * len(ids), random.Random(3))
    assert out.positions == [1, 3, 5]


# --------------------------------------------------------------------------- NSP pairs
def test_nsp_pairs_statistics_and_provenance(tokenized):
    rng = random.Random(2024)
    by_id = {d.document_id: d for d in tokenized}
    pairs = [p for _ in range(3) for index in range(len(tokenized))
             for p in ptd.create_pairs_from_document(tokenized, index, 125, 0.1, rng)]
    assert sum(len(p.tokens_a) + len(p.tokens_b) for p in pairs) >= 100_000
    is_next = [not p.is_random_next for p in pairs]
    assert abs(sum(is_next) / len(pairs) - 0.5) <= 0.01, sum(is_next) / len(pairs)
    for p in pairs:
        assert 1 <= len(p.tokens_a) and 1 <= len(p.tokens_b)
        assert len(p.tokens_a) + len(p.tokens_b) <= 125
        if p.is_random_next:
            assert p.b_document != p.a_document
        else:
            assert p.b_document == p.a_document
            assert p.b_sentences[0] == p.a_sentences[1], "B must continue A"
        # A and B are what provenance says, up to truncation at either end.
        for tokens, document, (lo, hi) in ((p.tokens_a, p.a_document, p.a_sentences),
                                            (p.tokens_b, p.b_document, p.b_sentences)):
            source = [t for s in by_id[document].sentences[lo:hi] for t in s.ids]
            assert any(source[k:k + len(tokens)] == tokens
                       for k in range(len(source) - len(tokens) + 1))


def test_short_seq_prob_makes_shorter_pairs(tokenized):
    def mean_length(short_seq_prob):
        rng = random.Random(5)
        pairs = [p for i in range(400) for p in ptd.create_pairs_from_document(
            tokenized, i, 125, short_seq_prob, rng)]
        return np.mean([len(p.tokens_a) + len(p.tokens_b) for p in pairs])
    assert mean_length(1.0) < 0.75 * mean_length(0.0)


def test_truncation_trims_the_longer_segment_at_random_ends():
    rng = random.Random(0)
    offsets = []
    for _ in range(2000):
        a, b = list(range(10)), [100, 101, 102]
        sa, sb = [True] * 10, [True] * 3
        ptd.truncate_seq_pair(a, sa, b, sb, 8, rng)
        assert b == [100, 101, 102] and len(a) == 5 and a == list(range(a[0], a[0] + 5))
        assert len(sa) == 5
        offsets.append(a[0])
    # Five removals, each from the front with probability 1/2: mean offset 2.5.
    assert abs(np.mean(offsets) - 2.5) < 0.15
    assert min(offsets) == 0 and max(offsets) == 5


# --------------------------------------------------------------------------- records and shards
@pytest.fixture(scope="module")
def single_run(tmp_path_factory, small_corpus, vocab_file):
    out = str(tmp_path_factory.mktemp("single"))
    manifest = ptd.create_pretraining_data(",".join(small_corpus), vocab_file, output_dir=out,
                                           settings=ptd.PretrainingDataSettings(**SMALL))
    return out, manifest


def test_records_parse_with_googles_feature_spec(single_run, tokenizer):
    out, manifest = single_run
    files = sorted(glob.glob(os.path.join(out, "*.tfrecord")))
    assert [os.path.basename(f) for f in files] == [
        f"pretrain-0000{i}-of-00003.tfrecord" for i in range(3)]
    records = read_records(files, 64, 10)
    assert len(records) == manifest["num_examples"] == sum(manifest["shards"].values())
    assert sum(int(r["next_sentence_labels"][0]) for r in records) == manifest["num_not_next"]
    for r in records:
        n = int(r["input_mask"].sum())
        assert r["input_mask"].tolist() == [1] * n + [0] * (64 - n)
        ids, seg = r["input_ids"], r["segment_ids"]
        assert ids[0] == tokenizer.cls_id and ids[n - 1] == tokenizer.sep_id
        assert (ids[n:] == 0).all() and (seg[n:] == 0).all()
        first_sep = int(np.argmax(ids == tokenizer.sep_id))
        assert (seg[:first_sep + 1] == 0).all() and (seg[first_sep + 1:n] == 1).all()
        k = int(r["masked_lm_weights"].sum())
        assert r["masked_lm_weights"].tolist() == [1.0] * k + [0.0] * (10 - k) and k >= 1
        positions = r["masked_lm_positions"][:k]
        assert (np.diff(positions) > 0).all() and (positions < n).all() and positions[0] > 0
        assert (r["masked_lm_positions"][k:] == 0).all() and (r["masked_lm_ids"][k:] == 0).all()
        assert r["next_sentence_labels"][0] in (0, 1)
    with open(os.path.join(out, "manifest.json")) as f:
        on_disk = json.load(f)
    for key in ("vocab_hash", "vocab_size", "max_seq_length", "max_predictions_per_seq",
                "do_lower_case", "masked_lm_prob", "short_seq_prob", "dupe_factor",
                "random_seed", "do_whole_word_mask", "documents_per_chunk"):
        assert key in on_disk, key
    from kbert.tokenizers import vocab_hash
    assert on_disk["vocab_hash"] == vocab_hash(gt_vocab_file())
    assert on_disk["vocab_size"] == tokenizer.vocab_size


def test_same_seed_same_bytes_whatever_the_number_of_processes(
        single_run, small_corpus, vocab_file, tmp_path):
    out, _ = single_run
    again = str(tmp_path / "two_processes")
    ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=again,
                                settings=ptd.PretrainingDataSettings(**SMALL), num_processes=2)
    assert shard_bytes(again) == shard_bytes(out)
    other_seed = str(tmp_path / "other_seed")
    ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=other_seed,
                                settings=ptd.PretrainingDataSettings(**SMALL, random_seed=7))
    assert all_records(other_seed) != all_records(out)


def test_workers_together_write_the_single_machine_output(
        single_run, small_corpus, vocab_file, tmp_path):
    out, manifest = single_run
    split = str(tmp_path / "split")
    for index in (2, 0):
        ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=split,
                                    settings=ptd.PretrainingDataSettings(**SMALL),
                                    num_shards=3, shard_index=index)
    with pytest.raises(ptd.PretrainingDataError, match=r"workers \[1\]"):
        ptd.read_manifest(split)
    ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=split,
                                settings=ptd.PretrainingDataSettings(**SMALL),
                                num_shards=3, shard_index=1)
    assert all_records(split) == all_records(out)  # the same multiset of examples
    assert shard_bytes(split) == shard_bytes(out)  # in fact the same files
    merged = ptd.merge_worker_manifests(split)
    assert merged["shards"] == manifest["shards"]
    assert merged["num_examples"] == manifest["num_examples"]
    assert ptd.read_manifest(split) == merged


def test_dynamic_masking_records_are_unmasked(small_corpus, vocab_file, tokenizer, tmp_path):
    out = str(tmp_path / "dynamic")
    manifest = ptd.create_pretraining_data(
        small_corpus, vocab_file, output_dir=out,
        settings=ptd.PretrainingDataSettings(**SMALL, dynamic_masking=True))
    assert manifest["dynamic_masking"] is True
    records = read_records(sorted(glob.glob(os.path.join(out, "*.tfrecord"))), 64, 10)
    assert records and all(r["masked_lm_weights"].sum() == 0 for r in records)
    assert all(tokenizer.mask_id not in r["input_ids"] for r in records)


def test_output_files_flag_and_existing_output(small_corpus, vocab_file, tmp_path):
    names = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")]
    settings = ptd.PretrainingDataSettings(**{**SMALL, "num_output_shards": 2})
    manifest = ptd.create_pretraining_data(small_corpus, vocab_file, output_files=names,
                                           settings=settings)
    assert sorted(manifest["shards"]) == ["a.tfrecord", "b.tfrecord"]
    before = shard_bytes(str(tmp_path))
    with pytest.raises(ptd.PretrainingDataError, match="--overwrite"):
        ptd.create_pretraining_data(small_corpus, vocab_file, output_files=names,
                                    settings=settings)
    assert shard_bytes(str(tmp_path)) == before
    ptd.create_pretraining_data(small_corpus, vocab_file, output_files=names,
                                settings=settings, overwrite=True)
    assert shard_bytes(str(tmp_path)) == before


# --------------------------------------------------------------------------- bad input
def assert_untouched(directory):
    assert sorted(os.listdir(directory)) == ["keep.txt"]


@pytest.fixture
def output_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    return str(out)


def test_empty_corpus_is_an_error_naming_the_file(tmp_path, vocab_file, output_dir):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    with pytest.raises(ptd.PretrainingDataError, match="empty.*empty.txt"):
        ptd.create_pretraining_data(str(empty), vocab_file, output_dir=output_dir)
    assert_untouched(output_dir)


def test_missing_inputs_are_errors_naming_them(tmp_path, vocab_file, output_dir):
    (tmp_path / "no_text").mkdir()
    (tmp_path / "no_text" / "image.png").write_bytes(b"\x89PNG")
    cases = [(str(tmp_path / "missing.txt"), "not found: .*missing.txt"),
             (str(tmp_path / "nothing*.txt"), "pattern .*nothing\\*.txt.* matches no file"),
             (str(tmp_path / "no_text"), "no_text.*no text files")]
    for pattern, message in cases:
        with pytest.raises(ptd.PretrainingDataError, match=message):
            ptd.create_pretraining_data(pattern, vocab_file, output_dir=output_dir)
    assert_untouched(output_dir)


def test_vocab_without_a_special_token_is_an_error_naming_it(
        tmp_path, small_corpus, vocab_file, output_dir):
    bad_vocab = tmp_path / "vocab.txt"
    tokens = open(vocab_file, encoding="utf-8").read().split("\n")
    bad_vocab.write_text("\n".join(t for t in tokens if t != "[MASK]"), encoding="utf-8")
    with pytest.raises(ptd.PretrainingDataError, match=r"--vocab_file.*vocab.txt.*\[MASK\]"):
        ptd.create_pretraining_data(small_corpus, str(bad_vocab), output_dir=output_dir)
    assert_untouched(output_dir)


@pytest.mark.parametrize("field, value, message", [
    ("max_seq_length", 4, "--max_seq_length=4 is too small"),
    ("masked_lm_prob", 1.5, "--masked_lm_prob"),
    ("masked_lm_prob", 0.0, "--masked_lm_prob"),
    ("short_seq_prob", -0.1, "--short_seq_prob"),
    ("dupe_factor", 0, "--dupe_factor"),
    ("max_predictions_per_seq", 200, "--max_predictions_per_seq=200 exceeds"),
])
def test_bad_settings_name_the_flag(field, value, message):
    with pytest.raises(ptd.PretrainingDataError, match=message):
        ptd.PretrainingDataSettings(**{field: value})


def test_bad_run_flags_name_the_flag(small_corpus, vocab_file, output_dir):
    settings = ptd.PretrainingDataSettings(**SMALL)
    for kwargs, message in ((dict(num_processes=0), "--num_processes"),
                            (dict(num_shards=2, shard_index=2), "--shard_index=2"),
                            (dict(num_shards=4, shard_index=3),
                             "--shard_index=3 has no output shard")):
        with pytest.raises(ptd.PretrainingDataError, match=message):
            ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=output_dir,
                                        settings=settings, **kwargs)
    many = ptd.PretrainingDataSettings(**{**SMALL, "num_output_shards": 50})
    with pytest.raises(ptd.PretrainingDataError, match="--num_output_shards=50 exceeds"):
        ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=output_dir,
                                    settings=many)
    assert_untouched(output_dir)


def test_a_failure_while_writing_leaves_nothing_behind(
        small_corpus, vocab_file, output_dir, monkeypatch):
    from kbert.data import writer
    real_write_shard = writer.write_shard
    written = []

    def fail_on_the_second_shard(path, *args):
        if written:
            with open(path + ".partial", "w"):
                pass  # a file that is not ours must survive
            raise RuntimeError("disk full")
        written.append(path)
        return real_write_shard(path, *args)

    monkeypatch.setattr(writer, "write_shard", fail_on_the_second_shard)
    with pytest.raises(RuntimeError, match="disk full"):
        ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=output_dir,
                                    settings=ptd.PretrainingDataSettings(**SMALL))
    assert written and not os.path.exists(written[0])
    leftovers = sorted(os.listdir(output_dir))
    assert leftovers == ["keep.txt", "pretrain-00001-of-00003.tfrecord.partial"], leftovers


def test_a_failing_shard_write_removes_its_temporary_file(tmp_path):
    from kbert.data import writer

    class Boom(Exception):
        pass

    def records():
        yield b"x"
        raise Boom()

    class Exploding(list):
        def __iter__(self):
            return records()

    with pytest.raises(Boom):
        writer.write_shard(str(tmp_path / "s.tfrecord"), 0, [Exploding([b"x"])], 1)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- command line
def run_command(*args, cwd=REPO):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "trainers.create_pretraining_data", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_command_line_with_flagfile(tmp_path, small_corpus, vocab_file):
    out = tmp_path / "out"
    flagfile = tmp_path / "data.flags"
    flagfile.write_text("\n".join([
        f"--input_file={small_corpus[0]},{os.path.dirname(small_corpus[0])}/part1*.txt",
        f"--vocab_file={vocab_file}", f"--output_dir={out}", "--max_seq_length=64",
        "--max_predictions_per_seq=10", "--dupe_factor=2", "--documents_per_chunk=5",
        "--num_output_shards=3", "--random_seed=12345", "--do_lower_case",
        "--masked_lm_prob=0.15", "--short_seq_prob=0.1", "--nodo_whole_word_mask"]) + "\n")
    result = run_command(f"--flagfile={flagfile}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert ptd.read_manifest(str(out))["num_examples"] > 0
    bad = run_command(f"--flagfile={flagfile}", "--max_seq_length=3", "--overwrite",
                      f"--output_dir={tmp_path / 'bad'}")
    assert bad.returncode == 2
    assert "--max_seq_length=3 is too small" in bad.stderr
    assert not (tmp_path / "bad").exists()
