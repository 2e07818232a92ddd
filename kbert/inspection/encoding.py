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


MATCHES = ("word", "word_start")


@dataclasses.dataclass
class Tokens:
    """`[CLS] pieces [SEP]` ids, their vocabulary strings, and each word's piece positions
    (positions count [CLS] as 0)."""
    ids: list
    pieces: list
    words: list          # per word: the positions of its pieces

    def find_word(self, tokenizer, word: str, match: str = "word") -> list | None:
        """Positions of the pieces of the first occurrence of `word`, or None.

        The word is compared as text (the pieces' strings without their `##` / `Ġ` / `▁`
        marks, normalised as the tokenizer normalises), so a word that the tokenizer cuts
        differently in context still matches (SentencePiece keeps `bank.` together). It
        must start at a word; it must end where the text's word ends or before punctuation
        (`match="word"`), or may end inside a longer word at a piece boundary
        (`match="word_start"`: a Korean noun with its particle, 배 in 배를).
        """
        if match not in MATCHES:
            raise ValueError(f"match must be one of {MATCHES}, got {match!r}")
        target = "".join(piece_text(tokenizer, i) for w in _words(tokenizer, word) for i in w)
        if not target:
            raise InspectionError(f"--word={word!r} gives no token")
        starts = {w[0] for w in self.words}
        last = self.words[-1][-1] if self.words else 0
        for first in sorted(starts):
            joined, position = "", first
            while len(joined) < len(target) and position <= last:
                joined += piece_text(tokenizer, self.ids[position])
                position += 1
            if not joined.startswith(target):
                continue
            rest = joined[len(target):]
            following = piece_text(tokenizer, self.ids[position]) if position <= last else ""
            if rest:       # the word ends inside a piece: only before punctuation
                ok = not rest[0].isalnum()
            else:
                ok = (position > last or position in starts or not following[:1].isalnum()
                      or match == "word_start")
            if ok:
                return list(range(first, position))
        return None


def piece_text(tokenizer, token_id: int) -> str:
    """A piece's text without the marks of word starts (`Ġ`, `▁`) or continuations (`##`)."""
    token = tokenizer.id_to_token(int(token_id))
    prefix = getattr(tokenizer, "word_start_prefix", "")
    if prefix and token.startswith(prefix):
        return token[len(prefix):]
    if not prefix and token.startswith("##") and len(token) > 2:
        return token[2:]
    return token


def _words(tokenizer, text: str) -> list:
    from kbert.tokenizers.wordpiece import to_lists
    return to_lists(tokenizer.tokenize_words([text]))[0]


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
