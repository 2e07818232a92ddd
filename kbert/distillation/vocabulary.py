"""Vocabulary pruning for small students: keep the word pieces a task uses.

The token embedding dominates a small student (30,522 × 384 = 11.7 M parameters, more than
three int8 layers of that width). A task's text uses a fraction of the vocabulary, so the
student keeps: the special tokens, every piece the training texts tokenize to, and every
single character with its `##` form (so any word still splits into known pieces — text
outside the training data is tokenized into shorter pieces, never into [UNK] more often
than with the full vocabulary). Kept tokens keep their relative order; the embedding rows
are gathered from the teacher's.

Example:
    >>> kept = pruned_vocabulary(tokenizer, texts)                     # doctest: +SKIP
    >>> len(kept) < tokenizer.vocab_size                               # doctest: +SKIP
    True
"""

from __future__ import annotations

from kbert.tokenizers import SPECIAL_TOKENS, SUFFIX_INDICATOR


def _is_single_character(token: str) -> bool:
    core = token[len(SUFFIX_INDICATOR):] if token.startswith(SUFFIX_INDICATOR) else token
    return len(core) == 1


def pruned_vocabulary(tokenizer, texts, batch_size: int = 1024) -> list:
    """Token ids (ascending) to keep for `texts`: specials, used pieces, single characters."""
    vocab = tokenizer.vocab
    keep = {i for i, token in enumerate(vocab)
            if token in SPECIAL_TOKENS or _is_single_character(token)}
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        pieces = tokenizer.tokenize(texts[start:start + batch_size]).flat_values.numpy()
        keep.update(int(i) for i in pieces)
    return sorted(keep)
