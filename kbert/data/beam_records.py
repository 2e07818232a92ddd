"""`create_pretraining_data` on Apache Beam: the multi-machine mode without running it by hand.

The hand-run mode (`--num_shards=W --shard_index=i` on each machine, then
`--merge_manifests`) becomes one Beam pipeline: W elements, element i writes output shards
i, i + W, ... exactly as machine i did, into the staging directory that
`kbert.outputs.replace_directory` gives; the worker manifests are then merged into
manifest.json. The shards are byte-identical to a one-machine run (each example's seed comes
from its chunk, not from who writes it). Each element streams the whole text (as each
machine did) and builds the examples of its own shards only.

Example:
    >>> create_pretraining_data_on_beam("/tmp/wiki/corpus-*.txt", "vocab.txt",   # doctest: +SKIP
    ...     "/tmp/records", settings, num_workers=2)
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from kbert import outputs
from kbert.data import manifest as manifest_lib
from kbert.data.corpus import expand_input_patterns
from kbert.data.settings import PretrainingDataError, PretrainingDataSettings

_ERRORS = ".beam-errors.json"


def _write_part(index: int, input_patterns, vocab_file: str, directory: str,
                settings: PretrainingDataSettings, num_workers: int) -> str | None:
    """Machine `index` of `num_workers`: its shards and worker manifest; its error or None."""
    from kbert.data.writer import create_pretraining_data
    try:
        create_pretraining_data(input_patterns, vocab_file, output_dir=directory,
                                settings=settings, num_shards=num_workers, shard_index=index)
    except PretrainingDataError as e:
        return str(e)
    return None


def _save(errors: list, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(errors, f)


def create_pretraining_data_on_beam(input_patterns: str | Sequence[str], vocab_file: str,
                                    output_dir: str, settings: PretrainingDataSettings,
                                    pipeline_options: Sequence[str] | None = None,
                                    num_workers: int = 2, overwrite: bool = False) -> dict:
    """Write `output_dir` (shards + manifest.json) with `num_workers` Beam elements; returns
    the manifest. PretrainingDataError (naming the flag or file) for a bad input, then
    nothing is written. `pipeline_options`: Beam's own flags (default: the direct runner
    with `num_workers` processes)."""
    from kbert.corpus.beam_pipeline import default_options, import_beam, unknown_options
    beam = import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions
    from kbert.data.writer import DATA_KIND
    from kbert.tokenizers.families import files_beside
    if not isinstance(num_workers, int) or num_workers < 1:
        raise PretrainingDataError(f"--num_shards must be a positive integer, got "
                                   f"{num_workers!r}")
    num_workers = min(num_workers, settings.num_output_shards)
    files = expand_input_patterns(input_patterns)
    patterns = input_patterns.split(",") if isinstance(input_patterns, str) else input_patterns
    inputs = [*files, *files_beside(settings.family, vocab_file),
              *(p.strip() for p in patterns if os.path.isdir(p.strip()))]
    options = list(pipeline_options) if pipeline_options else default_options(num_workers)
    unknown = unknown_options(options)
    if unknown:
        raise PretrainingDataError(
            f"unknown Beam pipeline option(s) after `--`: {', '.join(unknown)}")
    with outputs.replace_directory(output_dir, DATA_KIND, inputs, overwrite) as staging:
        errors_path = os.path.join(staging, _ERRORS)
        with beam.Pipeline(options=PipelineOptions(options)) as pipeline:
            _ = (pipeline
                 | "Workers" >> beam.Create(list(range(num_workers)))
                 | "Spread" >> beam.Reshuffle()
                 | "WriteShards" >> beam.Map(_write_part, list(files), vocab_file, staging,
                                             settings, num_workers)
                 | "Errors" >> beam.Filter(lambda error: error is not None)
                 | "AllErrors" >> beam.combiners.ToList()
                 | "SaveErrors" >> beam.Map(_save, errors_path))
        with open(errors_path, encoding="utf-8") as f:
            errors = sorted(json.load(f))
        os.remove(errors_path)
        if errors:
            raise PretrainingDataError(errors[0])
        manifest = manifest_lib.combine_worker_manifests(staging)
        for path in manifest_lib.worker_manifests(staging).values():
            os.remove(path)
        if manifest["num_examples"] == 0:
            raise PretrainingDataError(f"no example came out of {', '.join(files[:3])}")
        manifest_lib.write_manifest(os.path.join(staging, manifest_lib.MANIFEST_NAME),
                                    manifest)
    return manifest
