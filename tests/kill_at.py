"""Run `python -m MODULE ARGS` (or a script) and SIGKILL it at a commit point of kbert.outputs.

    python tests/kill_at.py POINT[#N] -m export.evaluate --tflite=... --output_json=...
    python tests/kill_at.py POINT[#N] script.py ARGS

What is on disk then is what a `kill -9` at that moment leaves. Exit status 0 with
"kill_at: POINT never reached" on stderr when the command ended before the point.
"""

import os
import runpy
import signal
import sys

sys.path.insert(0, os.getcwd())
from kbert import outputs  # noqa: E402

point, _, nth = sys.argv[1].partition("#")
wanted = int(nth or 1)
seen = 0


def _kill(name: str) -> None:
    global seen
    if name == point:
        seen += 1
        if seen == wanted:
            os.kill(os.getpid(), signal.SIGKILL)


outputs._commit_point = _kill
args = sys.argv[2:]
if args[0] == "-m":
    sys.argv = [args[1], *args[2:]]
    try:
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    finally:
        print(f"kill_at: {point} never reached", file=sys.stderr)
else:
    sys.argv = args
    try:
        runpy.run_path(args[0], run_name="__main__")
    finally:
        print(f"kill_at: {point} never reached", file=sys.stderr)
