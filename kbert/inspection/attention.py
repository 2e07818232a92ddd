"""Every head of every layer: who attends to whom, and where one token looks most.

Example:
    >>> maps = attention_maps(model, "The bank raised its rates.")       # doctest: +SKIP
    >>> maps.weights.shape                    # [layers, heads, seq, seq], rows sum to 1
    (6, 12, 9, 9)
    >>> most_attended(maps, "bank")[0][0]     # layer 1, head 1: (token, weight)  # doctest: +SKIP
    ('the', 0.41)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kbert.inspection.encoding import Tokens, encode, tokenize_with_words
from kbert.inspection.errors import InspectionError


@dataclasses.dataclass
class AttentionMaps:
    """`weights[layer, head, query, key]`: the attention probabilities over `tokens`."""
    tokens: Tokens
    weights: np.ndarray

    @property
    def pieces(self) -> list:
        return self.tokens.pieces


def attention_maps(model, text: str, where: str = "--text") -> AttentionMaps:
    """The attention probabilities of every head of every layer for `text`."""
    tokens = tokenize_with_words(model.tokenizer, text, model.config.max_position_embeddings,
                                 where)
    return AttentionMaps(tokens, encode(model, tokens.ids)["attentions"])


def query_positions(maps: AttentionMaps, tokenizer, word: str | None,
                    match: str = "word") -> list:
    """Positions of `word`'s pieces in the text (None: the first token after [CLS])."""
    if word is None:
        return [1]
    positions = maps.tokens.find_word(tokenizer, word, match)
    if positions is None:
        raise InspectionError(f"--attend_from: the word {word!r} is not in --text (its "
                              f"tokens: {' '.join(maps.pieces[1:-1])})")
    return positions


def most_attended(maps: AttentionMaps, positions) -> list:
    """Per layer, per head: (token, position, weight) of the key that the query `positions`
    (their attention rows averaged, for a word of several pieces) attend to most."""
    rows = maps.weights[:, :, positions, :].mean(axis=2)      # [layers, heads, keys]
    best = rows.argmax(axis=-1)
    return [[(maps.pieces[k], int(k), float(rows[layer, head, k]))
             for head, k in enumerate(best[layer])] for layer in range(len(best))]


def format_most_attended(maps: AttentionMaps, positions) -> str:
    """`layer head token weight` lines for `most_attended`."""
    source = " ".join(maps.pieces[p] for p in positions)
    lines = [f"# the token each head attends to most from {source!r}",
             "layer\thead\ttoken\tposition\tweight"]
    for layer, heads in enumerate(most_attended(maps, positions), start=1):
        for head, (token, position, weight) in enumerate(heads, start=1):
            lines.append(f"{layer}\t{head}\t{token}\t{position}\t{weight:.3f}")
    return "\n".join(lines) + "\n"
