r"""Pre-train BERT (masked LM + next-sentence prediction) with a custom distributed loop.

Examples:
    # The CPU demo: a tiny BERT on the embedded corpus, ~10 minutes on 2 cores.
    python -m trainers.pretrain --flagfile=trainers/configs/demo.flags

    # From records made by trainers.create_pretraining_data, on every visible GPU:
    python -m trainers.pretrain --input_file=/data/pretrain128 --vocab_file=vocab.txt \
        --model_size=base --output_dir=/runs/base --train_batch_size=256

    # Two workers (run on each with its own TF_CONFIG task index):
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' python -m trainers.pretrain ...

    python -m trainers.pretrain --helpfull     # every flag

A killed run continues where it stopped when started again with the same flags (weights,
optimizer state, step and input position come from the newest checkpoint). At the end,
`<output_dir>/pretrained_model/` holds config.json, vocab.txt and the weights (read it with
`kbert.load`), and `<output_dir>/loss.png` the curves.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from absl import app, flags, logging

from kbert import console

console.quiet_tensorflow()   # before anything imports TensorFlow

from trainers import flags as pretrain_flags  # noqa: E402
from trainers import xla_fusion_flag  # noqa: E402
from kbert.training.precision import resolve_precision  # noqa: E402

FLAGS = flags.FLAGS
pretrain_flags.define_pretrain_flags(FLAGS)

PRETRAINED_MODEL_DIR = "pretrained_model"
RUN_KIND = "pretrain"
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


# ----------------------------------------------------------------------------- inputs
def _input_files(patterns: str, raw_text: bool) -> list[str]:
    """The files a pattern list names (records or text), in a stable order."""
    if raw_text:
        from kbert.data import expand_input_patterns
        return expand_input_patterns(patterns, flag="--input_file")
    from kbert.data import record_files
    return record_files(patterns)[0]


def _tokenizer_files(fv, learn: bool = False, train_patterns: str | None = None) -> list[str]:
    """The family's tokenizer files: given, found in output_dir / init_checkpoint, or
    (with `learn`) learned now from the training input (never from the held-out file)."""
    from kbert.tokenizers import families
    if fv.vocab_file:
        return families.files_beside(fv.model, fv.vocab_file)
    if fv.learn_vocab_size:
        files = families.tokenizer_files(fv.model, fv.output_dir)
        if all(os.path.isfile(f) for f in files):
            logging.info("reusing the vocabulary learned earlier: %s", ", ".join(files))
            return files
        if not learn:
            return []
        # Only the training text: a held-out file must not shape the vocabulary either.
        inputs = _input_files(train_patterns or fv.input_file, raw_text=True)
        logging.info("learning a %d-token %s vocabulary from %d files", fv.learn_vocab_size,
                     fv.model, len(inputs))
        import tempfile
        from kbert import corpus
        try:   # dumps and JSON lines: learned from their cleaned text, never their markup
            with tempfile.TemporaryDirectory(prefix="kbert-vocab-text-") as text_dir:
                inputs = corpus.as_text_files(inputs, text_dir, text_field=fv.text_field,
                                              language=fv.language)
                return families.learn_family_tokenizer(
                    fv.model, inputs, fv.learn_vocab_size, fv.output_dir,
                    lower_case=fv.do_lower_case)
        except corpus.CorpusError as e:
            raise pretrain_flags.FlagError(f"--input_file: {e}") from e
        except ValueError as e:
            raise pretrain_flags.FlagError(
                f"--learn_vocab_size={fv.learn_vocab_size}: {e}") from e
    files = families.tokenizer_files(fv.model, fv.init_checkpoint)
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise pretrain_flags.FlagError(f"--init_checkpoint={fv.init_checkpoint} has no "
                                       f"{os.path.basename(missing[0])}; pass --vocab_file")
    return files


def _model_config(fv, vocab_size: int):
    from kbert.configs import BertConfig, ConfigError
    if fv.bert_config_file:
        config = BertConfig.from_json(fv.bert_config_file)
        source = f"--bert_config_file={fv.bert_config_file}"
    elif fv.model_size:
        config = BertConfig.named(fv.model_size, family=fv.model, vocab_size=vocab_size)
        source = f"--model={fv.model} --model_size={fv.model_size}"
    else:
        from kbert.models.saving import read_directory_config
        config = BertConfig.from_dict(read_directory_config(fv.init_checkpoint),
                                      source=fv.init_checkpoint)
        source = f"--init_checkpoint={fv.init_checkpoint}"
    if config.family != fv.model:
        raise pretrain_flags.FlagError(f"{source} describes a {config.family} model; pass "
                                       f"--model={config.family}")
    overrides = {name: fv[name].value for name in
                 ("hidden_dropout_prob", "attention_probs_dropout_prob",
                  "num_attention_heads", "initializer_range", "embedding_size",
                  "num_hidden_layers", "share_layers")
                 if fv[name].value is not None}
    if overrides:
        try:
            config = config.replace(**overrides)
        except ConfigError as e:
            flags_given = " ".join(f"--{k}={v}" for k, v in overrides.items())
            raise pretrain_flags.FlagError(f"{flags_given} with {source}: {e}") from e
    if config.vocab_size != vocab_size:
        raise pretrain_flags.FlagError(
            f"{source} has vocab_size {config.vocab_size} but the vocabulary has "
            f"{vocab_size} tokens")
    longest = max(fv.max_seq_length, fv.phase2_max_seq_length or 0)
    if longest > config.max_sequence_length:
        raise pretrain_flags.FlagError(
            f"sequence length {longest} exceeds the {config.max_sequence_length} positions "
            f"(max_position_embeddings {config.max_position_embeddings}) of {source}")
    return config


def _dataset_fn(fv, patterns: str, batch_size: int, seq_length: int, predictions: int,
                tokenizer, is_training: bool, seed: int, sentence_objective: str = "nsp"):
    from kbert import data

    def dataset_fn(context):
        if fv.raw_text:
            return data.raw_text_dataset(
                patterns, tokenizer, batch_size, seq_length, predictions, seed=seed,
                is_training=is_training, input_context=context,
                masked_lm_prob=fv.masked_lm_prob, short_seq_prob=fv.short_seq_prob,
                do_whole_word_mask=fv.do_whole_word_mask,
                sentence_splitting=fv.sentence_splitting,
                sentence_objective=sentence_objective, max_ngram=fv.max_ngram,
                text_field=fv.text_field, language=fv.language)
        return data.pretraining_dataset(
            patterns, batch_size, seq_length, predictions, is_training=is_training,
            input_context=context, seed=seed)
    return dataset_fn


def _train_and_eval_inputs(fv) -> tuple[str, str | None]:
    """(training patterns, held-out patterns or None)."""
    if not fv.eval_steps:
        return fv.input_file, None
    if fv.eval_input_file:
        return fv.input_file, fv.eval_input_file
    files = _input_files(fv.input_file, fv.raw_text)
    if len(files) < 2:
        logging.warning("no --eval_input_file and only one input file: no held-out "
                        "evaluation (pass --eval_input_file)")
        return fv.input_file, None
    logging.info("holding out %s for evaluation (no --eval_input_file)", files[-1])
    return ",".join(files[:-1]), files[-1]


def _read_paths(fv) -> list[str]:
    """Files and directories the run reads (an output may not overlap them)."""
    paths = [fv.vocab_file, fv.init_checkpoint, fv.bert_config_file]
    for patterns in (fv.input_file, fv.eval_input_file, fv.phase2_input_file):
        if patterns:   # a directory named as input is an input too, not only its files
            paths.extend(p.strip() for p in patterns.split(",") if os.path.isdir(p.strip()))
            try:
                paths.extend(_input_files(patterns, fv.raw_text))
            except Exception:   # noqa: BLE001 (bad patterns are reported where they are read)
                pass
    return [p for p in paths if p]


def _phase2_patterns(fv, train_patterns: str, eval_patterns: str | None) -> str | None:
    """Phase 2's inputs: --phase2_input_file, else (raw text) phase 1's training files —
    never the held-out evaluation files."""
    if not fv.phase2_input_file:
        return train_patterns if fv.raw_text else None
    if eval_patterns:
        held_out = {os.path.realpath(f) for f in _input_files(eval_patterns, fv.raw_text)}
        leaked = [f for f in _input_files(fv.phase2_input_file, fv.raw_text)
                  if os.path.realpath(f) in held_out]
        if leaked:
            raise pretrain_flags.FlagError(
                f"--phase2_input_file includes {leaked[0]}, which is held out for evaluation")
    return fv.phase2_input_file


def _check_raw_text(fv, *patterns) -> None:
    """Before the run directory is touched: every raw-text input recognised and its first
    pool of documents read (a corpus of one pool whole), so a bad file is one line."""
    from kbert.data import raw_text_stream
    from kbert.data.text_pools import POOL_DOCUMENTS
    for flag, pattern in zip(("--input_file", "--eval_input_file", "--phase2_input_file"),
                             patterns):
        if pattern:
            raw_text_stream(pattern, fv.sentence_splitting, fv.text_field, fv.language,
                            flag=flag).check(enough=POOL_DOCUMENTS)


# ----------------------------------------------------------------------------- model
def _learning_rate_schedule(fv, phase1: int):
    from kbert.training.schedules import pretraining_schedule
    return pretraining_schedule(
        fv.learning_rate, fv.num_warmup_steps, fv.num_train_steps, fv.end_learning_rate,
        fv.decay_power, phase1=phase1 if fv.phase2_max_seq_length else None,
        phase2_learning_rate=fv.phase2_learning_rate,
        phase2_warmup_steps=fv.phase2_warmup_steps)


def weights_fingerprint(model) -> str:
    """`sha1=<hex> l2=<norm>` of every weight, to compare workers' final models in logs."""
    import hashlib

    import numpy as np
    digest = hashlib.sha1()
    total = 0.0
    for weight in model.get_weights():
        array = np.ascontiguousarray(weight, dtype=np.float32)
        digest.update(array.tobytes())
        total += float(np.sum(np.square(array, dtype=np.float64)))
    return f"sha1={digest.hexdigest()} l2={total ** 0.5:.6f}"


