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
import time

from absl import app, flags, logging  # noqa: E402

from kbert import console  # noqa: E402

console.quiet_tensorflow()   # before anything imports TensorFlow

from trainers import finetune_flags  # noqa: E402
from trainers import xla_fusion_flag  # noqa: E402

FLAGS = flags.FLAGS
finetune_flags.define_finetune_flags(FLAGS)

EXIT_BAD_INPUT = 2
RUN_KIND = "finetune"
LEGACY_RUN_MARKER = "finetune_run.json"   # what marked a run before kbert.outputs' marker
MODEL_DIR = "model"
BACKUP_DIR = "backup"
BEST_DIR = "best"            # best.weights.h5 + best.json of the best epoch, swapped in whole
BEST_WEIGHTS = "model.weights.h5"
BEST_STATE = "state.json"
SPLITS = ("train", "validation", "test")
PROGRESS_ENV = "KBERT_PROGRESS_FILE"   # where to report steps for a waiting parent
KBERT_OUTPUTS = (MODEL_DIR, BACKUP_DIR, BEST_DIR, "eval.json", "tensorboard") + tuple(
    f"predictions_{s}.jsonl" for s in SPLITS)


# ----------------------------------------------------------------------------- the run directory
def _legacy_run(directory: str) -> dict | None:
    """A run written before kbert.outputs' marker (it had finetune_run.json)."""
    try:
        with open(os.path.join(directory, LEGACY_RUN_MARKER), encoding="utf-8") as f:
            settings = json.load(f).get("flags")
    except (OSError, ValueError, AttributeError):
        return None
    names = [n for n in (*KBERT_OUTPUTS, LEGACY_RUN_MARKER, "best.weights.h5", "best.json")
             if os.path.lexists(os.path.join(directory, n))]
    return {"format": "kbert.outputs/2", "kind": RUN_KIND, "run": settings, "pending": {},
            "entries": {n: {"kind": RUN_KIND, "tree": True} for n in names}}


def run_directory(fv):
    """--output_dir as a kbert.outputs.RunDirectory: the same flags resume (or report a
    finished run), other flags need --overwrite (a fresh start: kbert's files of the earlier
    run go, the user's stay), a user's file where the run writes one is refused."""
    from kbert import outputs
    return outputs.RunDirectory(
        fv.output_dir, RUN_KIND, run_flags(fv),
        inputs=[fv.init_model, fv.train_file, fv.validation_file, fv.test_file]
        + ([fv.labels] if fv.labels and os.path.isfile(fv.labels) else []),
        overwrite=fv.overwrite, names=KBERT_OUTPUTS, legacy=_legacy_run)


def check_output_dir(fv) -> None:
    """Refuse an unusable --output_dir before anything is loaded (see `run_directory`)."""
    from kbert import outputs
    try:
        run_directory(fv).check()
    except outputs.OutputError as e:
        raise finetune_flags.FlagError(str(e)) from e


def run_flags(fv) -> dict:
    keys = ("task", "init_model", "train_file", "validation_file", "test_file", "text_column",
            "text_pair_column", "label_column", "max_seq_length", "doc_stride", "long_inputs",
            "aggregation", "max_answer_length", "n_best_size", "train_batch_size",
            "learning_rate", "weight_decay", "num_train_epochs", "warmup_proportion",
            "dropout", "seed", "mixed_precision", "jit_compile", "max_train_examples",
            "max_eval_examples", "quoting", "labels")
    return {k: fv[k].value for k in keys}


def finished_report(run) -> dict | None:
    """eval.json of a run that finished (its model is there and no backup is pending)."""
    if not (run.owns("eval.json") and run.owns(MODEL_DIR)) or run.owns(BACKUP_DIR):
        return None
    with open(run.path("eval.json"), encoding="utf-8") as f:
        return json.load(f)


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
                              skip_empty=adapter.skip_empty,
                              label_columns=getattr(adapter, "label_columns", ()),
                              quoting=fv.quoting)
        limit = fv.max_train_examples if split == "train" else fv.max_eval_examples
        if limit:
            rows.rows, rows.lines = rows.rows[:limit], rows.lines[:limit]
        splits[split] = rows
    adapter.fit_labels(splits["train"], finetune_flags.label_set(fv))
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
        """Saves the weights of the best epoch with its state (one folder swapped in whole,
        so a resumed run knows it and a kill never pairs one epoch's weights with another's
        score)."""

        def __init__(self, monitor, run):
            super().__init__()
            self.monitor, self.run = monitor, run

        def best(self):
            state = self.run.path(os.path.join(BEST_DIR, BEST_STATE))
            if not self.run.owns(BEST_DIR) or not os.path.isfile(state):
                return None
            with open(state, encoding="utf-8") as f:
                return json.load(f)

        def on_epoch_end(self, epoch, logs=None):
            from kbert.models.saving import require_room_for_weights, save_model_weights
            value = logs.get(self.monitor)
            best = self.best()
            if value is None or (best is not None and value <= best["value"]):
                return
            require_room_for_weights(self.model, self.run.root)
            with self.run.directory(BEST_DIR, "best_epoch") as staging:
                save_model_weights(self.model, os.path.join(staging, BEST_WEIGHTS))
                with open(os.path.join(staging, BEST_STATE), "w", encoding="utf-8") as f:
                    json.dump({"epoch": epoch + 1, "monitor": self.monitor, "value": value}, f)

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


