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
def _stderr_filtered(noise):
    """Run the body with file descriptor 2 captured; replay the lines `noise` does not match."""
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
                if not noise.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def _load_noise_filtered():
    return _stderr_filtered(_LOAD_NOISE)


# What LiteRT's converter, calibrator and interpreter print for every model.
_LITERT_NOISE = re.compile(r"^(fully_quantize: \d|INFO: Created TensorFlow Lite XNNPACK "
                           r"delegate|INFO: Initialized TensorFlow Lite runtime|Applying "
                           r"Transformations|Generating Quantization Parameters|Running "
                           r"Calibration)")


@contextlib.contextmanager
def litert_quiet():
    """Hide LiteRT's per-model chatter (the converter's `fully_quantize: ...` line, the
    XNNPACK notice, the calibrator's deprecation warning); `KBERT_TF_LOG` keeps it."""
    if tf_log_setting() != "off":
        yield
        return
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
        with _stderr_filtered(_LITERT_NOISE):
            yield


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


def import_quietly(*names: str):
    """Import TensorFlow and then `names` (native libraries such as tensorflow_text or
    ai_edge_litert print the same load-time lines) with that noise hidden; returns
    TensorFlow.

    Example:
        >>> import_quietly("tensorflow_text")      # doctest: +SKIP
    """
    import importlib
    tf = import_tensorflow()
    pending = [name for name in names if name not in sys.modules]
    quiet = _load_noise_filtered() if pending and tf_log_setting() == "off" \
        else contextlib.nullcontext()
    with quiet:
        for name in pending:
            importlib.import_module(name)
    return tf


EXIT_BAD_INPUT = 2


def report_error(command: str, error: BaseException, verbosity: int = 0) -> int:
    """Print `<command>: error: <one line>` (an OSError as path + cause, a message of several
    lines joined); return exit code 2.

    With `verbosity` >= 1 the traceback is printed too.

    Example:
        >>> report_error("demo", PermissionError(13, "Permission denied", "/out"))  # doctest: +SKIP
        demo: error: cannot write /out: Permission denied
        2
    """
    if isinstance(error, OSError) and error.strerror:
        where = error.filename if error.filename is not None else "?"
        message = f"{where}: {error.strerror}"
    else:   # a message of several lines (a checkpoint mismatch) joined into one
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        message = " ".join(lines) if lines else repr(error)
    if verbosity >= 1:
        import traceback
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    logging.getLogger("kbert").debug("%s failed", command, exc_info=error)
    print(f"{command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
