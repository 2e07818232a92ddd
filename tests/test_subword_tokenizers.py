"""Byte-level BPE (RoBERTa) and SentencePiece (ALBERT): learned from the embedded corpus,
tokenized in-graph (inside tf.data), ids equal to Hugging Face's fast tokenizers on every
line of the corpus and on hand-made edge cases; bad files refused naming them."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import kbert
from kbert import text
from kbert.tokenizers.bpe import ByteLevelBPETokenizer, learn_bpe, load_merges
from kbert.tokenizers.sentencepiece import SentencePieceTokenizer, learn_sentencepiece

transformers = pytest.importorskip("transformers")

EDGE_CASES = [
    "", " ", "   ", "hello  world", "hello\n\nworld", " leading", "trailing ", "a  \n  b",
    "\r\n", "tabs\tand\u00a0no-break", "ideographic\u3000space", "x\u2028y\u0085z",
    "emoji 😀🎉👩‍👩‍👧 x", "😀", "naïve café résumé ÀÉÎÕÜ Ça", "İstanbul ß ǅ Ⅻ ﬁ ｆｕｌｌ",
    "don't it's we'll I'M 'quoted' ``tex''", "12345 3.14 3,000 -999999999", "x\u200bz",
    "----====....", "日本語のテキスト", "Straße ΑΒΓ кириллица",
]


@pytest.fixture(scope="module")
def corpus_lines():
    lines = []
    for path in text.default_corpus_files():
        with open(path, encoding="utf-8") as f:
            lines += f.read().split("\n")
    assert len(lines) > 70000
    return lines


def _batched_ids(tokenizer, lines):
    """Token ids of every line, tokenized inside a tf.data pipeline."""
    dataset = tf.data.Dataset.from_tensor_slices(lines).batch(2048).map(tokenizer.tokenize)
    ids = []
    for batch in dataset:
        ids += batch.to_list()
    return ids


def _assert_same_ids(ours, reference, lines):
    bad = [(line, a, b) for line, a, b in zip(lines, ours, reference) if a != b]
    assert not bad, f"{len(bad)} lines differ, first: {bad[0][0]!r}: {bad[0][1]} vs {bad[0][2]}"


# ---------------------------------------------------------------------- byte-level BPE
@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("bpe"))
    vocab, merges = learn_bpe([text.default_corpus_dir()], 2000, directory)
    return ByteLevelBPETokenizer(vocab, merges), vocab, merges


def test_bpe_ids_equal_roberta_tokenizer_fast(bpe, corpus_lines):
    tokenizer, vocab, merges = bpe
    reference = transformers.RobertaTokenizerFast(vocab, merges)
    assert tokenizer.vocab_size == len(reference) == 2000
    assert (tokenizer.cls_id, tokenizer.pad_id, tokenizer.sep_id, tokenizer.unk_id,
            tokenizer.mask_id) == (reference.cls_token_id, reference.pad_token_id,
                                   reference.sep_token_id, reference.unk_token_id,
                                   reference.mask_token_id)
    lines = corpus_lines + EDGE_CASES
    expected = [reference(line, add_special_tokens=False)["input_ids"] for line in lines]
    _assert_same_ids(_batched_ids(tokenizer, lines), expected, lines)


def test_bpe_words_and_round_trip(bpe):
    tokenizer = bpe[0]
    words = tokenizer.tokenize_words(EDGE_CASES)
    flat = tokenizer.tokenize(EDGE_CASES)
    assert words.merge_dims(1, 2).to_list() == flat.to_list()
    assert len(tokenizer.tokenize_words(["Hello, world"]).to_list()[0]) == 3  # "Hello" "," " world"
    decoded = [t.decode("utf-8") for t in tokenizer.detokenize(flat).numpy()]
    assert decoded == EDGE_CASES  # byte-level BPE is lossless
    starts = tokenizer.word_start
    assert starts[tokenizer.token_to_id("\u0120the")] and not starts[tokenizer.token_to_id("s")]


def test_bpe_bad_files_are_refused_naming_them(tmp_path, bpe):
    _, vocab, merges = bpe
    broken = tmp_path / "merges.txt"
    broken.write_text("#version: 0.2\na b\nonlyone\n")
    with pytest.raises(ValueError, match=r"merges.txt, line 3"):
        load_merges(str(broken))
    no_specials = tmp_path / "vocab.json"
    no_specials.write_text(json.dumps({"a": 0, "b": 1}))
    with pytest.raises(ValueError, match=f"{no_specials}.*<s>"):
        ByteLevelBPETokenizer(str(no_specials), merges)
    not_json = tmp_path / "bad.json"
    not_json.write_text("{\n  \"a\": 0,\n  oops\n}")
    with pytest.raises(ValueError, match=r"bad.json is not valid JSON \(line 3"):
        ByteLevelBPETokenizer(str(not_json), merges)


# ----------------------------------------------------------------------- SentencePiece
@pytest.fixture(scope="module")
def sentencepiece(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("sp"))
    return learn_sentencepiece([text.default_corpus_dir()], 3000, directory), directory


def test_sentencepiece_ids_equal_albert_tokenizer_fast(sentencepiece, corpus_lines):
    model_file, directory = sentencepiece
    tokenizer = SentencePieceTokenizer(model_file)
    reference = transformers.AlbertTokenizerFast.from_pretrained(directory)
    assert tokenizer.vocab_size == len(reference) == 3000
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
            tokenizer.mask_id) == (0, 1, 2, 3, 4) == (
        reference.pad_token_id, reference.unk_token_id, reference.cls_token_id,
        reference.sep_token_id, reference.mask_token_id)
    lines = corpus_lines + EDGE_CASES
    expected = [reference(line, add_special_tokens=False)["input_ids"] for line in lines]
    _assert_same_ids(_batched_ids(tokenizer, lines), expected, lines)
    words = tokenizer.tokenize_words(EDGE_CASES)
    assert words.merge_dims(1, 2).to_list() == tokenizer.tokenize(EDGE_CASES).to_list()
    assert len(tokenizer.tokenize_words(["hello wonderful world"]).to_list()[0]) == 3


def test_sentencepiece_bad_file_is_refused(tmp_path):
    bad = tmp_path / "spiece.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=str(bad)):
        SentencePieceTokenizer(str(bad))


# ------------------------------------------------------------- tokenizer fits the model
def test_model_directory_tokenizer_must_fit_vocab_size(bpe, sentencepiece, tmp_path):
    from kbert.configs import BertConfig
    from kbert.models import BertEncoder
    _, vocab, merges = bpe
    for family, files, size in (("roberta", [vocab, merges], 2000),
                                ("albert", [sentencepiece[0]], 3000)):
        config = BertConfig.named("tiny", family=family, vocab_size=size,
                                  max_position_embeddings=20)
        good = str(tmp_path / f"{family}_good")
        kbert.save_pretrained(BertEncoder(config), good, vocab_file=files)
        assert kbert.load_tokenizer(good).vocab_size == size
        bad = str(tmp_path / f"{family}_bad")
        kbert.save_pretrained(BertEncoder(config.replace(vocab_size=size + 5)), bad,
                              vocab_file=files)
        with pytest.raises(ValueError, match=f"has {size} tokens but the model's vocab_size "
                                             f"is {size + 5}"):
            kbert.load_tokenizer(bad)
    assert os.path.isfile(os.path.join(good, "spiece.model"))
