r"""Create pre-training TFRecords (masked LM + a sentence objective) from raw text.

google-research/bert's `create_pretraining_data.py` flags, plus parallel and multi-machine
writing. Input: one sentence per line, a blank line between documents, read as a stream
(memory flat in the corpus size); Wikipedia dumps, JSON lines and compressed files are
refused: `trainers.prepare_corpus` turns them into such text first. `--model` picks the
family's tokenizer and default objective: BERT WordPiece + NSP pairs, ALBERT SentencePiece
+ sentence-order pairs (`--max_ngram=3` for its n-gram masks), RoBERTa byte-level BPE +
FULL-SENTENCES packing (usually with `--dynamic_masking`); the manifest records them and
`trainers.pretrain` refuses records of another family or objective.

Examples:
    python -m trainers.create_pretraining_data --input_file='data/corpus/*.txt' \
        --vocab_file=vocab.txt --output_dir=/tmp/pretrain --num_output_shards=8 \
        --num_processes=2 --max_seq_length=128 --max_predictions_per_seq=20 --dupe_factor=5

    # The same output from an Apache Beam pipeline of 3 workers (each writes shards i,
    # i + 3, ...); Beam's own options after `--` (none: the direct runner, 3 processes).
    # Flink, Spark, Dataflow: docs/CORPUS.md.
    python -m trainers.create_pretraining_data --input_file='/tmp/wiki/corpus-*.txt' \
        --vocab_file=vocab.txt --output_dir=/tmp/pretrain --num_output_shards=6 \
        --engine=beam --num_shards=3 -- --runner=FnApiRunner --direct_num_workers=3

    # By hand, the same split over 3 machines (superseded by --engine=beam; run with
    # --shard_index=0, 1, 2 on a shared directory), then:
    python -m trainers.create_pretraining_data --output_dir=/tmp/pretrain --merge_manifests

    python -m trainers.create_pretraining_data --flagfile=trainers/configs/data.flags

    python -m trainers.create_pretraining_data --model=roberta --vocab_file=bpe/vocab.json \
        --dynamic_masking --input_file=data/corpus --output_dir=/tmp/pretrain_roberta
"""

from __future__ import annotations

import signal
import sys

from absl import app, flags, logging

from kbert import console

console.quiet_tensorflow()   # before anything imports TensorFlow

from trainers import flags as trainer_flags  # noqa: E402

FLAGS = flags.FLAGS
# --vocab_file, --do_lower_case, --max_seq_length, --max_predictions_per_seq, --masked_lm_prob,
# --short_seq_prob, --do_whole_word_mask: defined once, with pre-training's.
trainer_flags.define_example_flags(FLAGS)

# google-research/bert's flags (same names, same defaults).
flags.DEFINE_string("input_file", None,
                    "Input raw text: comma-separated files, globs or directories.")
flags.DEFINE_string("output_file", None,
                    "Output TFRecord files, comma-separated (one per output shard). Relative "
                    "names are placed in --output_dir when it is given.")
flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
flags.DEFINE_integer("dupe_factor", 10,
                     "Number of passes over the input (different pairs and masks each).")
# kbert's additions.
flags.DEFINE_string("output_dir", None,
                    "Directory for the shards (pretrain-IIIII-of-NNNNN.tfrecord) and "
                    "manifest.json.")
flags.DEFINE_integer("num_output_shards", None,
                     "Number of TFRecord files (default: the number of --output_file names, "
                     "else 1).")
flags.DEFINE_integer("num_processes", 1, "Parallel processes on this machine.")
flags.DEFINE_integer("num_shards", 1,
                     "Machines the work is split across; each writes its part of the shards.")
flags.DEFINE_integer("shard_index", 0, "Which of --num_shards machines this is (0-based).")
flags.DEFINE_integer("documents_per_chunk", 100,
                     "Documents per unit of work; NotNext segments are drawn within a chunk.")
flags.DEFINE_bool("dynamic_masking", False,
                  "Write unmasked examples; kbert.data.pipelines masks them anew each epoch.")
