"""Length-bucketed batches for `fit`/`predict`: few fixed shapes, deterministic per epoch.

Rows are grouped with rows of similar length and each batch is padded to the smallest
bucket length that holds its longest row (a handful of shapes, so XLA compiles a handful of
programs). The training order is a pure function of (seed, epoch): a run resumed at epoch
k (`keras.callbacks.BackupAndRestore`) sees exactly the batches an uninterrupted run saw,
given the `EpochSetter` callback.

Example:
    >>> batches = BucketedBatches({"token_ids": [[1, 2], [3], [4, 5, 6]]},
    ...                           labels=np.array([0, 1, 0]), batch_size=2, buckets=(2, 4))
    >>> [b[0]["token_ids"].shape for b in batches.batches()]
    [(2, 2), (1, 4)]
"""

from __future__ import annotations

import bisect

import keras
import numpy as np
import tensorflow as tf

IGNORE_LABEL = -100


def default_buckets(max_seq_length: int, step: int = 8) -> tuple[int, ...]:
    """Bucket lengths every `step` tokens up to `max_seq_length` (a batch is padded to the
    smallest bucket that holds its longest row). Step 8 pads little (fine-tuning MiniLM ran
    1.12x faster than with step 32, BUILD_NOTES issue 17) and leaves XLA (`jit_compile`)
    at most max_seq_length / 8 shapes to compile; step 1 pads each batch to its own longest
    row, what `TaskModel.batches` uses without XLA (one traced graph takes any length).

    Example:
        >>> default_buckets(64)
        (8, 16, 24, 32, 40, 48, 56, 64)
    """
    lengths = list(range(step, max_seq_length, step)) + [max_seq_length]
    return tuple(sorted({n for n in lengths if n <= max_seq_length}))


def _row_length(row) -> int:
    if len(row) and isinstance(row[0], (list, tuple, np.ndarray)):
        return max(len(r) for r in row)
    return len(row)


def pad_id_rows(rows, pad_id: int = 0):
    """`(ids, mask, token types)` int32 [rows, longest] from id lists.

    Example:
        >>> ids, mask, types = pad_id_rows([[2, 7, 3], [2, 3]])
        >>> ids.tolist(), mask.tolist()
        ([[2, 7, 3], [2, 3, 0]], [[1, 1, 1], [1, 1, 0]])
    """
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return ids, mask, np.zeros_like(ids)


def pad_rows(rows, length: int, value: int = 0, dtype="int32") -> np.ndarray:
    """Pad a list of sequences (or of lists of sequences, e.g. choices) to `length`."""
    if len(rows) and len(rows[0]) and isinstance(rows[0][0], (list, tuple, np.ndarray)):
        return np.stack([pad_rows(r, length, value, dtype) for r in rows])
    out = np.full((len(rows), length), value, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def _take(values, index):
    if isinstance(values, np.ndarray):
        return values[index]
    return [values[i] for i in index]


class BucketedBatches:
    """Batches of padded rows; `dataset()` is a `tf.data.Dataset` for Keras.

    Args:
        features: name -> list of int sequences (same number of rows each).
        labels: None; an array with one value per row; a list of sequences (per-token
            labels, padded with -100); or a dict of such.
        batch_size: rows per batch.
        shuffle: shuffle (training); otherwise rows keep length-sorted order and `order`
            maps batch rows back to input rows.
        seed: shuffling seed; the epoch is mixed in (`set_epoch`).
        buckets: allowed padded lengths (ascending); rows longer than the last are an error.
    """

    sort_window = 50   # batches whose rows are sorted by length together when shuffling

    def __init__(self, features: dict, labels=None, batch_size: int = 32, shuffle: bool = False,
                 seed: int = 0, buckets=None):
        self.features = features
        self.labels = labels
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        first = next(iter(features.values()))
        self.num_rows = len(first)
        self.lengths = np.array([_row_length(r) for r in first], dtype="int64")
        longest = int(self.lengths.max()) if self.num_rows else 1
        self.buckets = tuple(buckets) if buckets else (longest,)
        if longest > self.buckets[-1]:
            raise ValueError(f"a row of {longest} tokens exceeds the longest bucket "
                             f"{self.buckets[-1]}")
        self.epoch = 0

    def __len__(self) -> int:
        return -(-self.num_rows // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batch_indices(self) -> list[np.ndarray]:
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i:i + self.batch_size] for i in range(0, self.num_rows,
                                                                 self.batch_size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.num_rows)
        # Sort within chunks of `sort_window` batches: similar lengths together, still random.
        chunk = self.batch_size * self.sort_window
        parts = [c[np.argsort(self.lengths[c], kind="stable")]
                 for c in np.split(order, range(chunk, self.num_rows, chunk))]
        order = np.concatenate(parts) if parts else order
        batches = [order[i:i + self.batch_size] for i in range(0, self.num_rows,
                                                               self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    @property
    def order(self) -> np.ndarray:
        """Input row of each output row, for the unshuffled order `predict` sees."""
        return np.concatenate(self._batch_indices()) if self.num_rows else np.zeros(0, "int64")

    def _pad_labels(self, labels, index, length):
        if isinstance(labels, dict):
            return {k: self._pad_labels(v, index, length) for k, v in labels.items()}
        taken = _take(labels, index)
        if isinstance(labels, np.ndarray):
            return taken
        return pad_rows(taken, length, IGNORE_LABEL)

    def batches(self):
        for index in self._batch_indices():
            longest = int(self.lengths[index].max())
            length = self.buckets[bisect.bisect_left(self.buckets, longest)]
            x = {k: pad_rows(_take(v, index), length) for k, v in self.features.items()}
            if self.labels is None:
                yield (x,)
            else:
                yield x, self._pad_labels(self.labels, index, length)

    def dataset(self) -> tf.data.Dataset:
        """A `tf.data.Dataset` re-running `batches()` on each iteration (each epoch)."""
        sample = next(self.batches())

        def spec(a):
            a = np.asarray(a)
            return tf.TensorSpec((None,) * a.ndim, tf.as_dtype(a.dtype))

        signature = tf.nest.map_structure(spec, sample)
        dataset = tf.data.Dataset.from_generator(self.batches, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self)))


class EpochSetter(keras.callbacks.Callback):
    """Tells `BucketedBatches` which epoch starts, so resumed runs reshuffle identically."""

    def __init__(self, batches: BucketedBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)
