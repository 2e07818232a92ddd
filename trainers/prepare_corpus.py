r"""Pre-training text from dumps, JSON lines and books: clean google-research/bert shards.

Inputs are recognised by their content, not their names: MediaWiki XML export dumps
(schema 0.10 / 0.11; plain, bz2 including multistream, gzip; any declared encoding or
byte-order mark, UTF-16 included), JSON lines (`--text_field`; gzip / zstd too), plain
text (one sentence a line with blank lines between documents, or one document a line).
Output: `corpus-IIIII-of-NNNNN.txt` shards (one sentence a line, a blank line between
documents) and `manifest.json` (documents, sentences, characters, pages skipped by reason,
input checksums), then:
    python -m trainers.create_pretraining_data --input_file='/tmp/wiki/corpus-*.txt' ...

Examples:
    python -m trainers.prepare_corpus \
        --input_file='dumps/enwiki-latest-pages-articles*.xml-p*.bz2' \
        --output_dir=/tmp/wiki --num_workers=2

    python -m trainers.prepare_corpus --input_file='c4/*.json.gz,books/*.txt' \
        --text_field=text --output_dir=/tmp/mixed

    # The same output from an Apache Beam pipeline; Beam's own options after `--`
    # (none: the direct runner, FnApiRunner, with --num_workers processes). Flink, Spark,
    # Dataflow: docs/CORPUS.md.
    python -m trainers.prepare_corpus --input_file='dumps/*.bz2' --output_dir=/tmp/wiki \
        --engine=beam -- --runner=FnApiRunner --direct_num_workers=2
"""

from __future__ import annotations

import signal
import sys

from absl import app, flags, logging

from kbert import console

FLAGS = flags.FLAGS
flags.DEFINE_string("input_file", None,
                    "Inputs: comma-separated files, globs or directories (every file "
                    "under them); each is recognised by its content.")
flags.DEFINE_string("output_dir", None, "Directory for the text shards and manifest.json.")
flags.DEFINE_string("text_field", "text", "JSON lines: the field holding a document's text.")
flags.DEFINE_enum("language", "auto", ["auto", "en", "ko", "ja", "zh"],
                  "Sentence-splitting rules; auto picks them per paragraph from its script.")
flags.DEFINE_enum("text_layout", "auto", ["auto", "sentences", "documents"],
                  "Plain text: `sentences` (one a line, blank line between documents), "
                  "`documents` (one a line), or auto (blank lines present → sentences).")
flags.DEFINE_integer("num_workers", 1, "Processes cleaning and splitting (output is "
                     "byte-identical for any count).", lower_bound=1)
flags.DEFINE_integer("max_shard_mb", 128, "Start a new shard after this many MB.",
                     lower_bound=1)
flags.DEFINE_enum("engine", "plain", ["plain", "beam"],
                  "plain: this machine's processes; beam: an Apache Beam pipeline (the same "
                  "output), with Beam's pipeline options after `--`.")
flags.DEFINE_bool("overwrite", False, "Replace the corpus kbert wrote there earlier.")


def main(argv) -> int:
    if len(argv) > 1 and FLAGS.engine != "beam":
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])} (Beam's pipeline "
                             "options are for --engine=beam)")
    from kbert import corpus, outputs
    # On SIGTERM unwind like Ctrl-C, so the staging directory is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        for name in ("input_file", "output_dir"):
            if not getattr(FLAGS, name):
                raise corpus.CorpusError(f"--{name} is required")
        common = dict(text_field=FLAGS.text_field, language=FLAGS.language,
                      text_layout=FLAGS.text_layout, max_shard_bytes=FLAGS.max_shard_mb << 20,
                      overwrite=FLAGS.overwrite)
        if FLAGS.engine == "beam":
            from kbert.corpus import beam_pipeline
            if FLAGS.verbosity <= 0:   # Beam's progress lines are INFO; its problems stay
                import logging as std_logging
                std_logging.getLogger("apache_beam").setLevel(std_logging.WARNING)
            options = argv[1:] or beam_pipeline.default_options(FLAGS.num_workers)
            manifest = beam_pipeline.prepare_corpus_on_beam(
                FLAGS.input_file, FLAGS.output_dir, options, **common)
        else:
            manifest = corpus.prepare_corpus(FLAGS.input_file, FLAGS.output_dir,
                                             num_workers=FLAGS.num_workers, **common)
    except (corpus.CorpusError, outputs.OutputError, OSError) as e:
        return console.report_error("prepare_corpus", e, FLAGS.verbosity)
    except Exception as e:   # noqa: BLE001 — a full disk / unwritable place, in one line
        if not outputs.is_environment_fault(e):
            raise
        return console.report_error("prepare_corpus", e, FLAGS.verbosity)
    logging.info("%d documents, %d sentences, %d characters in %d shards; skipped %s",
                 manifest["documents"], manifest["sentences"], manifest["characters"],
                 len(manifest["shards"]), manifest["skipped"])
    return 0


if __name__ == "__main__":
    app.run(main)
