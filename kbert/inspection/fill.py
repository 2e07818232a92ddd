"""Masked-word guesses: the top-k tokens (with probabilities) for each `[MASK]` in a text,
from a model that carries its masked-LM head (the directories `trainers.pretrain` writes,
Hugging Face `*ForMaskedLM` / `*ForPreTraining` checkpoints).

Example:
    >>> guesses = fill_masks(model, "The man went to the [MASK].", top_k=3)  # doctest: +SKIP
    >>> guesses[0][0]                                                        # doctest: +SKIP
    ('store', 0.21)
"""

from __future__ import annotations

import re

import numpy as np

from kbert.inspection.encoding import encode
from kbert.inspection.errors import InspectionError

MASK_MARK = "[MASK]"


def require_mlm_head(model) -> None:
    """InspectionError when `model` has no masked-LM head (checked before any work)."""
    if model.mlm_head is None:
        raise InspectionError(
            f"{model.source} has no masked-LM head (an encoder or a task model); --fill "
            f"needs a pre-trained model directory such as trainers.pretrain writes, or a "
            f"Hugging Face *ForMaskedLM / *ForPreTraining checkpoint")


def masked_ids(tokenizer, text: str, max_length: int | None = None) -> tuple:
    """(`[CLS] ... [SEP]` ids with the mask id at each `[MASK]` (or the tokenizer's own mask
    token), the mask positions)."""
    from kbert.tokenizers.wordpiece import to_lists
    own = tokenizer.id_to_token(tokenizer.mask_id)
    marks = "|".join(re.escape(m) for m in {MASK_MARK, own})
    parts = re.split(f"({marks})", text)
    ids, positions = [tokenizer.cls_id], []
    for part in parts:
        if part in (MASK_MARK, own):
            positions.append(len(ids))
            ids.append(tokenizer.mask_id)
        elif part.strip():
            # Byte-level BPE marks a word after a space: keep the space the text had.
            ids.extend(to_lists(tokenizer.tokenize([part]))[0])
    ids.append(tokenizer.sep_id)
    if not positions:
        raise InspectionError(f"--fill: the text has no {MASK_MARK} to fill")
    if max_length is not None and len(ids) > max_length:
        raise InspectionError(f"--fill: {len(ids)} tokens, more than the model's "
                              f"{max_length} positions")
    return ids, positions


def softmax(logits) -> np.ndarray:
    z = np.asarray(logits, "float64")
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fill_masks(model, text: str, top_k: int = 5) -> list:
    """For each mask in `text`, in order: the `top_k` (token, probability) guesses."""
    require_mlm_head(model)
    if top_k < 1:
        raise InspectionError(f"--top_k must be at least 1, got {top_k}")
    ids, positions = masked_ids(model.tokenizer, text, model.config.max_position_embeddings)
    sequence = encode(model, ids)["sequence_output"]
    logits = model.mlm_head(sequence[None], np.asarray([positions], "int32"))
    probabilities = softmax(np.asarray(logits)[0])          # [masks, vocab]
    found = []
    for row in probabilities:
        best = np.argsort(-row, kind="stable")[:top_k]
        found.append([(model.tokenizer.id_to_token(int(i)), float(row[i])) for i in best])
    return found


def format_guesses(text: str, guesses) -> str:
    """`mask rank token probability` lines."""
    lines = [f"# {text}", "mask\trank\ttoken\tprobability"]
    for mask, row in enumerate(guesses, start=1):
        for rank, (token, probability) in enumerate(row, start=1):
            lines.append(f"{mask}\t{rank}\t{token}\t{probability:.4f}")
    return "\n".join(lines) + "\n"
