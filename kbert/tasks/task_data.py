"""From task-file rows to a task model's inputs, labels, metrics and predictions.

One adapter per task kind: it names the columns it reads, checks labels (every error names
file, line and column), builds the task model, and scores it. `trainers.finetune` drives
these; library users can too.

Example:
    >>> adapter = adapter_for("classification", Columns())
    >>> adapter.required
    ('text', 'label')
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kbert.data.task_files import TaskFileError, TaskRows, where
from kbert.tasks import metrics as task_metrics

TASKS = ("classification", "pair_classification", "regression", "token_classification",
         "question_answering", "multiple_choice")


@dataclasses.dataclass(frozen=True)
class Columns:
    text: str = "text"
    text_pair: str = "text_pair"
    label: str = "label"


def checked_label_set(labels, learned, path) -> list[str]:
    """`labels` as a list of distinct, non-empty names that holds every `learned` name.

    Example:
        >>> checked_label_set(["neg", "neutral", "pos"], {"neg", "pos"}, "train.tsv")
        ['neg', 'neutral', 'pos']
    """
    labels = [str(label) for label in labels]
    if len(labels) < 2 or len(set(labels)) != len(labels) or "" in labels:
        raise TaskFileError(f"the label set {labels!r} needs two or more distinct, non-empty "
                            "names")
    missing = sorted(set(learned) - set(labels))
    if missing:
        raise TaskFileError(f"{path}: label {missing[0]!r} is not in the given label set "
                            f"{labels!r}")
    return labels


def unknown_label_hint(rows, label_names) -> str:
    """The end of the message for a label outside `label_names`."""
    return (f"is not among the {len(label_names)} labels {list(label_names)[:10]!r}; a class "
            "that the training rows lack can be added by naming the full label set "
            "(trainers.finetune --labels=a,b,c or --labels=FILE, one a line)")


class ColumnAdapter:
    """Base of the adapters that read fixed columns: `required_fields` and
    `nonempty_fields` name `Columns` fields; `fit_labels` only checks the rows."""

    required_fields = ("text", "label")
    nonempty_fields = ("text",)

    def __init__(self, columns: Columns):
        self.columns = columns
        self.label_names = None

    @property
    def required(self) -> tuple:
        return tuple(getattr(self.columns, field) for field in self.required_fields)

    @property
    def skip_empty(self) -> tuple:
        return tuple(getattr(self.columns, field) for field in self.nonempty_fields)

    def fit_labels(self, train: TaskRows, labels=None) -> None:
        if labels is not None:
            raise ValueError(f"{type(self).__name__} takes no label set")
        self.check(train)


class ClassificationAdapter:
    """Single-text or pair classification (`pair=True`), or regression."""

    def __init__(self, columns: Columns, pair: bool = False, regression: bool = False):
        self.columns = columns
        self.pair = pair
        self.regression = regression
        self.label_names = None

    @property
    def required(self) -> tuple:
        c = self.columns
        return (c.text, c.text_pair, c.label) if self.pair else (c.text, c.label)

    @property
    def skip_empty(self) -> tuple:
        return (self.columns.text,)

    @property
    def label_columns(self) -> tuple:
        """Columns holding one label a row (read as the text written)."""
        return (self.columns.label,)

    @property
    def monitor(self) -> str:
        return "pearson" if self.regression else "accuracy"

    def fit_labels(self, train: TaskRows, labels=None) -> None:
        """Learn label names from training rows (sorted, so ids do not depend on order), or
        take `labels` (the full set, ids in its order: for a rare class that a training
        sample lacks); a training label outside `labels` is refused."""
        if self.regression:
            if labels is not None:
                raise ValueError("regression takes no label set")
            self.check(train)
            return
        names = {str(v) for v in train.column(self.columns.label)}
        if labels is not None:
            self.label_names = checked_label_set(labels, names, train.path)
            self.check(train)
            return
        if len(names) < 2:
            raise TaskFileError(
                f"{train.path}: column {self.columns.label!r}: every training row has the "
                f"label {next(iter(names))!r}; classification needs at least two labels "
                f"(for numbers, --task=regression; for a fixed label set, --labels)")
        self.label_names = sorted(names)

    def check(self, rows: TaskRows) -> None:
        for row, line in zip(rows.rows, rows.lines):
            value = row[self.columns.label]
            if self.regression:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise TaskFileError(f"{where(rows.path, line, self.columns.label)}: "
                                        f"regression label {value!r} is not a number") from None
                if not np.isfinite(number):
                    raise TaskFileError(f"{where(rows.path, line, self.columns.label)}: "
                                        f"regression label {value!r} is not finite")
            elif str(value) not in self.label_names:
                raise TaskFileError(f"{where(rows.path, line, self.columns.label)}: label "
                                    f"{value!r} {unknown_label_hint(rows, self.label_names)}")

    def build_model(self, encoder, preprocessor, **settings):
        from kbert.tasks.text_classifier import TextClassifier
        num_classes = 1 if self.regression else len(self.label_names)
        return TextClassifier(encoder, num_classes, preprocessor=preprocessor,
                              label_names=self.label_names, **settings)

    def inputs(self, rows: TaskRows):
        texts = [str(t) for t in rows.column(self.columns.text)]
        if self.pair:
            return texts, [str(t) for t in rows.column(self.columns.text_pair)]
        return texts

    def labels(self, rows: TaskRows):
        values = rows.column(self.columns.label)
        return [float(v) for v in values] if self.regression else [str(v) for v in values]

    def evaluate(self, model, rows: TaskRows, batch_size: int = 32):
        """(metrics, per-example prediction records) for `rows`."""
        logits, encoded = model.predict_logits(self.inputs(rows), batch_size)
        counts = {"examples": encoded.num_examples, "windows": encoded.num_windows,
                  "truncated": int(encoded.truncated), "skipped": dict(rows.skipped)}
        if self.regression:
            gold = np.asarray(self.labels(rows))
            pred = logits[:, 0]
            result = {"pearson": task_metrics.pearson(gold, pred),
                      "spearman": task_metrics.spearman(gold, pred),
                      "mse": float(np.mean((gold - pred) ** 2)), **counts}
            records = [{"line": ln, "label": float(g), "prediction": float(p)}
                       for ln, g, p in zip(rows.lines, gold, pred)]
            return result, records
        index = {n: i for i, n in enumerate(self.label_names)}
        gold = np.asarray([index[v] for v in self.labels(rows)])
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        pred = probs.argmax(axis=1)
        result = {"accuracy": task_metrics.accuracy(gold, pred),
                  "macro_f1": task_metrics.macro_f1(gold, pred, range(len(self.label_names))),
                  **counts}
        records = [{"line": ln, "label": self.label_names[g],
                    "prediction": self.label_names[p], "probability": round(float(q[p]), 6)}
                   for ln, g, p, q in zip(rows.lines, gold, pred, probs)]
        return result, records


def adapter_for(task: str, columns: Columns):
    """The adapter for a `--task` name."""
    if task == "classification":
        return ClassificationAdapter(columns)
    if task == "pair_classification":
        return ClassificationAdapter(columns, pair=True)
    if task == "regression":
        return ClassificationAdapter(columns, regression=True)
    if task == "token_classification":
        from kbert.tasks.token_classifier import TokenClassificationAdapter
        return TokenClassificationAdapter(columns)
    if task == "question_answering":
        from kbert.tasks.question_answerer import QuestionAnsweringAdapter
        return QuestionAnsweringAdapter(columns)
    if task == "multiple_choice":
        from kbert.tasks.multiple_choice import MultipleChoiceAdapter
        return MultipleChoiceAdapter(columns)
    raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
