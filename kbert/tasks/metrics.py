"""Evaluation metrics for `eval.json` (plain NumPy, checked against scikit-learn / SciPy /
seqeval conventions in tests).

Example:
    >>> round(macro_f1([0, 1, 1, 2], [0, 1, 2, 2]), 4)
    0.7778
    >>> entity_scores([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])["f1"]
    1.0
"""

from __future__ import annotations

import collections
import re
import string

import numpy as np


def accuracy(labels, predictions) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions)) if len(labels) else 0.0


def macro_f1(labels, predictions, classes=None) -> float:
    """Unweighted mean of per-class F1 over `classes` (default: classes seen in either)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if classes is None:
        classes = np.union1d(labels, predictions)
    scores = []
    for c in classes:
        tp = np.sum((labels == c) & (predictions == c))
        fp = np.sum((labels != c) & (predictions == c))
        fn = np.sum((labels == c) & (predictions != c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def pearson(x, y) -> float:
    x, y = np.asarray(x, "float64"), np.asarray(y, "float64")
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _ranks(x) -> np.ndarray:
    """Average ranks (ties share their mean rank), as scipy.stats.rankdata."""
    x = np.asarray(x, "float64")
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end - 1) / 2 + 1
            start = end
    return ranks


def spearman(x, y) -> float:
    return pearson(_ranks(x), _ranks(y))


# ------------------------------------------------------------------ entity-level (BIO / IOB2)
def entity_spans(tags) -> set:
    """(type, start, end) spans from BIO tags (an I- after another type starts a new one).

    Example:
        >>> sorted(entity_spans(["B-A", "I-A", "O", "I-B"]))
        [('A', 0, 2), ('B', 3, 4)]
    """
    spans, kind, start = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = tag.partition("-") if "-" in tag else (tag, "", "")
        continues = prefix == "I" and name == kind
        if kind is not None and not continues:
            spans.add((kind, start, i))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = name, i
    return spans


def entity_scores(gold_sequences, predicted_sequences) -> dict:
    """Micro precision / recall / F1 over exact entity spans (as seqeval's default)."""
    tp = n_gold = n_pred = 0
    for gold, pred in zip(gold_sequences, predicted_sequences):
        g, p = entity_spans(gold), entity_spans(pred)
        tp += len(g & p)
        n_gold += len(g)
        n_pred += len(p)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# ------------------------------------------------------------------ SQuAD exact match / F1
def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_scores(gold_answers, predictions) -> dict:
    """Mean exact match and token F1 (x100, as the SQuAD script) over examples; each gold
    entry is a list of acceptable answers."""
    em = f1 = 0.0
    for golds, pred in zip(gold_answers, predictions):
        golds = golds if isinstance(golds, (list, tuple)) else [golds]
        em += max(float(normalize_answer(g) == normalize_answer(pred)) for g in golds)
        f1 += max(_token_f1(g, pred) for g in golds)
    n = max(len(gold_answers), 1)
    return {"exact_match": 100 * em / n, "f1": 100 * f1 / n}


def _token_f1(gold: str, pred: str) -> float:
    g, p = normalize_answer(gold).split(), normalize_answer(pred).split()
    common = collections.Counter(g) & collections.Counter(p)
    same = sum(common.values())
    if not g or not p:
        return float(g == p)
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)
