"""kbert.data.pipelines: reading shards, sharding per input pipeline, dynamic masking,
pairs from raw text."""

from __future__ import annotations

import collections
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from kbert import data as ptd
from tests.harness import (SMALL, assert_masking_statistics, gt_vocab_file, masking_counts,
                           read_records, word_groups, write_small_corpus)


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory, small_corpus, vocab_file):
    out = str(tmp_path_factory.mktemp("static"))
    ptd.create_pretraining_data(small_corpus, vocab_file, output_dir=out,
                                settings=ptd.PretrainingDataSettings(**SMALL))
    return out


@pytest.fixture(scope="module")
def dynamic_dir(tmp_path_factory, documents, vocab_file):
    """Unmasked records over 120k+ tokens of the corpus, masks drawn up to 128 per row."""
    corpus = write_small_corpus(str(tmp_path_factory.mktemp("big_corpus")), documents,
                                num_documents=400)
    out = str(tmp_path_factory.mktemp("dynamic"))
    settings = ptd.PretrainingDataSettings(max_seq_length=128, max_predictions_per_seq=128,
                                           dupe_factor=1, num_output_shards=2,
                                           dynamic_masking=True)
    ptd.create_pretraining_data(corpus, vocab_file, output_dir=out, settings=settings)
    return out


def rows(dataset, key="input_ids"):
    return [tuple(row) for batch in dataset for row in batch[key].numpy().tolist()]


def shard_paths(directory):
    return [os.path.join(directory, n) for n in sorted(ptd.read_manifest(directory)["shards"])]


# --------------------------------------------------------------------------- reading records
def test_batches_follow_the_interface(static_dir):
    ds = ptd.pretraining_dataset(static_dir, 8, 64, 10, is_training=False)
    batch = next(iter(ds))
    expected = {"input_ids": (tf.int32, [8, 64]), "input_mask": (tf.int32, [8, 64]),
                "segment_ids": (tf.int32, [8, 64]), "masked_lm_positions": (tf.int32, [8, 10]),
                "masked_lm_ids": (tf.int32, [8, 10]), "masked_lm_weights": (tf.float32, [8, 10]),
                "next_sentence_labels": (tf.int32, [8])}
    assert {k: (v.dtype, v.shape.as_list()) for k, v in batch.items()} == expected
    # One pass over the data reads every record once, unchanged.
    records = read_records(shard_paths(static_dir), 64, 10)
    assert sorted(rows(ds)) == sorted(tuple(r["input_ids"].tolist()) for r in records)
    assert sorted(int(x) for b in ds for x in b["next_sentence_labels"].numpy()) == sorted(
        int(r["next_sentence_labels"][0]) for r in records)


def test_training_repeats_shuffles_and_keeps_full_batches(static_dir):
    num_examples = ptd.read_manifest(static_dir)["num_examples"]

    def first_batches(seed, count):
        ds = ptd.pretraining_dataset(static_dir, 16, 64, 10, seed=seed)
        return [b["input_ids"].numpy() for b in ds.take(count)]

    count = num_examples // 16 + 3  # more than one epoch
    batches = first_batches(1, count)
    assert all(b.shape == (16, 64) for b in batches)
    again = first_batches(1, count)
    assert all((a == b).all() for a, b in zip(batches, again))
    eval_order = rows(ptd.pretraining_dataset(static_dir, 16, 64, 10,
                                                         is_training=False))
    assert [tuple(r) for b in batches[:2] for r in b.tolist()] != eval_order[:32]


def test_manifest_mismatch_names_the_setting_and_file(static_dir):
    with pytest.raises(ptd.PretrainingDataError,
                       match=f"max_seq_length=128 does not match .*{static_dir}"):
        ptd.pretraining_dataset(static_dir, 8, 128, 10)
    with pytest.raises(ptd.PretrainingDataError, match="max_predictions_per_seq=20"):
        ptd.pretraining_dataset(static_dir + "/*.tfrecord", 8, 64, 20)
    with pytest.raises(ptd.PretrainingDataError, match="already masked"):
        ptd.pretraining_dataset(static_dir, 8, 64, 10, dynamic_masking=True)
    with pytest.raises(ptd.PretrainingDataError, match="nothing.*matches no file"):
        ptd.pretraining_dataset(static_dir + "/nothing*", 8, 64, 10)
    assert ptd.read_manifest(static_dir)["max_seq_length"] == 64