# ----------------------------------------------------------------------------- the run directory
def _run_names(fv) -> list[str]:
    """What a run writes into --output_dir (the loop's files, a learned vocabulary, the model)."""
    from kbert.tokenizers.families import TOKENIZER_FILES
    from kbert.training.metrics_logging import HISTORY_FILE
    names = ["checkpoints", "tensorboard", ".scratch", HISTORY_FILE, "loss.png",
             PRETRAINED_MODEL_DIR]
    if fv.learn_vocab_size and not fv.vocab_file:
        names += TOKENIZER_FILES[fv.model]
    return names


def _legacy_run(directory: str) -> dict | None:
    """A run written before kbert.outputs' marker (recognised by its checkpoints' run config)."""
    if not os.path.isfile(os.path.join(directory, "checkpoints", "run_config.json")):
        return None
    from kbert.tokenizers.families import TOKENIZER_FILES
    from kbert.training.metrics_logging import HISTORY_FILE
    known = {"checkpoints", "tensorboard", ".scratch", HISTORY_FILE, "loss.png",
             PRETRAINED_MODEL_DIR, *(n for names in TOKENIZER_FILES.values() for n in names)}
    return {"format": "kbert.outputs/2", "kind": RUN_KIND, "run": None, "pending": {},
            "entries": {n: {"kind": RUN_KIND, "tree": True} for n in sorted(known)
                        if os.path.lexists(os.path.join(directory, n))}}


