"""XLA fusion of a step's element-wise ops, the matmuls left to oneDNN.

A graph-mode training step on a CPU runs every element-wise op (GELU, dropout, LayerNorm,
the residual adds, softmax, bias gradients, the loss) as its own kernel: one pass over
memory each, and in bfloat16 TensorFlow's CPU kernels convert element by element. XLA's
auto-clustering restricted to the `FUSIBLE` op class compiles each chain of such ops into
one fused loop while the matmuls stay outside the clusters, on oneDNN's kernels (full XLA,
`--jit_compile`, replaces those with its own, slower ones on this CPU). Measured on kbert's
pre-training step (BUILD_NOTES, issue 17): 1.09-1.24x at mini and 1.02-1.03x at base in
mixed_bfloat16, nothing (0.97-1.05x) in float32 — so `auto` turns it on for mixed_bfloat16
on a machine without an NVIDIA GPU (unmeasured there) and leaves it off otherwise. Where
batch shapes keep changing (fine-tuning's length buckets) XLA compiles every new shape:
0.40x there. Where fusion is in force (`elementwise_fusion_in_force`), `trainers.pretrain`
also runs AdamW's decay and update as one XLA function (`AdamW(compiled_update=True)`).

TensorFlow reads its XLA flags (`TF_XLA_FLAGS`) once, when it runs its first op or lists
its devices; `enable_elementwise_fusion` must come before that (the commands call it right
after parsing their flags: `trainers/xla_fusion_flag.py`) and refuses, naming the reason,
when it is too late. Flags the user set in `TF_XLA_FLAGS` are kept; ours only fill in the
names not already there.

Example:
    >>> resolve_xla_fusion("auto", "mixed_bfloat16", gpu=False)
    'elementwise'
    >>> resolve_xla_fusion("auto", "none", gpu=False)
    'none'
    >>> merged_xla_flags("--tf_xla_auto_jit=1").split()
    ['--tf_xla_auto_jit=1', '--tf_xla_cpu_global_jit', '--tf_xla_ops_to_cluster=FUSIBLE']
"""

from __future__ import annotations

import glob
import os
import sys

MODES = ("auto", "none", "elementwise")
ENV_VAR = "TF_XLA_FLAGS"
ELEMENTWISE_FLAGS = ("--tf_xla_auto_jit=2", "--tf_xla_cpu_global_jit",
                     "--tf_xla_ops_to_cluster=FUSIBLE")


def has_nvidia_gpu(environ=None) -> bool:
    """True when an NVIDIA GPU device file exists and CUDA_VISIBLE_DEVICES does not hide it
    (checked without starting TensorFlow, which would read its XLA flags)."""
    environ = os.environ if environ is None else environ
    if environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def resolve_xla_fusion(mode: str, precision: str, jit_compile: bool = False,
                       gpu: bool | None = None) -> str:
    """`auto` -> `elementwise` for mixed_bfloat16 without a GPU and without full XLA
    (`jit_compile`), else `none`; `none` and `elementwise` are returned as they are."""
    if mode not in MODES:
        raise ValueError(f"xla fusion {mode!r}: use one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    gpu = has_nvidia_gpu() if gpu is None else gpu
    if precision == "mixed_bfloat16" and not jit_compile and not gpu:
        return "elementwise"
    return "none"


def _parsed_flags(text: str | None) -> dict:
    """{"--name": "value" ("" for a bare flag)} of a TF_XLA_FLAGS string."""
    return dict((flag.split("=", 1) + [""])[:2] for flag in (text or "").split())


def merged_xla_flags(current: str | None) -> str:
    """`current` TF_XLA_FLAGS with the element-wise clustering flags whose names it does
    not already set appended."""
    current = (current or "").strip()
    names = _parsed_flags(current)
    added = [flag for flag in ELEMENTWISE_FLAGS if flag.split("=", 1)[0] not in names]
    return " ".join(([current] if current else []) + added)


def tensorflow_started() -> bool:
    """True once TensorFlow has run an op or listed its devices (its XLA flags are read)."""
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.eager import context
    ctx = context.context()
    return bool(getattr(ctx, "_initialized", False) or
                getattr(ctx, "_physical_devices", None) is not None)


def enable_elementwise_fusion(environ=None) -> str:
    """Set `TF_XLA_FLAGS` so that TensorFlow XLA-fuses element-wise ops; return its value.

    Raises RuntimeError when TensorFlow has already started in this process (the flags
    would be silently ignored)."""
    environ = os.environ if environ is None else environ
    if tensorflow_started():
        raise RuntimeError("XLA element-wise fusion must be enabled before TensorFlow runs "
                           "its first op; set TF_XLA_FLAGS=\"" + " ".join(ELEMENTWISE_FLAGS) +
                           "\" before starting the process instead")
    environ[ENV_VAR] = merged_xla_flags(environ.get(ENV_VAR))
    return environ[ENV_VAR]


def elementwise_fusion_in_force(environ=None) -> bool:
    """True when `TF_XLA_FLAGS` asks for auto-clustering of the `FUSIBLE` ops (set by
    `enable_elementwise_fusion`, or by the user before the process started).

    Example:
        >>> elementwise_fusion_in_force({"TF_XLA_FLAGS": " ".join(ELEMENTWISE_FLAGS)})
        True
        >>> elementwise_fusion_in_force({})
        False
    """
    environ = os.environ if environ is None else environ
    flags = _parsed_flags(environ.get(ENV_VAR))
    return (flags.get("--tf_xla_ops_to_cluster") == "FUSIBLE"
            and flags.get("--tf_xla_auto_jit", "0") not in ("0", "-1"))


def apply_xla_fusion(mode: str, precision: str, jit_compile: bool = False,
                     environ=None) -> str:
    """Resolve `mode` (`resolve_xla_fusion`) and, for `elementwise`, enable it; the mode.

    Example:
        >>> apply_xla_fusion("none", "mixed_bfloat16")
        'none'
    """
    resolved = resolve_xla_fusion(mode, precision, jit_compile)
    if resolved == "elementwise":
        enable_elementwise_fusion(environ)
    return resolved


__all__ = ["ELEMENTWISE_FLAGS", "MODES", "apply_xla_fusion", "elementwise_fusion_in_force",
           "enable_elementwise_fusion", "has_nvidia_gpu", "merged_xla_flags",
           "resolve_xla_fusion", "tensorflow_started"]
