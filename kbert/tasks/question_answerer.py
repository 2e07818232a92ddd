"""Extractive question answering: start/end logits over `[CLS] question [SEP] context [SEP]`.

Contexts longer than a window are split into overlapping windows `stride` pieces apart (as
google-research/bert's run_squad.py `doc_stride`); an answer is labelled in every window
that holds it whole (elsewhere the label points at [CLS]). Post-processing looks at the
`n_best_size` best starts and ends of every window, keeps spans of at most
`max_answer_length` pieces whose start has its most context in that window, and returns
the best one as text cut from the original context by character offsets.

Example:
    >>> model = QuestionAnswerer.from_pretrained("model_dir")                 # doctest: +SKIP
    >>> model.answer(["Who wrote Python?"], ["Python was written by Guido."])  # doctest: +SKIP
    ['Guido']
"""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np

from kbert.data.task_files import TaskFileError, TaskRows, where
from kbert.tasks import metrics as task_metrics
from kbert.tasks.base import TaskModel, dense_head, encoder_input_layers
from kbert.tasks.preprocessing import (EncoderRows, split_words_with_offsets,  # noqa: F401
                                       window_starts)
from kbert.tasks.task_data import ColumnAdapter

MAX_QUERY_LENGTH = 64


@dataclasses.dataclass
class QAEncoded(EncoderRows):
    token_ids: list
    segment_ids: list
    char_spans: list       # per row position: (start, end) in the context, or None
    max_context: list      # per row position: True where this window is the best for it
    example_index: np.ndarray
    num_examples: int
    truncated: int = 0     # questions cut to MAX_QUERY_LENGTH pieces


def encode_qa(preprocessor, questions, contexts, stride: int) -> QAEncoded:
    """Windows of `[CLS] question [SEP] context-window [SEP]` (the family's packing) with
    character offsets: the context is cut into words (`TextPreprocessor.context_words`),
    each word's pieces remember its span."""
    q_pieces = preprocessor.tokenize_lists(questions)
    words = preprocessor.context_words(contexts)
    flat_words = [w for row in words for w, _, _ in row]
    word_pieces = preprocessor.tokenize_lists(flat_words) if flat_words else []
    out = QAEncoded([], [], [], [], np.zeros(0), len(questions))
    index, position = [], 0
    for i, (question, row) in enumerate(zip(q_pieces, words)):
        if len(question) > MAX_QUERY_LENGTH:
            out.truncated += 1
            question = question[:MAX_QUERY_LENGTH]
        ids, offsets = [], []
        for w, (word, start, end) in enumerate(row):
            pieces = word_pieces[position + w]
            ids.extend(pieces)
            offsets.extend(preprocessor.piece_spans(word, start, end, pieces))
        position += len(row)
        window = (preprocessor.max_seq_length - len(question)
                  - preprocessor.num_special_tokens(pair=True))
        if window < 1:
            raise ValueError(f"max_seq_length {preprocessor.max_seq_length} leaves no room "
                             "for the context")
        starts = window_starts(len(ids), window, min(stride, window))
        best_window = _best_windows(len(ids), starts, window)
        for s in starts:
            n = len(ids[s:s + window])
            row_ids, row_segments = preprocessor.pack(question, ids[s:s + window])
            head = len(row_ids) - n - 1
            out.token_ids.append(row_ids)
            out.segment_ids.append(row_segments)
            out.char_spans.append([None] * head + offsets[s:s + window] + [None])
            best = [best_window[s + j] == s for j in range(n)]
            out.max_context.append([False] * head + best + [False])
            index.append(i)
    out.example_index = np.asarray(index, "int64")
    return out


def _best_windows(length: int, starts: list, window: int) -> list:
    """For each piece, the start of the window giving it the most context on its shorter
    side (run_squad.py's `_check_is_max_context`; ties go to the earlier window)."""
    best = []
    for k in range(length):
        holding = [t for t in starts if t <= k < t + window]
        best.append(max(holding, key=lambda t: (min(k - t, min(t + window, length) - 1 - k),
                                                -t)))
    return best


def answer_positions(encoded: QAEncoded, answers) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) row positions per window for answers given as (char_start, char_end);
    0 ([CLS]) where the window does not hold the whole answer."""
    starts, ends = [], []
    for r, example in enumerate(encoded.example_index):
        a, b = answers[example]
        start = end = 0
        for p, span in enumerate(encoded.char_spans[r]):
            if span is None:
                continue
            if start == 0 and span[0] <= a < span[1]:
                start = p
            if span[0] < b <= span[1]:
                end = p
        inside = start and end and end >= start
        starts.append(start if inside else 0)
        ends.append(end if inside else 0)
    return np.asarray(starts, "int32"), np.asarray(ends, "int32")


def best_spans(encoded: QAEncoded, start_logits, end_logits, contexts, n_best_size: int = 20,
               max_answer_length: int = 30) -> list[dict]:
    """The best answer per example over all its windows: {text, start, end, score}."""
    best = [{"text": "", "start": 0, "end": 0, "score": -np.inf}
            for _ in range(encoded.num_examples)]
    for r, example in enumerate(encoded.example_index):
        spans, is_max = encoded.char_spans[r], encoded.max_context[r]
        s_logits = np.asarray(start_logits[r])[:len(spans)]
        e_logits = np.asarray(end_logits[r])[:len(spans)]
        for s in np.argsort(-s_logits)[:n_best_size]:
            if spans[s] is None or not is_max[s]:
                continue
            for e in np.argsort(-e_logits)[:n_best_size]:
                if spans[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(s_logits[s] + e_logits[e])
                if score > best[example]["score"]:
                    a, b = spans[s][0], spans[e][1]
                    best[example] = {"text": contexts[example][a:b], "start": a, "end": b,
                                     "score": score}
    return best


@keras.saving.register_keras_serializable(package="kbert")
class SelectLast(keras.layers.Layer):
    """`x[..., index]`: one channel of the last axis."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[..., self.index]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="kbert")
