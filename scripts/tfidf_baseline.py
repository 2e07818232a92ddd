"""TF-IDF + logistic regression baseline for a classification task (scikit-learn).

The regularisation strength C is picked on the validation split, then the test split is
scored once; prints test accuracy and macro-F1 as JSON (the numbers eval.json reports).

Usage:
    python scripts/tfidf_baseline.py --data_dir data/tasks/fortunes
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kbert.data.task_files import read_task_file  # noqa: E402
from kbert.tasks import metrics  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="data/tasks/fortunes")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--label_column", default="label")
    args = parser.parse_args(argv)
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def split(name):
        rows = read_task_file(os.path.join(args.data_dir, f"{name}.jsonl"),
                              required=(args.text_column, args.label_column))
        return rows.column(args.text_column), [str(v) for v in rows.column(args.label_column)]

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = map(
        split, ("train", "validation", "test"))
    best = None
    for ngrams in ((1, 1), (1, 2)):
        vectorizer = TfidfVectorizer(ngram_range=ngrams, sublinear_tf=True)
        features = vectorizer.fit_transform(train_x)
        for c in (1.0, 3.0, 10.0, 30.0):
            model = LogisticRegression(C=c, max_iter=3000).fit(features, train_y)
            score = metrics.accuracy(val_y, model.predict(vectorizer.transform(val_x)))
            if best is None or score > best[0]:
                best = (score, ngrams, c, vectorizer, model)
    score, ngrams, c, vectorizer, model = best
    predicted = model.predict(vectorizer.transform(test_x))
    classes = sorted(set(train_y))
    print(json.dumps({"model": f"tfidf{list(ngrams)}+logreg(C={c})",
                      "validation_accuracy": score,
                      "test_accuracy": metrics.accuracy(test_y, predicted),
                      "test_macro_f1": metrics.macro_f1(test_y, predicted, classes),
                      "test_examples": len(test_y)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
