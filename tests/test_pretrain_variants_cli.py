"""`trainers.pretrain --model=roberta|albert|distilbert` end to end on a little raw text:
the family's vocabulary is learned, the right objective trained, and the model directory
loads with its tokenizer. Bad family flags exit 2 naming the flag."""

import os
import subprocess
import sys

import numpy as np
import pytest

import kbert
from tests.harness import REPO, command_env, metrics_history
from tests.test_training_loop import event_tags

STEPS = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    with open(os.path.join(REPO, "data", "corpus", "python_docs_03.txt"), encoding="utf-8") as f:
        path.write_text("".join(f.readlines()[:1500]), encoding="utf-8")
    return str(path)


def command(corpus, output_dir, *extra):
    return [sys.executable, "-m", "trainers.pretrain", "--raw_text", f"--input_file={corpus}",
            f"--output_dir={output_dir}", "--learn_vocab_size=600", "--model_size=tiny",
            "--num_hidden_layers=2", "--max_seq_length=64", "--max_predictions_per_seq=8",
            "--train_batch_size=8", f"--num_train_steps={STEPS}", "--num_warmup_steps=1",
            "--learning_rate=1e-3", "--log_every_steps=1", "--save_checkpoints_steps=3",
            "--eval_steps=0", *extra]


def run(arguments):
    return subprocess.run(arguments, cwd=REPO, env=command_env(), capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("family, files, extra", [
    ("roberta", ["vocab.json", "merges.txt"], ["--nodo_lower_case"]),
    ("albert", ["spiece.model"], ["--embedding_size=32", "--max_ngram=3",
                                  "--do_whole_word_mask"]),
])
def test_pretrain_each_family(family, files, extra, corpus, tmp_path):
    output = tmp_path / "out"
    result = run(command(corpus, output, f"--model={family}", *extra))
    assert result.returncode == 0, result.stderr[-3000:]
    objective = {"roberta": "none", "albert": "sop"}[family]
    assert f"{family} model, sentence objective {objective}" in result.stderr
    for name in files:
        assert os.path.isfile(output / name) and os.path.isfile(output / "pretrained_model" / name)
    model = kbert.load(str(output / "pretrained_model"))
    assert model.config.family == family and model.sentence_objective == objective
    tokenizer = kbert.load_tokenizer(str(output / "pretrained_model"))
    assert tokenizer.vocab_size == model.config.vocab_size
    history = [r for r in metrics_history(output) if r["split"] == "train"]
    assert len(history) == STEPS and all(np.isfinite(r["loss"]) for r in history)
    # Sentence metrics carry the objective's name everywhere they are reported.
    tags = event_tags(output / "tensorboard" / "train")
    assert "nsp_loss" not in result.stderr and not any("nsp" in t for t in tags)
    assert not any(k.startswith("nsp_") for r in history for k in r)
    if family == "roberta":  # masked LM only: the loss is the MLM loss, no sentence metric
        assert all(r["loss"] == pytest.approx(r["mlm_loss"]) for r in history)
        assert not any(k.startswith("sop_") for r in history for k in r)
        assert "sop_loss" not in result.stderr and not any("sop" in t for t in tags)
    else:
        assert model.config.embedding_size == 32 and model.config.share_layers == "all"
        assert all(r["sop_loss"] > 0 and 0 <= r["sop_accuracy"] <= 1 for r in history)
        assert "sop_loss" in result.stderr and {"sop_loss", "sop_accuracy"} <= tags


@pytest.mark.parametrize("arguments, message", [
    (["--model=roberta", "--noraw_text", "--vocab_file=CORPUS"],
     "--model=roberta needs --raw_text"),
    (["--model=distilbert", "--sentence_objective=nsp"], "needs a pooler"),
    (["--model=gpt"], "model"),
])
def test_bad_family_flags_exit_2(arguments, message, corpus, tmp_path):
    arguments = [a.replace("CORPUS", corpus) for a in arguments]
    result = run(command(corpus, tmp_path / "out", *arguments))
    assert result.returncode in (1, 2) and message in result.stderr, result.stderr[-2000:]
    if "gpt" not in arguments[0]:
        assert result.returncode == 2
