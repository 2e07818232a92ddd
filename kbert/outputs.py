"""Safe outputs: kbert never deletes or overwrites what it did not write.

Every writer of a directory (model directories, pre-training data, fine-tuning and export
outputs) goes through `replace_directory`:

- the output is written into a hidden staging directory beside it
  (`.<name>.kbert-staging-<pid>-<random>`) and only then moved into place, so a failure or a
  kill leaves the previous output exactly as it was and nothing half-written visible;
- an existing output that is not kbert's own output of the same kind is refused
  (`OutputError`) unless `overwrite=True`, and even then only the files kbert itself wrote
  there are replaced: the user's other files stay, and a foreign file with the name of a file
  kbert writes is refused;
- an output equal to, inside, or containing one of the run's inputs is refused;
- staging and backup directories are hidden, unique and removed afterwards; those a killed
  run left behind are removed (or, for a backup whose swap was interrupted, put back) the
  next time anything is written to that output.

kbert marks its outputs with `.kbert-output.json` (`{"kind": ..., "files": [...]}`). Model
directories and pre-training data written before the marker existed are recognised by their
`config.json` `kbert` section and their `manifest.json` format.

Environment faults while writing (permission denied, disk full) become one `OutputError`
naming the path and the cause; commands print it and exit 2.

Example:
    >>> with replace_directory("/tmp/kbert_doc_out", kind="example") as staging:
    ...     _ = open(os.path.join(staging, "a.txt"), "w").write("a")
    >>> own_files("/tmp/kbert_doc_out", "example")
    ['a.txt']
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import sys
from typing import Callable, Iterable

MARKER_NAME = ".kbert-output.json"
_STAGING = "kbert-staging"
_BACKUP = "kbert-backup"


class OutputError(Exception):
    """An output that must not be written (foreign, overlapping an input) or could not be
    written (permission, disk full). The message names the path and the cause."""


# ----------------------------------------------------------------------------- ownership
def _json_dict(path: str) -> dict | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _legacy_model_files(directory: str) -> list[str] | None:
    config = _json_dict(os.path.join(directory, "config.json"))
    if config is None or "kbert" not in config:
        return None
    return [n for n in ("config.json", "vocab.txt", "model.weights.h5")
            if os.path.exists(os.path.join(directory, n))]


def _legacy_data_files(directory: str) -> list[str] | None:
    manifest = _json_dict(os.path.join(directory, "manifest.json"))
    if manifest is None or not str(manifest.get("format", "")).startswith(
            "kbert.pretraining_data"):
        return None
    return ["manifest.json", *manifest.get("shards", {})]


# Outputs written before markers existed: kind -> directory -> own files or None.
LEGACY_RECOGNISERS: dict[str, Callable[[str], list[str] | None]] = {
    "model": _legacy_model_files,
    "pretraining_data": _legacy_data_files,
}


def read_marker(directory: str) -> dict | None:
    """The marker of a kbert output directory (`{"kind", "files"}`), or None."""
    marker = _json_dict(os.path.join(directory, MARKER_NAME))
    if marker is None or not isinstance(marker.get("files"), list):
        return None
    return marker


def own_files(directory: str, kind: str) -> list[str] | None:
    """Files (relative names) kbert wrote into `directory` as an output of `kind`; None when
    `directory` is not kbert's output of that kind."""
    marker = read_marker(directory)
    if marker is not None:
        return sorted(marker["files"]) if marker.get("kind") == kind else None
    recognise = LEGACY_RECOGNISERS.get(kind)
    return recognise(directory) if recognise else None


def write_marker(directory: str, kind: str, files: Iterable[str] | None = None) -> None:
    """Mark `directory` as kbert's output of `kind` owning `files` (default: every file in it)."""
    if files is None:
        files = [os.path.relpath(os.path.join(root, name), directory)
                 for root, _, names in os.walk(directory) for name in names
                 if name != MARKER_NAME]
    with open(os.path.join(directory, MARKER_NAME), "w", encoding="utf-8") as f:
        json.dump({"kind": kind, "files": sorted(files)}, f, indent=2)


