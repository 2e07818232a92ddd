"""Which tokenizer each model family uses, the files it lives in, and how to learn one.

BERT and DistilBERT: WordPiece (`vocab.txt`); RoBERTa: byte-level BPE (`vocab.json` +
`merges.txt`); ALBERT: SentencePiece (`spiece.model`). A fifth family names one of these.

Example:
    >>> TOKENIZER_FILES["roberta"]
    ('vocab.json', 'merges.txt')
    >>> tokenizer = load_family_tokenizer("albert", "runs/demo_albert")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Sequence

TOKENIZER_FILES = {"bert": ("vocab.txt",), "distilbert": ("vocab.txt",),
                   "roberta": ("vocab.json", "merges.txt"), "albert": ("spiece.model",)}


def tokenizer_files(family: str, directory: str) -> list[str]:
    """Paths of `family`'s tokenizer files in `directory`."""
    if family not in TOKENIZER_FILES:
        raise ValueError(f"unknown model family {family!r}; choose one of "
                         f"{sorted(TOKENIZER_FILES)}")
    return [os.path.join(directory, name) for name in TOKENIZER_FILES[family]]


def files_beside(family: str, first_file: str) -> list[str]:
    """All of `family`'s tokenizer files given its first one (`merges.txt` is read from
    beside `vocab.json`)."""
    return [first_file] + tokenizer_files(family, os.path.dirname(first_file) or ".")[1:]


def load_family_tokenizer(family: str, files: str | Sequence[str], lower_case: bool = True):
    """The tokenizer of `family` from a directory holding its files, or the files."""
    if isinstance(files, str):
        files = tokenizer_files(family, files) if os.path.isdir(files) else \
            files_beside(family, files)
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{family} tokenizer file not found: {path}")
    if family == "roberta":
        from kbert.tokenizers.bpe import ByteLevelBPETokenizer
        return ByteLevelBPETokenizer(*files)
    if family == "albert":
        from kbert.tokenizers.sentencepiece import SentencePieceTokenizer
        return SentencePieceTokenizer(files[0], lower_case=lower_case)
    from kbert.tokenizers.wordpiece import BertTokenizer
    return BertTokenizer(files[0], lower_case=lower_case)


def learn_family_tokenizer(family: str, inputs: Sequence[str], vocab_size: int,
                           output_dir: str, lower_case: bool = True) -> list[str]:
    """Learn `family`'s kind of vocabulary from text files into `output_dir`; returns the
    written files (each written atomically)."""
    if family == "roberta":
        from kbert.tokenizers.bpe import learn_bpe
        return list(learn_bpe(inputs, vocab_size, output_dir))
    if family == "albert":
        from kbert.tokenizers.sentencepiece import learn_sentencepiece
        return [learn_sentencepiece(inputs, vocab_size, output_dir, lower_case=lower_case)]
    from kbert.tokenizers.wordpiece import learn_vocabulary, write_vocab
    path = tokenizer_files(family, output_dir)[0]
    write_vocab(learn_vocabulary(list(inputs), vocab_size, lower_case=lower_case), path)
    return [path]


def vocab_size_of(family: str, files: Sequence[str]) -> int:
    """Tokens in `family`'s tokenizer files, read without starting TensorFlow's runtime."""
    if family == "roberta":
        from kbert.tokenizers.bpe import load_bpe_vocab
        return len(load_bpe_vocab(files[0]))
    if family == "albert":
        from kbert.tokenizers.sentencepiece import load_sentencepiece_vocab
        return len(load_sentencepiece_vocab(files[0]))
    from kbert.tokenizers.wordpiece import load_vocab
    return len(load_vocab(files[0]))


def tokenizer_hash(family: str, files: Sequence[str]) -> str:
    """The `vocab_hash` a tokenizer of `family` built from `files` reports (what a records
    manifest stores), without building it: the WordPiece token list's hash, or the hash
    of the BPE / SentencePiece files."""
    if family in ("bert", "distilbert"):
        from kbert.tokenizers.wordpiece import vocab_hash
        return vocab_hash(files[0])
    from kbert.tokenizers.base import files_hash
    return files_hash(files)
