"""`--xla_fusion`, shared by `trainers.pretrain` and `trainers.finetune`: the flag, and an
absl flags parser that applies it before TensorFlow reads its XLA flags.

absl runs its init callbacks after parsing and before `main`; one of them (registered when
`tf.distribute` is imported) lists the devices, after which TensorFlow ignores a
`TF_XLA_FLAGS` set later. So the commands apply the flag in `app.run`'s `flags_parser`.

Example:
    >>> from absl import flags
    >>> values = flags.FlagValues()
    >>> define(values)
    >>> _ = flags.DEFINE_bool("jit_compile", False, "", flag_values=values)
    >>> _ = values(["cmd", "--xla_fusion=none"])
    >>> enable(values, "mixed_bfloat16")
    'none'
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from kbert.training import xla_fusion

HELP = ("XLA-fuse the step's element-wise ops (GELU, dropout, LayerNorm, the loss, and on one "
        "device AdamW's decay and update) while the matmuls stay on oneDNN; auto = "
        "elementwise under mixed_bfloat16 without a GPU (measured 1.02-1.24x there, nothing "
        "in float32), else none.")


def define(fv: flags.FlagValues, help_text: str = HELP) -> None:
    """Define `--xla_fusion` on `fv`."""
    flags.DEFINE_enum("xla_fusion", "auto", list(xla_fusion.MODES), help_text, flag_values=fv)


def enable(fv: flags.FlagValues, precision: str) -> str:
    """Apply `--xla_fusion` for `precision` (a resolved policy name); the mode in force.

    An explicit `elementwise` that comes after TensorFlow started raises ValueError naming
    the flag; `auto` then only warns and stays off."""
    try:
        return xla_fusion.apply_xla_fusion(fv.xla_fusion, precision,
                                           jit_compile=fv.jit_compile)
    except RuntimeError as e:
        if fv.xla_fusion == "elementwise":
            raise ValueError(f"--xla_fusion=elementwise: {e}") from e
        logging.warning("--xla_fusion=auto: element-wise fusion left off: %s", e)
        return "none"


def flags_parser(fv: flags.FlagValues, command: str, precision_of, exit_code: int = 2):
    """An `app.run` flags_parser: absl's parsing, then `enable(fv, precision_of(fv))`
    (`precision_of` gives the policy `auto` decides by); a ValueError prints
    `<command>: error: ...` and exits with `exit_code`."""
    def parse(argv):
        remaining = app.parse_flags_with_usage(argv)
        try:
            enable(fv, precision_of(fv))
        except ValueError as e:
            print(f"{command}: error: {e}", file=sys.stderr)
            sys.exit(exit_code)
        return remaining
    return parse