@pytest.mark.parametrize("use_one_file", [False, True])
def test_two_input_pipelines_read_disjoint_parts(static_dir, use_one_file):
    source = shard_paths(static_dir)[0] if use_one_file else static_dir
    everything = rows(ptd.pretraining_dataset(source, 4, 64, 10, is_training=False))
    parts = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        ds = ptd.pretraining_dataset(source, 4, 64, 10, is_training=False,
                                                input_context=context)
        assert next(iter(ds))["input_ids"].shape[0] == 2  # the per-replica batch
        parts.append(collections.Counter(rows(ds)))
    assert parts[0] and parts[1]
    assert not set(parts[0]) & set(parts[1])
    assert parts[0] + parts[1] == collections.Counter(everything)


def google_style_example(input_ids, segment_ids, positions, labels, is_random_next,
                         max_seq_length, max_predictions_per_seq):
    """As google-research/bert's write_instance_to_example_files builds it."""
    input_mask = [1] * len(input_ids)
    weights = [1.0] * len(labels)
    pad = max_seq_length - len(input_ids)
    pad_p = max_predictions_per_seq - len(positions)

    def ints(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))

    features = collections.OrderedDict()
    features["input_ids"] = ints(input_ids + [0] * pad)
    features["input_mask"] = ints(input_mask + [0] * pad)
    features["segment_ids"] = ints(segment_ids + [0] * pad)
    features["masked_lm_positions"] = ints(positions + [0] * pad_p)
    features["masked_lm_ids"] = ints(labels + [0] * pad_p)
    features["masked_lm_weights"] = tf.train.Feature(
        float_list=tf.train.FloatList(value=weights + [0.0] * pad_p))
    features["next_sentence_labels"] = ints([1 if is_random_next else 0])
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def test_reads_records_written_by_googles_code(tmp_path):
    rng = random.Random(0)
    path = str(tmp_path / "google.tfrecord")
    expected = []
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(10):
            a, b = rng.randint(1, 10), rng.randint(1, 10)
            ids = [101] + [rng.randint(1000, 2000) for _ in range(a)] + [102] + [
                rng.randint(1000, 2000) for _ in range(b)] + [102]
            positions = sorted(rng.sample(range(1, a + 1), 1))
            writer.write(google_style_example(ids, [0] * (a + 2) + [1] * (b + 1), positions,
                                              [ids[p] for p in positions], a % 2 == 1, 32, 4))
            expected.append((ids + [0] * (32 - len(ids)), a % 2))
    (tmp_path / ".pretrain-00000-of-00001.tfrecord.abc.tmp").write_bytes(b"garbage")
    # A directory without manifest.json may be half-written: refused; a glob reads the files.
    with pytest.raises(ptd.PretrainingDataError, match=r"no manifest.json but 1 \*.tfrecord"):
        ptd.pretraining_dataset(str(tmp_path), 5, 32, 4, is_training=False)
    ds = ptd.pretraining_dataset(str(tmp_path / "*.tfrecord"), 5, 32, 4, is_training=False)
    got = [(r.tolist(), int(label)) for b in ds
           for r, label in zip(b["input_ids"].numpy(), b["next_sentence_labels"].numpy())]
    assert got == expected


# --------------------------------------------------------------------------- dynamic masking
def originals_from_batch(batch):
    """Undo the masking: put masked_lm_ids back at masked_lm_positions."""
    ids = batch["input_ids"].numpy().copy()
    positions = batch["masked_lm_positions"].numpy()
    weights = batch["masked_lm_weights"].numpy()
    labels = batch["masked_lm_ids"].numpy()
    chosen = []
    for row in range(ids.shape[0]):
        k = int(weights[row].sum())
        assert (weights[row, :k] == 1).all() and (weights[row, k:] == 0).all()
        ids[row, positions[row, :k]] = labels[row, :k]
        chosen.append(positions[row, :k].tolist())
    return ids, chosen


