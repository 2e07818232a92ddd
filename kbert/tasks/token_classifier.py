"""Token classification (NER, tagging): one label per word, predicted on its first piece.

Word labels go onto the first word-piece of each word; the other pieces (and [CLS], [SEP],
padding) get -100 and are ignored by the loss and the accuracy. Predictions come back per
word. Sentences longer than a window are split into overlapping windows; each word is
predicted from the window where it has the most context on both sides.

Example:
    >>> model = TokenClassifier.from_pretrained("model_dir", num_classes=3,
    ...                                         label_names=["O", "B-X", "I-X"])  # doctest: +SKIP
    >>> model.tag([["Guido", "wrote", "Python"]])                                # doctest: +SKIP
    [['B-X', 'O', 'B-X']]
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from kbert.data.task_files import TaskFileError, TaskRows, where
from kbert.tasks import metrics as task_metrics
from kbert.tasks.base import TaskModel, classifier_layers, encoder_input_layers
from kbert.tasks.batching import IGNORE_LABEL
from kbert.tasks.preprocessing import EncoderRows, window_starts
from kbert.tasks.task_data import ColumnAdapter, checked_label_set, unknown_label_hint


@keras.saving.register_keras_serializable(package="kbert")
class MaskedAccuracy(keras.metrics.Mean):
    """Accuracy over positions whose label is not -100."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.cast(ops.not_equal(y_true, IGNORE_LABEL), "float32")
        hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true),
                        "float32")
        super().update_state(hits, sample_weight=mask)


@dataclasses.dataclass
class WordEncoded(EncoderRows):
    """Windows of word-pieces with the word each first piece starts (-1 elsewhere)."""
    token_ids: list
    segment_ids: list
    word_index: list          # per row position: word number, or -1 (not a first piece)
    context_score: list       # per row position: min(left, right) context in the window
    example_index: np.ndarray
    num_examples: int
    num_words: list
    truncated: int = 0


