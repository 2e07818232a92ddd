"""Every flag of `python -m trainers.finetune`, in one place.

Names follow google-research/bert's run_classifier.py / run_squad.py where they have the flag
(`--init_checkpoint` is `--init_model` here: a directory, not a TF1 prefix). Checks that
need no TensorFlow (files exist, extensions, flag combinations) are in
`validate_finetune_flags`, run before anything is loaded or written.

Example:
    >>> from absl import flags
    >>> values = flags.FlagValues()
    >>> define_finetune_flags(values)
    >>> values(["finetune", "--task=classification"])
    ['finetune']
    >>> values.max_seq_length, values.doc_stride
    (128, None)
"""

from __future__ import annotations

import os

from absl import flags

from trainers import xla_fusion_flag

TASKS = ("classification", "pair_classification", "regression", "token_classification",
         "question_answering", "multiple_choice")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
TASK_FILE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json")
# Column defaults per task when --text_column / --text_pair_column / --label_column are unset.
DEFAULT_COLUMNS = {
    "question_answering": ("question", "context", "answers"),
    "multiple_choice": ("text", "choices", "label"),
    "token_classification": ("tokens", "text_pair", "tags"),
}


# Fine-tuning's length buckets give batches many shapes, each compiled anew by XLA: fusion
# measured 0.40x in bfloat16 (BUILD_NOTES, issue 17), so `auto` stays off here.
FINETUNE_XLA_FUSION_HELP = (
    "XLA-fuse the step's element-wise ops while the matmuls stay on oneDNN: elementwise | "
    "none; auto = none for fine-tuning (XLA compiles every bucket length anew: 0.40x "
    "measured in bfloat16).")


class FlagError(ValueError):
    """A flag value (or the file it names) is unusable; the message names the flag."""


def define_finetune_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Define the fine-tuning flags on `flag_values` (once)."""
    fv = flag_values
    if "init_model" in fv:
        return
    flags.DEFINE_enum("task", "classification", list(TASKS), "What to fine-tune for.",
                      flag_values=fv)
    flags.DEFINE_string(
        "init_model", None,
        "A kbert model directory (from trainers.pretrain or kbert.convert), or a Hugging Face "
        "/ Google BERT checkpoint directory (converted on the fly).", flag_values=fv)
    flags.DEFINE_string("train_file", None, "Training rows: .csv, .tsv or .jsonl.",
                        flag_values=fv)
    flags.DEFINE_string("validation_file", None,
                        "Validation rows (picks the best epoch); optional.", flag_values=fv)
    flags.DEFINE_string("test_file", None, "Test rows (scored once at the end); optional.",
                        flag_values=fv)
    flags.DEFINE_string("text_column", None,
                        "Text column (default: text; QA: question; tagging: tokens).",
                        flag_values=fv)
    flags.DEFINE_string("text_pair_column", None,
                        "Second text (pairs; QA: context; multiple choice: choices).",
                        flag_values=fv)
    flags.DEFINE_string("label_column", None,
                        "Label column (default: label; QA: answers; tagging: tags).",
                        flag_values=fv)
    flags.DEFINE_string("labels", None,
                        "The full label set, ids in this order: a comma-separated list, or a "
                        "file with one label a line. Default: the labels of --train_file, "
                        "sorted. Needed when a class the validation or test rows use is "
                        "missing from the training rows (classification and tagging).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None,
                        "Writes model/, eval.json, predictions_<split>.jsonl, tensorboard/.",
                        flag_values=fv)
    flags.DEFINE_bool("overwrite", False,
                      "Start afresh in an --output_dir holding an earlier run, or use one kbert "
                      "did not create (only kbert's own files in it are replaced; a user's "
                      "file where the run writes one is refused).", flag_values=fv)
    flags.DEFINE_enum("quoting", "auto", ["auto", "none"],
                      "CSV/TSV quoting: auto (double quotes delimit fields, as Python's csv "
                      "and pandas read them; lines merged by a stray quote are refused) or "
                      "none (no quote processing, as google-research/bert reads TSV files).",
                      flag_values=fv)
    flags.DEFINE_integer("max_seq_length", 128, "Tokens per row, [CLS]/[SEP] included.",
                         lower_bound=8, upper_bound=4096, flag_values=fv)
    flags.DEFINE_integer("doc_stride", None,
                         "Pieces between the starts of overlapping windows of a long input "
                         "(run_squad.py's meaning; default: half the window, as the export "
                         "commands use).", lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("long_inputs", "windows", ["windows", "truncate"],
                      "Long inputs: overlapping windows (nothing lost) or truncation "
                      "(counted in eval.json).", flag_values=fv)
    flags.DEFINE_enum("aggregation", "mean", ["mean", "max"],
                      "How window logits of one example combine (classification).",
                      flag_values=fv)
    flags.DEFINE_integer("max_answer_length", 30, "QA: longest answer in pieces.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("n_best_size", 20, "QA: start/end candidates per window.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("train_batch_size", 32, "Training batch size (all replicas).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch size.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate (AdamW).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("weight_decay", 0.01, "Decoupled weight decay (not on LayerNorm or "
                       "biases).", lower_bound=0.0, flag_values=fv)
    flags.DEFINE_integer("num_train_epochs", 3, "Epochs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of steps of linear warmup.",
                       lower_bound=0.0, upper_bound=0.99, flag_values=fv)
    flags.DEFINE_float("dropout", None, "Classifier dropout (default: the model's).",
                       lower_bound=0.0, upper_bound=0.99, flag_values=fv)
    flags.DEFINE_integer("seed", 12345, "Seed for initialisation, dropout and shuffling.",
                         flag_values=fv)
    flags.DEFINE_enum("mixed_precision", "none", list(MIXED_PRECISION),
                      "Compute dtype policy (logits and loss stay float32).", flag_values=fv)
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.", flag_values=fv)
    xla_fusion_flag.define(fv, FINETUNE_XLA_FUSION_HELP)
    flags.DEFINE_bool("gradient_checkpointing", False,
                      "Recompute each block's activations in the backward pass instead of "
                      "keeping them: far less memory, about a third more compute.",
                      flag_values=fv)
    flags.DEFINE_integer("num_cpu_devices", 1,
                         "Split the CPU into this many logical devices for MirroredStrategy "
                         "(testing the multi-device path without GPUs).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("max_train_examples", 0,
                         "Use only the first N training rows (0: all); for quick runs.",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("max_eval_examples", 0,
                         "Use only the first N validation/test rows (0: all).", lower_bound=0,
                         flag_values=fv)


def columns_for(fv) -> tuple[str, str, str]:
    """(text, text_pair, label) column names: the flags, else the task's defaults."""
    defaults = DEFAULT_COLUMNS.get(fv.task, ("text", "text_pair", "label"))
    return (fv.text_column or defaults[0], fv.text_pair_column or defaults[1],
            fv.label_column or defaults[2])