class QuestionAnswerer(TaskModel):
    """`{"start_logits", "end_logits"}` [batch, seq] (float32) on the sequence output.

    Args:
        encoder: a `BertEncoder`.
        preprocessor: a `TextPreprocessor` (optional).
        stride: pieces between window starts (run_squad.py's doc_stride).
        n_best_size: start/end candidates per window in post-processing.
        max_answer_length: longest answer in pieces.
    """

    task_name = "question_answering"

    def __init__(self, encoder, preprocessor=None, stride: int | None = None,
                 n_best_size: int = 20, max_answer_length: int = 30, **kwargs):
        config = encoder.config
        # === Layers ===
        head = dense_head(2, config.initializer_range, "qa_outputs")
        # === Functional model ===
        inputs = encoder_input_layers()
        logits = head(encoder(inputs)["sequence_output"])
        start = SelectLast(0, dtype="float32", name="start_logits")(logits)
        end = SelectLast(1, dtype="float32", name="end_logits")(logits)
        super().__init__(inputs=inputs, outputs={"start_logits": start, "end_logits": end},
                         **kwargs)
        # === Config ===
        self._keep_settings(encoder, preprocessor, stride=stride, n_best_size=int(n_best_size),
                            max_answer_length=int(max_answer_length))
        self.qa_outputs = head

    def get_config(self):
        return self._task_config(stride=self.stride, n_best_size=self.n_best_size,
                                 max_answer_length=self.max_answer_length)

    def default_loss(self):
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {"start_logits": loss, "end_logits": loss}

    def default_loss_weights(self):
        return {"start_logits": 0.5, "end_logits": 0.5}   # Hugging Face: mean of the two

    def default_metrics(self):
        return {"start_logits": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                "end_logits": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def _stride(self):
        return self.stride or max((self.preprocessor.max_seq_length - MAX_QUERY_LENGTH) // 2, 1)

    def encode_raw(self, x):
        questions, contexts = x
        return encode_qa(self.preprocessor, list(questions), list(contexts), self._stride())

    def label_arrays(self, y, encoded):
        starts, ends = answer_positions(encoded, y)
        return {"start_logits": starts, "end_logits": ends}

    def answer(self, questions, contexts, batch_size: int = 32) -> list[str]:
        return [a["text"] for a in self.answer_spans(questions, contexts, batch_size)[0]]

    def answer_spans(self, questions, contexts, batch_size: int = 32):
        rows, encoded = self.predict_windows((list(questions), list(contexts)), batch_size)
        return best_spans(encoded, rows["start_logits"], rows["end_logits"], list(contexts),
                          self.n_best_size, self.max_answer_length), encoded


def _parse_answers(value):
    """[(text, char_start or None)] from SQuAD-style answers (dict of lists, list of dicts,
    a JSON string of either, or a plain answer string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [(value, None)]
    if isinstance(value, dict):
        texts = value.get("text", [])
        starts = value.get("answer_start", [None] * len(texts))
        texts = [texts] if isinstance(texts, str) else texts
        starts = [starts] if isinstance(starts, int) else starts
        return list(zip(texts, starts))
    if isinstance(value, list):
        return [(a["text"], a.get("answer_start")) if isinstance(a, dict) else (a, None)
                for a in value]
    return [(str(value), None)]


class QuestionAnsweringAdapter(ColumnAdapter):
    """Rows with question, context and SQuAD-style answers."""

    monitor = "f1"
    required_fields = ("text", "text_pair", "label")
    nonempty_fields = ("text", "text_pair")

    def spans(self, rows: TaskRows) -> list:
        """Per row: list of (char_start, char_end, text); errors name file/line/column."""
        out = []
        for row, line in zip(rows.rows, rows.lines):
            context = str(row[self.columns.text_pair])
            answers = []
            for answer, start in _parse_answers(row[self.columns.label]):
                if start is None:
                    start = context.find(answer)
                if not answer or start < 0 or context[start:start + len(answer)] != answer:
                    raise TaskFileError(
                        f"{where(rows.path, line, self.columns.label)}: answer {answer!r} is "
                        f"not inside its context" + ("" if start is None or start < 0 else
                                                     f" at character {start}"))
                answers.append((start, start + len(answer), answer))
            if not answers:
                raise TaskFileError(f"{where(rows.path, line, self.columns.label)}: no answer")
            out.append(answers)
        return out

    def check(self, rows: TaskRows) -> None:
        self.spans(rows)

    def inputs(self, rows: TaskRows):
        return ([str(q) for q in rows.column(self.columns.text)],
                [str(c) for c in rows.column(self.columns.text_pair)])

    def labels(self, rows: TaskRows):
        return [(a[0][0], a[0][1]) for a in self.spans(rows)]

    def build_model(self, encoder, preprocessor, **settings):
        return QuestionAnswerer(encoder, preprocessor=preprocessor, **settings)

    def evaluate(self, model, rows: TaskRows, batch_size: int = 32):
        questions, contexts = self.inputs(rows)
        predicted, encoded = model.answer_spans(questions, contexts, batch_size)
        gold = [[a[2] for a in answers] for answers in self.spans(rows)]
        result = {**task_metrics.squad_scores(gold, [p["text"] for p in predicted]),
                  "examples": encoded.num_examples, "windows": encoded.num_windows,
                  "truncated": int(encoded.truncated), "skipped": dict(rows.skipped)}
        records = [{"line": ln, "answers": g, "prediction": p["text"], "start": p["start"]}
                   for ln, g, p in zip(rows.lines, gold, predicted)]
        return result, records
