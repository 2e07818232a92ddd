"""Runs one command through a list of cases in one process (one TensorFlow start-up), for
tests/test_output_contract.py. Prints one JSON line: the command's output flags, and per
case its exit status, its stderr, whether it ended in a traceback, and snapshots of the
paths the case watches just before and just after the command ran.

    python tests/contract_driver.py MODULE CASES.json

A case: {"args": [...], "before": [[op, ...], ...], "watch": [paths]} ("args": null: only
the ops run). Ops: ["write", path,
text], ["mkdir", path], ["small_copy", source, mount] (mounts a tmpfs just big enough for a
copy of `source` plus a little, copies it in with its times), ["fill", mount] (leaves it no
free byte), ["read_only", mount]
(remounts it read-only), ["unmount", mount].
"""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tests.faults import snapshot  # noqa: E402


def _du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, n)) + 4096 for r, _, names in os.walk(path)
               for n in names) + 4096 * 8


def _op(op):
    name, *args = op
    if name == "write":
        os.makedirs(os.path.dirname(args[0]), exist_ok=True)
        with open(args[0], "w") as f:
            f.write(args[1])
    elif name == "mkdir":
        os.makedirs(args[0], exist_ok=True)
    elif name == "small_copy":
        source, mount = args
        os.makedirs(mount, exist_ok=True)
        size = _du(source) + 64 * 1024
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mount],
                       check=True)
        target = os.path.join(mount, os.path.basename(source))
        (shutil.copytree if os.path.isdir(source) else shutil.copy2)(source, target)
    elif name == "fill":
        _fill(args[0])
    elif name == "read_only":
        subprocess.run(["mount", "-o", "remount,ro", args[0]], check=True)
    elif name == "unmount":
        subprocess.run(["umount", args[0]], check=True)
    else:
        raise ValueError(f"unknown op {name}")


def _state(path: str):
    """A directory's snapshot, a file's sha1, or None when absent."""
    import hashlib
    if os.path.isdir(path):
        return snapshot(path)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return hashlib.sha1(f.read()).hexdigest()
    return None


def _fill(mount: str) -> None:
    """Leave no free byte on `mount`'s disk."""
    try:
        with open(os.path.join(mount, "ballast"), "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass


def _absl_command(module):
    from absl import flags

    def output_flags():   # the flags kbert's own modules define (not absl's or a library's)
        return sorted(f.name for module_name, defined in flags.FLAGS.flags_by_module_dict().items()
                      if module_name.split(".")[0] in ("trainers", "export", "kbert")
                      for f in defined if re.match(r"output($|_)", f.name))

    def run(args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS([module.__name__] + args)
        return module.main([module.__name__])
    return output_flags, run


def _argparse_command(module):
    def output_flags():
        return sorted(s.lstrip("-") for a in module._parser()._actions
                      for s in a.option_strings if re.match(r"--output($|_)", s))
    return output_flags, module.main


def main():
    import importlib
    module_name, cases_file = sys.argv[1:3]
    sys.argv = [module_name]
    module = importlib.import_module(module_name)
    output_flags, run = (_argparse_command(module) if hasattr(module, "_parser")
                         else _absl_command(module))
    results = []
    with open(cases_file) as f:
        cases = json.load(f)
    for case in cases:
        for op in case.get("before", []):
            _op(op)
        if case.get("args") is None:       # only the ops (an unmount)
            results.append(None)
            continue
        before = {p: _state(p) for p in case.get("watch", [])}
        err = io.StringIO()
        crashed = False
        with contextlib.redirect_stderr(err):
            try:
                code = run(case["args"])
            except SystemExit as e:
                code = e.code
            except BaseException:   # noqa: BLE001 — a traceback is what the test looks for
                crashed = True
                code = None
                traceback.print_exc(file=err)
        results.append({"code": code, "stderr": err.getvalue(), "traceback": crashed,
                        "before": before,
                        "after": {p: _state(p) for p in case.get("watch", [])}})
    print(json.dumps({"output_flags": output_flags(), "results": results}), flush=True)
    # Many runs in one process: TensorFlow's or h5py's teardown at exit is not under test.
    os._exit(0)


if __name__ == "__main__":
    main()