# ----------------------------------------------------------------------------- checks
def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _contains(parent: str, child: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_not_overlapping(output: str, inputs: Iterable[str | None], what: str = "output"
                          ) -> None:
    """Refuse an output equal to, inside, or containing any of `inputs` (files or dirs)."""
    out = _real(output)
    for item in inputs:
        if not item:
            continue
        source = _real(item)
        if out == source:
            raise OutputError(f"{what} {output} is the same as the input {item}")
        if _contains(source, out):
            raise OutputError(f"{what} {output} is inside the input {item}")
        if _contains(out, source):
            raise OutputError(f"{what} {output} contains the input {item}")


def check_output(output: str, kind: str, inputs: Iterable[str | None] = (),
                 overwrite: bool = False, replace_own: bool = True) -> None:
    """Raise OutputError unless `replace_directory` may write `output` (see module doc).

    Call it early (before hours of work) with the same arguments; `replace_directory`
    checks again. Leftovers of killed runs beside `output` are cleaned up here.
    """
    check_not_overlapping(output, inputs)
    try:
        clean_leftovers(output)
    except OSError as e:
        raise OutputError(f"cannot write {output}: {describe_fault(e)}") from e
    if not os.path.lexists(output):
        return
    if not os.path.isdir(output):
        raise OutputError(f"output {output} exists and is not a directory")
    if not os.listdir(output):
        return
    own = own_files(output, kind)
    if own is None and not overwrite:
        raise OutputError(f"output {output} exists and was not written by kbert as a {kind}"
                          f" output; choose another directory (or pass --overwrite to add "
                          f"kbert's files beside the ones there)")
    if own is not None and not replace_own and not overwrite:
        raise OutputError(f"output {output} already exists; pass --overwrite to replace it")


# ----------------------------------------------------------------------------- leftovers
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(output: str, tag: str) -> list[str]:
    parent, name = os.path.split(_real(output))
    prefix = f".{name}.{tag}-"
    try:
        entries = os.listdir(parent)
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        try:
            pid = int(entry[len(prefix):].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            found.append(os.path.join(parent, entry))
    return sorted(found)


def clean_leftovers(output: str) -> None:
    """Remove the staging directories of killed runs; put back an interrupted swap's backup.

    A backup holds the previous output's own files while they are swapped (the marker moves
    last). A kill during the swap leaves it: with the output gone or unmarked, the old files
    go back where they are missing; with the new marker in place, the backup is removed.
    """
    for staging in _leftovers(output, _STAGING):
        logging.info("removing %s, left by an interrupted run", staging)
        shutil.rmtree(staging, ignore_errors=True)
    for backup in _leftovers(output, _BACKUP):
        if not os.path.isdir(output):
            logging.warning("restoring %s from %s, left by an interrupted run", output, backup)
            os.replace(backup, output)
            continue
        if read_marker(output) is None:   # the swap stopped half-way: the old files return
            logging.warning("restoring the files of %s from %s, left by an interrupted run",
                            output, backup)
        for root, _, names in os.walk(backup) if read_marker(output) is None else ():
            for name in names:
                source = os.path.join(root, name)
                target = os.path.join(output, os.path.relpath(source, backup))
                if not os.path.exists(target):
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.replace(source, target)
        logging.info("removing %s, left by an interrupted run", backup)
        shutil.rmtree(backup, ignore_errors=True)


def _hidden_sibling(output: str, tag: str) -> str:
    parent, name = os.path.split(_real(output))
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


# ----------------------------------------------------------------------------- faults
# What libraries say instead of raising OSError (h5py raises RuntimeError "... errno = 28,
# error message = 'No space left on device'"; TensorFlow ResourceExhaustedError "...; No
# space left on device [Op:SaveV2]").
_FAULT_TEXTS = {errno.ENOSPC: ("No space left on device", "errno = 28"),
                errno.EACCES: ("Permission denied", "errno = 13"),
                errno.EROFS: ("Read-only file system", "errno = 30"),
                errno.EDQUOT: ("Disk quota exceeded", "errno = 122")}


def _fault_code(text: str) -> int | None:
    for code, needles in _FAULT_TEXTS.items():
        if any(n in text for n in needles):
            return code
    return None


def is_environment_fault(exc: BaseException) -> bool:
    """OSError, TensorFlow's resource/permission errors, or another library's error whose
    message says the disk is full or the place is not writable."""
    if isinstance(exc, OSError):
        return True
    tf_errors = getattr(sys.modules.get("tensorflow"), "errors", None)
    if tf_errors and isinstance(exc, (tf_errors.ResourceExhaustedError,
                                      tf_errors.PermissionDeniedError,
                                      tf_errors.UnavailableError, tf_errors.DataLossError)):
        return True
    return isinstance(exc, Exception) and _fault_code(str(exc)) is not None


def describe_fault(exc: BaseException) -> str:
    """`No space left on device` / `Permission denied` / the exception's first line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    code = _fault_code(str(exc))
    if code is not None:
        return os.strerror(code)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def require_free_space(directory: str, nbytes: int) -> None:
    """OSError(ENOSPC) naming both sizes when `directory`'s disk has less than `nbytes` free.

    Call it before a writer that fails badly on a full disk (h5py, behind Keras'
    `save_weights`, can crash the interpreter after an ENOSPC).
    """
    probe = os.path.abspath(directory)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free
    if free < nbytes:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (needs about "
                      f"{_size(nbytes)}, {_size(free)} free)", directory)


def _size(nbytes: int) -> str:
    return f"{nbytes / 2 ** 20:.1f} MiB" if nbytes >= 2 ** 20 else f"{nbytes / 1024:.0f} KiB"


# ----------------------------------------------------------------------------- writing
def _swap_in(staging: str, output: str, kind: str, new_files: list[str]) -> None:
    """Move the staged files into `output`, replacing only kbert's own files there."""
    if not os.path.lexists(output):
        os.replace(staging, output)
        return
    old_own = set(own_files(output, kind) or [])
    present = {os.path.relpath(os.path.join(root, name), output)
               for root, _, names in os.walk(output) for name in names} - {MARKER_NAME}
    foreign = present - old_own
    clash = sorted(foreign & (set(new_files) | {MARKER_NAME}))
    if clash:
        raise OutputError(f"{os.path.join(output, clash[0])} was not written by kbert; "
                          f"move it away to write {output}")
    if not foreign:
        backup = _hidden_sibling(output, _BACKUP)
        os.replace(output, backup)
        os.replace(staging, output)
        shutil.rmtree(backup, ignore_errors=True)
        return
    # The user's files stay: move kbert's old files aside, then the new ones in.
    backup = _hidden_sibling(output, _BACKUP)
    os.makedirs(backup)
    marker = os.path.join(output, MARKER_NAME)
    if os.path.exists(marker):
        os.replace(marker, os.path.join(backup, MARKER_NAME))
    for name in sorted(old_own & present):
        target = os.path.join(backup, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(output, name), target)
    for name in new_files:
        target = os.path.join(output, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(staging, name), target)
    os.replace(os.path.join(staging, MARKER_NAME), marker)
    shutil.rmtree(backup, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def replace_directory(output: str, kind: str, inputs: Iterable[str | None] = (),
                      overwrite: bool = False, replace_own: bool = True):
    """Yield a hidden staging directory; on success its files become `output`.

    Args:
        output: the directory to write.
        kind: what kbert writes there ("model", "pretraining_data", "finetune", ...): an
            existing output of another kind counts as foreign.
        inputs: files and directories the run reads; `output` may not overlap them.
        overwrite: allow writing into a foreign directory (only kbert's files are placed;
            the user's stay) and replacing an own output when `replace_own` is False.
        replace_own: replace kbert's own output of `kind` without `overwrite` (model
            directories); False for outputs a user must ask to replace (data sets).

    Raises OutputError naming the path: a refused output, or an environment fault (disk
    full, permission denied) while writing — then `output` is as it was before.
    """
    inputs = list(inputs)
    check_output(output, kind, inputs, overwrite, replace_own)
    try:
        os.makedirs(os.path.dirname(_real(output)), exist_ok=True)
        staging = _hidden_sibling(output, _STAGING)
        os.makedirs(staging)
    except OSError as e:
        raise OutputError(f"cannot write {output}: {describe_fault(e)}") from e
    try:
        yield staging
        new_files = sorted(os.path.relpath(os.path.join(root, name), staging)
                           for root, _, names in os.walk(staging) for name in names
                           if name != MARKER_NAME)
        write_marker(staging, kind, new_files)
        base = 0o777 & ~_umask()
        os.chmod(staging, base)
        check_output(output, kind, inputs, overwrite, replace_own)  # it may have appeared
        _swap_in(staging, output, kind, new_files)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if is_environment_fault(e):
            raise OutputError(f"cannot write {output}: {describe_fault(e)}") from e
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
