r"""MediaPipe Tasks' TextClassifier beside kbert's LiteRT run, on one app-ready `.tflite`.

    python benchmarks/mediapipe_vs_litert.py --tflite=runs/road/fortunes_student_dynamic_int8.tflite

Prints `uptime` first (figures taken with load > 1 are "loaded"), then on the test split:
accuracy through MediaPipe (raw text, and text normalised as docs/EDGE.md tells an app),
through LiteRT with kbert's tokenizer (cut at the model's length, as MediaPipe cuts; and
`export.evaluate`'s windows), top-1 agreement, how many texts get identical token ids, and
per-text latency (p50 / p90 over the split, median and spread over --rounds): MediaPipe's
`classify(text)` (its tokenizer and the model), LiteRT's model alone on kbert's ids, and
kbert's Python tokenizer alone. One thread for LiteRT; MediaPipe's CPU runtime picks its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import unicodedata

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def app_normalize(text: str, family: str) -> str:
    """docs/EDGE.md's app-side normalisation (uncased WordPiece; ALBERT)."""
    if family == "albert":
        text = unicodedata.normalize("NFKD", text.replace("``", '"').replace("''", '"'))
        return "".join(c for c in text if unicodedata.category(c) != "Mn").lower()
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if c in "\t\n\r" or unicodedata.category(c)
                   not in ("Mn", "Cf", "Cc")).lower()


def percentiles(times):
    return {"p50_ms": round(float(np.percentile(times, 50)) * 1e3, 3),
            "p90_ms": round(float(np.percentile(times, 90)) * 1e3, 3)}


def spread(rounds):
    """median and min..max over rounds of each percentile."""
    return {key: {"median": float(np.median([r[key] for r in rounds])),
                  "min": min(r[key] for r in rounds), "max": max(r[key] for r in rounds)}
            for key in rounds[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflite", required=True)
    parser.add_argument("--test_file", default="data/tasks/fortunes/test.jsonl")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(load, flush=True)

    from kbert.export.evaluation import evaluate_tflite, tokenizer_from_metadata
    from kbert.export.labelled import encode_texts, label_ids, read_labelled_file
    from kbert.export.mediapipe_check import (category_scores, mediapipe_token_ids,
                                              text_classifier)
    from kbert.export.metadata import read_tflite_metadata
    from kbert.export.runtime import LiteRTClassifier
    from kbert.export.verify import tflite_outputs

    meta = read_tflite_metadata(args.tflite)
    labels, length, family = meta["labels"], meta["max_seq_length"], meta["family"]
    texts, gold = read_labelled_file(args.test_file)
    y = label_ids(gold, labels, args.test_file)
    tokenizer = tokenizer_from_metadata(meta)
    runner = LiteRTClassifier(args.tflite, num_threads=1)
    litert = tflite_outputs(runner, tokenizer, texts, length)["probabilities"]

    with text_classifier(args.tflite) as classifier:
        raw = np.stack([category_scores(classifier.classify(t), len(labels))[0] for t in texts])
        normalized = np.stack([category_scores(classifier.classify(
            app_normalize(t, family)), len(labels))[0] for t in texts])
        mp_rounds = []
        for _ in range(args.rounds):
            times = []
            for text in texts:
                start = time.perf_counter()
                classifier.classify(text)
                times.append(time.perf_counter() - start)
            mp_rounds.append(percentiles(times))

    encoded = [encode_texts(tokenizer, [t], length) for t in texts]
    lt_rounds, tok_rounds = [], []
    for _ in range(args.rounds):
        times = []
        for ids, mask, types in encoded:
            start = time.perf_counter()
            runner.classify_ids(ids, mask, types)
            times.append(time.perf_counter() - start)
        lt_rounds.append(percentiles(times))
        times = []
        for text in texts:
            start = time.perf_counter()
            encode_texts(tokenizer, [text], length)
            times.append(time.perf_counter() - start)
        tok_rounds.append(percentiles(times))

    tokenizer_file = os.path.join("/tmp", "kbert_bench_" + next(iter(meta["tokenizer_files"])))
    with open(tokenizer_file, "wb") as f:
        f.write(next(iter(meta["tokenizer_files"].values())))
    kind = meta["tokenizer"]["type"]
    found = mediapipe_token_ids(kind, tokenizer_file, texts, length)
    found_normalized = mediapipe_token_ids(kind, tokenizer_file,
                                           [app_normalize(t, family) for t in texts], length)
    kbert_ids = [ids[0][mask[0] == 1].tolist() for ids, mask, _ in encoded]
    os.remove(tokenizer_file)

    def accuracy(scores):
        return round(float(np.mean(np.argmax(scores, -1) == y)) * 100, 2)
    evaluated = evaluate_tflite(args.tflite, texts, gold)
    report = {
        "uptime": load, "tflite": args.tflite, "bytes": os.path.getsize(args.tflite),
        "mode": meta["mode"], "examples": len(texts), "max_seq_length": length,
        "accuracy": {"mediapipe_raw_text": accuracy(raw),
                     "mediapipe_normalized_text": accuracy(normalized),
                     "litert_kbert_tokenizer_truncated": accuracy(litert),
                     "export_evaluate_windows": round(evaluated["accuracy"] * 100, 2)},
        "top1_agreement_with_litert": {
            "mediapipe_raw_text": float(np.mean(np.argmax(raw, -1) == np.argmax(litert, -1))),
            "mediapipe_normalized_text": float(np.mean(
                np.argmax(normalized, -1) == np.argmax(litert, -1)))},
        "identical_token_ids": {
            "raw_text": sum(a == b for a, b in zip(found, kbert_ids)),
            "normalized_text": sum(a == b for a, b in zip(found_normalized, kbert_ids)),
            "of": len(texts)},
        "latency_per_text": {"mediapipe_classify_text": spread(mp_rounds),
                             "litert_model_on_ids_1_thread": spread(lt_rounds),
                             "kbert_python_tokenizer": spread(tok_rounds),
                             "rounds": args.rounds},
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