flags.DEFINE_bool("overwrite", False, "Replace existing output.")
flags.DEFINE_enum("engine", "plain", ["plain", "beam"],
                  "plain: this machine (or the hand-run --num_shards mode); beam: an Apache "
                  "Beam pipeline of --num_shards workers writing the same shards, Beam's "
                  "pipeline options after `--`.")
flags.DEFINE_bool("merge_manifests", False,
                  "Only merge the worker manifests in --output_dir into manifest.json (after "
                  "all --num_shards machines have finished).")


def _num_output_shards() -> int:
    if FLAGS.num_output_shards is not None:
        return FLAGS.num_output_shards
    if FLAGS.output_file:
        return len([f for f in FLAGS.output_file.split(",") if f.strip()])
    return 1


def main(argv) -> int:
    if len(argv) > 1 and FLAGS.engine != "beam":
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])} (Beam's pipeline "
                             "options are for --engine=beam)")
    console.import_tensorflow()
    from kbert import data as ptd
    from kbert.configs import DEFAULT_SENTENCE_OBJECTIVE
    from kbert.outputs import OutputError, is_environment_fault

    # On SIGTERM unwind like Ctrl-C, so this run's shards and temporary files are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        if FLAGS.merge_manifests:
            if not FLAGS.output_dir:
                raise ptd.PretrainingDataError("--merge_manifests needs --output_dir")
            manifest = ptd.merge_worker_manifests(FLAGS.output_dir)
        else:
            for name in ("input_file", "vocab_file"):
                if not getattr(FLAGS, name):
                    raise ptd.PretrainingDataError(f"--{name} is required")
            settings = ptd.PretrainingDataSettings(
                max_seq_length=FLAGS.max_seq_length,
                max_predictions_per_seq=FLAGS.max_predictions_per_seq,
                masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob,
                dupe_factor=FLAGS.dupe_factor, random_seed=FLAGS.random_seed,
                do_lower_case=FLAGS.do_lower_case, do_whole_word_mask=FLAGS.do_whole_word_mask,
                dynamic_masking=FLAGS.dynamic_masking,
                sentence_splitting=FLAGS.sentence_splitting,
                documents_per_chunk=FLAGS.documents_per_chunk,
                num_output_shards=_num_output_shards(), family=FLAGS.model,
                sentence_objective=(FLAGS.sentence_objective
                                    or DEFAULT_SENTENCE_OBJECTIVE[FLAGS.model]),
                max_ngram=FLAGS.max_ngram)
        if FLAGS.engine == "beam" and not FLAGS.merge_manifests:
            if FLAGS.output_file or not FLAGS.output_dir or FLAGS.shard_index:
                raise ptd.PretrainingDataError(
                    "--engine=beam writes --output_dir (no --output_file, no --shard_index)")
            from kbert.data.beam_records import create_pretraining_data_on_beam
            if FLAGS.verbosity <= 0:   # Beam's progress lines are INFO; its problems stay
                import logging as std_logging
                std_logging.getLogger("apache_beam").setLevel(std_logging.WARNING)
            manifest = create_pretraining_data_on_beam(
                FLAGS.input_file, FLAGS.vocab_file, FLAGS.output_dir, settings,
                argv[1:] or None, num_workers=FLAGS.num_shards, overwrite=FLAGS.overwrite)
        elif not FLAGS.merge_manifests:
            manifest = ptd.create_pretraining_data(
                FLAGS.input_file, FLAGS.vocab_file, output_dir=FLAGS.output_dir,
                output_files=FLAGS.output_file, settings=settings,
                num_processes=FLAGS.num_processes, num_shards=FLAGS.num_shards,
                shard_index=FLAGS.shard_index, overwrite=FLAGS.overwrite)
    except (ptd.PretrainingDataError, OutputError, OSError) as e:
        return console.report_error("create_pretraining_data", e, FLAGS.verbosity)
    except Exception as e:   # noqa: BLE001 — a full disk / unwritable place, in one line
        if not is_environment_fault(e):
            raise
        return console.report_error("create_pretraining_data", e, FLAGS.verbosity)
    logging.info("%d examples (%d NotNext) in %d shards", manifest["num_examples"],
                 manifest.get("num_not_next", 0), len(manifest["shards"]))
    return 0


if __name__ == "__main__":
    app.run(main)
