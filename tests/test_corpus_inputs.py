"""`trainers.pretrain --raw_text` and `trainers.learn_vocab` take what `trainers.prepare_corpus`
takes (issue 19, item 4): MediaWiki dumps and JSON lines, cleaned and split by the same code
(`kbert.corpus.CorpusDocuments`), streamed in bounded pools; a bad input is one line naming
the file, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from kbert import corpus, tokenizers
from kbert.data import PretrainingDataError, raw_text_dataset
from kbert.data.corpus import DocumentStream
from kbert.data.text_pools import TextPools
from tests import corpus_fixtures as fx
from tests.harness import REPO, command_env, metrics_history, micro_config

JSONL_TEXTS = [f"Record {i} talks about cats. The cats sleep all day. Dogs bark at night."
               for i in range(6)]
MARKUP = ("{", "}", "[", "]", "<", ">", "|", "=", "ref", "infobox", "category", "cite",
          "wikitable", "thumb", "defaultsort", "notoc", "text", "xml", "mediawiki")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus_inputs")
    pages = [fx.Page(f"Alan Turing {i}", fx.TURING) for i in range(4)] + fx.standard_pages()
    big = fx.write_dump(str(root / "big.bz2"), pages * 20, "bz2")
    truncated = root / "truncated.xml.bz2"
    data = open(big, "rb").read()
    truncated.write_bytes(data[:len(data) * 2 // 3])
    long_gzip = fx.write_dump(str(root / "long.xml.gz"), pages[:4] * 400, "gzip")
    data = open(long_gzip, "rb").read()   # cut after ~70 pages: the head still decodes
    cut = next(n for n in range(1000, len(data), 500)
               if len(zlib.decompressobj(31).decompress(data[:n])) > 200_000)
    (root / "cut.xml.gz").write_bytes(data[:cut])
    return {
        "root": root,
        "cut": str(root / "cut.xml.gz"),
        # named as Wikimedia names dump parts: recognised by content, not the name
        "dump": fx.write_dump(str(root / "enwiki-p1p30302"), pages, "bz2"),
        "xml": fx.write_dump(str(root / "plain.xml"), pages),
        "jsonl": fx.write_jsonl(str(root / "docs.gz"),
                                [{"id": i, "text": t} for i, t in enumerate(JSONL_TEXTS)],
                                "gzip"),
        "big": big,
        "truncated": str(truncated),
        "no_field": fx.write_jsonl(str(root / "nofield.jsonl"),
                                   [{"text": "Fine."}, {"body": "x"}]),
    }


def _shard_documents(directory: str) -> list[list[str]]:
    return [document for name in sorted(os.listdir(directory)) if name.endswith(".txt")
            for document in _shard_documents_of(os.path.join(directory, name))]


def _shard_documents_of(path: str) -> list[list[str]]:
    documents, current = [], []
    for line in open(path, encoding="utf-8"):
        if line.strip():
            current.append(line.strip())
        elif current:
            documents.append(current)
            current = []
    return documents + ([current] if current else [])


def _words(batches, tokenizer) -> set[str]:
    words = set()
    for batch in batches:
        ids = batch["input_ids"].numpy()
        positions = batch["masked_lm_positions"].numpy()
        originals = batch["masked_lm_ids"].numpy()
        weights = batch["masked_lm_weights"].numpy()
        for row in range(ids.shape[0]):
            for p, original, w in zip(positions[row], originals[row], weights[row]):
                if w:
                    ids[row, p] = original
            words.update(tokenizer.vocab[i] for i in ids[row] if i)
    return words


# ----------------------------------------------------------------------------- the library
def test_corpus_documents_are_the_documents_prepare_corpus_writes(inputs, tmp_path):
    files = [inputs["dump"], inputs["jsonl"]]
    corpus.prepare_corpus(files, str(tmp_path / "prepared"))
    documents = corpus.CorpusDocuments(files)
    assert list(documents) == _shard_documents(str(tmp_path / "prepared"))
    assert dict(documents.skipped) == {"empty": 1, "namespace": 2, "redirect": 1}
    assert list(documents)[0] == fx.TURING_SENTENCES      # every pass reads the files again
    assert [d for d in documents if "cats" in d[0]][0] == [
        "Record 0 talks about cats.", "The cats sleep all day.", "Dogs bark at night."]


@pytest.mark.parametrize("name,message", [
    ("truncated", "truncated.xml.bz2: damaged or truncated bz2"),
    ("no_field", "nofield.jsonl:2: no field 'text'")])
def test_corpus_documents_errors_name_the_file(inputs, name, message):
    with pytest.raises(corpus.CorpusError, match=message):
        list(corpus.CorpusDocuments([inputs[name]]))


def test_plain_text_is_left_to_the_callers_reader(inputs, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_bytes(b"One line.\nCaf\xe9 has a bad byte.\n")   # kbert.text replaces it
    documents = corpus.CorpusDocuments([str(text), inputs["dump"]], keep_plain_text=True)
    assert documents.plain_text(str(text)) and not documents.plain_text(inputs["dump"])
    lines = list(documents.lines())
    assert lines[:2] == ["One line.", "Caf\ufffd has a bad byte."]
    assert lines[2:2 + len(fx.TURING_SENTENCES)] == fx.TURING_SENTENCES
    with pytest.raises(corpus.CorpusError, match="notes.txt:2: not valid utf-8"):
        corpus.CorpusDocuments([str(text)])


def test_as_text_files_writes_the_cleaned_text_of_what_is_not_plain(inputs, tmp_path):
    # What pretrain --learn_vocab_size hands the family's learner (it reads text files).
    text = tmp_path / "book.txt"
    text.write_text("Call me Ishmael.\n")
    files = corpus.as_text_files([str(text), inputs["dump"]], str(tmp_path))
    assert files[0] == str(text) and files[1].endswith(".txt")
    written = _shard_documents_of(files[1])
    assert written == list(corpus.CorpusDocuments([inputs["dump"]]))
    assert written[0] == fx.TURING_SENTENCES


# ----------------------------------------------------------------------------- raw_text_dataset
@pytest.mark.parametrize("name,expected", [
    ("dump", {"turing", "mathematician", "english", "park"}),
    ("jsonl", {"cats", "dogs", "bark"})])
def test_raw_text_dataset_reads_dumps_and_json_lines(inputs, tokenizer, name, expected):
    batches = list(raw_text_dataset(inputs[name], tokenizer, 4, 64, 8, seed=1,
                                    is_training=False))
    assert batches
    words = _words(batches, tokenizer)
    assert expected <= words
    assert not words & set(MARKUP), words & set(MARKUP)


def test_raw_text_dataset_turns_a_bad_input_into_its_error(inputs, tokenizer):
    with pytest.raises(PretrainingDataError, match="truncated.xml.bz2: damaged or truncated"):
        raw_text_dataset(inputs["truncated"], tokenizer, 4, 64, 8, seed=1)
    with pytest.raises(PretrainingDataError, match="nofield.jsonl:2: no field 'text'"):
        raw_text_dataset(inputs["no_field"], tokenizer, 4, 64, 8, seed=1)


def test_not_next_segments_come_from_the_same_pool(tmp_path, tokenizer):
    # Documents 0-2 speak of cats, 3-6 of ships: pools of 3 (the last, of one document,
    # joins the one before) never pair across them; one pool of the corpus does.
    topics = ["the cat sat on a mat .", "the ship sailed over the sea ."]
    text = "\n\n".join("\n".join([topics[i >= 3]] * 4) for i in range(7)) + "\n"
    (tmp_path / "two_topics.txt").write_text(text)
    cat, ship = tokenizer.vocab.index("cat"), tokenizer.vocab.index("ship")

    def mixed_pairs(pool_documents):
        stream = DocumentStream([str(tmp_path / "two_topics.txt")])
        pools = TextPools(stream, tokenizer, pool_documents)
        pools.check("nsp", "two_topics.txt")
        assert [len(pool) for pool in pools] == ([3, 4] if pool_documents == 3 else [7])
        ds = raw_text_dataset(str(tmp_path / "two_topics.txt"), tokenizer, 4, 32, 4, seed=2,
                              pool_documents=pool_documents).take(40)
        mixed = 0
        for batch in ds:
            ids = batch["input_ids"].numpy()
            mixed += int(sum((row == cat).any() and (row == ship).any() for row in ids))
        return mixed

    assert mixed_pairs(3) == 0
    assert mixed_pairs(10_000) > 0


# ----------------------------------------------------------------------------- the commands
def _run(*command):
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=command_env(),
                          capture_output=True, text=True, timeout=300)


def test_pretrain_raw_text_trains_on_a_dump_and_json_lines(inputs, vocab_file, tmp_path):
    output = tmp_path / "run"
    result = _run("trainers.pretrain", "--raw_text",
                  f"--input_file={inputs['dump']},{inputs['jsonl']}",
                  f"--vocab_file={vocab_file}",
                  f"--bert_config_file={micro_config(tmp_path / 'micro.json')}",
                  f"--output_dir={output}", "--max_seq_length=64",
                  "--max_predictions_per_seq=8", "--train_batch_size=4", "--num_train_steps=3",
                  "--num_warmup_steps=1", "--log_every_steps=1", "--save_checkpoints_steps=3",
                  "--eval_steps=0", "--text_field=text", "--language=en")
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [r["loss"] for r in metrics_history(str(output)) if r["split"] == "train"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert os.path.isfile(output / "pretrained_model" / "config.json")


def test_learn_vocab_from_a_dump_is_the_vocabulary_of_its_prepared_text(inputs, tmp_path):
    output = tmp_path / "vocab.txt"
    result = _run("trainers.learn_vocab", f"--input={inputs['big']}", f"--output={output}",
                  "--vocab_size=120", "--min_count=1")
    assert result.returncode == 0, result.stderr[-3000:]
    tokens = tokenizers.load_vocab(str(output))
    corpus.prepare_corpus(inputs["big"], str(tmp_path / "prepared"))
    assert tokens == tokenizers.learn_vocabulary(str(tmp_path / "prepared"), 120, min_count=1)
    assert {"turing", "english", "mathematician"} <= set(tokens)   # link text kept
    learned = tokens[len(tokenizers.SPECIAL_TOKENS):]
    assert not [t for t in learned if t.removeprefix("##") in MARKUP[8:]]
    assert not [t for t in learned if any(c in t.removeprefix("##") for c in "{}[]<>|=")]
    # Read as plain text (as learn_vocab did before), the XML's markup makes tokens.
    raw = tokenizers.learn_vocabulary([inputs["xml"]] * 20, 120, min_count=1)
    assert {"<", "{", "["} <= set(raw)


@pytest.mark.parametrize("command", ["trainers.pretrain", "trainers.learn_vocab"])
def test_a_truncated_dump_is_one_line_and_exit_2(inputs, vocab_file, tmp_path, command):
    output = tmp_path / "out"
    if command == "trainers.pretrain":
        arguments = ["--raw_text", f"--input_file={inputs['truncated']}",
                     f"--vocab_file={vocab_file}", "--model_size=tiny", f"--output_dir={output}",
                     "--max_seq_length=64", "--max_predictions_per_seq=8",
                     "--train_batch_size=4", "--num_train_steps=2", "--num_warmup_steps=1",
                     "--eval_steps=0"]
    else:
        arguments = [f"--input={inputs['truncated']}", f"--output={output}"]
    result = _run(command, *arguments)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    name = command.split(".")[1]
    assert len(errors) == 1 and errors[0].startswith(f"{name}: error: "), result.stderr[-3000:]
    assert "truncated.xml.bz2: damaged or truncated bz2 data" in errors[0]
    assert not output.exists()


# pretrain with pools of 4 documents: its check reads the first pool only, so the damage
# after ~70 pages is found by the training input (TensorFlow's error, reported as one line).
SMALL_POOLS = """
import sys
import kbert.data.pipelines as pipelines, kbert.data.text_pools as pools
pools.POOL_DOCUMENTS = 4
pipelines.raw_text_dataset.__kwdefaults__["pool_documents"] = 4
from absl import app
from trainers import pretrain
app.run(pretrain.main, argv=["pretrain"] + sys.argv[1:])
"""


def test_damage_found_while_training_is_one_line_and_exit_2(inputs, vocab_file, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SMALL_POOLS, "--raw_text", f"--input_file={inputs['cut']}",
         f"--vocab_file={vocab_file}",
         f"--bert_config_file={micro_config(tmp_path / 'micro.json')}",
         f"--output_dir={tmp_path / 'run'}", "--max_seq_length=64",
         "--max_predictions_per_seq=8", "--train_batch_size=4", "--num_train_steps=1000",
         "--num_warmup_steps=1", "--log_every_steps=1", "--eval_steps=0"],
        cwd=REPO, env=command_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints").is_dir()   # found in the run, not by the check
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors == ["pretrain: error: " + inputs["cut"] + ": damaged or truncated gzip data "
                      "(Compressed file ended before the end-of-stream marker was reached)"]
