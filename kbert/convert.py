"""Convert a Hugging Face (BERT, RoBERTa, ALBERT, DistilBERT) or Google BERT checkpoint into
a kbert model directory.

    python -m kbert.convert --source all-MiniLM-L6-v2/ --output models/minilm
    python -m kbert.convert --source uncased_L-12_H-768_A-12/ --output models/bert_base
    python -m kbert.convert --source roberta-base/ --output models/roberta_base

The output (`config.json`, the family's tokenizer files — `vocab.txt`; RoBERTa's
`vocab.json` + `merges.txt`; ALBERT's `spiece.model` — and `model.weights.h5`, written by
`kbert.save_pretrained`) loads with `kbert.load`. Before the output replaces anything it is
loaded back and its outputs compared with the imported model's.

Example (from Python):
    >>> convert_checkpoint("all-MiniLM-L6-v2/", "models/minilm")    # doctest: +SKIP
    'huggingface'
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Iterable

import numpy as np

from kbert import console, outputs
from kbert.checkpoints import (GOOGLE, CheckpointError, detect_format, import_google,
                               import_huggingface)
from kbert.checkpoints.google import find_google_checkpoint, google_do_lower_case
from kbert.checkpoints.huggingface import huggingface_do_lower_case
from kbert.configs import ConfigError
from kbert.tokenizers.families import TOKENIZER_FILES

VOCAB_FILE = "vocab.txt"
# Casing when the source does not say: byte-level BPE is cased, ALBERT's SentencePiece
# lower-cases (Hugging Face's tokenizer defaults); BERT vocabularies must be told.
DEFAULT_DO_LOWER_CASE = {"roberta": False, "albert": True}
VERIFY_TOLERANCE = 1e-6


def _source_directory(source: str, source_format: str) -> str:
    return find_google_checkpoint(source)[1] if source_format == GOOGLE else source


def _resolve_do_lower_case(directory, source_format, requested, family="bert"):
    found = (google_do_lower_case(directory) if source_format == GOOGLE
             else huggingface_do_lower_case(directory))
    if found is None:
        found = DEFAULT_DO_LOWER_CASE.get(family)
    if requested is None:
        if found is None:
            raise CheckpointError(
                f"cannot tell whether the vocabulary of {directory} is lower-cased; "
                f"pass --do_lower_case or --no_do_lower_case")
        return found
    if found is not None and found != requested:
        logging.warning("%s says do_lower_case=%s; using %s as asked", directory, found,
                        requested)
    return requested


def _sample_inputs(model, seed=0):
    config = model.config
    rng = np.random.default_rng(seed)
    length = min(12, config.max_position_embeddings)
    ids = rng.integers(0, config.vocab_size, size=(2, length)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, length // 2 + 1:] = 0
    if hasattr(model, "example_inputs"):
        features = model.example_inputs(batch_size=2, seq_length=length,
                                        num_predictions=min(3, length))
        features.update(input_ids=ids, input_mask=mask)
        return features
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


def max_output_difference(model_a, model_b) -> float:
    """Largest absolute difference over all outputs of two models on the same sample."""
    inputs = _sample_inputs(model_a)
    out_a, out_b = model_a(inputs), model_b(inputs)
    return max(float(np.max(np.abs(np.asarray(out_a[k]) - np.asarray(out_b[k]))))
               for k in out_a if not isinstance(out_a[k], (list, tuple)))


def convert_checkpoint(source: str, output: str, do_lower_case: bool | None = None,
                       vocab_file: str | None = None, heads: str = "auto",
                       allow_missing: Iterable[str] = (), ignore_unexpected: Iterable[str] = (),
                       hidden_act: str | None = None, verify: bool = True,
                       overwrite: bool = False) -> str:
    """Import `source` (either format) and write it to `output`; returns the format name.

    `do_lower_case` defaults to what the source says (Hugging Face `tokenizer_config.json`,
    Google's release directory name, the family's default); an error when none says.
    `vocab_file` replaces a BERT vocabulary; other families' tokenizer files
    (`TOKENIZER_FILES`) must be in the source directory.
    `hidden_act` overrides the source config's activation. `output` may not overlap the
    source; an existing directory kbert did not write is refused unless `overwrite` (see
    `kbert.outputs`).
    """
    from kbert.loading import load
    from kbert.models.saving import MODEL_KIND, write_model_files

    source_format = detect_format(source)
    directory = _source_directory(source, source_format)
    inputs = [source, directory, vocab_file]
    outputs.check_output(output, MODEL_KIND, inputs, overwrite=overwrite)
    options = dict(heads=heads, allow_missing=allow_missing,
                   ignore_unexpected=ignore_unexpected)
    importer = import_google if source_format == GOOGLE else import_huggingface
    model = importer(source, hidden_act=hidden_act, **options)
    family = model.config.family
    names = TOKENIZER_FILES[family]
    tokenizer_files = [os.path.join(directory, name) for name in names]
    if vocab_file and names == (VOCAB_FILE,):
        tokenizer_files = [vocab_file]
    for path in tokenizer_files:
        if not os.path.isfile(path):
            hint = " (pass --vocab_file)" if names == (VOCAB_FILE,) else ""
            raise CheckpointError(f"{family} tokenizer file not found: {path}{hint}")
    do_lower_case = _resolve_do_lower_case(directory, source_format, do_lower_case, family)
    extra = {"converted_from": os.path.abspath(source), "source_format": source_format}
    inputs = [*inputs, *tokenizer_files]
    with outputs.replace_directory(output, MODEL_KIND, inputs, overwrite=overwrite) as staging:
        write_model_files(model, staging, vocab_file=tokenizer_files,
                          do_lower_case=do_lower_case, extra=extra)
        if verify:
            difference = max_output_difference(model, load(staging))
            logging.info("reloaded %s: max abs output difference %.3g", output, difference)
            if not difference <= VERIFY_TOLERANCE:
                raise CheckpointError(f"{output} does not reproduce {source} after saving "
                                      f"(max abs difference {difference:.3g})")
    logging.info("wrote %s (%s, do_lower_case=%s) from %s", output, type(model).__name__,
                 do_lower_case, source)
    return source_format


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m kbert.convert",
        description="Convert a Hugging Face or Google BERT checkpoint to a kbert model "
                    "directory.")
    parser.add_argument("--source", required=True,
                        help="Hugging Face directory, Google directory or checkpoint prefix")
    parser.add_argument("--output", required=True, help="kbert model directory to write")
    parser.add_argument("--vocab_file", help="vocab.txt, if not in the source directory")
    case = parser.add_mutually_exclusive_group()
    case.add_argument("--do_lower_case", dest="do_lower_case", action="store_true",
                      default=None, help="the vocabulary is uncased (default: from source)")
    case.add_argument("--no_do_lower_case", dest="do_lower_case", action="store_false",
                      help="the vocabulary is cased")
    parser.add_argument("--heads", choices=("auto", "encoder", "pretraining"), default="auto",
                        help="keep pre-training heads if present (auto), drop or require them")
    parser.add_argument("--allow_missing", action="append", default=[], metavar="PATTERN",
                        help="variables (Hugging Face names, fnmatch) that may be absent, "
                             "e.g. 'pooler.*'; repeatable")
    parser.add_argument("--ignore_unexpected", action="append", default=[], metavar="PATTERN",
                        help="checkpoint tensors to drop, e.g. 'classifier.*'; repeatable")
    parser.add_argument("--hidden_act", help="override the source config's activation "
                        "(Google's 'gelu' imports as its tanh 'gelu_approximate' by default)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing directory kbert did not write (only "
                             "kbert's files are placed there; the others stay)")
    parser.add_argument("--verbosity", type=int, default=0,
                        help="1: show the traceback of an error")
    parser.add_argument("--no_verify", dest="verify", action="store_false",
                        help="skip reloading the output and comparing outputs")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    console.import_tensorflow()
    try:
        convert_checkpoint(args.source, args.output, do_lower_case=args.do_lower_case,
                           vocab_file=args.vocab_file, heads=args.heads,
                           allow_missing=args.allow_missing,
                           ignore_unexpected=args.ignore_unexpected,
                           hidden_act=args.hidden_act, verify=args.verify,
                           overwrite=args.overwrite)
    except (CheckpointError, ConfigError, OSError, ValueError, outputs.OutputError) as e:
        return console.report_error("kbert.convert", e, args.verbosity)
    return 0


if __name__ == "__main__":
    console.quiet_tensorflow()
    sys.exit(main())