def run_directory(fv):
    """--output_dir as a kbert.outputs.RunDirectory. Its settings are empty: whether a
    checkpoint fits this run is the loop's run-config guard's call (model, vocabulary,
    optimizer); --noresume refuses an earlier run, --overwrite starts afresh."""
    from kbert.outputs import RunDirectory
    return RunDirectory(fv.output_dir, RUN_KIND, {}, inputs=_read_paths(fv),
                        overwrite=fv.overwrite, names=_run_names(fv), legacy=_legacy_run,
                        resume=fv.resume)


def _progress_reporter():
    """Steps to the file a waiting parent (export.road) names in KBERT_PROGRESS_FILE."""
    path = os.environ.get("KBERT_PROGRESS_FILE")
    if not path:
        return None
    from kbert.training.progress import ProgressFile
    return ProgressFile(path).update


def _same_run_config(fv, config) -> bool:
    """Whether the run's stored settings (checkpoints/run_config.json) are the ones asked for
    now; a run asked with another model config or optimizer is not 'the same run, finished'
    (the training loop then refuses it, naming the difference)."""
    from kbert.training.checkpointing import RUN_CONFIG_FILE
    if config is None:
        return False
    try:
        with open(os.path.join(fv.output_dir, "checkpoints", RUN_CONFIG_FILE)) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(stored, dict) and stored.get("model_config") == config.to_dict() and \
        stored.get("optimizer") == fv.optimizer and \
        stored.get("mixed_precision") == resolve_precision(fv.mixed_precision)


