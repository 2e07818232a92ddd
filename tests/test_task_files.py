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


# --- issue 15: inputs that were read silently wrong -------------------------------------
def test_a_stray_quote_that_joins_lines_is_refused_naming_the_line(tmp_path):
    """Old code: a TSV text starting with `"` swallowed the lines after it (25 rows read as
    22, no warning)."""
    lines = ["text\tlabel"] + [f"row {i}\ta" for i in range(10)]
    lines[4] = '"quoted start of a text\tb'
    path = tmp_path / "x.tsv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskFileError, match=r"x\.tsv:5: a double quote .* joins lines 5-11 .* --quoting=none"):
        read_task_file(str(path), ["text", "label"])
    rows = read_task_file(str(path), ["text", "label"], quoting="none")
    assert len(rows) == 10 and rows.column("text")[3] == '"quoted start of a text'


def test_labels_are_the_text_written_and_null_is_an_error(tmp_path):
    """Old code: JSON labels 1.0 / true / null became classes 1.0, True, None."""
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a", "label": 1.0}\n{"text": "b", "label": true}\n'
                    '{"text": "c", "label": "x"}\n')
    rows = read_task_file(str(path), ["text", "label"], label_columns=["label"])
    assert rows.column("label") == ["1.0", "true", "x"]
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n')
    with pytest.raises(TaskFileError, match=r"x\.jsonl:2: column 'label': the label is null"):
        read_task_file(str(path), ["text", "label"], label_columns=["label"])
    path.write_text('{"text": "a", "label": ["x", "y"]}\n')
    with pytest.raises(TaskFileError, match=r"x\.jsonl:1: column 'label': the label is a list"):
        read_task_file(str(path), ["text", "label"], label_columns=["label"])


def test_null_and_empty_texts_are_skipped_and_counted(tmp_path):
    """Old code: export.evaluate scored a null text as the string "None"."""
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": null, "label": "a"}\n{"text": "", "label": "a"}\n'
                    '{"text": "kept", "label": "b"}\n')
    rows = read_task_file(str(path), ["text", "label"], skip_empty=["text"])
    assert rows.column("text") == ["kept"] and rows.skipped == {"empty_text": 2}


def test_a_field_longer_than_the_csv_default_limit_is_read(tmp_path):
    """Old code: a CSV field over 131,072 characters was a `_csv.Error` traceback."""
    long_text = "word " * 40_000                     # 200,000 characters
    path = tmp_path / "x.csv"
    path.write_text(f"text,label\n{long_text},a\nshort,b\n")
    rows = read_task_file(str(path), ["text", "label"])
    assert rows.column("text") == [long_text, "short"]


def test_a_one_class_training_file_is_one_error(tmp_path):
    """Old code: `ValueError: could not convert string to float` from deep in Keras."""
    from kbert.tasks.task_data import Columns, adapter_for
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "a", "label": "only"}\n{"text": "b", "label": "only"}\n')
    adapter = adapter_for("classification", Columns())
    rows = read_task_file(str(path), ["text", "label"], skip_empty=adapter.skip_empty,
                          label_columns=adapter.label_columns)
    with pytest.raises(TaskFileError, match=r"train\.jsonl: column 'label': every training "
                                            r"row has the label 'only'"):
        adapter.fit_labels(rows)
