"""Pieces per sentence, share of Jamo pieces and [UNK] share of Korean tokenizers on the
held-out file of the Korean demo corpus (issue 18; figures in BUILD_NOTES.md).

Each tokenizer learns its vocabulary from the demo's training files
(data/corpus_ko/constitution.txt, libreoffice_help_00.txt, _01.txt) and tokenizes
libreoffice_help_02.txt: uncased WordPiece (kbert's default: lower-case, NFD, marks
stripped, so Hangul falls apart into Jamo), cased WordPiece on NFC text, SentencePiece
(ALBERT's normalisation and cased), and cased WordPiece on kiwipiepy morphemes (KLUE-BERT's
recipe with kiwipiepy instead of Mecab). A Jamo piece holds a character of U+1100-U+11FF
or U+3130-U+318F.

Usage (repository root):
    python scripts/korean_tokenizer_stats.py --vocab_size=4000
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kbert import console  # noqa: E402

console.import_tensorflow()
from kbert import text, tokenizers  # noqa: E402
from kbert.tokenizers.sentencepiece import SentencePieceTokenizer, learn_sentencepiece  # noqa: E402

CORPUS = "data/corpus_ko"
TRAIN = [f"{CORPUS}/constitution.txt", f"{CORPUS}/libreoffice_help_00.txt",
         f"{CORPUS}/libreoffice_help_01.txt"]
HELD_OUT = f"{CORPUS}/libreoffice_help_02.txt"
JAMO = re.compile(r"[\u1100-\u11FF\u3130-\u318F]")


def row(name, tokenizer, lines, sentences):
    ids = tokenizer.tokenize(lines).flat_values.numpy().tolist()
    jamo = sum(1 for i in ids if JAMO.search(tokenizer.vocab[i]))
    unk = sum(1 for i in ids if i == tokenizer.unk_id)
    print(f"| {name} | {tokenizer.vocab_size} | {len(ids) / sentences:.1f} | "
          f"{jamo / len(ids):.1%} | {unk / len(ids):.2%} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab_size", type=int, default=4000)
    parser.add_argument("--no_morphemes", action="store_true",
                        help="skip the kiwipiepy row")
    args = parser.parse_args()
    held = list(text.iter_lines(HELD_OUT))
    print(f"{len(held)} held-out sentences; vocabularies of at most {args.vocab_size}")
    print("| tokenizer | vocab | pieces / sentence | Jamo pieces | [UNK] pieces |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for lower_case, name in ((True, "WordPiece uncased (NFD, the default)"),
                                 (False, "WordPiece cased, NFC text")):
            path = os.path.join(tmp, f"vocab_{lower_case}.txt")
            try:
                tokens = tokenizers.learn_vocabulary(TRAIN, args.vocab_size,
                                                     lower_case=lower_case)
            except ValueError as e:   # the corpus gives fewer: take all it gives
                size = int(re.search(r"only (\d+) tokens", str(e)).group(1))
                tokens = tokenizers.learn_vocabulary(TRAIN, size, lower_case=lower_case)
            tokenizers.write_vocab(tokens, path)
            row(name, tokenizers.BertTokenizer(path, lower_case=lower_case), held, len(held))
        for lower_case, name in ((True, "SentencePiece, ALBERT normalisation (NFKD, lower)"),
                                 (False, "SentencePiece cased")):
            directory = os.path.join(tmp, f"sp_{lower_case}")
            try:
                learn_sentencepiece(TRAIN, args.vocab_size, directory, lower_case=lower_case)
            except RuntimeError as e:   # "Please set it to a value <= N."
                size = int(str(e).rsplit("<= ", 1)[1].rstrip("."))
                learn_sentencepiece(TRAIN, size, directory, lower_case=lower_case)
            row(name, SentencePieceTokenizer(os.path.join(directory, "spiece.model"),
                                             lower_case=lower_case), held, len(held))
        if args.no_morphemes:
            return
        from kiwipiepy import Kiwi
        kiwi = Kiwi()

        def morphemes(line):
            return " ".join(line[t.start:t.start + t.len] for t in kiwi.tokenize(line))

        start = time.time()
        train_lines = [morphemes(line) for line in text.iter_lines(TRAIN)]
        held_morphemes = [morphemes(line) for line in held]
        seconds = time.time() - start
        tokens = tokenizers.learn_vocabulary([train_lines], args.vocab_size, lower_case=False)
        path = os.path.join(tmp, "vocab_morphemes.txt")
        tokenizers.write_vocab(tokens, path)
        tokenizer = tokenizers.BertTokenizer(path, lower_case=False)
        row("WordPiece cased on kiwipiepy morphemes (text split the same way)", tokenizer,
            held_morphemes, len(held))
        row("the same vocabulary on raw text (no analyser at tokenize time)", tokenizer,
            held, len(held))
        print(f"kiwipiepy split {len(train_lines) + len(held)} lines in {seconds:.1f} s")


if __name__ == "__main__":
    main()
