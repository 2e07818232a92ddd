"""Tokenizers: one module per algorithm, each behind `kbert.tokenizers.base.Tokenizer`.

- `base`: the interface (vocabulary file in, in-graph `tokenize`, special tokens,
  `vocab_hash`)
- `wordpiece`: BERT's WordPiece (`BertTokenizer`), vocabulary files and learning
- `bpe`: RoBERTa's byte-level BPE (`ByteLevelBPETokenizer`, `learn_bpe`)
- `sentencepiece`: ALBERT's SentencePiece (`SentencePieceTokenizer`, `learn_sentencepiece`)
- `families`: which tokenizer and files each model family uses

Example:
    >>> from kbert.tokenizers import BertTokenizer, vocab_hash
    >>> tokenizer = BertTokenizer("vocab.txt")                  # doctest: +SKIP
    >>> tokenizer.tokenize(["Hello, world!"]).to_list()         # doctest: +SKIP
    [[7592, 1010, 2088, 999]]
"""

from kbert.tokenizers.base import Tokenizer, token_list_hash
from kbert.tokenizers.bpe import ByteLevelBPETokenizer, learn_bpe
from kbert.tokenizers.sentencepiece import SentencePieceTokenizer, learn_sentencepiece
from kbert.tokenizers.wordpiece import (NORMALIZATIONS, SPECIAL_TOKENS, SUFFIX_INDICATOR,
                                        BertTokenizer, bert_normalize, count_words,
                                        learn_vocabulary, load_vocab, split_words, to_lists,
                                        vocab_hash, write_vocab)

__all__ = [
    "BertTokenizer", "ByteLevelBPETokenizer", "SentencePieceTokenizer", "learn_bpe",
    "learn_sentencepiece", "NORMALIZATIONS", "SPECIAL_TOKENS", "SUFFIX_INDICATOR", "Tokenizer",
    "bert_normalize", "count_words", "learn_vocabulary", "load_vocab", "split_words",
    "to_lists", "token_list_hash", "vocab_hash", "write_vocab",
]