def _check_file(flag: str, path: str | None, required: bool) -> None:
    if not path:
        if required:
            raise FlagError(f"--{flag} is required")
        return
    extension = os.path.splitext(path)[1].lower()
    if extension not in TASK_FILE_EXTENSIONS:
        raise FlagError(f"--{flag}={path}: unknown extension {extension or '(none)'!r}; use "
                        f"{', '.join(TASK_FILE_EXTENSIONS)}")
    if not os.path.isfile(path):
        raise FlagError(f"--{flag}={path}: file not found")


def label_set(fv) -> list[str] | None:
    """`--labels` as a list: the lines of the file it names, else its comma-separated names.

    Example:
        >>> class F: labels, task = "neg,neutral,pos", "classification"
        >>> label_set(F)
        ['neg', 'neutral', 'pos']
    """
    if not fv.labels:
        return None
    if fv.task not in ("classification", "pair_classification", "token_classification"):
        raise FlagError(f"--labels applies to classification and tagging, not --task={fv.task}")
    if os.path.isfile(fv.labels):
        try:
            with open(fv.labels, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise FlagError(f"--labels={fv.labels}: cannot be read ({e})") from None
    else:
        names = [name.strip() for name in fv.labels.split(",")]
    if len(names) < 2 or len(set(names)) != len(names) or "" in names:
        raise FlagError(f"--labels={fv.labels}: needs two or more distinct, non-empty labels "
                        f"(got {names!r})")
    return names


def validate_finetune_flags(fv=flags.FLAGS) -> None:
    """Flag checks that need no TensorFlow; FlagError names the flag."""
    if not fv.output_dir:
        raise FlagError("--output_dir is required")
    if not fv.init_model:
        raise FlagError("--init_model is required")
    if not os.path.isdir(fv.init_model):
        raise FlagError(f"--init_model={fv.init_model}: not a directory")
    _check_file("train_file", fv.train_file, True)
    _check_file("validation_file", fv.validation_file, False)
    _check_file("test_file", fv.test_file, False)
    label_set(fv)
    if fv.doc_stride is not None and fv.doc_stride >= fv.max_seq_length - 2:
        raise FlagError(f"--doc_stride={fv.doc_stride} must be below --max_seq_length - 2 "
                        f"({fv.max_seq_length - 2}), or windows would skip text")
