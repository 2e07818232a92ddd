r"""Learn a WordPiece vocab.txt from text files (tensorflow-text's WordPiece learner).

Words are normalised exactly as `kbert.tokenizers.BertTokenizer` will normalise them, so
the vocabulary fits the tokenizer that later reads it. `--input` takes what
`trainers.prepare_corpus` takes, recognised by content: text, MediaWiki XML dumps and JSON
lines (compressed or not); dumps and JSON lines are learned from their cleaned sentences
(`kbert.corpus.CorpusDocuments`), never from markup or JSON syntax.

Examples (the embedded corpus, about 25 s on 2 CPU cores; a Wikipedia dump):
    python -m trainers.learn_vocab --input=data/corpus --vocab_size=8000 \
        --output=/tmp/vocab.txt
    python -m trainers.learn_vocab --input=enwiki-latest-pages-articles1.xml-p1p41242.bz2 \
        --vocab_size=30522 --output=/tmp/wiki_vocab.txt
"""

from __future__ import annotations

from absl import app, flags, logging

from kbert import console

console.import_tensorflow()   # quietly, before kbert.tokenizers imports it

from kbert import tokenizers  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("input", None, "Text files or directories (*.txt, searched recursively), "
                  "MediaWiki XML dumps, JSON lines; compressed or not (bz2, gzip, zstd).")
flags.DEFINE_string("text_field", "text", "JSON lines: the field holding a document's text.")
flags.DEFINE_enum("language", "auto", ["auto", "en", "ko", "ja", "zh"],
                  "Sentence-splitting rules for dumps, JSON lines and compressed text; auto "
                  "picks them per paragraph from its script.")
flags.DEFINE_string("output", None, "Where to write vocab.txt (atomically).")
flags.DEFINE_bool("overwrite", False, "Replace the vocabulary kbert wrote there earlier (a "
                  "file kbert did not write is never replaced).")
flags.DEFINE_integer("vocab_size", 8000, "Largest vocabulary size wanted.", lower_bound=16)
flags.DEFINE_bool("do_lower_case", True, "Uncased: lower-case and strip accents.")
flags.DEFINE_integer("num_unused_tokens", 0, "[unusedN] tokens after the specials.",
                     lower_bound=0)
flags.DEFINE_integer("min_count", 2, "Lowest frequency threshold the learner may use.",
                     lower_bound=1)
flags.mark_flags_as_required(["input", "output"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from kbert import outputs
    try:
        outputs.check_output(FLAGS.output, "vocabulary", FLAGS.input, FLAGS.overwrite,
                             is_file=True, flag="--output")
        try:
            from kbert import corpus, text
            lines = corpus.CorpusDocuments(
                text.list_text_files(FLAGS.input), text_field=FLAGS.text_field,
                language=FLAGS.language, keep_plain_text=True).lines()
            tokens = tokenizers.learn_vocabulary(
                lines, vocab_size=FLAGS.vocab_size, lower_case=FLAGS.do_lower_case,
                num_unused_tokens=FLAGS.num_unused_tokens, min_count=FLAGS.min_count)
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(f"--input: {e}") from e
        with outputs.replace_file(FLAGS.output, "vocabulary", FLAGS.input, FLAGS.overwrite,
                                  flag="--output") as tmp:
            tokenizers.write_vocab(tokens, tmp)
    except (ValueError, outputs.OutputError, OSError) as e:
        return console.report_error("learn_vocab", e, FLAGS.verbosity)
    logging.info("wrote %d tokens to %s (vocab_hash %s)", len(tokens), FLAGS.output,
                 tokenizers.vocab_hash(tokens))


if __name__ == "__main__":
    app.run(main)
