"""Score a sentence splitter on a hand-checked file (tests/data/sentences_<lang>.txt).

A gold file holds one sentence a line and a blank line between paragraphs (`#` lines are
notes; a `#nospace` note joins that paragraph's sentences with nothing instead of one
space; Chinese and Japanese files always join with nothing). The splitter sees each
paragraph joined; a boundary is the character offset after a sentence (whitespace
ignored). Reported: boundary precision, recall, F1 and paragraphs split exactly right.

Example:
    >>> gold = read_gold("tests/data/sentences_ko.txt", "ko")             # doctest: +SKIP
    >>> score(lambda p: split_sentences(p, "ko"), gold)["f1"]            # doctest: +SKIP
    0.97
"""

from __future__ import annotations

from typing import Callable


def read_gold(path: str, language: str) -> list[tuple[str, list[str]]]:
    """(paragraph as the splitter sees it, its gold sentences) for every paragraph."""
    default_join = "" if language in ("zh", "ja") else " "
    paragraphs, sentences, join = [], [], default_join
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f] + [""]
    for line in lines:
        if line.startswith("#"):
            join = "" if line.strip() == "#nospace" else join
            continue
        if line.strip():
            sentences.append(line.strip())
        elif sentences:
            paragraphs.append((join.join(sentences), sentences))
            sentences, join = [], default_join
    return paragraphs


def _boundaries(sentences: list[str]) -> set[int]:
    offsets, total = set(), 0
    for sentence in sentences[:-1]:
        total += len("".join(sentence.split()))
        offsets.add(total)
    return offsets


def score(splitter: Callable[[str], list[str]], gold: list[tuple[str, list[str]]]) -> dict:
    """precision, recall, f1 of the boundaries; exact: share of paragraphs split right."""
    found = correct = wanted = exact = 0
    for paragraph, sentences in gold:
        predicted = _boundaries(splitter(paragraph))
        expected = _boundaries(sentences)
        found += len(predicted)
        wanted += len(expected)
        correct += len(predicted & expected)
        exact += predicted == expected
    precision = correct / found if found else 1.0
    recall = correct / wanted if wanted else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "exact": exact / len(gold), "paragraphs": len(gold), "boundaries": wanted}