def test_dynamic_masking_statistics(dynamic_dir, tokenizer, special_ids):
    records = read_records(shard_paths(dynamic_dir), 128, 128)
    originals = {tuple(r["input_ids"].tolist()) for r in records}
    ds = ptd.pretraining_dataset(dynamic_dir, 64, 128, 128, is_training=False,
                                            seed=3, vocab_file=gt_vocab_file())
    masked, restored, chosen = [], [], []
    for batch in ds:
        ids, positions = originals_from_batch(batch)
        masked.extend(batch["input_ids"].numpy().tolist())
        restored.extend(ids.tolist())
        chosen.extend(positions)
    assert {tuple(r) for r in restored} == originals  # masks only touch chosen positions
    counts = masking_counts(masked, restored, chosen, special_ids, tokenizer.mask_id)
    assert_masking_statistics(counts)
    assert all(p == sorted(p) and len(set(p)) == len(p) for p in chosen)


def test_dynamic_masks_change_every_epoch_and_follow_the_seed(static_dir, small_corpus,
                                                             vocab_file, tmp_path):
    out = str(tmp_path / "dyn")
    manifest = ptd.create_pretraining_data(
        small_corpus[0], vocab_file, output_dir=out,
        settings=ptd.PretrainingDataSettings(**{**SMALL, "num_output_shards": 1},
                                             dynamic_masking=True))
    n = manifest["num_examples"]

    def stream(seed):
        # Batch size 1, no shuffling: example i of epoch e is batch e * n + i.
        ds = ptd.pretraining_dataset(out, 1, 64, 10, seed=seed, shuffle_buffer_size=1)
        return [b for b in ds.take(2 * n)]

    first, again, other = stream(5), stream(5), stream(6)
    same_example = [(originals_from_batch(first[i])[0] == originals_from_batch(
        first[n + i])[0]).all() for i in range(n)]
    assert all(same_example)
    changed = sum(not np.array_equal(first[i]["masked_lm_positions"],
                                     first[n + i]["masked_lm_positions"]) for i in range(n))
    assert changed > 0.8 * n
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, again))
    assert any(not np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, other))


@pytest.fixture(scope="module")
def original_id_batches(documents, tokenizer):
    """[CLS] A [SEP] B [SEP] id rows (unmasked, padded to 128) over 120k+ tokens."""
    tokenized = ptd.tokenize_documents(documents[:600], tokenizer)
    rng = random.Random(11)
    settings = ptd.PretrainingDataSettings(dynamic_masking=True)
    examples = [ptd.build_example(p, tokenizer.cls_id, tokenizer.sep_id, None, rng)
                for i in range(len(tokenized))
                for p in ptd.create_pairs_from_document(tokenized, i, settings.max_num_tokens,
                                                        0.1, rng)]
    ids = np.zeros([len(examples), 128], np.int32)
    for row, e in enumerate(examples):
        ids[row, :len(e.input_ids)] = e.input_ids
    assert (ids > 0).sum() >= 120_000
    return ids, examples


def test_dynamic_whole_word_masking_matches_the_static_rule(original_id_batches, tokenizer,
                                                           special_ids):
    ids, examples = original_id_batches
    masker = ptd.DynamicMasker(tokenizer.vocab, 128, do_whole_word_mask=True)
    masked, chosen = [], []
    for start in range(0, len(ids), 256):
        batch = tf.constant(ids[start:start + 256])
        out = masker(batch, tf.cast(batch > 0, tf.int32), tf.constant([7, start]))
        restored, positions = originals_from_batch(out)
        assert (restored == ids[start:start + 256]).all()
        masked.extend(out["input_ids"].numpy().tolist())
        chosen.extend(positions)
    whole = 0
    for row, positions in zip(ids.tolist(), chosen):
        picked = set(positions)
        for group in word_groups(row, tokenizer.vocab, special_ids):
            flags = [p in picked for p in group]
            assert all(flags) or not any(flags)
            whole += len(group) > 1 and all(flags)
    assert whole > 100
    counts = masking_counts(masked, ids.tolist(), chosen, special_ids, tokenizer.mask_id)
    for kind, rate in (("mask", 0.8), ("random", 0.1), ("kept", 0.1)):
        assert abs(counts[kind] / counts["chosen"] - rate) <= 0.01
    # The static (python) masker implements the same rule: same selected fraction.
    static = ptd.StaticMasker(tokenizer.vocab, 128, do_whole_word_mask=True)
    rng = random.Random(0)
    static_chosen = sum(len(static.mask(e.input_ids, [True] + e.pair.starts_a + [True]
                                        + e.pair.starts_b + [True], rng).positions)
                        for e in examples)
    assert abs(counts["chosen"] - static_chosen) / counts["candidates"] < 0.003


