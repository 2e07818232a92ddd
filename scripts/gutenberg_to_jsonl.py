"""Project Gutenberg plain-text books → one JSON line per book for trainers.prepare_corpus.

Strips each book's licence header and footer, reflows its hard-wrapped paragraphs, writes
`{"text": paragraphs joined by newlines, "source": file name}` a line (prepare_corpus splits
the paragraphs into sentences; a book stays one document, as BookCorpus's did in BERT).
A file that is not a Gutenberg book is one error line naming it, exit 2, nothing written.

    scripts/run python scripts/gutenberg_to_jsonl.py --output=/data/books.jsonl \
        /data/gutenberg/*.txt
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kbert import outputs  # noqa: E402
from kbert.corpus.errors import CorpusError  # noqa: E402
from kbert.corpus.gutenberg import book_paragraphs  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gutenberg_to_jsonl", description=__doc__.split("\n")[0])
    parser.add_argument("books", nargs="+", help="Gutenberg .txt files (UTF-8)")
    parser.add_argument("--output", required=True, help="the JSON-lines file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier output")
    args = parser.parse_args(argv)
    try:
        with outputs.replace_file(args.output, "gutenberg_jsonl", inputs=args.books,
                                  overwrite=args.overwrite) as staging:
            with open(staging, "w", encoding="utf-8") as out:
                for path in args.books:
                    try:
                        with open(path, encoding="utf-8-sig") as f:
                            text = f.read()
                    except UnicodeDecodeError as e:
                        raise CorpusError(f"{path}: not valid UTF-8 ({e.reason} at byte "
                                          f"{e.start})") from e
                    paragraphs = book_paragraphs(text, path)
                    record = {"text": "\n".join(paragraphs), "source": os.path.basename(path)}
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    except (CorpusError, outputs.OutputError, OSError) as e:
        print(f"gutenberg_to_jsonl: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
