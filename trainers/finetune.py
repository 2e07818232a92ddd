r"""Fine-tune a pre-trained model on labelled rows with Keras `model.fit`.

Examples:
    # Topic classification of Debian fortunes from the real MiniLM checkpoint:
    python -m trainers.finetune --flagfile=trainers/configs/fortunes_minilm.flags

    python -m trainers.finetune --task=pair_classification --init_model=runs/demo/pretrained_model \
        --train_file=train.csv --validation_file=dev.csv --output_dir=runs/pairs

    python -m trainers.finetune --helpfull     # every flag

Everything is checked before anything is written: a bad file, column, label or flag is a
one-line error naming it (exit 2) and `--output_dir` stays untouched. Out:
`<output_dir>/model/` (kbert model directory: task, label names, vocabulary; `kbert.load`
it and `predict` raw strings), `eval.json`, `predictions_<split>.jsonl`, `tensorboard/`.
The epoch with the best validation metric is kept. A killed run started again with the same
flags resumes from its last finished epoch and ends with the same result.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from trainers import finetune_flags  # noqa: E402

FLAGS = flags.FLAGS
finetune_flags.define_finetune_flags(FLAGS)

EXIT_BAD_INPUT = 2
RUN_MARKER = "finetune_run.json"
MODEL_DIR = "model"
BACKUP_DIR = "backup"
BEST_WEIGHTS = "best.weights.h5"
BEST_STATE = "best.json"
SPLITS = ("train", "validation", "test")
KBERT_OUTPUTS = (RUN_MARKER, MODEL_DIR, BACKUP_DIR, BEST_WEIGHTS, BEST_STATE, "eval.json",
                 "tensorboard") + tuple(f"predictions_{s}.jsonl" for s in SPLITS)


# ----------------------------------------------------------------------------- checks
def check_output_dir(fv) -> None:
    """Refuse an existing, non-empty --output_dir that kbert did not make (unless
    --overwrite); one made by kbert with other flags is refused too (it would resume)."""
    path = fv.output_dir
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise finetune_flags.FlagError(f"--output_dir={path} exists and is not a directory")
    entries = os.listdir(path)
    if not entries:
        return
    marker = os.path.join(path, RUN_MARKER)
    if not os.path.isfile(marker):
        if fv.overwrite:
            return
        raise finetune_flags.FlagError(
            f"--output_dir={path} exists and was not written by trainers.finetune; choose "
            f"another directory or pass --overwrite (only kbert's files are replaced)")
    with open(marker, encoding="utf-8") as f:
        previous = json.load(f).get("flags", {})
    if previous != run_flags(fv) and not fv.overwrite:
        changed = sorted(k for k in set(previous) | set(run_flags(fv))
                         if previous.get(k) != run_flags(fv).get(k))
        raise finetune_flags.FlagError(
            f"--output_dir={path} holds a run with other flags ({', '.join(changed)}); use "
            f"another directory or --overwrite to start over")


def run_flags(fv) -> dict:
    keys = ("task", "init_model", "train_file", "validation_file", "test_file", "text_column",
            "text_pair_column", "label_column", "max_seq_length", "doc_stride", "long_inputs",
            "aggregation", "max_answer_length", "n_best_size", "train_batch_size",
            "learning_rate", "weight_decay", "num_train_epochs", "warmup_proportion",
            "dropout", "seed", "mixed_precision", "jit_compile", "max_train_examples",
            "max_eval_examples")
    return {k: fv[k].value for k in keys}


def read_splits(fv, adapter):
    """TaskRows per split, labels checked; TaskFileError names file/line/column."""
    from kbert.data.task_files import read_task_file
    files = {"train": fv.train_file, "validation": fv.validation_file, "test": fv.test_file}
    splits = {}
    for split, path in files.items():
        if not path:
            continue
        rows = read_task_file(path, required=adapter.required,
                              optional=getattr(adapter, "optional", ()),
                              skip_empty=adapter.skip_empty)
        limit = fv.max_train_examples if split == "train" else fv.max_eval_examples
        if limit:
            rows.rows, rows.lines = rows.rows[:limit], rows.lines[:limit]
        splits[split] = rows
    adapter.fit_labels(splits["train"])
    for split in ("validation", "test"):
        if split in splits:
            adapter.check(splits[split])
    return splits


# ----------------------------------------------------------------------------- callbacks
def _callbacks():
    import keras

    class ValidationMetrics(keras.callbacks.Callback):
        """Scores the validation rows as eval.json will (windows aggregated) each epoch."""

        def __init__(self, adapter, rows, batch_size):
            super().__init__()
            self.adapter, self.rows, self.batch_size = adapter, rows, batch_size

        def on_epoch_end(self, epoch, logs=None):
            result, _ = self.adapter.evaluate(self.model, self.rows, self.batch_size)
            for key, value in result.items():
                if isinstance(value, float):
                    logs[f"val_{key}"] = value
            logging.info("epoch %d validation: %s", epoch + 1,
                         {k: v for k, v in result.items() if isinstance(v, float)})

    class KeepBest(keras.callbacks.Callback):
        """Saves the weights of the best epoch (state on disk, so a resumed run knows it)."""

        def __init__(self, monitor, directory):
            super().__init__()
            self.monitor = monitor
            self.weights = os.path.join(directory, BEST_WEIGHTS)
            self.state = os.path.join(directory, BEST_STATE)

        def best(self):
            if not os.path.isfile(self.state):
                return None
            with open(self.state, encoding="utf-8") as f:
                return json.load(f)

        def on_epoch_end(self, epoch, logs=None):
            from kbert import fileio
            value = logs.get(self.monitor)
            best = self.best()
            if value is None or (best is not None and value <= best["value"]):
                return
            with fileio.atomic_path(self.weights) as tmp:
                self.model.save_weights(tmp + ".weights.h5")
                os.replace(tmp + ".weights.h5", tmp)
            fileio.atomic_write_text(self.state, json.dumps(
                {"epoch": epoch + 1, "monitor": self.monitor, "value": value}) + "\n")

    class EpochScalars(keras.callbacks.Callback):
        """Epoch metrics as TensorBoard scalars (train/ and validation/), no tensorboard
        package needed (kbert.training.metrics_logging writes the event files)."""

        def __init__(self, log_dir):
            super().__init__()
            from kbert.training.metrics_logging import TensorBoardWriter
            self.writer = TensorBoardWriter(log_dir)

        def on_epoch_end(self, epoch, logs=None):
            scalars = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            self.writer.write("train", epoch + 1,
                              {k: v for k, v in scalars.items() if not k.startswith("val_")})
            self.writer.write("validation", epoch + 1,
                              {k[4:]: v for k, v in scalars.items() if k.startswith("val_")})

        def on_train_end(self, logs=None):
            self.writer.close()

    return ValidationMetrics, KeepBest, EpochScalars


def _strategy():
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        logging.info("MirroredStrategy over %d GPUs", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


# ----------------------------------------------------------------------------- run
def run(fv) -> dict:
    import keras

    from kbert import fileio
    from kbert.tasks.base import load_encoder_and_preprocessor
    from kbert.tasks.task_data import Columns, adapter_for

    text, pair, label = finetune_flags.columns_for(fv)
    adapter = adapter_for(fv.task, Columns(text, pair, label))
    splits = read_splits(fv, adapter)
    keras.utils.set_random_seed(fv.seed)
    policy = None if fv.mixed_precision == "none" else fv.mixed_precision
    strategy = _strategy()
    with strategy.scope():
        encoder, preprocessor = load_encoder_and_preprocessor(fv.init_model, fv.max_seq_length,
                                                              dtype=policy)
        settings = {"stride": fv.doc_stride}
        if fv.task in ("classification", "pair_classification", "regression"):
            settings.update(aggregation=fv.aggregation, long_inputs=fv.long_inputs,
                            dropout=fv.dropout)
        if fv.task == "question_answering":
            settings.update(max_answer_length=fv.max_answer_length, n_best_size=fv.n_best_size)
        model = adapter.build_model(encoder, preprocessor, **settings)
    train = splits["train"]
    batches, encoded = model.batches(adapter.inputs(train), adapter.labels(train),
                                     fv.train_batch_size, shuffle=True, seed=fv.seed)
    steps = len(batches) * fv.num_train_epochs
    with strategy.scope():
        model.compile(learning_rate=fv.learning_rate, num_train_steps=steps,
                      warmup_proportion=fv.warmup_proportion, weight_decay=fv.weight_decay,
                      jit_compile=fv.jit_compile)

    # Everything is checked: from here on the output directory is written.
    out = fv.output_dir
    os.makedirs(out, exist_ok=True)
    fileio.atomic_write_text(os.path.join(out, RUN_MARKER),
                             json.dumps({"flags": run_flags(fv)}, indent=2) + "\n")
    from kbert.tasks.batching import EpochSetter
    ValidationMetrics, KeepBest, EpochScalars = _callbacks()
    callbacks = [EpochSetter(batches)]
    if "validation" in splits:
        callbacks.append(ValidationMetrics(adapter, splits["validation"], fv.eval_batch_size))
        callbacks.append(KeepBest(f"val_{adapter.monitor}", out))
    callbacks += [EpochScalars(os.path.join(out, "tensorboard")),
                  keras.callbacks.BackupAndRestore(os.path.join(out, BACKUP_DIR))]
    logging.info("training on %d rows (%d examples), %d steps", encoded.num_windows,
                 encoded.num_examples, steps)
    started = time.time()
    model.fit(batches.dataset(), epochs=fv.num_train_epochs, callbacks=callbacks, verbose=1)
    train_seconds = time.time() - started
    best = None
    best_path = os.path.join(out, BEST_WEIGHTS)
    if "validation" in splits and os.path.isfile(best_path):
        model.load_weights(best_path)
        with open(os.path.join(out, BEST_STATE), encoding="utf-8") as f:
            best = json.load(f)

    report = {"task": fv.task, "init_model": fv.init_model, "best_epoch": best,
              "epochs": fv.num_train_epochs, "train_seconds_last_run": round(train_seconds, 1),
              "train": {"examples": encoded.num_examples, "windows": encoded.num_windows,
                        "truncated": int(encoded.truncated), "skipped": dict(train.skipped)}}
    for split in ("validation", "test"):
        if split not in splits:
            continue
        result, records = adapter.evaluate(model, splits[split], fv.eval_batch_size)
        report[split] = result
        fileio.atomic_write_text(os.path.join(out, f"predictions_{split}.jsonl"), "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        logging.info("%s: %s", split, result)
    model.save_pretrained(os.path.join(out, MODEL_DIR),
                          extra={"trained_epochs": fv.num_train_epochs, "best_epoch": best})
    fileio.atomic_write_text(os.path.join(out, "eval.json"), json.dumps(report, indent=2) + "\n")
    return report


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        finetune_flags.validate_finetune_flags(FLAGS)
        check_output_dir(FLAGS)
    except finetune_flags.FlagError as e:
        print(f"finetune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from kbert.checkpoints import CheckpointError
    from kbert.configs import ConfigError
    from kbert.data.task_files import TaskFileError
    try:
        report = run(FLAGS)
    except (finetune_flags.FlagError, TaskFileError, CheckpointError, ConfigError,
            FileNotFoundError) as e:
        print(f"finetune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = {s: {k: v for k, v in report[s].items() if isinstance(v, float)}
               for s in ("validation", "test") if s in report}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    app.run(main)
