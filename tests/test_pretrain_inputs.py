"""trainers.pretrain's choice of inputs: the held-out file stays held out in phase 2 and
for the learned vocabulary; a vocabulary the corpus cannot fill is refused or warned about."""

import types

import pytest

from kbert import tokenizers
from kbert.tokenizers import wordpiece
from tests import harness
from trainers.flags import FlagError

pretrain = harness.import_command_isolated("trainers.pretrain")


def flags_for(tmp_path, **overrides):
    files = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.txt"
        path.write_text(f"Text of {name}.\nMore of {name}.\n\nAnother {name}.\nAnd more.\n")
        files.append(str(path))
    values = dict(input_file=",".join(files), eval_input_file=None, eval_steps=2,
                  raw_text=True, phase2_input_file=None, phase2_max_seq_length=64,
                  vocab_file=None, learn_vocab_size=100, output_dir=str(tmp_path / "out"),
                  init_checkpoint=None, do_lower_case=True, model="bert", text_field="text",
                  language="auto")
    values.update(overrides)
    return types.SimpleNamespace(**values), files


def test_held_out_file_stays_out_of_phase_2_and_the_vocabulary(tmp_path, monkeypatch):
    fv, files = flags_for(tmp_path)
    train, held_out = pretrain._train_and_eval_inputs(fv)
    assert held_out == files[2]
    # Old code: phase 2 fell back to the whole --input_file list, held-out file included.
    assert pretrain._phase2_patterns(fv, train, held_out) == ",".join(files[:2])
    read = []

    def fake_learner(source, vocab_size, lower_case=True):
        read.extend(source)
        return list(tokenizers.SPECIAL_TOKENS) + [f"w{i}" for i in range(vocab_size - 5)]
    monkeypatch.setattr(wordpiece, "learn_vocabulary", fake_learner)
    (tmp_path / "out").mkdir()
    pretrain._tokenizer_files(fv, learn=True, train_patterns=train)
    assert read == files[:2]   # old code: all three files
    fv.phase2_input_file = files[2]
    with pytest.raises(FlagError, match="c.txt, which is held out"):
        pretrain._phase2_patterns(fv, train, held_out)


def test_a_vocabulary_the_corpus_cannot_fill_is_refused(tmp_path, caplog):
    corpus = tmp_path / "small.txt"
    corpus.write_text("the cat sat on the mat\n\nthe dog sat on the log\n" * 3)
    # Old code: a 8000-token request silently gave a vocabulary of a few dozen tokens.
    with pytest.raises(ValueError, match=r"only \d+ tokens, less than 50% of the 8000"):
        tokenizers.learn_vocabulary(str(corpus), 8000, min_count=1)
    size = len(tokenizers.learn_vocabulary(str(corpus), 8000, min_count=1, min_fraction=0.0))
    with caplog.at_level("WARNING"):
        tokenizers.learn_vocabulary(str(corpus), int(size * 1.5), min_count=1)
    assert f"gives a vocabulary of {size} tokens, fewer than the {int(size * 1.5)}" in caplog.text
