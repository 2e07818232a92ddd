"""See what a BERT sees: contextual word vectors per layer, attention maps, masked-word guesses.

One module per job: `loading` (any kbert / Hugging Face / Google model directory as an
`InspectedModel`), `encoding` (tokens with word spans, hidden states and attentions),
`similarity` (a word's vectors across sentences, cosine tables, same-/cross-sense means),
`attention` (the token each head attends to most), `fill` (top-k guesses for `[MASK]`),
`plots` (PNG heat maps and curves). `python -m kbert.inspect` is the command.

Example:
    >>> from kbert.inspection import load_for_inspection, word_similarities
    >>> model = load_for_inspection("models/minilm")                   # doctest: +SKIP
    >>> table = word_similarities(model, "bank", read_sentences("bank.txt"))  # doctest: +SKIP
"""

from kbert.inspection.errors import InspectionError
from kbert.inspection.sentences import Sentence, read_sentences

__all__ = ["InspectionError", "Sentence", "read_sentences", "load_for_inspection",
           "word_similarities", "attention_maps", "fill_masks"]


def __getattr__(name):
    # TensorFlow-heavy pieces load on first use.
    if name == "load_for_inspection":
        from kbert.inspection.loading import load_for_inspection
        return load_for_inspection
    if name == "word_similarities":
        from kbert.inspection.similarity import word_similarities
        return word_similarities
    if name == "attention_maps":
        from kbert.inspection.attention import attention_maps
        return attention_maps
    if name == "fill_masks":
        from kbert.inspection.fill import fill_masks
        return fill_masks
    raise AttributeError(f"module 'kbert.inspection' has no attribute {name!r}")
