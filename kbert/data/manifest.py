"""`manifest.json`: what a directory of pre-training shards holds and how it was made.

Written last and atomically, so its presence means every shard it lists is complete. When
the work was split across machines (`--num_shards`), each worker writes
`manifest-worker-IIIII-of-WWWWW.json`; `merge_worker_manifests` (or `read_manifest`, when
all workers are done) combines them.

Example:
    >>> m = read_manifest("/tmp/pretrain_data")                    # doctest: +SKIP
    >>> m["num_examples"], m["max_seq_length"], sorted(m["shards"])[:1]  # doctest: +SKIP
    (1234, 128, ['pretrain-00000-of-00004.tfrecord'])
"""

from __future__ import annotations

import glob
import json
import os
import re

from kbert import fileio
from kbert.data.settings import PretrainingDataError

MANIFEST_NAME = "manifest.json"
FORMAT = "kbert.pretraining_data/1"
_WORKER_RE = re.compile(r"^manifest-worker-(\d{5})-of-(\d{5})\.json$")
# Keys that describe one worker's part rather than the whole data set.
_PER_WORKER_KEYS = ("shards", "num_examples", "num_not_next", "worker")


def worker_manifest_name(shard_index: int, num_shards: int) -> str:
    return f"manifest-worker-{shard_index:05d}-of-{num_shards:05d}.json"


def write_manifest(path: str, manifest: dict) -> None:
    """Write `manifest` as sorted, indented JSON, atomically."""
    fileio.atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except json.JSONDecodeError as e:
        raise PretrainingDataError(
            f"{path} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from e
    if not isinstance(value, dict) or "shards" not in value:
        raise PretrainingDataError(f"{path} is not a kbert pre-training manifest (no 'shards')")
    return value


def worker_manifests(directory: str) -> dict[int, str]:
    """`{shard_index: path}` of the worker manifests in `directory`."""
    found = {}
    for path in sorted(glob.glob(os.path.join(directory, "manifest-worker-*.json"))):
        match = _WORKER_RE.match(os.path.basename(path))
        if match:
            found[int(match.group(1))] = path
    return found


def combine_worker_manifests(directory: str) -> dict:
    """The manifest of the whole data set from every worker's manifest in `directory`.

    Raises PretrainingDataError naming the missing workers or the disagreeing setting.
    """
    paths = worker_manifests(directory)
    if not paths:
        raise PretrainingDataError(f"no {MANIFEST_NAME} and no worker manifests in {directory}")
    parts = {index: _load_json(path) for index, path in paths.items()}
    num_workers = {p["worker"]["num_shards"] for p in parts.values()}
    if len(num_workers) != 1:
        raise PretrainingDataError(
            f"worker manifests in {directory} disagree on --num_shards: {sorted(num_workers)}")
    num_workers = num_workers.pop()
    missing = sorted(set(range(num_workers)) - set(parts))
    if missing:
        raise PretrainingDataError(
            f"{directory}: workers {missing} of --num_shards={num_workers} have not finished "
            f"(no {', '.join(worker_manifest_name(i, num_workers) for i in missing)})")
    first = parts[0]
    settings = {k: v for k, v in first.items() if k not in _PER_WORKER_KEYS}
    for index, part in parts.items():
        for key, value in settings.items():
            if part.get(key) != value:
                raise PretrainingDataError(
                    f"{paths[index]} disagrees with {paths[0]} on {key!r}: "
                    f"{part.get(key)!r} vs {value!r}")
    combined = dict(settings)
    combined["shards"] = {}
    for part in parts.values():
        combined["shards"].update(part["shards"])
    combined["shards"] = dict(sorted(combined["shards"].items()))
    combined["num_examples"] = sum(combined["shards"].values())
    combined["num_not_next"] = sum(p.get("num_not_next", 0) for p in parts.values())
    return combined


def merge_worker_manifests(directory: str) -> dict:
    """Write `manifest.json` from the finished workers' manifests; return it."""
    manifest = combine_worker_manifests(directory)
    write_manifest(os.path.join(directory, MANIFEST_NAME), manifest)
    return manifest


def read_manifest(directory: str) -> dict:
    """The manifest of a shard directory (`manifest.json`, else all worker manifests).

    Raises PretrainingDataError naming the directory when there is none.
    """
    path = os.path.join(directory, MANIFEST_NAME)
    if os.path.isfile(path):
        return _load_json(path)
    if not os.path.isdir(directory):
        raise PretrainingDataError(f"not a directory: {directory}")
    return combine_worker_manifests(directory)


def has_manifest(directory: str) -> bool:
    return (os.path.isfile(os.path.join(directory, MANIFEST_NAME))
            or bool(worker_manifests(directory)))
