"""What every kbert task model shares: building from a model directory, saving one, the
encoder's int inputs, compile defaults, and `fit`/`evaluate`/`predict` on raw strings.

A task model is a Keras functional model whose inputs are the encoder's int tensors
(`token_ids`, `segment_ids`, `padding_mask`), so it converts to `.tflite` without string
ops; its `preprocessor` (a `TextPreprocessor`) is separate and turns raw strings into those
inputs, in-graph for `tf.data` or host-side with long-input windows.
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kbert.tasks.batching import BucketedBatches, EpochSetter, default_buckets
from kbert.tasks.optimization import (DEFAULT_LEARNING_RATE, DEFAULT_WARMUP_PROPORTION,
                                      DEFAULT_WEIGHT_DECAY, fine_tuning_optimizer)
from kbert.tasks.preprocessing import TextPreprocessor

ENCODER_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def encoder_input_layers(extra_dims: int = 0) -> dict:
    """Fresh `keras.Input`s named as the encoder's inputs ([batch, (choices,) seq])."""
    shape = (None,) * (1 + extra_dims)
    return {name: keras.Input(shape=shape, dtype="int32", name=name) for name in ENCODER_INPUTS}


def _serialize(obj):
    return None if obj is None else keras.saving.serialize_keras_object(obj)


def _deserialize(obj):
    return None if obj is None else keras.saving.deserialize_keras_object(obj)


def dense_head(units: int, initializer_range: float, name: str) -> keras.layers.Dense:
    """A float32 output layer (logits stay float32 under mixed precision)."""
    return keras.layers.Dense(
        units, kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        dtype="float32", name=name)


def classifier_layers(encoder, units: int, dropout: float | None):
    """(Dropout "classifier_dropout", float32 Dense "classifier") for a head on `encoder`;
    `dropout=None` takes the encoder's hidden dropout."""
    config = encoder.config
    rate = config.hidden_dropout_prob if dropout is None else dropout
    return (keras.layers.Dropout(rate, name="classifier_dropout"),
            dense_head(units, config.initializer_range, "classifier"))


# Activation of the pre-classifier dense that encoders without a pooler get (Hugging Face's
# DistilBertForSequenceClassification: ReLU; RobertaClassificationHead: tanh, as a pooler).
PRE_CLASSIFIER_ACTIVATION = {"distilbert": "relu"}


@keras.saving.register_keras_serializable(package="kbert")
class FirstToken(keras.layers.Layer):
    """`x[:, 0]`: the hidden state of the first ([CLS] / `<s>`) token."""

    def call(self, x):
        return x[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def sentence_pooling(encoder):
    """A function from the encoder's outputs to one vector per row, for sentence heads.

    Encoders with a pooler give its `pooled_output` (BERT, ALBERT; RoBERTa checkpoints that
    carry one). Encoders without one (DistilBERT; RoBERTa saved without a pooler) get a
    Dense "pre_classifier" of the hidden width on the first token's hidden state, with
    ReLU for DistilBERT (as DistilBertForSequenceClassification) and tanh otherwise (as
    RobertaClassificationHead's dense): the same weights as Hugging Face's heads.
    """
    if encoder.config.use_pooler:
        return lambda outputs: outputs["pooled_output"]
    config = encoder.config
    first = FirstToken(name="first_token")
    dense = keras.layers.Dense(
        config.hidden_size, activation=PRE_CLASSIFIER_ACTIVATION.get(config.family, "tanh"),
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=config.initializer_range),
        name="pre_classifier")
    return lambda outputs: dense(first(outputs["sequence_output"]))


def _encoder_of(model):
    from kbert.models import BertEncoder
    if isinstance(model, BertEncoder):
        return model
    if hasattr(model, "encoder"):
        return model.encoder
    raise TypeError(f"{type(model).__name__} holds no BertEncoder")


