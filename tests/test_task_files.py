"""Task-file readers (CSV/TSV/JSONL) and evaluation metrics against reference libraries."""

import json

import numpy as np
import pytest

from kbert.data.task_files import TaskFileError, read_task_file
from kbert.tasks import metrics


def test_formats_agree_and_keep_line_numbers(tmp_path):
    rows = [{"text": "one, with comma", "label": "a"}, {"text": "two\nlines", "label": "b"},
            {"text": "  ", "label": "a"}, {"text": "four", "label": "b"}]
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "x.csv").write_text('text,label\n"one, with comma",a\n"two\nlines",b\n'
                                    '"  ",a\nfour,b\n')
    (tmp_path / "x.tsv").write_text('text\tlabel\none, with comma\ta\n"two\nlines"\tb\n'
                                    '  \ta\nfour\tb\n')
    read = {ext: read_task_file(str(tmp_path / f"x.{ext}"), ["text", "label"],
                                skip_empty=["text"]) for ext in ("jsonl", "csv", "tsv")}
    for result in read.values():
        assert result.column("text") == ["one, with comma", "two\nlines", "four"]
        assert result.skipped == {"empty_text": 1}          # counted, not silently dropped
    assert read["jsonl"].lines == [1, 2, 4]
    assert read["csv"].lines == [2, 3, 6]                   # a quoted newline spans lines


@pytest.mark.parametrize("content, message", [
    ('{"text": "a"}\n[1]\n', "x.jsonl:2: expected a JSON object"),
    ('{"text": "a"}\n{"text": \n', "x.jsonl:2:10: invalid JSON"),
])
def test_jsonl_errors_name_line_and_column(tmp_path, content, message):
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(TaskFileError, match=message):
        read_task_file(str(path), ["text"])


def test_metrics_match_reference_libraries():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    gold, pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    assert metrics.macro_f1(gold, pred) == pytest.approx(
        sklearn_metrics.f1_score(gold, pred, average="macro"))
    x, y = rng.normal(size=50), rng.integers(0, 6, 50)       # ties in y
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    gold_tags = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"]]
    pred_tags = [["B-PER", "I-PER", "O", "O"], ["O", "B-ORG", "I-LOC"]]
    scores = metrics.entity_scores(gold_tags, pred_tags)     # 1 of 3 gold found, 1 of 3 pred
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    squad = metrics.squad_scores([["The Cat"], ["a dog", "dog house"]], ["cat", "dog"])
    assert squad["exact_match"] == pytest.approx(100.0) and squad["f1"] == pytest.approx(100.0)
