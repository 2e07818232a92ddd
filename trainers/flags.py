"""Every flag of `python -m trainers.pretrain` (and the example flags it shares with
`python -m trainers.create_pretraining_data`), in one place.

Names follow google-research/bert's `run_pretraining.py` where it has the flag
(`--input_file`, `--output_dir`, `--bert_config_file`, `--init_checkpoint`,
`--max_seq_length`, `--max_predictions_per_seq`, `--train_batch_size`, `--eval_batch_size`,
`--learning_rate`, `--num_train_steps`, `--num_warmup_steps`, `--save_checkpoints_steps`).
Single-flag checks (type, range, choices) are absl's and run while parsing; checks that
involve files or several flags are in `validate_pretrain_flags`, run before any training.

Example:
    >>> from absl import flags
    >>> values = flags.FlagValues()
    >>> define_pretrain_flags(values)
    >>> values(["pretrain", "--input_file=x", "--output_dir=y", "--model_size=tiny"])
    ['pretrain']
    >>> values.train_batch_size
    32
"""

from __future__ import annotations

import os

from absl import flags

from kbert.configs import FAMILIES, NAMED_SIZES, SHARE_LAYERS
from trainers import xla_fusion_flag

OPTIMIZERS = ("adamw", "lamb")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16", "auto")
DISTRIBUTIONS = ("auto", "mirrored", "multi_worker", "one_device", "tpu")
MIN_TRAIN_SEQ_LENGTH = 8


class FlagError(ValueError):
    """A flag value (or the file it names) is unusable; the message names the flag."""