def _finished_model(fv, run_dir, config) -> str | None:
    """The model directory of a run with these settings that reached --num_train_steps (its
    newest checkpoint and pretrained_model/ are there): started again, it changes nothing."""
    if not fv.resume or fv.overwrite or not run_dir.owns(PRETRAINED_MODEL_DIR):
        return None
    if not _same_run_config(fv, config):
        return None
    from kbert.training.checkpointing import checkpoint_step
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(os.path.join(fv.output_dir, "checkpoints"))
    try:
        done = latest is not None and checkpoint_step(latest) >= fv.num_train_steps
    except Exception:   # noqa: BLE001 — an unreadable checkpoint: the loop decides
        return None
    return run_dir.path(PRETRAINED_MODEL_DIR) if done else None


# ----------------------------------------------------------------------------- the run
def run(fv) -> str:
    """Pre-train as the flags say; returns the pretrained model directory."""
    from kbert.data import check_records
    from kbert.tokenizers import families

    # Checks on files first: they need no TensorFlow runtime, so they fail fast, and the
    # runtime must not start before the strategy has split the CPU into logical devices.
    # The output directory may not overlap an input, hold a user's file where the run
    # writes one, or be unwritable: say so now, not after hours of training.
    run_dir = run_directory(fv).check()
    train_patterns, eval_patterns = _train_and_eval_inputs(fv)
    tokenizer_files = _tokenizer_files(fv)
    learn_vocab = not tokenizer_files
    config = None   # known once the vocabulary is learned
    if not learn_vocab:
        config = _model_config(fv, families.vocab_size_of(fv.model, tokenizer_files))
    phase2_patterns = _phase2_patterns(fv, train_patterns, eval_patterns)
    if fv.raw_text:
        _check_raw_text(fv, train_patterns, eval_patterns, phase2_patterns)
    if not fv.raw_text:
        from kbert.configs import DEFAULT_SENTENCE_OBJECTIVE
        # Records remember the family and objective they were written for (manifest).
        records = dict(vocab_file=tokenizer_files, vocab_size=config.vocab_size,
                       family=config.family, sentence_objective=fv.sentence_objective
                       or DEFAULT_SENTENCE_OBJECTIVE[config.family])
        check_records(train_patterns, "--input_file", max_seq_length=fv.max_seq_length,
                      max_predictions_per_seq=fv.max_predictions_per_seq, **records)
        if eval_patterns:
            check_records(eval_patterns, "--eval_input_file", max_seq_length=fv.max_seq_length,
                          max_predictions_per_seq=fv.max_predictions_per_seq, **records)
        if fv.phase2_max_seq_length:
            check_records(phase2_patterns, "--phase2_input_file",
                          max_seq_length=fv.phase2_max_seq_length,
                          max_predictions_per_seq=pretrain_flags.phase2_max_predictions(fv),
                          **records)

    from kbert.training.distribution import create_strategy, is_chief
    strategy = create_strategy(fv.distribution, fv.num_cpu_devices, fv.tpu_address)
    finished = _finished_model(fv, run_dir, config)
    if finished:
        logging.warning("the run in %s has finished (%s); pass --overwrite to train again",
                        fv.output_dir, finished)
        return finished
    if is_chief(strategy):     # the chief marks the directory; the other workers only read it
        run_dir.open()
    with run_dir.guard() if is_chief(strategy) else contextlib.nullcontext():
        if is_chief(strategy):
            for name in _run_names(fv):
                run_dir.claim(name, folder=name in ("checkpoints", "tensorboard"))
        return _train(fv, strategy, run_dir, config, tokenizer_files, learn_vocab,
                      train_patterns, eval_patterns, phase2_patterns)


