"""Faults for the output-contract tests: a process killed (SIGKILL) at a commit point of
`kbert.outputs`, a small or read-only disk (tmpfs), and what a directory holds.

Example:
    >>> cmd = kill_at("file:renamed", ["-m", "export.evaluate", "--tflite=m.tflite"])  # doctest: +SKIP
    >>> with small_disk("64k") as mount: ...                                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

KILL_AT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kill_at.py")


def kill_at(point: str, args: list[str]) -> list[str]:
    """The command line that runs `python args...` and SIGKILLs itself at `point`
    (`file:staged`, `file:pending`, `file:renamed`, `dir:staged`, `dir:swap`,
    `dir:half-swapped`, `dir:swapped`; `POINT#N` for its N-th occurrence)."""
    return [sys.executable, KILL_AT, point, *args]


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = tempfile.mkdtemp(prefix="kbert-mount-probe-")
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", probe], capture_output=True)
        return ok
    finally:
        os.rmdir(probe)


CAN_MOUNT = _can_mount()


@contextlib.contextmanager
def small_disk(size: str, read_only: bool = False, prefill: dict | None = None):
    """A tmpfs of `size` (e.g. "200k") mounted on a fresh directory; `prefill`: files
    {relative path: bytes} written before it is remounted read-only."""
    mount = tempfile.mkdtemp(prefix="kbert-disk-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mount], check=True)
    try:
        for name, data in (prefill or {}).items():
            path = os.path.join(mount, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
        yield mount
    finally:
        subprocess.run(["umount", mount], check=True)
        os.rmdir(mount)


def fill(directory: str, leave: int = 0) -> None:
    """Fill `directory`'s disk up to `leave` free bytes."""
    free = shutil.disk_usage(directory).free - leave
    with open(os.path.join(directory, "ballast"), "wb") as f:
        while free > 0:
            chunk = min(free, 1 << 16)
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError:
                break
            free -= chunk


def snapshot(directory: str) -> dict:
    """{relative path: sha1 of the bytes, or "<dir>"} of everything under `directory`."""
    found = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), directory)] = "<dir>"
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = hashlib.sha1(f.read()).hexdigest()
    return found


def hidden_leftovers(directory: str) -> list[str]:
    """Staging or backup names of kbert's anywhere under `directory`."""
    return sorted(os.path.relpath(os.path.join(root, n), directory)
                  for root, dirs, names in os.walk(directory) for n in dirs + names
                  if ".kbert-staging-" in n or ".kbert-backup-" in n)