def load_encoder_and_preprocessor(path: str, max_seq_length: int = 128, dtype=None):
    """(BertEncoder, TextPreprocessor) from a kbert model directory or a Hugging Face /
    Google checkpoint directory (converted in memory) of any family: the preprocessor has
    the family's tokenizer files and packing. Errors name the path."""
    import kbert
    from kbert.checkpoints import CheckpointError, detect_format, import_checkpoint
    from kbert.checkpoints.google import find_google_checkpoint, google_do_lower_case
    from kbert.checkpoints.huggingface import huggingface_do_lower_case
    from kbert.models import BertEncoder
    from kbert.convert import DEFAULT_DO_LOWER_CASE
    from kbert.models.saving import CONFIG_FILE, read_directory_config
    from kbert.tokenizers.families import tokenizer_files

    if not os.path.isdir(path):
        raise FileNotFoundError(f"--init_model: not a directory: {path}")
    config_path = os.path.join(path, CONFIG_FILE)
    is_kbert = False
    if os.path.isfile(config_path):
        try:
            is_kbert = "kbert" in read_directory_config(path)
        except ValueError:
            is_kbert = False
    if is_kbert:
        try:
            encoder = _encoder_of(kbert.load(path))
        except TypeError as e:
            from kbert.configs import ConfigError
            raise ConfigError(f"--init_model: {path}: {e} (fine-tuning starts from a "
                              f"pre-trained or task model kbert wrote)") from e
        lower_case = read_directory_config(path)["kbert"].get("do_lower_case", True)
        vocab_dir = path
    else:
        try:
            source_format = detect_format(path)
        except CheckpointError as e:
            raise FileNotFoundError(f"--init_model: {path} is not a kbert model directory, "
                                    f"Hugging Face or Google BERT checkpoint ({e})") from e
        encoder = _encoder_of(import_checkpoint(
            path, heads="encoder", allow_missing=["pooler.*"],
            ignore_unexpected=["cls.*", "classifier.*", "pre_classifier.*", "qa_outputs.*"]))
        if source_format == "google":
            vocab_dir = find_google_checkpoint(path)[1]
            lower_case = google_do_lower_case(vocab_dir)
        else:
            vocab_dir = path
            lower_case = huggingface_do_lower_case(path)
        if lower_case is None:
            lower_case = DEFAULT_DO_LOWER_CASE.get(encoder.config.family, True)
    family = encoder.config.family
    for file in tokenizer_files(family, vocab_dir):
        if not os.path.isfile(file):
            raise FileNotFoundError(f"--init_model: {path} has no {os.path.basename(file)}")
    if max_seq_length > encoder.config.max_sequence_length:
        from kbert.configs import ConfigError
        raise ConfigError(f"--max_seq_length={max_seq_length} exceeds the "
                          f"{encoder.config.max_sequence_length} positions of {path} "
                          f"(max_position_embeddings {encoder.config.max_position_embeddings})")
    if dtype is not None:
        rebuilt = BertEncoder(encoder.config, dtype=dtype)
        rebuilt.set_weights(encoder.get_weights())
        encoder = rebuilt
    return encoder, TextPreprocessor(vocab_dir, lower_case=lower_case,
                                     max_seq_length=max_seq_length, family=family)


def _is_string_batch(x) -> bool:
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (str, bytes)):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind in ("U", "S", "O")


