"""A word's contextual vectors across sentences, compared layer by layer.

For each sentence the word's vector at every layer is the mean of its pieces' hidden
states; row `input` is the mean of its token-embedding rows (a static embedding, as
Word2Vec or GloVe: the same in every sentence, so every similarity is 1.0); row `0` is the
embedding layer's output (token + position + segment, normalised), rows `1..L` the
Transformer layers. With senses, each layer's mean similarity over same-sense pairs and
over cross-sense pairs shows where the model tells the senses apart.

Example:
    >>> import numpy as np
    >>> cosine_matrix(np.array([[1.0, 0.0], [1.0, 1.0]])).round(3).tolist()
    [[1.0, 0.707], [0.707, 1.0]]
    >>> pair_means(np.array([[1, .9, .2], [.9, 1, .4], [.2, .4, 1]]), ["a", "a", "b"])
    {'all': 0.5, 'same': 0.9, 'cross': 0.3}
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kbert.inspection.encoding import encode, input_embeddings, tokenize_with_words
from kbert.inspection.errors import InspectionError

INPUT_LAYER = "input"


def cosine_matrix(vectors) -> np.ndarray:
    """Cosine similarity of every pair of rows of `vectors` [n, d] -> [n, n] (float64)."""
    v = np.asarray(vectors, "float64")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise InspectionError("a word vector is all zeros; its cosine is undefined")
    unit = v / norms
    return np.clip(unit @ unit.T, -1.0, 1.0)


def pair_means(matrix, senses=None) -> dict:
    """Mean of the off-diagonal pairs (i < j) of a similarity matrix: over all pairs, and,
    when `senses` are given, over same-sense and cross-sense pairs (None when a kind of
    pair does not occur)."""
    m = np.asarray(matrix, "float64")
    i, j = np.triu_indices(len(m), k=1)
    values = m[i, j]
    means = {"all": round(float(values.mean()), 6) if len(values) else None}
    if senses is not None:
        labels = np.asarray(senses, dtype=object)
        same = labels[i] == labels[j]
        means["same"] = round(float(values[same].mean()), 6) if same.any() else None
        means["cross"] = round(float(values[~same].mean()), 6) if (~same).any() else None
    return means


@dataclasses.dataclass
class SimilarityTable:
    """`matrices[k]` is the cosine matrix of layer `layers[k]` (`input`, 0, 1, ..., L)."""
    word: str
    sentences: list
    layers: list
    matrices: np.ndarray
    pieces: list          # per sentence: the word's pieces there

    @property
    def senses(self):
        senses = [s.sense for s in self.sentences]
        return None if senses[0] is None else senses

    def summary(self) -> list:
        """Per layer: {"layer", "all", and with senses "same", "cross", "gap"}."""
        rows = []
        for layer, matrix in zip(self.layers, self.matrices):
            means = pair_means(matrix, self.senses)
            if "same" in means and None not in (means["same"], means["cross"]):
                means["gap"] = round(means["same"] - means["cross"], 6)
            rows.append({"layer": layer, **means})
        return rows

    def matrix(self, layer) -> np.ndarray:
        return self.matrices[self.layers.index(layer)]


def word_vectors(model, word: str, sentences, match: str = "word") -> tuple:
    """(static [n, E], contextual [layers+1, n, hidden], pieces per sentence): the word's
    token-embedding rows and its hidden states at every layer (the embedding layer's output
    first), each averaged over its pieces. InspectionError naming the sentence's line when
    the word is missing."""
    max_length = model.config.max_position_embeddings
    static, contextual, pieces = [], [], []
    for sentence in sentences:
        tokens = tokenize_with_words(model.tokenizer, sentence.text, max_length,
                                     sentence.where)
        positions = tokens.find_word(model.tokenizer, word, match)
        if positions is None:
            shown = " ".join(tokens.pieces[1:-1])
            raise InspectionError(f"{sentence.where}: the word {word!r} is not in this "
                                  f"sentence (its tokens: {shown})")
        states = encode(model, tokens.ids)["hidden_states"]       # [L+1, seq, H]
        contextual.append(states[:, positions, :].mean(axis=1))    # [L+1, H]
        static.append(input_embeddings(model, [tokens.ids[p] for p in positions]).mean(0))
        pieces.append([tokens.pieces[p] for p in positions])
    return np.stack(static), np.stack(contextual, axis=1), pieces   # [n,E], [L+1,n,H]


def require_two(sentences) -> None:
    """InspectionError naming the file when there are fewer than two sentences to compare."""
    if len(sentences) < 2:
        raise InspectionError(f"{sentences[0].source if sentences else '--sentences'}: "
                              f"need at least two sentences to compare, found "
                              f"{len(sentences)}")


def word_similarities(model, word: str, sentences, match: str = "word") -> SimilarityTable:
    """The cosine similarity of `word`'s vectors between every two sentences, per layer
    (see the module docstring). Needs at least two sentences. `match`: see
    `Tokens.find_word`."""
    require_two(sentences)
    static, contextual, pieces = word_vectors(model, word, sentences, match)
    matrices = [cosine_matrix(static)] + [cosine_matrix(layer) for layer in contextual]
    layers = [INPUT_LAYER] + list(range(len(contextual)))
    return SimilarityTable(word, list(sentences), layers, np.stack(matrices), pieces)


# ----------------------------------------------------------------------------- text forms
def _number(value) -> str:
    return "" if value is None else f"{value:.3f}"


def format_summary(table: SimilarityTable) -> str:
    """The per-layer table a person reads: layer, mean over all pairs, and with senses the
    same-sense and cross-sense means and their gap."""
    columns = ["layer", "all"] + (["same", "cross", "gap"] if table.senses else [])
    lines = ["\t".join(columns)]
    for row in table.summary():
        lines.append("\t".join(str(row["layer"]) if c == "layer" else _number(row.get(c))
                               for c in columns))
    return "\n".join(lines) + "\n"


def matrices_tsv(table: SimilarityTable) -> str:
    """Every pair at every layer: `layer i j sense_i sense_j cosine` (lines numbered as in
    the sentence file)."""
    lines = ["layer\tline_i\tline_j\tsense_i\tsense_j\tcosine"]
    for layer, matrix in zip(table.layers, table.matrices):
        for a, first in enumerate(table.sentences):
            for b, second in enumerate(table.sentences):
                if a < b:
                    lines.append(f"{layer}\t{first.line}\t{second.line}\t{first.sense or ''}"
                                 f"\t{second.sense or ''}\t{matrix[a, b]:.6f}")
    return "\n".join(lines) + "\n"
