"""Choose a Keras mixed-precision policy, `auto` picking bfloat16 where the CPU has it.

`auto` resolves to `mixed_bfloat16` on a CPU whose flags (Linux `/proc/cpuinfo`) list
AVX512-BF16 (`avx512_bf16`) or AMX (`amx_bf16`) — there oneDNN runs bfloat16 matmuls at
about twice the float32 rate — and to `none` (float32) elsewhere. Any other name is
returned as it is.

Example:
    >>> resolve_precision("auto", cpu_flags={"avx512f", "amx_bf16"})
    'mixed_bfloat16'
    >>> resolve_precision("auto", cpu_flags={"avx2"})
    'none'
    >>> resolve_precision("mixed_float16")
    'mixed_float16'
"""

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path="/proc/cpuinfo") -> set:
    """The CPU feature flags listed in `path` (empty where it cannot be read)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def has_fast_bfloat16(flags=None) -> bool:
    """True when the CPU flags include AVX512-BF16 or AMX-BF16."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_precision(name: str, cpu_flags=None) -> str:
    """`auto` -> `mixed_bfloat16` or `none` by the CPU; any other name unchanged."""
    if name != "auto":
        return name
    return "mixed_bfloat16" if has_fast_bfloat16(cpu_flags) else "none"
