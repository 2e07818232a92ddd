"""A quiet console for kbert's commands: TensorFlow's start-up noise off unless asked for.

TensorFlow prints C++ log lines when it loads and starts (`E0000 ... failed call to cuInit`
on a machine without a GPU, oneDNN and CPU-feature notices, XLA `device_compiler` lines); a
newcomer reads the `E` lines as failures. Every command calls `quiet_tensorflow()` before
anything imports TensorFlow, and `import_tensorflow()` where it first needs it, so what a
user sees is kbert's own progress, warnings and errors.

The environment variable `KBERT_TF_LOG` brings the noise back:
`off` (default) | `error` | `warning` | `all` (TensorFlow's C++ levels 3 | 2 | 1 | 0; with
any value but `off` nothing is filtered). An explicit `TF_CPP_MIN_LOG_LEVEL` is kept when
`KBERT_TF_LOG` is not set.

Example:
    >>> from kbert import console
    >>> console.quiet_tensorflow()          # first thing in a command's module
    >>> tf = console.import_tensorflow()    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

ENV_VAR = "KBERT_TF_LOG"
CPP_LEVELS = {"off": "3", "error": "2", "warning": "1", "all": "0"}
# Lines TensorFlow's C++ libraries write to stderr while loading, before its logging starts.
_LOAD_NOISE = re.compile(r"^([IWE]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before "
                         r"absl::InitializeLog|To enable the following instructions:)")


def tf_log_setting() -> str:
    """`KBERT_TF_LOG` (lower-cased), `off` when unset; ValueError naming it when invalid."""
    value = os.environ.get(ENV_VAR, "off").strip().lower() or "off"
    if value not in CPP_LEVELS:
        raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: use one of "
                         f"{', '.join(CPP_LEVELS)}")
    return value


def quiet_tensorflow() -> None:
    """Set TensorFlow's C++ log level from `KBERT_TF_LOG`; call before importing TensorFlow."""
    setting = tf_log_setting()
    if ENV_VAR in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = CPP_LEVELS[setting]
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", CPP_LEVELS[setting])
    if setting == "off":
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def _load_noise_filtered():
    """Run the body with file descriptor 2 captured; replay what is not load-time noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):   # no real stderr (embedded interpreters): nothing to do
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not _LOAD_NOISE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def import_tensorflow():
    """`import tensorflow` with its load-time lines hidden (unless `KBERT_TF_LOG` is set)."""
    quiet_tensorflow()
    if "tensorflow" in sys.modules or tf_log_setting() != "off":
        import tensorflow as tf
    else:
        with _load_noise_filtered():
            import tensorflow as tf
    if tf_log_setting() == "off":
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return tf
