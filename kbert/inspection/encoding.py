"""A text as model input with word spans, and what the encoder computes for it.

Example:
    >>> tokens = tokenize_with_words(model.tokenizer, "We sat on the bank.")   # doctest: +SKIP
    >>> tokens.pieces[:3], tokens.find_word(model.tokenizer, "bank")           # doctest: +SKIP
    (['[CLS]', 'we', 'sat'], [5])
    >>> states = encode(model, tokens.ids)     # hidden_states [L+1, seq, H], attentions
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kbert.inspection.errors import InspectionError


@dataclasses.dataclass
class Tokens:
    """`[CLS] pieces [SEP]` ids, their vocabulary strings, and each word's piece positions
    (positions count [CLS] as 0)."""
    ids: list
    pieces: list
    words: list          # per word: the positions of its pieces

    def find_word(self, tokenizer, word: str) -> list | None:
        """Positions of the pieces of the first occurrence of `word` (one or several words
        of the tokenizer), or None."""
        forms = word_forms(tokenizer, word)
        for start in range(len(self.words)):
            for form in forms:
                end = start + len(form)
                if end <= len(self.words) and all(
                        [self.ids[p] for p in self.words[start + k]] == form[k]
                        for k in range(len(form))):
                    return [p for w in self.words[start:end] for p in w]
        return None


def _words(tokenizer, text: str) -> list:
    from kbert.tokenizers.wordpiece import to_lists
    return to_lists(tokenizer.tokenize_words([text]))[0]


def word_forms(tokenizer, word: str) -> list:
    """The piece-id forms `word` takes in a sentence: alone, and after another word
    (byte-level BPE and SentencePiece mark a word that follows a space)."""
    alone = _words(tokenizer, word)
    if not alone:
        raise InspectionError(f"--word={word!r} gives no token")
    after = _words(tokenizer, "a " + word)[len(_words(tokenizer, "a")):]
    return [alone] if after == alone or not after else [alone, after]


def tokenize_with_words(tokenizer, text: str, max_length: int | None = None,
                        where: str = "<text>") -> Tokens:
    """`[CLS] text [SEP]` as `Tokens`; InspectionError naming `where` when the text gives
    no token or is longer than `max_length` pieces."""
    words = _words(tokenizer, text)
    if not words:
        raise InspectionError(f"{where}: the text gives no token")
    ids, spans = [tokenizer.cls_id], []
    for word in words:
        spans.append(list(range(len(ids), len(ids) + len(word))))
        ids.extend(word)
    ids.append(tokenizer.sep_id)
    if max_length is not None and len(ids) > max_length:
        raise InspectionError(f"{where}: {len(ids)} tokens, more than the model's "
                              f"{max_length} positions")
    return Tokens(ids, [tokenizer.id_to_token(i) for i in ids], spans)


def encode(model, ids) -> dict:
    """Run the inspecting encoder on one sequence of ids: `hidden_states` [layers+1, seq,
    hidden] (the embedding output, then each layer), `attentions` [layers, heads, seq, seq],
    `sequence_output` [seq, hidden] (numpy, float32)."""
    ids = np.asarray([ids], "int32")
    out = model.encoder({"token_ids": ids, "segment_ids": np.zeros_like(ids),
                         "padding_mask": np.ones_like(ids)})
    return {"hidden_states": np.stack([np.asarray(h)[0] for h in out["hidden_states"]]),
            "attentions": np.stack([np.asarray(a)[0] for a in out["attentions"]]),
            "sequence_output": np.asarray(out["sequence_output"])[0]}


def input_embeddings(model, ids) -> np.ndarray:
    """The token-embedding rows of `ids` [n, E]: what a static embedding (Word2Vec, GloVe)
    would give, before position, segment and every layer."""
    table = np.asarray(model.encoder.token_embedding.embeddings)
    return table[np.asarray(ids, "int64")]
