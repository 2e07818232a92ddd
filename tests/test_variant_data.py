"""Pre-training data options of the variants: sentence-order pairs (ALBERT), FULL-SENTENCES
packing (RoBERTa), n-gram masking with ALBERT's 1/n distribution, masking for BPE and
SentencePiece vocabularies, and raw-text pipelines for each objective."""

import random

import numpy as np
import pytest
import tensorflow as tf

from kbert.data.pipelines import raw_text_dataset
from kbert.data.dynamic_masking import DynamicMasker
from kbert.data.masking import StaticMasker
from kbert.data.packing import pack_full_sentences
from kbert.data.pairs import Sentence, TokenizedDocument, create_pairs_from_document


def _documents(num_documents=4, sentences=6, seed=0):
    rng = random.Random(seed)
    documents, next_id = [], 100
    for d in range(num_documents):
        doc = []
        for _ in range(sentences):
            n = rng.randint(2, 6)
            doc.append(Sentence(list(range(next_id, next_id + n)), [True] * n))
            next_id += n
        documents.append(TokenizedDocument(d, doc))
    return documents


def test_sentence_order_pairs_are_consecutive_and_half_swapped():
    documents = _documents(num_documents=1, sentences=40)  # one document is enough for SOP
    rng = random.Random(3)
    pairs = []
    for _ in range(30):
        pairs += create_pairs_from_document(documents, 0, 14, 0.0, rng, sentence_order=True)
    swapped = [p.is_random_next for p in pairs]
    assert 0.35 < np.mean(swapped) < 0.65
    for pair in pairs:
        assert pair.a_document == pair.b_document == 0
        first, second = (pair.tokens_b, pair.tokens_a) if pair.is_random_next else \
            (pair.tokens_a, pair.tokens_b)
        # ids increase through the document: in order iff A's ids precede B's
        assert max(first) < min(second)
    assert create_pairs_from_document(documents, 0, 14, 0.0, rng) == []  # NSP needs 2 docs


def test_full_sentences_packing_crosses_documents_with_a_separator():
    documents = _documents()
    packed = list(pack_full_sentences(documents, 20, separator_id=2))
    flat = [i for p in packed for i in p.ids if i != 2]
    assert flat == [i for d in documents for s in d.sentences for i in s.ids]  # nothing lost
    assert all(len(p.ids) <= 20 for p in packed)
    assert all(p.ids[0] != 2 and p.ids[-1] != 2 for p in packed)
    crossing = [p for p in packed if len(p.documents) > 1]
    assert crossing, "some input must span two documents"
    for p in crossing:
        assert p.ids.count(2) == len(p.documents) - 1
    # Sentences are whole unless longer than an input.
    long_doc = [TokenizedDocument(0, [Sentence(list(range(10, 35)), [True] * 25)])]
    assert [len(p.ids) for p in pack_full_sentences(long_doc, 10, 2)] == [10, 10, 5]


def test_ngram_masking_spans_follow_one_over_n():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(200)]
    masker = DynamicMasker(vocab, max_predictions_per_seq=40, masked_lm_prob=0.15, max_ngram=3)
    ids = tf.constant(np.tile(np.r_[2, np.arange(5, 203), 3][None, :], [64, 1]), tf.int32)
    lengths = []
    for step in range(4):
        out = masker(ids, tf.ones_like(ids), seed=tf.constant([step, 7]))
        weights = out["masked_lm_weights"].numpy()
        for row, w in zip(out["masked_lm_positions"].numpy(), weights):
            positions = row[w > 0]
            runs = np.split(positions, np.where(np.diff(positions) != 1)[0] + 1)
            lengths += [len(r) for r in runs]
        assert (weights.sum(1) == 30).all()  # round(0.15 * 198) = 30 per row
    shares = np.bincount(lengths, minlength=4)[1:4] / len(lengths)
    # Adjacent spans merge into longer runs, so compare loosely with 6/11, 3/11, 2/11.
    assert shares[0] > shares[1] > 0.1 and shares[2] > 0.05
    plain = DynamicMasker(vocab, max_predictions_per_seq=40)
    out = plain(ids, tf.ones_like(ids), seed=tf.constant([0, 7]))
    single = []
    for row, w in zip(out["masked_lm_positions"].numpy(), out["masked_lm_weights"].numpy()):
        positions = row[w > 0]
        single += [len(r) for r in np.split(positions, np.where(np.diff(positions) != 1)[0] + 1)]
    assert np.mean(single) < np.mean(lengths)  # n-grams make longer masked runs
    with pytest.raises(ValueError, match="max_ngram"):
        DynamicMasker(vocab, 20, max_ngram=0)


class _ToyTokenizer:
    """A non-WordPiece vocabulary ("<mask>" at 7, word starts marked by "_")."""
    vocab = ["<s>", "<pad>", "</s>", "<unk>", "x", "_a", "b", "<mask>"] + \
        [f"_w{i}" for i in range(40)]
    special_ids = [0, 1, 2, 3, 7]
    mask_id = 7
    word_start = [not t.startswith(("b",)) for t in vocab]


