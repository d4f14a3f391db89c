"""Which CPU a benchmark ran on, and its peak GFLOP/s for the precision the engine picks there.

Timings only compare on the same CPU: the issue's figures were taken on Intel Sapphire Rapids
(AMX-BF16), but a developer's or CI's machine may be another (seen: an AVX2-only AMD EPYC, where
the engine's ``auto`` precision is float32 and a bf16 step is 10x slower, emulated).
"""

from __future__ import annotations

import os

from nst_core.features import cpu_flags


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    k, v = (s.strip() for s in line.split(":", 1))
                    info.setdefault(k, v)
    except OSError:
        pass
    return info


def cpu_id() -> str:
    """A short, stable name: model, family/model numbers and the matrix units that decide our speed."""
    info = _cpuinfo()
    flags = cpu_flags()
    units = [u for u in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if u in flags][:1] or ["sse"]
    return (f"{info.get('model name', 'unknown CPU')} (family {info.get('cpu family', '?')} "
            f"model {info.get('model', '?')}, {units[0]}, {os.cpu_count()} cores)")


def peak_gflops() -> tuple[float, str]:
    """Peak GFLOP/s of the precision ``auto`` picks here: bf16 with AMX/AVX512-BF16, else fp32 FMA."""
    info = _cpuinfo()
    flags = cpu_flags()
    mhz = float(info.get("cpu MHz", 0) or 0)
    vendor = info.get("vendor_id", "")
    cores = os.cpu_count() or 1
    if "amx_bf16" in flags:
        per_cycle, unit = 1024, "bf16 AMX (1024 FLOP/cycle/core)"
    elif "avx512_bf16" in flags:
        # vdpbf16ps zmm: 32 bf16 pairs = 64 FLOP; Intel issues 2 per cycle, AMD Zen 4 one (double-pumped).
        per_cycle = 64 if vendor == "AuthenticAMD" else 128
        unit = f"bf16 AVX512-BF16 ({per_cycle} FLOP/cycle/core, {vendor})"
    elif "avx512f" in flags:
        per_cycle, unit = 64, "fp32 AVX-512 FMA (64 FLOP/cycle/core)"
    else:
        per_cycle, unit = 32, "fp32 AVX2 FMA (32 FLOP/cycle/core)"
    return cores * mhz / 1000 * per_cycle, f"{cores} cores x {mhz:.0f} MHz x {unit}"