def test_dynamic_masker_agrees_with_keras_hub(original_id_batches, tokenizer, special_ids):
    import keras_hub
    ids, _ = original_id_batches
    ids = ids[:2000]
    batch = tf.constant(ids)
    ours = ptd.DynamicMasker(tokenizer.vocab, 128)(batch, tf.cast(batch > 0, tf.int32),
                                                   tf.constant([1, 2]))
    generator = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=tokenizer.vocab_size, mask_selection_rate=0.15,
        mask_selection_length=128, mask_token_id=tokenizer.mask_id,
        unselectable_token_ids=sorted(special_ids), mask_token_rate=0.8,
        random_token_rate=0.1)
    theirs = generator(batch)
    candidates = sum(1 for row in ids.tolist() for t in row if t not in special_ids)
    our_share = ours["masked_lm_weights"].numpy().sum() / candidates
    their_share = theirs["mask_weights"].numpy().sum() / candidates
    # Both choose 15% of the same candidates overall. (tensorflow-text rounds counts up
    # where google rounds to nearest; its per-row counts do not follow each row's length.)
    assert abs(our_share - 0.15) < 0.005 and abs(their_share - 0.15) < 0.005

    def rates(masked_ids, positions, weights):
        masked_ids, positions, weights = (np.asarray(x) for x in (masked_ids, positions, weights))
        at = np.take_along_axis(masked_ids, positions, axis=1)[weights > 0]
        orig = np.take_along_axis(ids, positions, axis=1)[weights > 0]
        return np.mean(at == tokenizer.mask_id), np.mean(at == orig)

    our_rates = rates(ours["input_ids"], ours["masked_lm_positions"], ours["masked_lm_weights"])
    their_rates = rates(theirs["token_ids"], theirs["mask_positions"], theirs["mask_weights"])
    assert np.allclose(our_rates, their_rates, atol=0.015), (our_rates, their_rates)


# --------------------------------------------------------------------------- raw text
def test_raw_text_dataset_yields_the_same_features(small_corpus, tokenizer, special_ids):
    def batches(seed, **kwargs):
        return list(ptd.raw_text_dataset(small_corpus, tokenizer, 8, 64, 10,
                                                     seed=seed, **kwargs).take(30))

    first = batches(1)
    b = first[0]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in b.items()} == {
        "input_ids": (tf.int32, [8, 64]), "input_mask": (tf.int32, [8, 64]),
        "segment_ids": (tf.int32, [8, 64]), "masked_lm_positions": (tf.int32, [8, 10]),
        "masked_lm_ids": (tf.int32, [8, 10]), "masked_lm_weights": (tf.float32, [8, 10]),
        "next_sentence_labels": (tf.int32, [8])}
    labels = np.concatenate([x["next_sentence_labels"].numpy() for x in first])
    assert set(labels) == {0, 1}
    for x in first:
        restored, positions = originals_from_batch(x)
        assert (restored[:, 0] == tokenizer.cls_id).all()
        for row, chosen in zip(restored, positions):
            assert chosen and all(row[p] not in special_ids for p in chosen)
        n = x["input_mask"].numpy().sum(axis=1)
        assert (restored[np.arange(8), n - 1] == tokenizer.sep_id).all()
    again = batches(1)
    assert all(np.array_equal(a["input_ids"], c["input_ids"]) for a, c in zip(first, again))
    one_pass = list(ptd.raw_text_dataset(small_corpus, tokenizer, 8, 64, 10,
                                                    seed=1, is_training=False))
    assert 0 < len(one_pass) < 1000
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                         num_replicas_in_sync=2)
    sharded = next(iter(ptd.raw_text_dataset(small_corpus, tokenizer, 8, 64, 10,
                                                         seed=1, input_context=context)))
    assert sharded["input_ids"].shape == (4, 64)


