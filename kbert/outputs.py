"""The output contract: kbert never deletes or overwrites what it did not write.

Every output of every command goes through this module: whole directories
(`replace_directory`), single files (`replace_file`) and run directories that a command fills
over hours and may resume (`RunDirectory`). The rules:

- an output that is, is inside, or contains one of the run's inputs is refused, always;
- an existing output is refused unless `overwrite`; with it, only kbert's own files are
  replaced: a user's file beside them stays, and a user's file where kbert would write is
  refused (never replaced), with the path named;
- what counts as kbert's own is recorded in the output itself: `.kbert-output.json` in a
  directory lists the entries kbert wrote there with their size and modification time, so a
  file the user has since edited, or put where kbert's once was, is the user's;
- everything is written under a hidden staging name (`.<name>.kbert-staging-<pid>-<hex>`),
  checked, then renamed into place; a kill at any point leaves the previous output or the new
  one, never half of either, and the next write to that output removes the dead run's
  leftovers (or, for a directory swap cut short, puts the previous files back);
- a full disk, a read-only place or a permission fault is one `OutputError` naming the path
  and the cause; commands print it as one line and exit 2, the previous output intact.

Example:
    >>> with replace_file("/tmp/kbert_doc_scores.json", kind="scores", overwrite=True) as tmp:
    ...     _ = open(tmp, "w").write("{}")
    >>> is_own("/tmp/kbert_doc_scores.json")
    True
    >>> with replace_directory("/tmp/kbert_doc_out", kind="example", overwrite=True) as staging:
    ...     _ = open(os.path.join(staging, "a.txt"), "w").write("a")
    >>> own_files("/tmp/kbert_doc_out", "example")
    ['a.txt']
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import sys
import time
from typing import Callable, Iterable

MARKER_NAME = ".kbert-output.json"
FORMAT = "kbert.outputs/2"
_STAGING = "kbert-staging"
_BACKUP = "kbert-backup"
_REPLACED = "kbert-replaced"    # an earlier run kept aside until the run replacing it ends


class OutputError(Exception):
    """An output that must not be written (foreign, overlapping an input) or could not be
    written (permission, disk full). The message names the path and the cause."""


def _commit_point(name: str) -> None:
    """Called at each step of a commit (tests stop the process here to check what a kill
    leaves); does nothing."""


# ----------------------------------------------------------------------------- markers
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


def _stat(path: str) -> dict:
    """What identifies a file kbert wrote: its size and modification time (a rename keeps
    both; an edit changes them). Directories written whole carry markers of their own."""
    info = os.lstat(path)
    if os.path.isdir(path):
        return {"tree": True}
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def read_marker(directory: str) -> dict | None:
    """The marker of `directory` in the current form, or None when it has none.

    `{"format", "kind": the kind of the directory as an output or None, "run": a run
    directory's settings or None, "entries": {relative name: {"kind", "size", "mtime_ns"} or
    {"kind", "tree": True}}, "pending": {name: entry} (renames a kill may have cut short)}`.
    """
    found = _json_dict(os.path.join(directory, MARKER_NAME))
    if found is None:
        return None
    if isinstance(found.get("files"), list):      # the first marker format: names only
        return {"format": FORMAT, "kind": found.get("kind"), "run": None, "pending": {},
                "entries": {name: {"kind": found.get("kind"), "legacy": True}
                            for name in found["files"] if isinstance(name, str)}}
    if not isinstance(found.get("entries"), dict):
        return None
    found.setdefault("pending", {})
    found.setdefault("run", None)
    found.setdefault("kind", None)
    return found


def _new_marker(kind: str | None = None, run: dict | None = None) -> dict:
    return {"format": FORMAT, "kind": kind, "run": run, "entries": {}, "pending": {}}


def _write_marker(directory: str, marker: dict) -> None:
    """Replace `directory`'s marker atomically (a staging file renamed over it)."""
    path = os.path.join(directory, MARKER_NAME)
    staging = _hidden_sibling(path, _STAGING)
    try:
        with open(staging, "w", encoding="utf-8") as f:
            json.dump(marker, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)
    except BaseException:
        _remove(staging)
        raise


