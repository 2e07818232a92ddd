"""The `tf.Module` a `.tflite` is converted from: its signatures and their tensors.

- `serving_default(input_ids, attention_mask, token_type_ids)`: int32 [batch, length]
  (any length up to the model's max) -> `logits`, `probabilities` float32 [batch, labels].
- app-ready (`app=True`, what MediaPipe Tasks' `TextClassifier` loads): the one signature
  `serving_default(ids, mask, segment_ids)`, int32 [1, length] (one text, any length up to
  the model's max) -> `probabilities` float32 [1, labels]; nothing else in the file.
- `serving_strings(text)` (with a tokenizer): string [batch] -> the same outputs, through
  tensorflow-text's `FastBertTokenizer` (LiteRT custom ops) and dense packing
  `[CLS] pieces [SEP]`, truncated to `max_seq_length`, padded to the batch's longest row.

Packing uses only gather/where/range (no ragged ops, no `None` indexing), so the graph
around the tokenizer stays in LiteRT builtins.

Example:
    >>> module = ExportModule(model, max_seq_length=128, tokenizer=tok)   # doctest: +SKIP
    >>> module.serving_strings(tf.constant(["hello"]))["logits"].shape     # doctest: +SKIP
    TensorShape([1, 2])
"""

from __future__ import annotations

import tensorflow as tf

from kbert.export.task_model import classifier_logits, encoder_features

DEFAULT_SIGNATURE = "serving_default"
STRINGS_SIGNATURE = "serving_strings"
ID_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("logits", "probabilities")
# The app-ready signature's inputs (MediaPipe's BERT preprocessor names) and output.
APP_INPUTS = ("ids", "mask", "segment_ids")
APP_OUTPUTS = ("probabilities",)


def pack_token_ids(flat_ids, row_splits, max_seq_length, cls_id, sep_id, pad_id):
    """`[CLS] ids [SEP]` per row, padded to the longest row: `(input_ids, attention_mask)`.

    `flat_ids`/`row_splits` are a ragged `[batch, (pieces)]` tensor's parts.

    Example:
        >>> ids, mask = pack_token_ids(tf.constant([7, 8, 9]), tf.constant([0, 2, 3]),
        ...                            8, cls_id=1, sep_id=2, pad_id=0)
        >>> ids.numpy().tolist()
        [[1, 7, 8, 2], [1, 9, 2, 0]]
    """
    flat_ids = tf.cast(flat_ids, tf.int32)
    row_splits = tf.cast(row_splits, tf.int32)
    # One padding id at the end keeps every gather in range, even for an empty batch row.
    values = tf.concat([flat_ids, tf.fill([1], tf.constant(pad_id, tf.int32))], axis=0)
    starts = row_splits[:-1]
    lengths = tf.minimum(row_splits[1:] - starts, max_seq_length - 2)
    width = tf.reduce_max(tf.concat([lengths, tf.zeros([1], tf.int32)], 0)) + 2
    positions = tf.expand_dims(tf.range(width, dtype=tf.int32), 0)      # [1, width]
    lengths_2d = tf.expand_dims(lengths, 1)                              # [batch, 1]
    piece_index = tf.expand_dims(starts, 1) + positions - 1
    is_piece = tf.logical_and(positions >= 1, positions <= lengths_2d)
    safe_index = tf.where(is_piece, piece_index, tf.zeros_like(piece_index) + tf.size(flat_ids))
    ids = tf.gather(values, safe_index)
    ids = tf.where(tf.equal(positions, 0), tf.zeros_like(ids) + cls_id, ids)
    ids = tf.where(tf.equal(positions, lengths_2d + 1), tf.zeros_like(ids) + sep_id, ids)
    mask = tf.cast(positions <= lengths_2d + 1, tf.int32)
    return ids, mask