def encode_words(preprocessor, sentences, stride: int | None = None) -> WordEncoded:
    """Windows of `[CLS] pieces [SEP]` for pre-split sentences (lists of words); each word
    is tokenized alone as a word of a sentence (`TextPreprocessor.tokenize_words`), so the
    label goes on its first piece (WordPiece's non-"##", BPE's "Ġ", SentencePiece's "▁")."""
    flat = [w for words in sentences for w in words]
    pieces = preprocessor.tokenize_words(flat) if flat else []
    window = preprocessor.max_seq_length - preprocessor.num_special_tokens()
    stride = min(stride or max(window // 2, 1), window)
    out = WordEncoded([], [], [], [], np.zeros(0), len(sentences), [])
    index, position = [], 0
    for i, words in enumerate(sentences):
        ids, word_of = [], []
        for w in range(len(words)):
            word_pieces = pieces[position + w] or [preprocessor.tokenizer.unk_id]
            ids.extend(word_pieces)
            word_of.extend([w] + [-1] * (len(word_pieces) - 1))
        position += len(words)
        out.num_words.append(len(words))
        for start in window_starts(len(ids), window, stride):
            chunk = slice(start, start + window)
            n = len(ids[chunk])
            row_ids, row_segments = preprocessor.pack(ids[chunk])
            out.token_ids.append(row_ids)
            out.segment_ids.append(row_segments)
            out.word_index.append([-1] + word_of[chunk] + [-1])
            out.context_score.append([-1] + [min(j, n - 1 - j) for j in range(n)] + [-1])
            index.append(i)
    out.example_index = np.asarray(index, "int64")
    return out


def align_labels(encoded: WordEncoded, word_labels) -> list:
    """Per-row labels: the word's label on its first piece, -100 elsewhere (each word is
    labelled in every window holding its first piece)."""
    rows = []
    for r, example in enumerate(encoded.example_index):
        labels = word_labels[example]
        rows.append([labels[w] if w >= 0 else IGNORE_LABEL for w in encoded.word_index[r]])
    return rows


def word_predictions(encoded: WordEncoded, row_logits) -> list:
    """Per example, one argmax label id per word, each from its best-context window."""
    best = [[(-2, 0)] * n for n in encoded.num_words]   # (context score, label id)
    for r, example in enumerate(encoded.example_index):
        logits = np.asarray(row_logits[r])
        for position, w in enumerate(encoded.word_index[r]):
            if w >= 0 and encoded.context_score[r][position] > best[example][w][0]:
                best[example][w] = (encoded.context_score[r][position],
                                    int(np.argmax(logits[position])))
    return [[label for _, label in words] for words in best]


@keras.saving.register_keras_serializable(package="kbert")
class TokenClassifier(TaskModel):
    """Per-token logits `{"logits": [batch, seq, num_classes]}` on the sequence output.

    Args:
        encoder: a `BertEncoder`.
        num_classes: number of tags.
        preprocessor: a `TextPreprocessor` (optional).
        label_names: tag names, index = id.
        dropout: before the classifier (default: the encoder's hidden dropout).
        stride: pieces between window starts for long sentences.
    """

    task_name = "token_classification"

    def __init__(self, encoder, num_classes: int, preprocessor=None, label_names=None,
                 dropout: float | None = None, stride: int | None = None, **kwargs):
        # === Layers ===
        dropout_layer, head = classifier_layers(encoder, num_classes, dropout)
        # === Functional model ===
        inputs = encoder_input_layers()
        sequence = encoder(inputs)["sequence_output"]
        logits = head(dropout_layer(sequence))
        super().__init__(inputs=inputs, outputs={"logits": logits}, **kwargs)
        # === Config ===
        self._keep_settings(encoder, preprocessor, num_classes=int(num_classes),
                            label_names=list(label_names) if label_names is not None else None,
                            dropout=dropout, stride=stride)
        self.classifier = head

    def get_config(self):
        return self._task_config(num_classes=self.num_classes, label_names=self.label_names,
                                 dropout=self.dropout, stride=self.stride)

    def default_loss(self):
        return {"logits": keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=IGNORE_LABEL)}

    def default_metrics(self):
        return {"logits": [MaskedAccuracy()]}

    def _is_raw(self, x) -> bool:
        return isinstance(x, (list, tuple)) and bool(x) and isinstance(x[0], (list, tuple)) \
            and (not x[0] or isinstance(x[0][0], str))

    def encode_raw(self, x):
        return encode_words(self.preprocessor, x, self.stride)

    def label_arrays(self, y, encoded):
        index = {n: i for i, n in enumerate(self.label_names or [])}
        ids = [[index[t] if isinstance(t, str) else int(t) for t in tags] for tags in y]
        return {"logits": align_labels(encoded, ids)}

    def tag(self, sentences, batch_size: int = 32):
        """Tag names (or ids) per word for pre-split sentences."""
        rows, encoded = self.predict_windows(sentences, batch_size)
        ids = word_predictions(encoded, rows["logits"])
        names = self.label_names
        return [[names[i] if names else i for i in s] for s in ids]


class TokenClassificationAdapter(ColumnAdapter):
    """Rows with a list of words and a list of tags (JSONL lists, or space-separated
    strings in CSV/TSV)."""

    monitor = "f1"

    @staticmethod
    def _split(value):
        return value.split() if isinstance(value, str) else list(value)

    def inputs(self, rows: TaskRows):
        return [[str(w) for w in self._split(v)] for v in rows.column(self.columns.text)]

    def labels(self, rows: TaskRows):
        return [[str(t) for t in self._split(v)] for v in rows.column(self.columns.label)]

    def fit_labels(self, train: TaskRows, labels=None) -> None:
        """Tag names from the training rows (sorted), or `labels` (the full set, in order)."""
        self._check_lengths(train)
        learned = {t for tags in self.labels(train) for t in tags}
        self.label_names = (sorted(learned) if labels is None
                            else checked_label_set(labels, learned, train.path))

    def _check_lengths(self, rows):
        for words, tags, line in zip(self.inputs(rows), self.labels(rows), rows.lines):
            if len(words) != len(tags):
                raise TaskFileError(f"{where(rows.path, line, self.columns.label)}: "
                                    f"{len(tags)} tags for {len(words)} words")

    def check(self, rows: TaskRows) -> None:
        self._check_lengths(rows)
        known = set(self.label_names)
        for tags, line in zip(self.labels(rows), rows.lines):
            unknown = [t for t in tags if t not in known]
            if unknown:
                raise TaskFileError(f"{where(rows.path, line, self.columns.label)}: tag "
                                    f"{unknown[0]!r} "
                                    f"{unknown_label_hint(rows, self.label_names)}")

    def build_model(self, encoder, preprocessor, **settings):
        return TokenClassifier(encoder, len(self.label_names), preprocessor=preprocessor,
                               label_names=self.label_names, stride=settings.get("stride"))

    def evaluate(self, model, rows: TaskRows, batch_size: int = 32):
        words = self.inputs(rows)
        row_outputs, encoded = model.predict_windows(words, batch_size)
        predicted = [[self.label_names[i] for i in s]
                     for s in word_predictions(encoded, row_outputs["logits"])]
        gold = self.labels(rows)
        flat_gold = [t for s in gold for t in s]
        flat_pred = [t for s in predicted for t in s]
        result = {**task_metrics.entity_scores(gold, predicted),
                  "token_accuracy": task_metrics.accuracy(flat_gold, flat_pred),
                  "examples": encoded.num_examples, "windows": encoded.num_windows,
                  "truncated": 0, "skipped": dict(rows.skipped)}
        records = [{"line": ln, "tags": g, "prediction": p}
                   for ln, g, p in zip(rows.lines, gold, predicted)]
        return result, records
