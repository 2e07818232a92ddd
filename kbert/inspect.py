"""See what a BERT sees: a word's contextual vectors per layer, attention maps, masked-word
guesses, on any kbert, Hugging Face or Google model directory.

    python -m kbert.inspect --model=models/minilm --word=bank --sentences=docs/data/bank.txt \
        --output_dir=out/bank
    python -m kbert.inspect --model=models/minilm --attention --text="The bank was closed." \
        --attend_from=bank --output_dir=out/attention
    python -m kbert.inspect --model=runs/demo/pretrained_model --fill="The man went to the [MASK]."

Printed: the per-layer similarity table (with `sense<TAB>sentence` lines, the same-sense and
cross-sense means), the token each head attends to most, the top-k guesses. With
`--output_dir` the same tables (`.tsv`) and the pictures (`.png`) are written there
through `kbert.outputs` (`--overwrite` to replace an earlier one). Bad input is one line
`kbert.inspect: error: ...` and exit status 2, with nothing written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from kbert import console, outputs

COMMAND = "kbert.inspect"
OUTPUT_KIND = "inspection"


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m kbert.inspect",
        description="Show a BERT model's contextual vectors, attention maps and masked-word "
                    "guesses.")
    parser.add_argument("--model", required=True,
                        help="kbert model directory, Hugging Face directory or Google "
                             "checkpoint")
    parser.add_argument("--word", help="the word whose vectors to compare (with --sentences)")
    parser.add_argument("--sentences", help="UTF-8 file, one sentence a line, optionally "
                                            "`sense<TAB>sentence`")
    parser.add_argument("--match", choices=("word", "word_start"), default="word",
                        help="word: --word / --attend_from must be a whole word of the "
                             "sentence; word_start: it may begin a longer word (a Korean "
                             "noun with its particle: 배 in 배를)")
    parser.add_argument("--layers", default="",
                        help="layers to draw as heat maps: 'all', or numbers (0 = embedding "
                             "layer, 'input' = static token embedding), e.g. '0,3,6'; "
                             "default: 0, the middle and the last")
    parser.add_argument("--attention", action="store_true",
                        help="draw every head of every layer for --text")
    parser.add_argument("--text", help="the text for --attention")
    parser.add_argument("--attend_from",
                        help="the word whose most-attended token each head reports "
                             "(default: --word if it is in --text, else the first token)")
    parser.add_argument("--fill", help="a text with [MASK]: the model's top-k guesses "
                                       "(needs a masked-LM head)")
    parser.add_argument("--top_k", type=int, default=5, help="guesses shown per [MASK]")
    parser.add_argument("--output_dir", help="write the tables and PNG pictures here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace kbert's earlier output at --output_dir (a user's files "
                             "there stay)")
    case = parser.add_mutually_exclusive_group()
    case.add_argument("--do_lower_case", dest="do_lower_case", action="store_true",
                      default=None, help="a foreign checkpoint's vocabulary is uncased "
                                         "(default: what it says)")
    case.add_argument("--no_do_lower_case", dest="do_lower_case", action="store_false")
    parser.add_argument("--verbosity", type=int, default=0,
                        help="1: show the traceback of an error")
    return parser


def _check_flags(args):
    from kbert.inspection import InspectionError
    if args.word is not None and not args.sentences:
        raise InspectionError("--word needs --sentences (a file of sentences holding it)")
    if args.sentences and not args.word:
        raise InspectionError("--sentences needs --word (the word to compare)")
    if args.attention and not args.text:
        raise InspectionError("--attention needs --text")
    if args.text and not args.attention:
        raise InspectionError("--text is for --attention; add --attention")
    if not (args.word or args.attention or args.fill is not None):
        raise InspectionError("nothing to do: give --word with --sentences, --attention "
                              "with --text, or --fill")
    if args.fill is not None and not args.fill.strip():
        raise InspectionError("--fill is empty")
    if args.top_k < 1:
        raise InspectionError(f"--top_k must be at least 1, got {args.top_k}")


def chosen_layers(flag: str, num_layers: int) -> list:
    """The layers `--layers` names (see its help); InspectionError for others.

    Example:
        >>> chosen_layers("", 6), chosen_layers("input,2", 6)
        ([0, 3, 6], ['input', 2])
    """
    from kbert.inspection import InspectionError
    if not flag.strip():
        return sorted({0, num_layers // 2, num_layers})
    if flag.strip() == "all":
        return ["input"] + list(range(num_layers + 1))
    found = []
    for part in (p.strip() for p in flag.split(",") if p.strip()):
        if part == "input":
            found.append(part)
        elif part.isdigit() and int(part) <= num_layers:
            found.append(int(part))
        else:
            raise InspectionError(f"--layers: {part!r} is not a layer of this model (0 to "
                                  f"{num_layers}, 'input' or 'all')")
    return found


def _file_name(layer) -> str:
    return f"similarity_layer_{layer}.png"


def run(args) -> dict:
    """Do what `args` ask; returns {file name: writer} for `--output_dir` and prints."""
    from kbert.inspection import read_sentences
    from kbert.inspection.attention import (attention_maps, format_most_attended,
                                            query_positions)
    from kbert.inspection.fill import fill_masks, format_guesses, require_mlm_head
    from kbert.inspection.loading import load_for_inspection
    from kbert.inspection import plots
    from kbert.inspection.similarity import (format_summary, matrices_tsv, require_two,
                                             word_similarities)

    _check_flags(args)
    inputs = [args.model, args.sentences]
    if args.output_dir:
        outputs.check_output(args.output_dir, OUTPUT_KIND, inputs, overwrite=args.overwrite,
                             flag="--output_dir")
    sentences = read_sentences(args.sentences) if args.sentences else None
    if sentences:
        require_two(sentences)
    model = load_for_inspection(args.model, do_lower_case=args.do_lower_case)
    if args.fill is not None:
        require_mlm_head(model)
    layers = chosen_layers(args.layers, model.num_layers) if sentences else []
    files = {}    # name -> function(path) writing it
    if sentences:
        table = word_similarities(model, args.word, sentences, args.match)
        summary = format_summary(table)
        print(f"# cosine similarity of {args.word!r} between {len(sentences)} sentences, "
              f"per layer (input = static token embedding, 0 = embedding layer)")
        print(summary, end="")
        low = float(min(table.matrix(layer).min() for layer in layers))
        files["similarity_by_layer.tsv"] = lambda p, s=summary: _write(p, s)
        files["similarity_pairs.tsv"] = lambda p: _write(p, matrices_tsv(table))
        files["similarity_by_layer.png"] = lambda p: plots.plot_similarity_curve(table, p)
        for layer in layers:
            files[_file_name(layer)] = (lambda p, layer=layer: plots.plot_similarity_heatmap(
                table, layer, p, vmin=low))
    if args.attention:
        maps = attention_maps(model, args.text)
        word = args.attend_from
        if word is None and args.word and maps.tokens.find_word(model.tokenizer, args.word,
                                                                 args.match):
            word = args.word
        text = format_most_attended(maps, query_positions(maps, model.tokenizer, word,
                                                          args.match))
        print(text, end="")
        files["attention_most.tsv"] = lambda p, s=text: _write(p, s)
        files["attention.png"] = lambda p: plots.plot_attention_grid(maps, p)
    if args.fill is not None:
        text = format_guesses(args.fill, fill_masks(model, args.fill, args.top_k))
        print(text, end="")
        files["fill.tsv"] = lambda p, s=text: _write(p, s)
    if args.output_dir:
        with outputs.replace_directory(args.output_dir, OUTPUT_KIND, inputs,
                                       overwrite=args.overwrite,
                                       flag="--output_dir") as staging:
            for name, write in files.items():
                write(os.path.join(staging, name))
        logging.info("wrote %s: %s", args.output_dir, ", ".join(files))
    return files


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    console.import_tensorflow()
    from kbert.checkpoints import CheckpointError
    from kbert.configs import ConfigError
    try:
        run(args)
    except (CheckpointError, ConfigError, OSError, ValueError, outputs.OutputError) as e:
        return console.report_error(COMMAND, e, args.verbosity)
    return 0


if __name__ == "__main__":
    console.quiet_tensorflow()
    sys.exit(main())
