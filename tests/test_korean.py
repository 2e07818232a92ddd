"""Korean (issue 18): the shipped Korean corpus, cased WordPiece on NFC text keeping Hangul
syllables whole (the uncased default decomposes them into Jamo), the same ids through every
tokenizer path (Hugging Face's Python-side tokenizer, kbert's in-graph exact and fast
tokenizers, a `.tflite` strings signature), and `trainers.learn_vocab --nodo_lower_case`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata

import keras
import numpy as np
import pytest
import tensorflow as tf

from kbert import text, tokenizers
from kbert.tokenizers.wordpiece import keep_first_pieces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "data", "corpus_ko")
TRAIN = [os.path.join(CORPUS, name) for name in
         ("constitution.txt", "libreoffice_help_00.txt", "libreoffice_help_01.txt")]
HELD_OUT = os.path.join(CORPUS, "libreoffice_help_02.txt")
# Hangul Jamo (conjoining, what NFD gives) and Hangul Compatibility Jamo.
JAMO = re.compile(r"[\u1100-\u11FF\u3130-\u318F]")
EDGE_CASES = ["대한민국은 민주공화국이다.", "제1조 ① 대한민국은 민주공화국이다.",
              "LibreOffice Calc에서 셀 A1을 선택합니다!", "배를 타고 배를 먹었더니 배가 아프다",
              "“따옴표” 그리고 (괄호)…", "숫자 3.14와 1,000", "", "한" * 120]


@pytest.fixture(scope="module")
def held_out():
    return list(text.iter_lines(HELD_OUT))


@pytest.fixture(scope="module")
def vocabs(tmp_path_factory):
    """Cased (the Korean choice) and uncased (today's default) vocabularies of 3,000 tokens
    learned from the Korean training files."""
    directory = tmp_path_factory.mktemp("korean_vocab")
    paths = {}
    for lower_case in (False, True):
        tokens = tokenizers.learn_vocabulary(TRAIN, 3000, lower_case=lower_case)
        paths[lower_case] = str(directory / f"vocab_{lower_case}.txt")
        tokenizers.write_vocab(tokens, paths[lower_case])
    return paths


def _jamo_share(tokenizer, lines):
    ids = tokenizer.tokenize(lines).flat_values.numpy()
    return np.mean([bool(JAMO.search(tokenizer.vocab[i])) for i in ids]), len(ids)


def test_corpus_is_nfc_sentences_with_licences(held_out):
    for path in TRAIN + [HELD_OUT]:
        with open(path, encoding="utf-8") as f:
            content = f.read()
        assert content == unicodedata.normalize("NFC", content), path
        assert not JAMO.search(content), path
    assert len(held_out) > 1000
    # kiwipiepy splits at Korean sentence endings: a line holds one sentence.
    ends = re.compile(r"(니다|이다)\. [\uAC00-\uD7A3]")
    assert not [line for line in held_out if ends.search(line)]
    readme = open(os.path.join(CORPUS, "README.md"), encoding="utf-8").read()
    for needed in ("konlpy==0.6.0", "Copyright Act", "MPL-2.0", "kiwipiepy 0.24.1"):
        assert needed in readme
    assert os.path.isfile(os.path.join(CORPUS, "LICENSE.MPL-2.0"))


def test_cased_nfc_keeps_syllables_whole_uncased_decomposes_them(vocabs, held_out):
    cased = tokenizers.BertTokenizer(vocabs[False], lower_case=False)
    uncased = tokenizers.BertTokenizer(vocabs[True], lower_case=True)
    assert not [t for t in cased.vocab if JAMO.search(t)]
    cased_share, cased_pieces = _jamo_share(cased, held_out)
    uncased_share, uncased_pieces = _jamo_share(uncased, held_out)
    assert cased_share == 0.0
    assert uncased_share > 0.5          # NFD: most pieces hold Jamo
    assert cased_pieces < uncased_pieces
    # NFD input is decomposed text again: the cased path expects NFC (documented).
    nfd = unicodedata.normalize("NFD", "대한민국")
    assert JAMO.search(nfd) and not JAMO.search(unicodedata.normalize("NFC", nfd))


def test_learned_cased_vocabulary_tokenizes_every_training_word(vocabs):
    """Every character of the training text is in the vocabulary, plain and as "##":
    no training word becomes [UNK] (a cut learner list used to drop "##" syllables)."""
    cased = tokenizers.BertTokenizer(vocabs[False], lower_case=False)
    lines = list(text.iter_lines(TRAIN))
    ids = cased.tokenize(lines).flat_values.numpy()
    assert (ids == cased.unk_id).sum() == 0
    assert len(cased.vocab) == 3000


def test_keep_first_pieces_keeps_reserved_and_single_characters():
    tokens = ["[PAD]", "[UNK]", "가", "나", "가나", "나가", "가나다", "##가", "##나"]
    assert keep_first_pieces(tokens, 7, 2) == ["[PAD]", "[UNK]", "가", "나", "가나",
                                               "##가", "##나"]
    assert keep_first_pieces(tokens, 9, 2) == tokens
    assert keep_first_pieces(tokens, 3, 2) == tokens[:3]   # alphabet alone too large


def test_same_ids_through_every_tokenizer_path(vocabs, held_out):
    """Pure Python (kbert.text.basic_tokenize + Google's greedy WordPiece), Hugging Face
    BertTokenizerFast (cased), kbert's exact in-graph tokenizer (also inside tf.function)
    and the LiteRT-ready fast one give the same ids."""
    from transformers import BertTokenizerFast

    from tests.test_tokenizers import _google_wordpiece

    lines = held_out[::4] + EDGE_CASES
    exact = tokenizers.BertTokenizer(vocabs[False], lower_case=False)
    fast = tokenizers.BertTokenizer(vocabs[False], lower_case=False, normalization="fast")
    hf = BertTokenizerFast(vocabs[False], do_lower_case=False)
    want = hf(lines, add_special_tokens=False)["input_ids"]
    vocab = set(exact.vocab)
    python = [[exact.token_to_id(p) for word in text.basic_tokenize(line, lower_case=False)
               for p in _google_wordpiece(word, vocab)] for line in lines]
    assert python == want
    assert exact.tokenize(lines).to_list() == want
    assert fast.tokenize(lines).to_list() == want
    graph = tf.function(exact.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    assert graph(tf.constant(lines)).to_list() == want


class _EchoIds(keras.Model):
    """Returns its token ids as float 'logits', so a signature's ids can be read back."""

    def call(self, features):
        return {"logits": tf.cast(features["token_ids"], tf.float32)}


def test_tflite_strings_signature_gives_the_same_ids(vocabs):
    from kbert.export import converter
    from kbert.export.runtime import LiteRTClassifier
    from kbert.export.signatures import ExportModule

    fast = tokenizers.BertTokenizer(vocabs[False], lower_case=False, normalization="fast")
    exact = tokenizers.BertTokenizer(vocabs[False], lower_case=False)
    echo = _EchoIds(name="echo_ids")
    echo({"token_ids": np.ones((1, 2), np.int32)})
    runner = LiteRTClassifier(model_content=converter.convert(
        ExportModule(echo, max_seq_length=32, tokenizer=fast), "fp32"))
    for line in EDGE_CASES:
        got = runner.classify_texts([line])["logits"][0].astype(int).tolist()
        want = [exact.cls_id] + exact.tokenize([line]).to_list()[0][:30] + [exact.sep_id]
        assert got == want, line


def test_learn_vocab_command_cased(tmp_path):
    output = tmp_path / "vocab.txt"
    result = subprocess.run(
        [sys.executable, "-m", "trainers.learn_vocab", f"--input={TRAIN[0]}",
         f"--output={output}", "--vocab_size=2000", "--nodo_lower_case"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    tokens = tokenizers.load_vocab(str(output))
    assert "대한민국" in tokens or "대한" in tokens
    assert not [t for t in tokens if JAMO.search(t)]
    # Every syllable of the text is there, plain and as a suffix piece.
    syllables = set(re.findall(r"[\uAC00-\uD7A3]", open(TRAIN[0], encoding="utf-8").read()))
    assert syllables <= set(tokens) and {"##" + s for s in syllables} <= set(tokens)


def test_corpus_builder_keeps_korean_prose_and_splits_at_korean_endings():
    """scripts/build_korean_corpus.py: paragraphs of a help page (hidden macOS variants
    dropped), kiwipiepy sentences (an ending like "-다" ends one without a full stop),
    chapters of the Constitution as documents."""
    import importlib.util

    from kiwipiepy import Kiwi

    path = os.path.join(ROOT, "scripts", "build_korean_corpus.py")
    spec = importlib.util.spec_from_file_location("build_korean_corpus_under_test", path)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    parser = builder.ParagraphParser()
    parser.feed('<h1>제목</h1><p class="paragraph" dir="auto">메뉴 <span class="emph">'
                '<span hidden="true">LibreOffice - 환경 설정</span><span>도구 - 옵션</span>'
                '</span>을 선택합니다.</p><p class="code">x = 1</p>')
    assert parser.paragraphs == ["메뉴 도구 - 옵션을 선택합니다."]
    kiwi = Kiwi()
    assert builder.split_sentences(kiwi, "대한민국은 민주공화국이다 주권은 국민에게 있다") == [
        "대한민국은 민주공화국이다", "주권은 국민에게 있다"]
    decomposed = unicodedata.normalize("NFD", "헌법을 개정한다. 국회가 의결한다.")
    assert builder.split_sentences(kiwi, decomposed) == ["헌법을 개정한다.", "국회가 의결한다."]
    assert builder.is_korean_prose("셀을 선택하고 확인을 누릅니다.")
    assert not builder.is_korean_prose("=SUM(A1:B2) 합계")
    documents = builder.constitution_documents(
        kiwi, "대한민국헌법\n\n전문이다.\n\n       제1장 총강\n  제1조 ① 대한민국은 민주공화국이다.\n"
              "②주권은 국민에게 있다.\n       제2장 국민\n  제10조 모든 국민은 존엄하다.\n")
    assert documents == [["전문이다."], ["제1조 ① 대한민국은 민주공화국이다.",
                                         "②주권은 국민에게 있다."],
                         ["제10조 모든 국민은 존엄하다."]]


def test_demo_flagfile_runs_and_keeps_the_model_cased(tmp_path):
    """trainers/configs/demo_ko.flags as a new user runs it, cut to 2 steps: a cased
    4,000-token vocabulary without Jamo, a model directory that says do_lower_case=false,
    a held-out masked-LM accuracy."""
    import json

    output = tmp_path / "demo_ko"
    result = subprocess.run(
        [sys.executable, "-m", "trainers.pretrain", "--flagfile=trainers/configs/demo_ko.flags",
         f"--output_dir={output}", "--num_train_steps=2", "--num_warmup_steps=1",
         "--log_every_steps=1", "--save_checkpoints_steps=2", "--eval_every_steps=2",
         "--eval_steps=1", "--nojit_compile"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"eval at step 2: .*mlm_accuracy \d", result.stderr)
    tokens = tokenizers.load_vocab(str(output / "vocab.txt"))
    assert len(tokens) == 4000 and not [t for t in tokens if JAMO.search(t)]
    with open(output / "pretrained_model" / "config.json", encoding="utf-8") as f:
        assert json.load(f)["kbert"]["do_lower_case"] is False


def test_sentencepiece_on_korean_has_no_jamo_and_matches_the_sentencepiece_library(
        tmp_path, held_out):
    """ALBERT's normalisation decomposes Hangul (NFKD), but the SentencePiece model's own
    nmt_nfkc normaliser recomposes it: no Jamo pieces, and kbert's in-graph ids equal the
    sentencepiece library's on the same normalised text. (Hugging Face's
    AlbertTokenizerFast does not recompose: Korean becomes <unk> there.)"""
    import sentencepiece as spm

    from kbert.tokenizers.sentencepiece import (SentencePieceTokenizer, albert_normalize,
                                                learn_sentencepiece)

    model = learn_sentencepiece(TRAIN[:2], 2000, str(tmp_path), lower_case=True)
    tokenizer = SentencePieceTokenizer(model)
    lines = held_out[::4] + EDGE_CASES
    ids = tokenizer.tokenize(lines).to_list()
    assert not [i for row in ids for i in row if JAMO.search(tokenizer.vocab[i])]
    assert np.mean([i == tokenizer.unk_id for row in ids for i in row]) < 0.01
    processor = spm.SentencePieceProcessor(model_file=model)
    normalized = [x.decode("utf-8") for x in albert_normalize(tf.constant(lines)).numpy()]
    assert JAMO.search(normalized[0])          # NFKD: decomposed before the model
    assert ids == [processor.encode(x) for x in normalized]