def define_example_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The flags of pre-training examples, shared by `trainers.create_pretraining_data` and
    `trainers.pretrain` (defined once; google-research/bert's names and defaults).

    Values the library refuses (e.g. a `--max_seq_length` too short for `[CLS] A [SEP] B
    [SEP]`) are refused by `kbert.data.PretrainingDataSettings` or
    `validate_pretrain_flags`, with exit status 2 and a message naming the flag.
    """
    fv = flag_values
    if "max_seq_length" in fv:
        return
    flags.DEFINE_string("vocab_file", None,
                        "The family's tokenizer file: WordPiece vocab.txt, RoBERTa's "
                        "vocab.json (merges.txt beside it), ALBERT's spiece.model. Records "
                        "remember theirs (manifest.json's vocab_hash); training checks it.",
                        flag_values=fv)
    flags.DEFINE_bool("do_lower_case", True,
                      "Lower-case and strip accents (uncased vocabulary).", flag_values=fv)
    flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length (phase 1 when "
                         "training).", upper_bound=4096, flag_values=fv)
    flags.DEFINE_integer("max_predictions_per_seq", 20,
                         "Maximum masked-LM predictions per sequence (phase 1 when training).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_float("masked_lm_prob", 0.15,
                       "Fraction of the non-special tokens masked (records; --raw_text).",
                       lower_bound=0.0, upper_bound=1.0, flag_values=fv)
    flags.DEFINE_float("short_seq_prob", 0.1,
                       "Probability of a pair shorter than the maximum length (records; "
                       "--raw_text).", lower_bound=0.0, upper_bound=1.0, flag_values=fv)
    flags.DEFINE_bool("do_whole_word_mask", False,
                      "Mask all word-pieces of a word together (records; --raw_text).",
                      flag_values=fv)
    flags.DEFINE_enum("model", "bert", list(FAMILIES),
                      "Model family: bert, roberta (byte-level BPE, masked LM only on "
                      "FULL-SENTENCES inputs), albert (SentencePiece, factorized embeddings, "
                      "shared layers, sentence-order prediction) or distilbert (half the "
                      "layers, masked LM only). Records are written with its tokenizer and "
                      "remember it.", flag_values=fv)
    flags.DEFINE_enum("sentence_objective", None, ["nsp", "sop", "none"],
                      "Sentence-pair objective: nsp (next sentence), sop (sentence order) or "
                      "none (masked LM only; text is packed as FULL-SENTENCES). Default: "
                      "the family's (bert nsp, albert sop, roberta/distilbert none).",
                      flag_values=fv)
    flags.DEFINE_integer("max_ngram", 1,
                         "Mask n-grams of up to this many words, P(n) proportional to 1/n "
                         "(ALBERT: 3); records are masked when written, so give it to "
                         "create_pretraining_data (records; --raw_text).", lower_bound=1,
                         upper_bound=10, flag_values=fv)
    flags.DEFINE_enum("sentence_splitting", "auto", ["auto", "always", "never"],
                      "Split lines into sentences (kbert.text.split_sentences): auto = the "
                      "line of a one-line document (one paragraph per line), always = every "
                      "line, never = lines are sentences (records; --raw_text).",
                      flag_values=fv)


def define_pretrain_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Define the pre-training flags on `flag_values` (once)."""
    fv = flag_values
    if "num_train_steps" in fv:
        return
    define_example_flags(fv)
    # ---- google-research/bert run_pretraining.py names -----------------------------
    flags.DEFINE_string(
        "input_file", None,
        "Training input: a directory of TFRecord shards with manifest.json, or "
        "comma-separated TFRecord globs; with --raw_text, text files / globs / directories "
        "(one sentence per line, a blank line between documents), MediaWiki dumps or JSON "
        "lines (what trainers.prepare_corpus reads).", flag_values=fv)
    flags.DEFINE_string(
        "output_dir", None,
        "Where checkpoints, TensorBoard logs, loss.png, metrics_history.json and the final "
        "pretrained_model/ directory go.", flag_values=fv)
    flags.DEFINE_string("bert_config_file", None,
                        "BertConfig JSON (Google's bert_config.json or a Hugging Face "
                        "config.json). Alternative to --model_size.", flag_values=fv)
    flags.DEFINE_string(
        "init_checkpoint", None,
        "Start from these weights: a kbert model directory (config.json + "
        "model.weights.h5) or a checkpoint prefix written by this trainer "
        "(output_dir/checkpoints/ckpt-N). Optimizer state is not taken.", flag_values=fv)
    flags.DEFINE_integer("train_batch_size", 32,
                         "Global training batch size (all replicas, all accumulation "
                         "micro-batches together).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("eval_batch_size", 8, "Global evaluation batch size.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate.", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_integer("num_train_steps", 100000, "Optimizer updates in all.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("num_warmup_steps", 10000, "Linear warmup steps.", lower_bound=0,
                         flag_values=fv)
    flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint every this many steps.",
                         lower_bound=1, flag_values=fv)
    # ---- model -------------------------------------------------------------------------
    flags.DEFINE_integer("embedding_size", None,
                         "Override the token embedding width (ALBERT's factorized E).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("num_hidden_layers", None, "Override the config's layer count.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("share_layers", None, list(SHARE_LAYERS),
                      "Override cross-layer parameter sharing (ALBERT: all).", flag_values=fv)
    flags.DEFINE_enum("model_size", None, list(NAMED_SIZES),
                      "Named BERT size (Turc et al. 2019 compact sizes, base, large); "
                      "alternative to --bert_config_file.", flag_values=fv)
    flags.DEFINE_integer("learn_vocab_size", None,
                         "With --raw_text and no --vocab_file: learn the family's vocabulary "
                         "(WordPiece vocab.txt, RoBERTa's BPE vocab.json + merges.txt, "
                         "ALBERT's spiece.model) of about this size from --input_file into "
                         "<output_dir> (reused when resuming).", lower_bound=16, flag_values=fv)
    flags.DEFINE_float("hidden_dropout_prob", None,
                       "Override the config's hidden dropout.", lower_bound=0.0,
                       upper_bound=0.99, flag_values=fv)
    flags.DEFINE_float("attention_probs_dropout_prob", None,
                       "Override the config's attention dropout.", lower_bound=0.0,
                       upper_bound=0.99, flag_values=fv)
    flags.DEFINE_integer("num_attention_heads", None,
                         "Override the config's attention heads (must divide hidden_size).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_float("initializer_range", None,
                       "Override the config's initializer std (a run from scratch; BERT "
                       "uses 0.02, narrow models start learning sooner with a larger one).",
                       lower_bound=0.0, flag_values=fv)
    # ---- input -------------------------------------------------------------------------
    flags.DEFINE_bool("raw_text", False,
                      "--input_file is raw text: build NSP pairs on the fly and mask "
                      "dynamically (new masks every batch). Takes what "
                      "trainers.prepare_corpus takes (recognised by content): text, "
                      "MediaWiki XML dumps, JSON lines, compressed or not.", flag_values=fv)
    flags.DEFINE_string("text_field", "text", "JSON lines: the field holding a document's "
                        "text (--raw_text).", flag_values=fv)
    flags.DEFINE_enum("language", "auto", ["auto", "en", "ko", "ja", "zh"],
                      "Sentence-splitting rules for dumps, JSON lines and compressed text; "
                      "auto picks them per paragraph from its script (--raw_text).",
                      flag_values=fv)
    flags.DEFINE_string("eval_input_file", None,
                        "Held-out input, same kind as --input_file. Without it, evaluation "
                        "holds out the last training file when there are several.",
                        flag_values=fv)
    flags.DEFINE_integer("seed", 12345,
                         "Seed for weights, data order, masks and dropout (resuming relies "
                         "on the data order being reproducible).", flag_values=fv)
    # ---- optimisation ------------------------------------------------------------------
    flags.DEFINE_enum("optimizer", "adamw", list(OPTIMIZERS),
                      "adamw (BERT) or lamb (You et al. 2019, large batches).", flag_values=fv)
    flags.DEFINE_float("weight_decay", 0.01,
                       "Weight decay rate; LayerNorm weights and biases are never decayed.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("adam_beta1", 0.9, "First-moment decay.", lower_bound=0.0,
                       upper_bound=1.0, flag_values=fv)
    flags.DEFINE_float("adam_beta2", 0.999, "Second-moment decay.", lower_bound=0.0,
                       upper_bound=1.0, flag_values=fv)
    flags.DEFINE_float("adam_epsilon", 1e-6, "Denominator epsilon.", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_float("clip_norm", 1.0, "Clip gradients to this global norm (0: off).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("end_learning_rate", 0.0, "Learning rate at the last step.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("decay_power", 1.0,
                       "Polynomial decay exponent after warmup (1 = linear).",
                       lower_bound=0.01, flag_values=fv)
    flags.DEFINE_integer("grad_accum_steps", 1,
                         "Split each replica's batch into this many micro-batches and "
                         "accumulate their gradients (same update, less memory).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("mixed_precision", "none", list(MIXED_PRECISION),
                      "Compute dtype policy; mixed_float16 adds dynamic loss scaling; auto = "
                      "mixed_bfloat16 on a CPU with AVX512-BF16 or AMX, else none.",
                      flag_values=fv)
    flags.DEFINE_bool("jit_compile", False,
                      "XLA-compile the forward/backward pass.", flag_values=fv)
    xla_fusion_flag.define(fv)
    flags.DEFINE_bool("gradient_checkpointing", False,
                      "Recompute each block's activations in the backward pass instead of "
                      "keeping them: far less memory, about a third more compute.",
                      flag_values=fv)
    # ---- two-phase training (BERT paper: 90% of steps at 128, then 512) ----------------
    flags.DEFINE_integer("phase2_max_seq_length", None,
                         "Enable phase 2 at this sequence length (e.g. 512).", lower_bound=8,
                         upper_bound=4096, flag_values=fv)
    flags.DEFINE_float("phase2_fraction", 0.1,
                       "Fraction of --num_train_steps spent in phase 2.", lower_bound=0.0,
                       upper_bound=1.0, flag_values=fv)
    flags.DEFINE_string("phase2_input_file", None,
                        "Phase-2 input (records written at --phase2_max_seq_length; or text "
                        "with --raw_text, default --input_file).", flag_values=fv)
    flags.DEFINE_integer("phase2_max_predictions_per_seq", None,
                         "Phase-2 predictions per sequence (default: scaled with the "
                         "sequence length, e.g. 20 -> 80 for 128 -> 512).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("phase2_train_batch_size", None,
                         "Phase-2 global batch (default --train_batch_size).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("phase2_grad_accum_steps", None,
                         "Phase-2 gradient accumulation (default --grad_accum_steps).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_float("phase2_learning_rate", None,
                       "Restart the schedule in phase 2 at this peak rate (LAMB recipe); "
                       "default: one schedule over all steps (BERT recipe).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_integer("phase2_warmup_steps", 0,
                         "Warmup of the restarted phase-2 schedule.", lower_bound=0,
                         flag_values=fv)
    # ---- checkpoints, evaluation, logging -----------------------------------------------
    flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints kept (newest).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_bool("resume", True,
                      "Continue from the newest checkpoint in --output_dir when there is one "
                      "(weights, optimizer, step and input position).", flag_values=fv)
    flags.DEFINE_bool("overwrite", False,
                      "Start afresh in an --output_dir that holds an earlier run (kbert's files "
                      "of that run are removed, any others stay), or write into a directory "
                      "kbert did not make (its files stay).", flag_values=fv)
    flags.DEFINE_integer("eval_every_steps", 0,
                         "Held-out evaluation every this many steps (0: only at the end).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("eval_steps", 20, "Batches per evaluation (0: no evaluation).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("log_every_steps", 100,
                         "Progress line and TensorBoard scalars every this many steps.",
                         lower_bound=1, flag_values=fv)
    # ---- distribution ------------------------------------------------------------------
    flags.DEFINE_enum("distribution", "auto", list(DISTRIBUTIONS),
                      "auto: MultiWorkerMirrored when TF_CONFIG names several workers, else "
                      "Mirrored over the GPUs, else one CPU device (Mirrored over "
                      "--num_cpu_devices when > 1).", flag_values=fv)
    flags.DEFINE_integer("num_cpu_devices", 1,
                         "Split the CPU into this many logical devices (to exercise "
                         "MirroredStrategy without GPUs).", lower_bound=1, upper_bound=64,
                         flag_values=fv)
    flags.DEFINE_string("tpu_address", None,
                        "TPU name or grpc:// address for --distribution=tpu ('local' on a "
                        "TPU VM).", flag_values=fv)


def _exists(pattern_list: str) -> bool:
    import glob
    for item in pattern_list.split(","):
        item = item.strip()
        if item and not (os.path.exists(item) or glob.glob(item)):
            return False
    return True


def validate_pretrain_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Checks across flags and on the files they name; raises FlagError naming the flag."""
    for name in ("input_file", "output_dir"):
        if not fv[name].value:
            raise FlagError(f"--{name} is required")
    if not _exists(fv.input_file):
        raise FlagError(f"--input_file={fv.input_file}: no such file, directory or match")
    if fv.eval_input_file and not _exists(fv.eval_input_file):
        raise FlagError(f"--eval_input_file={fv.eval_input_file}: no such file or match")
    if fv.phase2_input_file and not _exists(fv.phase2_input_file):
        raise FlagError(f"--phase2_input_file={fv.phase2_input_file}: no such file or match")
    init_is_model_dir = bool(fv.init_checkpoint and os.path.isdir(fv.init_checkpoint))
    if fv.model_size and fv.bert_config_file:
        raise FlagError("give --model_size or --bert_config_file, not both")
    if not (fv.model_size or fv.bert_config_file or init_is_model_dir):
        raise FlagError("give --model_size or --bert_config_file (or --init_checkpoint with a "
                        "kbert model directory)")
    if fv.bert_config_file and not os.path.isfile(fv.bert_config_file):
        raise FlagError(f"--bert_config_file={fv.bert_config_file}: no such file")
    if fv.init_checkpoint and not (init_is_model_dir
                                   or os.path.exists(fv.init_checkpoint + ".index")):
        raise FlagError(f"--init_checkpoint={fv.init_checkpoint}: neither a kbert model "
                        f"directory nor a checkpoint prefix (no .index file)")
    if fv.vocab_file and not os.path.isfile(fv.vocab_file):
        raise FlagError(f"--vocab_file={fv.vocab_file}: no such file")
    if fv.max_ngram > 1 and not fv.raw_text:
        raise FlagError("--max_ngram is a setting of the records (they are masked when "
                        "written): pass it to trainers.create_pretraining_data, or use "
                        "--raw_text")
    if fv.learn_vocab_size and not fv.raw_text:
        raise FlagError("--learn_vocab_size needs --raw_text (records carry their own vocab)")
    if fv.learn_vocab_size and fv.vocab_file:
        raise FlagError("give --vocab_file or --learn_vocab_size, not both")
    if not (fv.vocab_file or fv.learn_vocab_size or init_is_model_dir):
        raise FlagError("--vocab_file is required (or --learn_vocab_size with --raw_text)")
    if fv.num_warmup_steps > fv.num_train_steps:
        raise FlagError(f"--num_warmup_steps ({fv.num_warmup_steps}) exceeds "
                        f"--num_train_steps ({fv.num_train_steps})")
    if fv.max_seq_length < MIN_TRAIN_SEQ_LENGTH:
        raise FlagError(f"--max_seq_length={fv.max_seq_length} is too small (at least "
                        f"{MIN_TRAIN_SEQ_LENGTH})")
    if fv.max_predictions_per_seq > fv.max_seq_length:
        raise FlagError(f"--max_predictions_per_seq ({fv.max_predictions_per_seq}) exceeds "
                        f"--max_seq_length ({fv.max_seq_length})")
    if fv.end_learning_rate > fv.learning_rate:
        raise FlagError("--end_learning_rate exceeds --learning_rate")
    if fv.learning_rate <= 0:
        raise FlagError("--learning_rate must be > 0")
    if fv.phase2_max_seq_length:
        if not fv.raw_text and not fv.phase2_input_file:
            raise FlagError("--phase2_max_seq_length needs --phase2_input_file (records "
                            "written at that length)")
        if not 0.0 < fv.phase2_fraction < 1.0:
            raise FlagError(f"--phase2_fraction must be in (0, 1), got {fv.phase2_fraction}")
        phase1 = phase1_steps(fv)
        if phase1 < 1 or phase1 >= fv.num_train_steps:
            raise FlagError(f"--phase2_fraction={fv.phase2_fraction} leaves no steps for one "
                            f"of the phases of --num_train_steps={fv.num_train_steps}")
        if fv.phase2_warmup_steps > fv.num_train_steps - phase1:
            raise FlagError("--phase2_warmup_steps exceeds the phase-2 steps")
    elif fv.phase2_input_file:
        raise FlagError("--phase2_input_file needs --phase2_max_seq_length")
    if fv.distribution == "tpu" and fv.tpu_address is None:
        raise FlagError("--distribution=tpu needs --tpu_address ('local' on a TPU VM)")
    phase2_accumulation = fv.phase2_grad_accum_steps or fv.grad_accum_steps
    for name, accumulation, accumulation_flag in (
            ("train_batch_size", fv.grad_accum_steps, "grad_accum_steps"),
            ("phase2_train_batch_size", phase2_accumulation,
             "phase2_grad_accum_steps" if fv.phase2_grad_accum_steps else "grad_accum_steps")):
        value = fv[name].value
        if name.startswith("phase2") and not fv.phase2_max_seq_length:
            continue
        value = value or fv.train_batch_size
        if value % accumulation:
            raise FlagError(f"--{name}={value} is not divisible by "
                            f"--{accumulation_flag}={accumulation}")


def phase1_steps(fv: flags.FlagValues = flags.FLAGS) -> int:
    """Steps of phase 1 (all of them without --phase2_max_seq_length)."""
    from kbert.training.schedules import phase1_steps
    return phase1_steps(fv.num_train_steps,
                        fv.phase2_fraction if fv.phase2_max_seq_length else None)


def phase2_max_predictions(fv: flags.FlagValues = flags.FLAGS) -> int:
    """--phase2_max_predictions_per_seq, else phase 1's scaled to the phase-2 length."""
    if fv.phase2_max_predictions_per_seq:
        return fv.phase2_max_predictions_per_seq
    from kbert.training.schedules import scaled_max_predictions
    return scaled_max_predictions(fv.max_predictions_per_seq, fv.max_seq_length,
                                  fv.phase2_max_seq_length)
