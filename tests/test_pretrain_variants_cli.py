"""`trainers.pretrain --model=roberta|albert|distilbert` end to end on a little raw text, and
on records written for the family (`kbert.data.create_pretraining_data`: BPE +
FULL-SENTENCES with dynamic masks, SentencePiece + SOP with static n-gram masks): the
family's vocabulary is learned, the right objective trained, the model directory loads
with its tokenizer, and sentence metrics carry the objective's name. Records of another
family or objective and bad family flags exit 2 naming the flag."""

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
    (["--noraw_text", "--vocab_file=CORPUS", "--max_ngram=3"],
     "--max_ngram is a setting of the records"),
    (["--model=distilbert", "--sentence_objective=nsp"], "needs a pooler"),
    (["--model=gpt"], "model"),
])
def test_bad_family_flags_exit_2(arguments, message, corpus, tmp_path):
    arguments = [a.replace("CORPUS", corpus) for a in arguments]
    result = run(command(corpus, tmp_path / "out", *arguments))
    assert result.returncode in (1, 2) and message in result.stderr, result.stderr[-2000:]
    if "gpt" not in arguments[0]:
        assert result.returncode == 2


# --------------------------------------------------------------------------- records
RECORDS = {"roberta": dict(sentence_objective="none", dynamic_masking=True),
           "albert": dict(sentence_objective="sop", max_ngram=3, do_whole_word_mask=True)}


@pytest.fixture(scope="module")
def family_records(corpus, tmp_path_factory):
    """family -> (records directory, tokenizer files): RoBERTa's written by the
    `trainers.create_pretraining_data` command, ALBERT's by `kbert.data` directly."""
    from kbert.data import PretrainingDataSettings, create_pretraining_data
    from kbert.tokenizers.families import learn_family_tokenizer
    out = {}
    for family, options in RECORDS.items():
        root = tmp_path_factory.mktemp(f"records_{family}")
        files = learn_family_tokenizer(family, [corpus], 600, str(root / "vocab"),
                                       lower_case=family == "albert")
        out[family] = (str(root / "data"), files)
        if family == "roberta":
            result = run([sys.executable, "-m", "trainers.create_pretraining_data",
                          f"--input_file={corpus}", f"--vocab_file={files[0]}",
                          f"--output_dir={root / 'data'}", "--model=roberta",
                          "--nodo_lower_case", "--dynamic_masking", "--max_seq_length=64",
                          "--max_predictions_per_seq=8", "--dupe_factor=1",
                          "--documents_per_chunk=20"])
            assert result.returncode == 0, result.stderr[-3000:]
            continue
        settings = PretrainingDataSettings(
            max_seq_length=64, max_predictions_per_seq=8, dupe_factor=1, family=family,
            do_lower_case=family == "albert", documents_per_chunk=20, **options)
        create_pretraining_data(corpus, files[0], output_dir=str(root / "data"),
                                settings=settings)
    return out


def test_records_hold_each_family_layout(family_records):
    from kbert.data import pretraining_dataset, read_manifest
    from kbert.tokenizers.families import load_family_tokenizer
    for family, (directory, files) in family_records.items():
        manifest = read_manifest(directory)
        assert (manifest["family"], manifest["sentence_objective"]) == (
            family, RECORDS[family]["sentence_objective"])
        tokenizer = load_family_tokenizer(family, files, lower_case=family == "albert")
        batch = next(iter(pretraining_dataset(directory, 32, 64, 8, is_training=False)))
        ids, mask = batch["input_ids"].numpy(), batch["input_mask"].numpy()
        lengths = mask.sum(1)
        assert (ids[:, 0] == tokenizer.cls_id).all()
        assert (ids[np.arange(len(ids)), lengths - 1] == tokenizer.sep_id).all()
        predicted = batch["masked_lm_ids"].numpy()[batch["masked_lm_weights"].numpy() > 0]
        assert predicted.size and not np.isin(predicted, tokenizer.special_ids).any()
        labels = batch["next_sentence_labels"].numpy()
        if family == "roberta":   # FULL-SENTENCES: one segment, mostly full rows, no label
            assert batch["segment_ids"].numpy().max() == 0 and labels.max() == 0
            assert np.median(lengths) > 48
            assert manifest["dynamic_masking"]
        else:                     # SOP pairs: [CLS] A [SEP] B [SEP], about half swapped
            assert batch["segment_ids"].numpy().max() == 1 and 0 < labels.mean() < 1
            assert (np.sum(ids == tokenizer.sep_id, axis=1) == 2).all()
            assert manifest["max_ngram"] == 3 and manifest["num_not_next"] > 0


def test_pretrain_reads_each_family_records(family_records, tmp_path):
    for family, (directory, files) in family_records.items():
        output = tmp_path / family
        args = [sys.executable, "-m", "trainers.pretrain", f"--input_file={directory}",
                f"--vocab_file={files[0]}", f"--output_dir={output}", f"--model={family}",
                "--model_size=tiny", "--num_hidden_layers=1", "--max_seq_length=64",
                "--max_predictions_per_seq=8", "--train_batch_size=8", "--num_train_steps=3",
                "--num_warmup_steps=1", "--log_every_steps=1", "--save_checkpoints_steps=3",
                "--eval_steps=0", f"--{'' if family == 'albert' else 'no'}do_lower_case"]
        if family == "albert":   # records of another objective are refused, naming both
            refused = run(args + ["--sentence_objective=nsp", f"--output_dir={output}_nsp"])
            assert refused.returncode == 2, refused.stderr[-2000:]
            assert ("written for --model=albert with --sentence_objective=sop"
                    in refused.stderr and "--sentence_objective=nsp" in refused.stderr)
        result = run(args)
        assert result.returncode == 0, result.stderr[-3000:]
        history = [r for r in metrics_history(output) if r["split"] == "train"]
        assert len(history) == 3 and all(np.isfinite(r["loss"]) for r in history)
        assert ("sop_loss" in history[0]) == (family == "albert")
        assert kbert.load(str(output / "pretrained_model")).config.family == family