def _entry_is_intact(directory: str, name: str, entry: dict) -> bool:
    path = os.path.join(directory, name)
    if not os.path.lexists(path):
        return False
    if entry.get("tree") or entry.get("legacy"):
        return True
    try:
        now = _stat(path)
    except OSError:
        return False
    return now.get("size") == entry.get("size") and now.get("mtime_ns") == entry.get("mtime_ns")


def _own_entries(directory: str, marker: dict | None) -> dict:
    """The marker's entries still on disk as kbert left them."""
    if marker is None:
        return {}
    return {name: entry for name, entry in marker["entries"].items()
            if _entry_is_intact(directory, name, entry)}


def is_own(path: str) -> bool:
    """True when kbert wrote `path` (a file or a claimed directory) and it is unchanged since,
    as recorded in its directory's marker."""
    directory, name = os.path.split(_real(path))
    marker = read_marker(directory)
    entry = (marker or {}).get("entries", {}).get(name)
    return entry is not None and _entry_is_intact(directory, name, entry)


def own_files(directory: str, kind: str) -> list[str] | None:
    """Files (relative names) kbert wrote into `directory` as an output of `kind`, unchanged
    since; None when `directory` is not kbert's output of that kind."""
    marker = read_marker(directory)
    if marker is not None:
        if marker.get("kind") != kind:
            return None
        return sorted(_own_entries(directory, marker))
    recognise = LEGACY_RECOGNISERS.get(kind)
    return recognise(directory) if recognise else None


def write_marker(directory: str, kind: str, files: Iterable[str] | None = None) -> None:
    """Mark `directory` as kbert's output of `kind` owning `files` (default: every file in it)."""
    if files is None:
        files = _files_under(directory)
    marker = _new_marker(kind)
    for name in files:
        marker["entries"][name] = {"kind": kind, **_stat(os.path.join(directory, name))}
    _write_marker(directory, marker)


def _files_under(directory: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, _, names in os.walk(directory) for name in names
                  if name != MARKER_NAME)


_HELD: dict[str, int] = {}   # directories this process holds the lock of -> depth


@contextlib.contextmanager
def _locked(directory: str):
    """An exclusive lock on `directory` (flock on the directory itself), so two commands
    writing outputs into one directory update its marker one after the other. Re-entrant
    within a process (flock is not, across two descriptors of one directory)."""
    key = _real(directory)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD[key] = 1
        yield
    finally:
        _HELD.pop(key, None)
        os.close(fd)


