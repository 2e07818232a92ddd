"""`auto` mixed precision: bfloat16 exactly where the CPU flags list AVX512-BF16 or AMX."""

import pytest

from kbert.training.precision import cpu_flags, has_fast_bfloat16, resolve_precision


@pytest.mark.parametrize("flags,expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, "mixed_bfloat16"),
    ({"avx2", "amx_tile", "amx_bf16"}, "mixed_bfloat16"),
    ({"avx2", "avx512f", "amx_int8"}, "none"),
    (set(), "none"),
])
def test_auto_follows_cpu_flags(flags, expected):
    assert resolve_precision("auto", cpu_flags=flags) == expected


@pytest.mark.parametrize("name", ["none", "mixed_float16", "mixed_bfloat16"])
def test_explicit_names_pass_through(name):
    assert resolve_precision(name, cpu_flags={"amx_bf16"}) == name


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx512_bf16 amx_bf16\n")
    assert cpu_flags(str(info)) == {"fpu", "sse", "avx512_bf16", "amx_bf16"}
    assert has_fast_bfloat16(cpu_flags(str(info)))
    assert cpu_flags(str(tmp_path / "missing")) == set()