class TaskModel(keras.Model):
    """Mixin behaviour for kbert task models (see module docstring).

    Subclasses define `__init__` (a functional graph over `encoder_input_layers()`),
    `get_config`, `default_loss()`, `default_metrics()`, and `encode_raw(x)` /
    `label_arrays(y)` for raw inputs.
    """

    task_name = "task"

    @property
    def config(self):
        return self.encoder.config

    def example_inputs(self, batch_size: int = 1, seq_length: int = 8) -> dict:
        ids = np.ones((batch_size, seq_length), "int32")
        return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": ids}

    def _keep_settings(self, encoder, preprocessor, **settings) -> None:
        """Store the constructor's encoder, preprocessor and task settings on the model."""
        self.encoder = encoder
        self.preprocessor = preprocessor
        for name, value in settings.items():
            setattr(self, name, value)

    def _task_config(self, **settings) -> dict:
        """`get_config` of a task model: name, trainable, the serialized encoder and
        preprocessor, and the task's `settings`."""
        return {"name": self.name, "trainable": self.trainable,
                "encoder": _serialize(self.encoder),
                "preprocessor": _serialize(self.preprocessor), **settings}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = _deserialize(config["encoder"])
        config["preprocessor"] = _deserialize(config.get("preprocessor"))
        return cls(**config)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_pretrained(cls, path: str, max_seq_length: int = 128, dtype=None, **kwargs):
        """A new task head on the encoder of `path` (kbert directory or HF/Google checkpoint).

        Example:
            >>> model = TextClassifier.from_pretrained("model_dir", num_classes=3)  # doctest: +SKIP
        """
        encoder, preprocessor = load_encoder_and_preprocessor(path, max_seq_length, dtype)
        return cls(encoder, preprocessor=preprocessor, **kwargs)

    def save_pretrained(self, directory: str, extra: dict | None = None) -> None:
        """Write a kbert model directory (config with task settings, the family's
        tokenizer files, weights)."""
        from kbert.models.saving import save_pretrained
        info = {"task": self.task_name, **(extra or {})}
        if self.preprocessor is None:
            save_pretrained(self, directory, extra=info)
            return
        info["max_seq_length"] = self.preprocessor.max_seq_length
        with tempfile.TemporaryDirectory(prefix="kbert_vocab_") as tmp:
            save_pretrained(self, directory,
                            vocab_file=self.preprocessor.write_tokenizer_files(tmp),
                            do_lower_case=self.preprocessor.lower_case, extra=info)

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="auto", loss="auto", metrics="auto",
                learning_rate: float = DEFAULT_LEARNING_RATE, num_train_steps: int | None = None,
                warmup_proportion: float = DEFAULT_WARMUP_PROPORTION,
                weight_decay: float = DEFAULT_WEIGHT_DECAY, **kwargs):
        """Keras compile with task defaults: AdamW (no decay on LayerNorm/biases), warmup
        and linear decay over `num_train_steps`, the task's loss and metrics."""
        if optimizer == "auto":
            optimizer = fine_tuning_optimizer(self, learning_rate, num_train_steps,
                                              warmup_proportion, weight_decay)
        if loss == "auto":
            loss = self.default_loss()
        if metrics == "auto":
            metrics = self.default_metrics()
        kwargs.setdefault("loss_weights", self.default_loss_weights())
        if self.needs_loss_scaling() and not isinstance(
                optimizer, (str, keras.optimizers.LossScaleOptimizer)):
            # Keras wraps the optimizer only when the *model's* policy is mixed_float16; a task
            # model keeps float32 (its head and loss are float32) while its encoder computes
            # in float16, whose small gradients underflow without loss scaling.
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def needs_loss_scaling(self) -> bool:
        """Whether the encoder computes in float16 (`mixed_float16`): then `compile` wraps
        the optimizer in a dynamic `LossScaleOptimizer`."""
        encoder = getattr(self, "encoder", None)
        # The encoder is a functional model: its layers carry the policy, not the model.
        return encoder is not None and any(
            layer.dtype_policy.compute_dtype == "float16" for layer in encoder._flatten_layers())

    def default_loss_weights(self):
        return None

    # ------------------------------------------------------------------ raw inputs
    def _require_preprocessor(self):
        if self.preprocessor is None:
            raise ValueError(f"{type(self).__name__} has no preprocessor; pass int inputs "
                             "or build it with from_pretrained / preprocessor=")

    def batches(self, x, y=None, batch_size: int = 32, shuffle: bool = False, seed: int = 0,
                bucket_step: int | None = None):
        """(BucketedBatches, encoded) for raw inputs `x` (and labels `y`): length-grouped
        rows, each batch padded to its longest row (to a multiple of 8 under XLA; of
        `bucket_step` when given)."""
        self._require_preprocessor()
        encoded = self.encode_raw(x)
        labels = None if y is None else self.label_arrays(y, encoded)
        # Without XLA one traced graph takes any length: pad each batch to its longest row.
        # XLA compiles a program per shape: keep to a few bucket lengths.
        step = bucket_step or (8 if self.jit_compile else 1)
        buckets = default_buckets(self.preprocessor.max_seq_length, step)
        return BucketedBatches(encoded.features(), labels, batch_size, shuffle, seed,
                               buckets), encoded

    def fit(self, x=None, y=None, batch_size=None, epochs=1, callbacks=None, shuffle=True,
            **kwargs):
        """Keras `fit`; raw strings (with labels `y`) are encoded and length-bucketed."""
        if self._is_raw(x):
            batches, _ = self.batches(x, y, batch_size or 32, shuffle=shuffle,
                                      seed=kwargs.pop("seed", 0))
            callbacks = list(callbacks or []) + [EpochSetter(batches)]
            validation = kwargs.get("validation_data")
            if validation is not None and self._is_raw(validation[0]):
                kwargs["validation_data"] = self.batches(*validation,
                                                         batch_size=batch_size or 32)[0].dataset()
            # shuffle=False: the batches are shuffled already (Keras would warn it ignores it).
            return super().fit(batches.dataset(), epochs=epochs, callbacks=callbacks,
                               shuffle=False, **kwargs)
        if isinstance(x, tf.data.Dataset):
            shuffle = False   # a dataset is shuffled by its maker; Keras would warn it ignores it
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=callbacks,
                           shuffle=shuffle, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        if self._is_raw(x):
            batches, _ = self.batches(x, y, batch_size or 32)
            return super().evaluate(batches.dataset(), **kwargs)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict_windows(self, x, batch_size: int = 32):
        """(outputs: name -> list of per-row arrays in input-row order, encoded) for raw
        inputs; rows keep their batch's padded length (a few bucket lengths)."""
        batches, encoded = self.batches(x, None, batch_size)
        rows = {}
        for (features,), index in zip(batches.batches(), batches._batch_indices()):
            out = self.predict_on_batch(features)
            for name, values in out.items():
                target = rows.setdefault(name, [None] * batches.num_rows)
                for j, i in enumerate(index):
                    target[i] = np.asarray(values[j])
        return rows, encoded

    def _is_raw(self, x) -> bool:
        if _is_string_batch(x):
            return True
        return isinstance(x, (tuple, list)) and len(x) == 2 and all(
            _is_string_batch(p) for p in x)