# --------------------------------------------------------------------------- never spin on nothing
def test_raw_text_without_a_pair_is_an_error_not_a_hang(tmp_path, tokenizer):
    corpus = tmp_path / "paragraphs.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i} starts here. It goes on for a while. "
                                  f"Then it ends." for i in range(6)) + "\n")
    # Old code: the generator looked for a pair forever (100% CPU, no step).
    with pytest.raises(ptd.PretrainingDataError,
                       match=r"gives no sentence pair .*6 documents with 6 sentences"):
        ptd.raw_text_dataset(str(corpus), tokenizer, 4, 32, 4, seed=1,
                             sentence_splitting="never")
    batch = next(iter(ptd.raw_text_dataset(str(corpus), tokenizer, 4, 32, 4, seed=1)))
    assert batch["input_ids"].shape == (4, 32)


def test_record_files_without_records_are_an_error_not_a_hang(tmp_path):
    for i in range(2):
        with tf.io.TFRecordWriter(str(tmp_path / f"empty{i}.tfrecord")):
            pass
    # Old code: files.shuffle().repeat() + interleave spun forever in training mode.
    with pytest.raises(ptd.PretrainingDataError, match="hold no example: .*empty0.tfrecord"):
        ptd.pretraining_dataset(str(tmp_path / "*.tfrecord"), 4, 32, 4, is_training=True)


@pytest.mark.parametrize("seed", [None, 3])
def test_pipelines_share_nothing_in_training_mode_whatever_the_seed(static_dir, seed):
    """One file, three pipelines. Old code with seed=None: records sharded after a
    per-pipeline shuffle, so pipelines overlapped and some records were never read."""
    source = shard_paths(static_dir)[0]
    everything = set(rows(ptd.pretraining_dataset(source, 3, 64, 10, is_training=False)))
    seen = []
    for pipeline_id in range(3):
        context = tf.distribute.InputContext(num_input_pipelines=3,
                                             input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=3)
        ds = ptd.pretraining_dataset(source, 3, 64, 10, is_training=True, seed=seed,
                                     input_context=context, shuffle_buffer_size=8)
        seen.append(set(rows(ds.take(3 * len(everything) // 3))))   # ~3 epochs of a share
    assert all(seen)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not seen[a] & seen[b], (a, b)
    assert set().union(*seen) == everything


def test_held_out_documents_never_reach_training(tmp_path, tokenizer):
    """`hold_out_every=k`: documents 0, k, 2k, ... feed only the held-out dataset (general
    distillation scores there; issue 16 found it scored on its training corpus)."""
    words = [w for w in ("river", "money", "apple", "table", "music", "water", "green",
                         "house", "night", "paper", "train", "cloud")
             if w in tokenizer.vocab]
    assert len(words) == 12
    corpus = tmp_path / "words.txt"
    corpus.write_text("\n\n".join(
        "\n".join(f"the {w} is here and the {w} stays ." for _ in range(4)) for w in words)
        + "\n")
    ids = {w: tokenizer.token_to_id(w) for w in words}

    def seen(held_out):
        batches = ptd.raw_text_dataset(str(corpus), tokenizer, 2, 24, 3, seed=1,
                                       is_training=False, hold_out_every=5, held_out=held_out)
        found = set()
        for batch in batches:
            restored, _ = originals_from_batch(batch)
            found |= {w for w, i in ids.items() if (restored == i).any()}
        return found

    assert seen(True) == {words[0], words[5], words[10]}
    assert seen(False) == set(words) - {words[0], words[5], words[10]}
