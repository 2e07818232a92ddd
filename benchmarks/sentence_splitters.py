"""Sentence splitters on kbert's hand-checked sets (tests/data/sentences_{en,ko,zh,ja}.txt,
and *_heldout.txt written after kbert's two rules were added): kbert.corpus (sentencex
1.0.32 + two rules), sentencex alone, pySBD 0.3.4 (no Korean), kbert.text.split_sentences
(the older English-only rule). Prints boundary precision / recall / F1 and the share of
paragraphs split exactly right.

Usage:
    python benchmarks/sentence_splitters.py
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kbert import text  # noqa: E402
from kbert.corpus.sentence_eval import read_gold, score  # noqa: E402
from kbert.corpus.sentences import split_sentences  # noqa: E402


def splitters(language: str) -> dict:
    from sentencex import segment
    found = {"kbert.corpus (sentencex + rules)": lambda p: split_sentences(p, "auto"),
             "sentencex 1.0.32 alone": lambda p: list(segment(language, p))}
    try:
        import pysbd
        segmenter = pysbd.Segmenter(language=language, clean=False)
        found["pysbd 0.3.4"] = segmenter.segment
    except (ImportError, ValueError) as e:
        found["pysbd 0.3.4"] = f"unavailable: {str(e)[:40]}"
    found["kbert.text.split_sentences"] = text.split_sentences
    return found


def main() -> None:
    print(f"{'set':10} {'splitter':34} {'P':>6} {'R':>6} {'F1':>6} {'exact':>6}  n")
    for name in ("en", "ko", "zh", "ja", "ko_heldout", "ja_heldout"):
        language = name.split("_")[0]
        gold = read_gold(os.path.join(ROOT, "tests", "data", f"sentences_{name}.txt"),
                         language)
        label = name
        for name, splitter in splitters(language).items():
            if isinstance(splitter, str):
                print(f"{label:10} {name:34} {splitter}")
                continue
            s = score(splitter, gold)
            print(f"{label:10} {name:34} {s['precision']:6.3f} {s['recall']:6.3f} "
                  f"{s['f1']:6.3f} {s['exact']:6.3f}  {s['paragraphs']} paragraphs, "
                  f"{s['boundaries']} boundaries")


if __name__ == "__main__":
    main()