# ----------------------------------------------------------------------------- run
def run(fv) -> dict:
    import keras

    from kbert.tasks.base import load_encoder_and_preprocessor
    from kbert.tasks.task_data import Columns, adapter_for
    from kbert.training.distribution import create_strategy

    finished = finished_report(run_directory(fv)) if _same_run(fv) and not fv.overwrite \
        else None
    if finished is not None:
        logging.warning("the run in %s has finished (eval.json); pass --overwrite to train "
                        "again", fv.output_dir)
        return finished
    text, pair, label = finetune_flags.columns_for(fv)
    adapter = adapter_for(fv.task, Columns(text, pair, label))
    splits = read_splits(fv, adapter)
    # MirroredStrategy over every visible GPU (or --num_cpu_devices logical CPUs); one device
    # otherwise. Keras fit handles the replicas; the batch size is global.
    strategy = create_strategy("auto", fv.num_cpu_devices)
    keras.utils.set_random_seed(fv.seed)
    policy = None if fv.mixed_precision == "none" else fv.mixed_precision
    logging.info("precision %s; XLA fusion of element-wise ops (--xla_fusion=%s): %s",
                 policy or "float32", fv.xla_fusion, os.environ.get("TF_XLA_FLAGS") or "off")
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
    encoder.gradient_checkpointing = fv.gradient_checkpointing
    model.jit_compile = fv.jit_compile   # batches pad to XLA's few shapes only under XLA
    train = splits["train"]
    batches, encoded = model.batches(adapter.inputs(train), adapter.labels(train),
                                     fv.train_batch_size, shuffle=True, seed=fv.seed)
    steps = len(batches) * fv.num_train_epochs
    with strategy.scope():
        model.compile(learning_rate=fv.learning_rate, num_train_steps=steps,
                      warmup_proportion=fv.warmup_proportion, weight_decay=fv.weight_decay,
                      jit_compile=fv.jit_compile)

    # Everything is checked: from here on the output directory is written.
    run = run_directory(fv).open()
    with run.guard():
        if run.resuming:
            logging.info("resuming the run in %s", run.root)
        from kbert.tasks.batching import EpochSetter
        from kbert.training.fit_backup import SafeBackupAndRestore
        ValidationMetrics, KeepBest, EpochScalars = _callbacks()
        callbacks = [EpochSetter(batches)]
        keep_best = None
        if "validation" in splits:
            callbacks.append(ValidationMetrics(adapter, splits["validation"], fv.eval_batch_size))
            keep_best = KeepBest(f"val_{adapter.monitor}", run)
            callbacks.append(keep_best)
        backup = SafeBackupAndRestore(run, BACKUP_DIR)
        callbacks += [EpochScalars(run.claim("tensorboard")), backup]
        if os.environ.get(PROGRESS_ENV):     # a parent (export.road) shows our progress
            from kbert.training.progress import ProgressFile
            callbacks.append(ProgressFile(os.environ[PROGRESS_ENV]).keras_callback(
                len(batches), fv.num_train_epochs))
        logging.info("training on %d rows (%d examples), %d steps", encoded.num_windows,
                     encoded.num_examples, steps)
        started = time.time()
        model.fit(batches.dataset(), epochs=fv.num_train_epochs, callbacks=callbacks, verbose=1)
        train_seconds = time.time() - started
        best = keep_best.best() if keep_best else None
        if best is not None:
            model.load_weights(run.path(os.path.join(BEST_DIR, BEST_WEIGHTS)))

        report = {"task": fv.task, "init_model": fv.init_model, "best_epoch": best,
                  "restarted": backup.restarted_because,
                  "epochs": fv.num_train_epochs, "train_seconds_last_run": round(train_seconds, 1),
                  "train": {"examples": encoded.num_examples, "windows": encoded.num_windows,
                            "truncated": int(encoded.truncated), "skipped": dict(train.skipped)}}
        for split in ("validation", "test"):
            if split not in splits:
                continue
            result, records = adapter.evaluate(model, splits[split], fv.eval_batch_size)
            report[split] = result
            run.write_text(f"predictions_{split}.jsonl", "".join(
                json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            logging.info("%s: %s", split, result)
        with run.directory(MODEL_DIR, "model") as staging:
            extra = {"trained_epochs": fv.num_train_epochs, "best_epoch": best}
            if fv.task == "pair_classification":   # the export stage refuses what it
                extra["text_pair_column"] = pair    # cannot feed (one text a row)
            model.save_pretrained(staging, extra=extra)
        run.write_text("eval.json", json.dumps(report, indent=2) + "\n")
        run.release_missing()
        return report


def _same_run(fv) -> bool:
    from kbert.outputs import read_marker
    marker = read_marker(fv.output_dir) if os.path.isdir(fv.output_dir) else None
    return bool(marker) and marker.get("kind") == RUN_KIND and \
        marker.get("run") == json.loads(json.dumps(run_flags(fv)))


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        finetune_flags.validate_finetune_flags(FLAGS)
        check_output_dir(FLAGS)
    except finetune_flags.FlagError as e:
        return console.report_error("finetune", e, FLAGS.verbosity)
    console.import_tensorflow()
    from kbert.checkpoints import CheckpointError
    from kbert.configs import ConfigError
    from kbert.data.task_files import TaskFileError
    from kbert.outputs import OutputError, is_environment_fault
    try:
        report = run(FLAGS)
    except (finetune_flags.FlagError, TaskFileError, CheckpointError, ConfigError,
            FileNotFoundError, OutputError) as e:
        return console.report_error("finetune", e, FLAGS.verbosity)
    except Exception as e:   # noqa: BLE001 — a full disk / unwritable place, in one line
        if not is_environment_fault(e):
            raise
        return console.report_error("finetune", e, FLAGS.verbosity)
    summary = {s: {k: v for k, v in report[s].items() if isinstance(v, float)}
               for s in ("validation", "test") if s in report}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=xla_fusion_flag.flags_parser(   # auto: off (see its help)
        FLAGS, "finetune", lambda fv: "none"))