def _train(fv, strategy, run_dir, config, tokenizer_files, learn_vocab, train_patterns,
           eval_patterns, phase2_patterns) -> str:
    """Build, train, evaluate and write the model directory (the run directory is open)."""
    from kbert.tokenizers import families
    from kbert.training.distribution import is_chief, worker_id

    import keras

    import kbert
    from kbert.models import BertEncoder, BertPretrainer
    from kbert.models.saving import float32_copy, load_initial_weights
    from kbert.training.loop import LoopSettings, Phase, PretrainingLoop
    from kbert.training.optimizers import create_optimizer
    from kbert.training.xla_fusion import elementwise_fusion_in_force

    if learn_vocab:
        tokenizer_files = _tokenizer_files(fv, learn=True, train_patterns=train_patterns)
        config = _model_config(fv, families.vocab_size_of(fv.model, tokenizer_files))
    phase1 = pretrain_flags.phase1_steps(fv)
    tokenizer = families.load_family_tokenizer(fv.model, tokenizer_files,
                                               lower_case=fv.do_lower_case)

    precision = resolve_precision(fv.mixed_precision)
    policy = "float32" if precision == "none" else precision
    keras.mixed_precision.set_global_policy(policy)
    logging.info("precision %s; XLA fusion of element-wise ops (--xla_fusion=%s): %s", policy,
                 fv.xla_fusion, os.environ.get("TF_XLA_FLAGS") or "off")
    keras.utils.set_random_seed(fv.seed)
    with strategy.scope():
        try:
            model = BertPretrainer(BertEncoder(config),
                                   sentence_objective=fv.sentence_objective)
        except ValueError as e:
            raise pretrain_flags.FlagError(f"--sentence_objective with --model={fv.model}: "
                                           f"{e}") from e
        model(model.example_inputs(), training=False)
        model.encoder.gradient_checkpointing = fv.gradient_checkpointing
        logging.info("%s model, sentence objective %s, %d parameters", config.family,
                     model.sentence_objective, model.count_params())
        if fv.init_checkpoint:
            try:
                load_initial_weights(model, fv.init_checkpoint, config)
            except ValueError as e:
                raise pretrain_flags.FlagError(f"--init_checkpoint: {e}") from e
        optimizer = create_optimizer(
            fv.optimizer, _learning_rate_schedule(fv, phase1), weight_decay=fv.weight_decay,
            clip_norm=fv.clip_norm, model=model, beta_1=fv.adam_beta1, beta_2=fv.adam_beta2,
            epsilon=fv.adam_epsilon, gradients_reduced=True,
            # Under element-wise fusion the optimizer's decay and update fuse too (one XLA
            # function; one device only, else the per-variable kernels).
            compiled_update=elementwise_fusion_in_force() and not fv.jit_compile)
        if precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)

    phases = [Phase(f"seq{fv.max_seq_length}", phase1, fv.train_batch_size,
                    _dataset_fn(fv, train_patterns, fv.train_batch_size, fv.max_seq_length,
                                fv.max_predictions_per_seq, tokenizer, True, fv.seed,
                                model.sentence_objective))]
    if fv.phase2_max_seq_length:
        batch2 = fv.phase2_train_batch_size or fv.train_batch_size
        phases.append(Phase(
            f"seq{fv.phase2_max_seq_length}", fv.num_train_steps, batch2,
            _dataset_fn(fv, phase2_patterns, batch2, fv.phase2_max_seq_length,
                        pretrain_flags.phase2_max_predictions(fv), tokenizer, True,
                        fv.seed + 1, model.sentence_objective), grad_accum_steps=fv.phase2_grad_accum_steps))
    eval_fn = None
    if eval_patterns:
        # Records hold one length (checked above); raw text is evaluated at the length of
        # the last phase, the one the final model is trained for.
        eval_length, eval_predictions = fv.max_seq_length, fv.max_predictions_per_seq
        if fv.raw_text and fv.phase2_max_seq_length:
            eval_length = fv.phase2_max_seq_length
            eval_predictions = pretrain_flags.phase2_max_predictions(fv)
        eval_fn = _dataset_fn(fv, eval_patterns, fv.eval_batch_size, eval_length,
                              eval_predictions, tokenizer, False, fv.seed + 2,
                              model.sentence_objective)
        logging.info("held-out evaluation on %s at sequence length %d", eval_patterns,
                     eval_length)
    settings = LoopSettings(
        output_dir=fv.output_dir, grad_accum_steps=fv.grad_accum_steps,
        log_every_steps=fv.log_every_steps, save_checkpoints_steps=fv.save_checkpoints_steps,
        keep_checkpoints=fv.keep_checkpoints, eval_every_steps=fv.eval_every_steps,
        eval_steps=fv.eval_steps, jit_compile=fv.jit_compile, resume=fv.resume,
        run_config={"model_config": config.to_dict(), "vocab_hash": tokenizer.vocab_hash(),
                    "optimizer": fv.optimizer,
                    "mixed_precision": resolve_precision(fv.mixed_precision)},
        step_callback=_progress_reporter())
    loop = PretrainingLoop(strategy, model, optimizer, settings, eval_dataset_fn=eval_fn,
                           eval_batch_size=fv.eval_batch_size)
    loop.run(phases)

    logging.info("final weights on %s: %s", worker_id(strategy), weights_fingerprint(model))
    model_dir = os.path.join(fv.output_dir, PRETRAINED_MODEL_DIR)
    if is_chief(strategy):
        kbert.save_pretrained(float32_copy(model, config), model_dir,
                              vocab_file=tokenizer_files,
                              do_lower_case=fv.do_lower_case,
                              extra={"task": "pretraining", "trained_steps": fv.num_train_steps},
                              inputs=_read_paths(fv))
        run_dir.release_missing()
        logging.info("pre-trained model written to %s", model_dir)
    return model_dir


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:   # flag checks first: they need no TensorFlow, so a typo fails in a second
        pretrain_flags.validate_pretrain_flags(FLAGS)
    except pretrain_flags.FlagError as e:
        logging.error("%s", e)
        print(f"pretrain: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    console.import_tensorflow()
    from kbert.configs import ConfigError
    from kbert.data import PretrainingDataError
    from kbert.outputs import OutputError, is_environment_fault
    from kbert.training.checkpointing import RunMismatchError
    from kbert.training.loop import NonFiniteLossError
    try:
        run(FLAGS)
    except (pretrain_flags.FlagError, ConfigError, PretrainingDataError,
            RunMismatchError, FileExistsError, OutputError, OSError) as e:
        return console.report_error("pretrain", e, FLAGS.verbosity)
    except NonFiniteLossError as e:
        logging.error("%s", e)
        print(f"pretrain: error: {e}", file=sys.stderr)
        return EXIT_NON_FINITE
    except Exception as e:   # noqa: BLE001 — a full disk / unwritable place, in one line
        from kbert.data.text_pools import data_error_in
        found = data_error_in(e)   # raw text found damaged mid-run: the file, in one line
        if found:
            return console.report_error("pretrain", PretrainingDataError(found),
                                        FLAGS.verbosity)
        if not is_environment_fault(e):
            raise
        return console.report_error("pretrain", e, FLAGS.verbosity)
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=xla_fusion_flag.flags_parser(
        FLAGS, "pretrain", lambda fv: resolve_precision(fv.mixed_precision), EXIT_BAD_INPUT))
