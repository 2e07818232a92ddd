"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Example:
    >>> atomic_write_text("/tmp/kbert_doc_example.txt", "hello")
    >>> with atomic_path("/tmp/kbert_doc_example.bin") as tmp:
    ...     open(tmp, "wb").write(b"x")
    1
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(path: str) -> None:
    """mkstemp/mkdtemp create owner-only files; give the final file the usual umask mode."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~_umask())


@contextlib.contextmanager
def atomic_path(final_path: str):
    """Yield a temporary path beside `final_path`; on success rename it into place.

    On an exception the temporary file (or directory) is removed and `final_path` is
    left exactly as it was. The temporary name is hidden and carries this process's id
    (`.<name>.kbert-staging-<pid>-<hex>`), so what a killed process left is removed the next
    time `final_path` is written. This replaces whatever is at `final_path`: outputs a user
    names go through `kbert.outputs` (`replace_file`, `RunDirectory`), which decide first.
    """
    from kbert import outputs
    directory = os.path.dirname(os.path.abspath(final_path)) or "."
    os.makedirs(directory, exist_ok=True)
    for leftover in outputs._leftovers(final_path, outputs._STAGING):
        outputs._remove(leftover)
    tmp = outputs._hidden_sibling(final_path, outputs._STAGING)
    try:
        yield tmp
        if os.path.exists(tmp):
            _default_mode(tmp)
        if os.path.isfile(tmp):
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final_path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


@contextlib.contextmanager
def atomic_directory(final_dir: str):
    """Yield a temporary directory; on success it replaces `final_dir` (old one removed).

    It replaces *whatever* is at `final_dir`: outputs a user names go through
    `kbert.outputs.replace_directory`, which refuses foreign directories and keeps the
    user's files. This is for kbert's own internal directories.

    Example:
        >>> with atomic_directory("/tmp/kbert_doc_dir") as d:
        ...     atomic_write_text(os.path.join(d, "a.txt"), "a")
    """
    parent = os.path.dirname(os.path.abspath(final_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(final_dir) + ".", suffix=".tmp", dir=parent)
    try:
        yield tmp
        _default_mode(tmp)
        if os.path.exists(final_dir):
            old = tempfile.mkdtemp(prefix="." + os.path.basename(final_dir) + ".", suffix=".old",
                                   dir=parent)
            os.rmdir(old)
            os.replace(final_dir, old)
            os.replace(tmp, final_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