def truncate_packed(ids, mask, segment_ids, max_seq_length):
    """`[CLS] pieces [SEP]` rows longer than `max_seq_length` cut as kbert's tokenizer cuts
    them: the first `max_seq_length - 2` pieces, then the row's last token (`[SEP]`).

    MediaPipe feeds a model with dynamic input shapes the whole text, untruncated; this
    keeps a long text inside the position embeddings. Shorter rows pass unchanged.

    Example:
        >>> ids = tf.constant([[1, 7, 8, 9, 2]])
        >>> truncate_packed(ids, ids, ids, 4)[0].numpy().tolist()
        [[1, 7, 8, 2]]
    """
    length = tf.shape(ids)[1]
    kept = tf.minimum(length, max_seq_length)
    index = tf.concat([tf.range(kept - 1), tf.reshape(length - 1, [1])], axis=0)
    return tuple(tf.gather(t, index, axis=1) for t in (ids, mask, segment_ids))


def graph_only(model):
    """`model` without its host-side preprocessor: a `kbert.tasks` model keeps a
    `TextPreprocessor` (tokenizer lookup tables) as an attribute, which the SavedModel would
    otherwise carry as hash-table ops LiteRT lacks; the functional view on the same layers
    and weights holds only the int-input graph."""
    if getattr(model, "preprocessor", None) is None:
        return model
    import keras
    return keras.Model(model.inputs, model.outputs, name=model.name)


class ExportModule:
    """A task model wrapped in the export signatures (see the module docstring).

    `save(path)` writes a SavedModel through `keras.export.ExportArchive`, which tracks
    Keras 3 variables so the converter can freeze them (a plain `tf.Module` holding a
    Keras 3 model leaves them as uninitialised resource variables in the `.tflite`).
    """

    def __init__(self, model, max_seq_length: int, tokenizer=None, app: bool = False):
        if app and tokenizer is not None:
            raise ValueError("the app-ready file has one signature: no strings signature")
        self.model = graph_only(model)
        self.max_seq_length = int(max_seq_length)
        self.tokenizer = tokenizer
        self.app = app
        self._id_specs = ([tf.TensorSpec([1, None], tf.int32, name) for name in APP_INPUTS]
                          if app else
                          [tf.TensorSpec([None, None], tf.int32, name) for name in ID_INPUTS])

    def serving_ids(self, input_ids, attention_mask, token_type_ids):
        logits = classifier_logits(
            self.model, encoder_features(input_ids, attention_mask, token_type_ids))
        logits = tf.cast(logits, tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    def serving_app(self, ids, mask, segment_ids):
        ids, mask, segment_ids = truncate_packed(ids, mask, segment_ids, self.max_seq_length)
        logits = classifier_logits(self.model, encoder_features(ids, mask, segment_ids))
        return {"probabilities": tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}

    def serving_text(self, text):
        tok = self.tokenizer
        pieces = tok.tokenize(text)
        ids, mask = pack_token_ids(pieces.flat_values, pieces.row_splits, self.max_seq_length,
                                   tok.cls_id, tok.sep_id, tok.pad_id)
        return self.serving_ids(ids, mask, tf.zeros_like(ids))

    def signature_names(self) -> list:
        names = [DEFAULT_SIGNATURE]
        if self.tokenizer is not None:
            names.append(STRINGS_SIGNATURE)
        return names

    def save(self, path: str) -> list:
        """Write the SavedModel; return its signature names."""
        import keras
        archive = keras.export.ExportArchive()
        archive.track(self.model)
        archive.add_endpoint(DEFAULT_SIGNATURE, self.serving_app if self.app else
                             self.serving_ids, input_signature=self._id_specs)
        if self.tokenizer is not None:
            archive.track(self.tokenizer)
            archive.add_endpoint(STRINGS_SIGNATURE, self.serving_text,
                                 input_signature=[tf.TensorSpec([None], tf.string, "text")])
        archive.write_out(path, verbose=False)
        return self.signature_names()
