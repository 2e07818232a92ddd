"""Build the `fortunes` text-classification task from Debian's fortune cookie files.

Each fortune is labelled with the category file it comes from (`computers`, `science`, ...).
Only topical categories are kept (grab-bag files such as `fortunes`, `cookie`,
`miscellaneous`, `people`, `wisdom` are not a topic); the offensive sets are not used
(they live in `fortunes-off`, which this script refuses to read). A fortune that appears
in more than one category, or twice in one, is dropped (its label would be ambiguous or it
would leak across splits). Each category is capped at `--max_per_category` items chosen
with a fixed seed, then split per category 70/10/20 into train/validation/test, so the
split is stratified and reproducible byte for byte.

Usage:
    apt-get install -y fortunes fortunes-min
    python scripts/build_fortunes_dataset.py --output_dir data/tasks/fortunes
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kbert import fileio  # noqa: E402

FORTUNE_DIR = "/usr/share/games/fortunes"
CATEGORIES = ("computers", "science", "politics", "law", "food", "sports", "love",
              "education", "drugs", "startrek", "linux", "work", "songs-poems", "kids",
              "medicine", "pets")
SPLITS = (("train", 0.7), ("validation", 0.1), ("test", 0.2))
_OVERSTRIKE = re.compile(r".\x08")


def read_fortunes(path: str) -> list[str]:
    """The fortunes of one category file (`%` lines separate them), cleaned."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = _OVERSTRIKE.sub("", text).replace("\r", "")
    items = []
    for chunk in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        lines = [line.rstrip() for line in chunk.strip("\n").split("\n")]
        item = "\n".join(lines).strip()
        if item:
            items.append(item)
    return items


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def build(fortune_dir: str, categories, max_per_category: int, seed: int):
    by_category = {c: read_fortunes(os.path.join(fortune_dir, c)) for c in categories}
    where = collections.defaultdict(list)
    for category, items in by_category.items():
        for item in items:
            where[_key(item)].append(category)
    splits = {name: [] for name, _ in SPLITS}
    dropped = {}
    for category in categories:
        unique = [t for t in by_category[category] if len(where[_key(t)]) == 1]
        dropped[category] = len(by_category[category]) - len(unique)
        rng = random.Random(f"{seed}-{category}")
        rng.shuffle(unique)
        unique = unique[:max_per_category]
        start = 0
        for i, (name, fraction) in enumerate(SPLITS):
            end = len(unique) if i == len(SPLITS) - 1 else start + round(fraction * len(unique))
            splits[name].extend({"text": t, "label": category} for t in unique[start:end])
            start = end
    for name in splits:
        random.Random(f"{seed}-{name}").shuffle(splits[name])
    return splits, dropped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fortune_dir", default=FORTUNE_DIR)
    parser.add_argument("--output_dir", default="data/tasks/fortunes")
    parser.add_argument("--max_per_category", type=int, default=300)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args(argv)
    if "off" in os.path.normpath(args.fortune_dir).split(os.sep):
        print("error: refusing to read the offensive fortune sets", file=sys.stderr)
        return 2
    missing = [c for c in CATEGORIES if not os.path.isfile(os.path.join(args.fortune_dir, c))]
    if missing:
        print(f"error: {args.fortune_dir} lacks {' '.join(missing)} "
              "(apt-get install fortunes fortunes-min)", file=sys.stderr)
        return 2
    splits, dropped = build(args.fortune_dir, CATEGORIES, args.max_per_category, args.seed)
    os.makedirs(args.output_dir, exist_ok=True)
    summary = {"source": "Debian packages fortunes, fortunes-min (1:1.99.1-7.3)",
               "categories": list(CATEGORIES), "max_per_category": args.max_per_category,
               "seed": args.seed, "dropped_duplicates": dropped, "splits": {}}
    for name, rows in splits.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        path = os.path.join(args.output_dir, f"{name}.jsonl")
        fileio.atomic_write_text(path, text)
        counts = collections.Counter(r["label"] for r in rows)
        summary["splits"][name] = {"examples": len(rows),
                                   "sha256": hashlib.sha256(text.encode()).hexdigest(),
                                   "per_label": dict(sorted(counts.items()))}
        print(f"{path}: {len(rows)} examples")
    fileio.atomic_write_text(os.path.join(args.output_dir, "summary.json"),
                             json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
