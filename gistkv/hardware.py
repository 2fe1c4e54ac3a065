"""Does this machine multiply in bfloat16 natively? ``context_autocast: bfloat16`` pays off only there.

    python -c "from gistkv.hardware import native_bfloat16; print(native_bfloat16('cpu'))"

A CPU without AVX512-BF16 or AMX still runs bfloat16 autocast, by converting every operand:
on such a CPU (Xeon @ 2.00GHz, AVX512 without BF16) one base-model read of 2,048 tokens took
19.5 s in bfloat16 against 5.7 s in float32, while the CPUs the default was tuned on read it
~2x faster in bfloat16.
"""

from __future__ import annotations

import torch

# torch's own CPU probes (private: a torch without them makes native_bfloat16 say None); either one
# means native bfloat16 matmuls.
CPU_BFLOAT16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def native_bfloat16(device_type: str) -> bool | None:
    """True where bfloat16 matmuls run natively on ``device_type`` ("cpu"/"cuda"), False where they are
    emulated, None where this torch cannot tell."""
    if device_type == "cuda":   # torch counts emulation (pre-Ampere GPUs) as support unless told not to
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    probes = [getattr(torch.cpu, name, None) for name in CPU_BFLOAT16_PROBES]
    if all(probe is None for probe in probes):
        return None
    return any(probe() for probe in probes if probe is not None)


def emulated(device_type: str) -> str:
    """What a missing native bfloat16 means on ``device_type``: the doctor's line and the warning's reason."""
    if device_type == "cuda":
        return "emulated on cuda (no native bfloat16 below compute capability 8.0): bfloat16 reads are slow"
    return ("emulated on cpu (no native bfloat16: no AVX512-BF16/AMX): context_autocast: bfloat16 reads "
            "~3x slower than float32 here")


def slow_autocast_warning(autocast: str, device_type: str) -> str | None:
    """The warning for a context read in bfloat16 where it is emulated, else None."""
    if autocast != "bfloat16" or native_bfloat16(device_type) is not False:
        return None
    return (f"context_autocast is bfloat16, but bfloat16 matmuls are {emulated(device_type)} (`gistkv doctor`); "
            "train.context_autocast: none reads in float32 (another recipe: its numbers are not the committed ones)")


def describe(device_type: str) -> str:
    """One line for `gistkv doctor`."""
    native = native_bfloat16(device_type)
    if native is None:
        return "unknown (this torch has no CPU probe)"
    if native:
        measured = " (context_autocast: bfloat16 reads were ~2x faster than float32 on such CPUs)" * (device_type == "cpu")
        return f"native on {device_type}{measured}"
    return emulated(device_type)


def host_label() -> str:
    """The machine a run is timed on, e.g. "AMD EPYC, AVX2, 2 cores" (and its GPUs' names, if any): a resumed
    evaluation says when it changed."""
    import os
    import platform
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    name = names[0] if names else (platform.processor() or platform.machine())
    gpus = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores" + "".join(f", {gpu}" for gpu in gpus)