# ----------------------------------------------------------------------------- checks
def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _contains(parent: str, child: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def _named(output: str, flag: str | None) -> str:
    return f"{flag}={output}" if flag else f"output {output}"


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


def _check_writable(directory: str, output: str) -> None:
    """Create and remove a hidden probe in `directory` (or its nearest existing parent), so a
    read-only or unwritable place is refused before any work, naming `output`."""
    probe_dir = os.path.abspath(directory)
    while not os.path.isdir(probe_dir):
        parent = os.path.dirname(probe_dir)
        if parent == probe_dir:
            break
        probe_dir = parent
    probe = _hidden_sibling(os.path.join(probe_dir, "probe"), _STAGING)
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.remove(probe)
    except OSError as e:
        raise OutputError(f"cannot write {output}: {describe_fault(e)}") from e


def check_output(output: str, kind: str, inputs: Iterable[str | None] = (),
                 overwrite: bool = False, replace_own: bool = False, *,
                 is_file: bool = False, flag: str | None = None) -> None:
    """Raise OutputError unless `output` may be written (see the module doc).

    Call it early, before minutes of work, with the arguments the writer will get; the
    writer checks again. Leftovers of killed runs at `output` are cleaned up here.

    Args:
        output: the file or directory to write.
        kind: what kbert writes there ("model", "tflite", "scores", ...): an existing
            directory output of another kind counts as the user's.
        inputs: files and directories the run reads; `output` may not overlap them.
        overwrite: replace kbert's own earlier output; write into a user's directory (only
            kbert's files are placed; the user's stay).
        replace_own: replace kbert's own earlier output without `overwrite` (only for the
            outputs of a run that is being resumed).
        is_file: `output` is a single file (`replace_file`), not a directory.
        flag: the flag that named `output`, for the messages.
    """
    name = _named(output, flag)
    check_not_overlapping(output, inputs, what=name.split("=")[0] if flag else "output")
    try:
        clean_leftovers(output)
    except OSError as e:
        raise OutputError(f"cannot write {output}: {describe_fault(e)}") from e
    if is_file:
        if os.path.isdir(output):
            raise OutputError(f"{name} is a directory; name a file")
        if os.path.lexists(output):
            if not is_own(output):
                raise OutputError(
                    f"{name} exists and was not written by kbert (or was changed since); "
                    f"kbert never replaces it: move it away or choose another path")
            if not (overwrite or replace_own):
                raise OutputError(f"{name} exists (kbert wrote it); pass --overwrite to "
                                  f"replace it")
        _check_writable(os.path.dirname(_real(output)), output)
        return
    if os.path.lexists(output) and not os.path.isdir(output):
        raise OutputError(f"{name} exists and is not a directory")
    if os.path.isdir(output) and _visible_entries(output):
        own = own_files(output, kind)
        if own is None and not overwrite:
            raise OutputError(
                f"{name} exists and was not written by kbert as a {kind} output; choose "
                f"another directory, or pass --overwrite to add kbert's files beside the ones "
                f"there (none of them is replaced)")
        if own is not None and not (overwrite or replace_own):
            raise OutputError(f"{name} holds kbert's earlier {kind} output; pass --overwrite "
                              f"to replace kbert's files in it (any others stay)")
        _check_writable(output, output)
    _check_writable(os.path.dirname(_real(output)), output)


def _visible_entries(directory: str) -> list[str]:
    """What a directory holds besides kbert's marker."""
    return [n for n in os.listdir(directory) if n != MARKER_NAME]


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


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _settle_pending(directory: str) -> None:
    """Finish what a killed commit left in `directory`'s marker: a pending entry whose file
    arrived (same size and time as staged) becomes kbert's; the others are dropped."""
    marker = read_marker(directory)
    if marker is None or not marker["pending"]:
        return
    for name, entry in marker["pending"].items():
        if _entry_is_intact(directory, name, entry):
            marker["entries"][name] = entry
    marker["pending"] = {}
    _write_marker(directory, marker)


def _entries_with_leftovers(directory: str) -> list[str]:
    """Names inside a kbert output directory that a killed writer left staging or backup
    copies of (`.<name>.kbert-staging-<pid>-…`): a run directory's own entries."""
    pattern = re.compile(rf"^\.(.+)\.(?:{_STAGING}|{_BACKUP})-\d+-[0-9a-f]+$")
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    return sorted({m.group(1) for m in map(pattern.match, entries)
                   if m and "." + m.group(1) != MARKER_NAME})


def clean_leftovers(output: str) -> None:
    """Remove the staging files and directories of killed runs at `output`; finish or undo
    an interrupted commit.

    A backup holds the previous output's own files while a directory is swapped (the marker
    moves last). A kill during the swap leaves it: with the output gone or unmarked, the old
    files go back where they are missing; with the new marker in place, the backup is removed.
    Inside a kbert output directory (a run directory), the leftovers of its entries' writes
    are cleaned the same way.
    """
    if os.path.isdir(output) and os.path.exists(os.path.join(output, MARKER_NAME)):
        for name in _entries_with_leftovers(output):
            _clean_leftovers_of(os.path.join(output, name))
    _clean_leftovers_of(output)


def _clean_leftovers_of(output: str) -> None:
    parent = os.path.dirname(_real(output))
    for staging in _leftovers(output, _STAGING):
        logging.info("removing %s, left by an interrupted run", staging)
        _remove(staging)
    for directory in (parent, output):
        for staging in _leftovers(os.path.join(directory, MARKER_NAME), _STAGING):
            _remove(staging)
    for backup in _leftovers(output, _BACKUP):
        if not os.path.isdir(output):
            logging.warning("restoring %s from %s, left by an interrupted run", output, backup)
            os.replace(backup, output)
            continue
        if read_marker(output) is None:   # the swap stopped half-way: the old files return
            logging.warning("restoring the files of %s from %s, left by an interrupted run",
                            output, backup)
            for name in _files_under(backup) + [MARKER_NAME]:
                source = os.path.join(backup, name)
                target = os.path.join(output, name)
                if os.path.exists(source) and not os.path.exists(target):
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.replace(source, target)
        logging.info("removing %s, left by an interrupted run", backup)
        shutil.rmtree(backup, ignore_errors=True)
    for directory in (parent, output):     # a file output's folder, or the output itself
        if os.path.isdir(directory) and os.path.exists(os.path.join(directory, MARKER_NAME)):
            with _locked(directory):
                _settle_pending(directory)


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


def _fsync_directory(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _as_output_error(output: str, exc: BaseException) -> OutputError:
    return OutputError(f"cannot write {output}: {describe_fault(exc)}")


# ----------------------------------------------------------------------------- single files
@contextlib.contextmanager
def replace_file(output: str, kind: str, inputs: Iterable[str | None] = (),
                 overwrite: bool = False, replace_own: bool = False, *,
                 flag: str | None = None):
    """Yield a hidden staging path beside `output`; on success it becomes `output`.

    The file is written to the staging path, flushed to disk, recorded in the directory's
    marker as pending, renamed over `output` and recorded as kbert's. `output` may not be a
    file kbert did not write (never replaced, even with `overwrite`); kbert's own earlier
    file is replaced only with `overwrite` (see `check_output` for every argument).

    Raises OutputError naming the path: a refused output, or an environment fault (disk
    full, permission denied) while writing — then `output` is as it was before.

    Example:
        >>> with replace_file("/tmp/kbert_doc.txt", "example", overwrite=True) as tmp:
        ...     _ = open(tmp, "w").write("hello")
    """
    inputs = list(inputs)
    check_output(output, kind, inputs, overwrite, replace_own, is_file=True, flag=flag)
    parent = os.path.dirname(_real(output))
    name = os.path.basename(_real(output))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise _as_output_error(output, e) from e
    staging = _hidden_sibling(output, _STAGING)
    try:
        yield staging
        if not os.path.isfile(staging):
            raise OutputError(f"{_named(output, flag)}: the writer produced no file")
        _default_mode(staging)
        with open(staging, "rb+") as f:
            os.fsync(f.fileno())
        _commit_point("file:staged")
        with _locked(parent):
            check_output(output, kind, inputs, overwrite, replace_own, is_file=True,
                         flag=flag)       # it may have appeared meanwhile
            marker = read_marker(parent) or _new_marker()
            entry = {"kind": kind, **_stat(staging)}
            marker["pending"][name] = entry
            _write_marker(parent, marker)
            _commit_point("file:pending")
            os.replace(staging, output)
            _commit_point("file:renamed")
            marker["entries"][name] = entry
            marker["pending"].pop(name, None)
            _write_marker(parent, marker)
        _fsync_directory(parent)
    except BaseException as e:
        _remove(staging)
        if isinstance(e, OutputError):
            raise
        if is_environment_fault(e):
            raise _as_output_error(output, e) from e
        raise


def write_text(output: str, text: str, kind: str, **kwargs) -> None:
    """`replace_file` for a text file (UTF-8)."""
    with replace_file(output, kind, **kwargs) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


# ----------------------------------------------------------------------------- directories
def _swap_in(staging: str, output: str, kind: str, new_files: list[str]) -> None:
    """Move the staged files into `output`, replacing only kbert's own files there."""
    if not os.path.lexists(output):
        _commit_point("dir:swap")
        os.replace(staging, output)
        return
    old_marker = read_marker(output)
    old_own = set(own_files(output, kind) or []) if old_marker is None or \
        old_marker.get("kind") == kind else set()
    present = set(_files_under(output))
    foreign = present - old_own
    clash = sorted(foreign & set(new_files))
    if clash:
        raise OutputError(f"{os.path.join(output, clash[0])} was not written by kbert (or "
                          f"was changed since); move it away to write {output}")
    backup = _hidden_sibling(output, _BACKUP)
    if not foreign and not _empty_folders(output):
        _commit_point("dir:swap")
        os.replace(output, backup)
        _commit_point("dir:half-swapped")
        os.replace(staging, output)
        _commit_point("dir:swapped")
        shutil.rmtree(backup, ignore_errors=True)
        return
    # The user's files stay: move kbert's old files aside, then the new ones in.
    os.makedirs(backup)
    marker = os.path.join(output, MARKER_NAME)
    _commit_point("dir:swap")
    if os.path.exists(marker):
        os.replace(marker, os.path.join(backup, MARKER_NAME))
    for name in sorted(old_own & present):
        target = os.path.join(backup, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(output, name), target)
    _commit_point("dir:half-swapped")
    for name in new_files:
        target = os.path.join(output, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(staging, name), target)
    os.replace(os.path.join(staging, MARKER_NAME), marker)
    _commit_point("dir:swapped")
    shutil.rmtree(backup, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    for name in sorted(old_own - set(new_files), key=len, reverse=True):
        folder = os.path.dirname(os.path.join(output, name))   # emptied of kbert's files
        while folder != output.rstrip(os.sep) and os.path.isdir(folder) \
                and not os.listdir(folder):
            os.rmdir(folder)
            folder = os.path.dirname(folder)


def _empty_folders(directory: str) -> list[str]:
    """Folders under `directory` holding no file at any depth (a user's, as kbert writes
    files only)."""
    return [root for root, dirs, names in os.walk(directory)
            if root != directory and not names and not dirs]


@contextlib.contextmanager
def replace_directory(output: str, kind: str, inputs: Iterable[str | None] = (),
                      overwrite: bool = False, replace_own: bool = False, *,
                      flag: str | None = None):
    """Yield a hidden staging directory; on success its files become `output`.

    Args: as `check_output`. An existing output of this kind is replaced only with
    `overwrite` (or `replace_own`); a user's directory only with `overwrite`, and then the
    user's files stay and only kbert's are placed (a user's file where kbert writes one is
    refused).

    Raises OutputError naming the path: a refused output, or an environment fault (disk
    full, permission denied) while writing — then `output` is as it was before.
    """
    inputs = list(inputs)
    check_output(output, kind, inputs, overwrite, replace_own, flag=flag)
    parent = os.path.dirname(_real(output))
    try:
        os.makedirs(parent, exist_ok=True)
        staging = _hidden_sibling(output, _STAGING)
        os.makedirs(staging)
    except OSError as e:
        raise _as_output_error(output, e) from e
    try:
        yield staging
        new_files = _files_under(staging)
        write_marker(staging, kind, new_files)
        os.chmod(staging, 0o777 & ~_umask())
        _commit_point("dir:staged")
        with _locked(parent):
            check_output(output, kind, inputs, overwrite, replace_own,
                         flag=flag)     # it may have appeared meanwhile
            _swap_in(staging, output, kind, new_files)
        _fsync_directory(parent)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OutputError):
            raise
        if is_environment_fault(e):
            raise _as_output_error(output, e) from e
        raise


# ----------------------------------------------------------------------------- run directories
class RunDirectory:
    """A directory a command fills over a run and resumes after a kill (checkpoints, logs,
    backups, the final model), under the same rules.

    The marker records the run's kind, its settings (a run with other settings is a new run)
    and each entry kbert writes. Started again with the same settings, the run resumes;
    with other settings it is refused; `overwrite` starts afresh: kbert's files of the
    earlier run are kept aside (hidden, beside the directory) until the new run ends
    (`guard`, `finish`) and come back if it fails on a full disk or an unwritable place
    (`abandon`); the user's files stay. A user's file or folder where the run writes one is
    refused, never replaced.

    Example:
        >>> run = RunDirectory("/tmp/kbert_doc_run", "demo", {"lr": 0.1}, overwrite=True)
        >>> run.open().resuming
        False
        >>> with run.file("eval.json") as tmp:
        ...     _ = open(tmp, "w").write("{}")
        >>> run.owns("eval.json")
        True
    """

    def __init__(self, path: str, kind: str, settings: dict, inputs: Iterable[str | None] = (),
                 overwrite: bool = False, names: Iterable[str] = (),
                 flag: str | None = "--output_dir",
                 legacy: Callable[[str], dict | None] | None = None, resume: bool = True):
        """`names`: the entries the run will write (checked for clashes before any work);
        `legacy`: returns the marker of a run directory written before markers, or None;
        `resume`: a run with the same settings resumes (False: it is refused unless
        `overwrite`, which starts afresh)."""
        self.root = path
        self.kind = kind
        self.settings = json.loads(json.dumps(settings))   # as it reads back from disk
        self.inputs = list(inputs)
        self.overwrite = overwrite
        self.names = list(names)
        self.flag = flag
        self.legacy = legacy
        self.resume = resume
        self.resuming = False

    # -- checks ---------------------------------------------------------------------------
    def _marker(self) -> dict | None:
        marker = read_marker(self.root)
        if marker is None and self.legacy is not None and os.path.isdir(self.root):
            marker = self.legacy(self.root)
        return marker

    def _plan(self) -> tuple[str, dict | None]:
        """("new" | "resume" | "restart" | "adopt", marker); OutputError when refused."""
        name = _named(self.root, self.flag)
        check_not_overlapping(self.root, self.inputs, what=self.flag or "output")
        try:
            clean_leftovers(self.root)
        except OSError as e:
            raise _as_output_error(self.root, e) from e
        if os.path.lexists(self.root) and not os.path.isdir(self.root):
            raise OutputError(f"{name} exists and is not a directory")
        if not os.path.isdir(self.root):
            return "new", None
        marker = self._marker()
        own = _own_entries(self.root, marker)
        others = [n for n in _visible_entries(self.root) if n not in own]
        if marker is not None and marker.get("kind") not in (None, self.kind) and own:
            raise OutputError(f"{name} holds kbert's {marker['kind']} output; choose another "
                              f"directory for this {self.kind} run")
        if marker is not None and marker.get("kind") == self.kind:
            same = marker.get("run") in (None, self.settings)   # None: a legacy run
            if not own:
                return "new", marker
            if self.overwrite:
                return "restart", marker
            if same and self.resume:
                return "resume", marker
            if same:
                raise OutputError(f"{name} holds an earlier {self.kind} run; pass --resume to "
                                  f"continue it or --overwrite to start afresh (kbert's files "
                                  f"of that run are replaced, any others stay)")
            changed = sorted(k for k in set(marker.get("run") or {}) | set(self.settings)
                             if (marker.get("run") or {}).get(k) != self.settings.get(k))
            raise OutputError(f"{name} holds a {self.kind} run with other settings "
                              f"({', '.join(changed) or 'unknown'}); choose another "
                              f"directory, or pass --overwrite to start afresh (kbert's "
                              f"files of that run are replaced, any others stay)")
        if others and not self.overwrite:
            raise OutputError(f"{name} exists and was not written by kbert; choose another "
                              f"directory, or pass --overwrite to add kbert's files beside "
                              f"the ones there (none of them is replaced)")
        return "adopt" if others else "new", marker

    def _check_clashes(self, own: dict) -> None:
        for entry in self.names:
            path = os.path.join(self.root, entry)
            if os.path.lexists(path) and entry not in own:
                raise OutputError(f"{path} was not written by kbert (or was changed since) and "
                                  f"this run writes {entry} there; move it away")

    def check(self) -> "RunDirectory":
        """Raise OutputError unless the run may use the directory; writes nothing."""
        plan, marker = self._plan()
        self._check_clashes(_own_entries(self.root, marker)
                            if plan in ("resume", "restart") else {})
        _check_writable(self.root if os.path.isdir(self.root) else
                        os.path.dirname(_real(self.root)), self.root)
        return self

    # -- opening --------------------------------------------------------------------------
    def open(self) -> "RunDirectory":
        """Claim the directory (after every other check passed): resume, or start afresh."""
        plan, marker = self._plan()
        try:
            os.makedirs(self.root, exist_ok=True)
            with _locked(self.root):
                if plan == "resume":
                    self._check_clashes(_own_entries(self.root, marker))
                    self.resuming = True
                    if read_marker(self.root) is None:      # a legacy run: mark it now
                        _write_marker(self.root, marker)
                    return self
                fresh = _new_marker(self.kind, self.settings)
                if plan == "restart":
                    own = _own_entries(self.root, marker)
                    self._check_clashes(own)
                    fresh["replaces"] = self._set_earlier_run_aside(marker, own)
                else:
                    self._check_clashes({})
                try:
                    _write_marker(self.root, fresh)
                except OSError:     # a full disk: the earlier run goes back as it was
                    aside = fresh.get("replaces")
                    if aside and not marker.get("replaces"):
                        self._put_back(os.path.join(os.path.dirname(_real(self.root)), aside))
                    raise
        except OSError as e:
            raise _as_output_error(self.root, e) from e
        self.resuming = False
        return self

    def _set_earlier_run_aside(self, marker: dict, own: dict) -> str | None:
        """Move the earlier run's own entries (and its marker) to a hidden sibling, kept
        until this run finishes (`finish`) or put back if it fails on a fault (`abandon`).
        Only renames: it needs no free space. An earlier run that was itself an unfinished
        restart is dropped; what it replaced stays aside. Returns the sibling's name."""
        if marker.get("replaces"):
            for entry in sorted(own, reverse=True):
                _remove(self.path(entry))
            return marker["replaces"]
        if not own:
            return None
        aside = _hidden_sibling(self.root, _REPLACED)
        os.makedirs(aside)
        for entry in sorted(own):
            target = os.path.join(aside, entry)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(self.path(entry), target)
        if os.path.exists(self.path(MARKER_NAME)):
            os.replace(self.path(MARKER_NAME), os.path.join(aside, MARKER_NAME))
        else:                                   # a legacy run: its marker is written now
            _write_marker(aside, marker)
        logging.info("the earlier run in %s is kept aside in %s until this one ends",
                     self.root, aside)
        return os.path.basename(aside)

    def _put_back(self, aside: str) -> None:
        """Move the earlier run kept in `aside` back (its marker last) and drop `aside`."""
        earlier = read_marker(aside)
        for entry in sorted((earlier or {}).get("entries", {})):
            source = os.path.join(aside, entry)
            if os.path.lexists(source) and not os.path.lexists(self.path(entry)):
                os.makedirs(os.path.dirname(self.path(entry)), exist_ok=True)
                os.replace(source, self.path(entry))
        os.replace(os.path.join(aside, MARKER_NAME), self.path(MARKER_NAME))
        shutil.rmtree(aside, ignore_errors=True)

    def _aside(self) -> str | None:
        name = (read_marker(self.root) or {}).get("replaces")
        return os.path.join(os.path.dirname(_real(self.root)), name) if name else None

    def finish(self) -> None:
        """The run ended well: the earlier run it replaced (kept aside) is removed."""
        aside = self._aside()
        if aside:
            shutil.rmtree(aside, ignore_errors=True)
            with _locked(self.root):
                marker = read_marker(self.root)
                marker.pop("replaces", None)
                _write_marker(self.root, marker)

    def abandon(self) -> None:
        """The run failed on a fault: its own files go and the earlier run it replaced comes
        back as it was (nothing when it replaced none). Renames and removals only."""
        aside = self._aside()
        if not aside or not os.path.isdir(aside):
            return
        with _locked(self.root):
            for entry in sorted(_own_entries(self.root, read_marker(self.root)), reverse=True):
                _remove(self.path(entry))
            self._put_back(aside)
        logging.warning("the earlier run in %s is back as it was", self.root)

    @contextlib.contextmanager
    def guard(self):
        """Around the run's work: on success `finish`; on a fault of the place written to
        (disk full, read-only, permission) `abandon`, so the earlier run is intact; on any
        other error both stay (this run resumable, the earlier one aside)."""
        try:
            yield self
        except BaseException as e:
            if is_environment_fault(e) or (isinstance(e, OutputError)
                                           and str(e).startswith("cannot write")):
                self.abandon()
            raise
        self.finish()

    # -- entries --------------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def owns(self, name: str) -> bool:
        marker = read_marker(self.root)
        entry = (marker or {}).get("entries", {}).get(name)
        return entry is not None and _entry_is_intact(self.root, name, entry)

    def _record(self, name: str, entry: dict | None) -> None:
        with _locked(self.root):
            marker = read_marker(self.root) or _new_marker(self.kind, self.settings)
            if entry is None:
                marker["entries"].pop(name, None)
            else:
                marker["entries"][name] = entry
            _write_marker(self.root, marker)

    def _refuse_foreign(self, name: str) -> None:
        path = self.path(name)
        if os.path.lexists(path) and not self.owns(name):
            raise OutputError(f"{path} was not written by kbert (or was changed since); move "
                              f"it away to continue this run")

    def claim(self, name: str, folder: bool = True) -> str:
        """Record `name` as kbert's: a folder a library fills (e.g. checkpoints/, created
        here), or (`folder=False`) a file written as it goes (a log). Returns its path. A
        user's file or folder there is refused."""
        self._refuse_foreign(name)
        path = self.path(name)
        try:
            if folder:
                os.makedirs(path, exist_ok=True)
            self._record(name, {"kind": self.kind, "tree": True})
        except OSError as e:
            raise _as_output_error(path, e) from e
        return path

    @contextlib.contextmanager
    def file(self, name: str, kind: str | None = None):
        """`replace_file` for `name` in the run (this run's own file is replaced)."""
        self._refuse_foreign(name)
        with replace_file(self.path(name), kind or self.kind, self.inputs,
                          replace_own=True) as tmp:
            yield tmp

    def write_text(self, name: str, text: str, kind: str | None = None) -> None:
        with self.file(name, kind) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)

    @contextlib.contextmanager
    def directory(self, name: str, kind: str):
        """`replace_directory` for `name` in the run (this run's own output is replaced)."""
        self._refuse_foreign(name)
        with replace_directory(self.path(name), kind, self.inputs, replace_own=True) as staging:
            yield staging
        self._record(name, {"kind": kind, "tree": True})

    def discard(self, name: str) -> None:
        """Remove kbert's own entry `name` (a user's file there is left alone)."""
        if self.owns(name):
            _remove(self.path(name))
        if not os.path.lexists(self.path(name)):
            self._record(name, None)

    def set_aside(self, name: str, reason: str) -> str:
        """Rename kbert's own `name` to `<name>.damaged-<time>` (kept, never deleted) and
        return the new path; used for state that fails to load."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = f"{name}.damaged-{stamp}"
        os.replace(self.path(name), self.path(target))
        self._record(name, None)
        self._record(target, {"kind": self.kind, "tree": os.path.isdir(self.path(target)),
                              **({} if os.path.isdir(self.path(target))
                                 else _stat(self.path(target)))})
        logging.warning("%s %s; set aside as %s", self.path(name), reason, self.path(target))
        return self.path(target)

    def release_missing(self) -> None:
        """Forget entries that are gone (a library removed its folder at the end)."""
        marker = read_marker(self.root)
        if marker is None:
            return
        gone = [n for n in marker["entries"] if not os.path.lexists(self.path(n))]
        for name in gone:
            self._record(name, None)


def _default_mode(path: str) -> None:
    """Staging files are created owner-only by some writers; give the final file the usual
    umask mode."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