def test_masker_for_a_bpe_style_tokenizer_never_masks_its_specials():
    masker = DynamicMasker.for_tokenizer(_ToyTokenizer(), 10, masked_lm_prob=0.5,
                                         do_whole_word_mask=True)
    ids = tf.constant([[0, 5, 6, 6, 8, 9, 2, 10, 11, 2, 1, 1]], tf.int32)
    mask = tf.constant([[1] * 10 + [0, 0]], tf.int32)
    for step in range(20):
        out = masker(ids, mask, seed=tf.constant([step, 1]))
        chosen = set(out["masked_lm_positions"].numpy()[0][out["masked_lm_weights"].numpy()[0] > 0])
        assert not chosen & {0, 6, 9, 10, 11}
        assert {1, 2, 3} <= chosen or not chosen & {1, 2, 3}  # "_a b b" is one word
    assert masker.mask_id == 7


def _runs(positions):
    positions = np.sort(np.asarray(positions))
    return [len(r) for r in np.split(positions, np.where(np.diff(positions) != 1)[0] + 1)]


def test_static_ngram_masking_spans_follow_one_over_n():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(200)]
    masker = StaticMasker(vocab, max_predictions_per_seq=40, max_ngram=3)
    spans = masker.ngram_spans([[p] for p in range(1, 30001)], random.Random(0))
    lengths = np.bincount([len(span) for span in spans], minlength=4)[1:]
    assert lengths.sum() == len(spans) and sum(map(len, spans)) == 30000
    np.testing.assert_allclose(lengths / len(spans), [6 / 11, 3 / 11, 2 / 11], atol=0.015)
    # A span never jumps over a special token ([SEP] at position 3 here).
    for seed in range(20):
        for span in masker.ngram_spans([[1], [2], [4], [5]], random.Random(seed)):
            assert not {2, 4} <= set(span)
    ids = [2, *range(5, 205), 3]
    plain = StaticMasker(vocab, max_predictions_per_seq=40)
    ngram_runs, plain_runs = [], []
    for seed in range(30):
        chosen = masker.choose_positions(ids, [True] * len(ids), random.Random(seed))
        assert 0 < len(chosen) <= 30 and not {0, len(ids) - 1} & set(chosen)  # 0.15 * 200
        ngram_runs += _runs(chosen)
        plain_runs += _runs(plain.choose_positions(ids, [True] * len(ids), random.Random(seed)))
    assert np.mean(ngram_runs) > np.mean(plain_runs) + 0.3
    with pytest.raises(ValueError, match="max_ngram"):
        StaticMasker(vocab, 20, max_ngram=0)


def test_static_masker_for_a_bpe_style_tokenizer_never_masks_its_specials():
    masker = StaticMasker.for_tokenizer(_ToyTokenizer(), 10, masked_lm_prob=0.5, max_ngram=2)
    ids = [0, 5, 6, 6, 8, 9, 2, 10, 11, 2]
    for seed in range(20):
        out = masker.mask(ids, [True] * len(ids), random.Random(seed))
        assert out.positions and not set(out.positions) & {0, 6, 9}
        assert all(t in (7, ids[p]) or t not in _ToyTokenizer.special_ids
                   for p, t in zip(out.positions, (out.input_ids[p] for p in out.positions)))
    assert masker.mask_id == 7 and not set(masker.replacement_ids) & {0, 1, 2, 3, 7}


@pytest.mark.parametrize("objective", ["none", "sop"])
def test_raw_text_dataset_objectives(objective, tmp_path):
    from kbert.tokenizers import BertTokenizer
    from kbert import text
    vocab = tmp_path / "vocab.txt"
    words = sorted({w for line in text.iter_lines(text.default_corpus_files()[:1])
                    for w in line.lower().split()[:1] if w.isalpha()})[:300]
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizer(str(vocab))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(" ".join(words[(d * 7 + s) % 290:][:6])
                                            for s in range(5)) for d in range(6)) + "\n")
    dataset = raw_text_dataset(str(corpus), tokenizer, batch_size=4, max_seq_length=32,
                               max_predictions_per_seq=5, seed=1, is_training=False,
                               sentence_objective=objective, max_ngram=3)
    batches = list(dataset)
    assert batches
    for batch in batches:
        if objective == "none":
            assert int(tf.reduce_max(batch["segment_ids"])) == 0
            assert int(tf.reduce_max(batch["next_sentence_labels"])) == 0
            # full inputs: most rows nearly full
            assert float(tf.reduce_mean(tf.cast(batch["input_mask"], tf.float32))) > 0.5
        else:
            assert int(tf.reduce_max(batch["segment_ids"])) == 1
    if objective == "sop":
        labels = np.concatenate([b["next_sentence_labels"].numpy() for b in batches])
        assert 0 < labels.mean() < 1


def test_records_settings_refuse_pairs_for_one_token_type():
    from kbert.data import PretrainingDataError, PretrainingDataSettings
    with pytest.raises(PretrainingDataError, match="--model=roberta has 1 token type"):
        PretrainingDataSettings(family="roberta", sentence_objective="sop")
    with pytest.raises(PretrainingDataError, match="--model='gpt': use one of bert"):
        PretrainingDataSettings(family="gpt")
    assert PretrainingDataSettings(family="roberta", sentence_objective="none",
                                   max_seq_length=10, max_predictions_per_seq=2
                                   ).max_num_tokens == 8   # <s> ... </s>
