"""Labelled text examples for the export stage: read a task file, encode it to ids.

Reads CSV, TSV (header row) or JSONL by extension; errors name the file and line.
Scores use `windowed_logits`: a text longer than the model's length is read as overlapping
windows whose logits are averaged, as `trainers.finetune` evaluates (9% of the fortunes test
texts are longer than 128 pieces).
(`trainers.finetune`'s readers live in `kbert.data.task_files`; this module keeps the
export stage to the two columns it needs.)

Example:
    >>> texts, labels = read_labelled_file("data/tasks/fortunes/test.jsonl")   # doctest: +SKIP
    >>> ids, mask, types = encode_texts(tokenizer, texts[:2], 128)             # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os

import numpy as np

from kbert.export.task_model import ExportError
from kbert.tasks.batching import pad_id_rows as pad_rows
from kbert.tasks.preprocessing import aggregate_windows, window_starts

def read_labelled_rows(path: str, text_column: str = "text",
                       label_column: str | None = "label", quoting: str = "auto"):
    """The rows of a task file as `kbert.data.task_files.TaskRows` (the parser fine-tuning
    uses: null or empty texts skipped and counted in `.skipped`, labels as written)."""
    from kbert.data.task_files import TaskFileError, read_task_file
    if not os.path.isfile(path):
        raise ExportError(f"file not found: {path}")
    required = [text_column] + ([label_column] if label_column is not None else [])
    try:
        return read_task_file(path, required=required, skip_empty=[text_column],
                              label_columns=[label_column] if label_column else [],
                              quoting=quoting)
    except TaskFileError as e:
        raise ExportError(str(e)) from None


def read_labelled_file(path: str, text_column: str = "text", label_column: str | None = "label",
                       limit: int | None = None, quoting: str = "auto"):
    """`(texts, labels)` from a task file; `labels` is None when `label_column` is None.
    Rows with a null or empty text are skipped as fine-tuning skips them (logged)."""
    rows = read_labelled_rows(path, text_column, label_column, quoting)
    if rows.skipped:
        logging.warning("%s: skipped %s (as fine-tuning does)", path,
                        ", ".join(f"{n} rows with {k.replace('_', ' ')}"
                                  for k, n in rows.skipped.items()))
    texts = [str(t) for t in rows.column(text_column)][:limit]
    labels = rows.column(label_column)[:limit] if label_column is not None else None
    return texts, labels


def label_ids(labels, label_names, path: str = "labels") -> np.ndarray:
    """Label names -> ids in the model's label order; an unknown label is an error."""
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ExportError(f"{path}: labels the model does not know: {', '.join(unknown[:5])}")
    return np.array([index[label] for label in labels], np.int64)


def encode_texts(tokenizer, texts, max_seq_length: int):
    """`(input_ids, attention_mask, token_type_ids)` int32 [batch, longest] for a batch:
    `cls pieces sep`, truncated to `max_seq_length`, padded with the tokenizer's pad id.

    `tokenizer` is the model family's (`kbert.export.task_model.task_tokenizer`): one text
    is laid out alike in every family (`kbert.tasks.preprocessing.PACKING`: BERT's
    `[CLS] … [SEP]`, RoBERTa's `<s> … </s>` with pad id 1), segment ids all 0."""
    pieces = tokenizer.tokenize(list(texts))
    rows = [[tokenizer.cls_id] + p[:max_seq_length - 2] + [tokenizer.sep_id]
            for p in pieces.to_list()]
    return pad_rows(rows, tokenizer.pad_id)


def batches(tokenizer, texts, max_seq_length: int, batch_size: int = 32):
    """Encoded batches (padded per batch) over `texts`, in order."""
    for start in range(0, len(texts), batch_size):
        yield encode_texts(tokenizer, texts[start:start + batch_size], max_seq_length)


def window_rows(tokenizer, texts, max_seq_length: int, stride: int | None = None):
    """`(rows, example_index)`: `cls pieces sep` id rows covering every piece of every
    text; a text longer than `max_seq_length` becomes windows `stride` pieces apart
    (default: half a window)."""
    window = max_seq_length - 2
    stride = min(stride or max(window // 2, 1), window)
    rows, index = [], []
    for i, pieces in enumerate(tokenizer.tokenize(list(texts)).to_list()):
        for start in window_starts(len(pieces), window, stride):
            rows.append([tokenizer.cls_id] + pieces[start:start + window] + [tokenizer.sep_id])
            index.append(i)
    return rows, np.asarray(index, np.int64)


def windowed_logits(predict, tokenizer, texts, max_seq_length: int, batch_size: int = 32,
                    stride: int | None = None, aggregation: str = "mean") -> np.ndarray:
    """Per-text logits [texts, classes]: `predict(ids, mask, types)` (int32 arrays) runs on
    every window in length-sorted batches, and each text's windows are aggregated.

    Example:
        >>> logits = windowed_logits(lambda i, m, t: runner.classify_ids(i, m, t)["logits"],
        ...                          tokenizer, texts, 128)            # doctest: +SKIP
    """
    rows, index = window_rows(tokenizer, texts, max_seq_length, stride)
    order = np.argsort([len(r) for r in rows], kind="stable")
    out = [None] * len(rows)
    for start in range(0, len(rows), batch_size):
        chosen = order[start:start + batch_size]
        logits = np.asarray(predict(*pad_rows([rows[i] for i in chosen], tokenizer.pad_id)))
        for i, row in zip(chosen, logits):
            out[i] = row
    return aggregate_windows(np.stack(out).astype(np.float32), index, len(texts),
                             aggregation).astype(np.float32)
