"""Which floating-point precision a deep plugin trains in, decided at run time and recorded.

``precision`` is a parameter of every Keras plugin:

- ``"float32"``: plain float32 (the behaviour of cxrbench before the parameter existed, and
  the default of every Keras plugin that was not measured to gain from bfloat16);
- ``"bfloat16"``: Keras' ``mixed_bfloat16`` policy (bfloat16 compute, float32 variables);
- ``"float16"``: ``mixed_float16`` (for GPUs with tensor cores; slower on CPUs);
- ``"auto"``: bfloat16 with TensorFlow on a CPU whose flags include ``avx512_bf16`` or
  ``amx_bf16`` (units oneDNN uses for bfloat16 convolutions and matrix products), float32
  everywhere else (GPUs, other backends, CPUs without bfloat16 units). The default of the
  plugins measured to train faster that way with validation ROC AUC within the seed-to-seed
  noise (``cnn_seed``, ``cnn_strong``); the small MLP and the MobileNet backbones gained
  nothing or lost time, so they stay in float32 (``benchmarks/README.md``).

:func:`resolve_precision` returns the Keras dtype policy and a record of the decision
(requested, used, why, the CPU's bfloat16 flags) that the plugins put in ``fit_info_``, so every
result says how it was computed. Nothing here imports Keras until a plugin is fitted.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any

PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# CPU flags (Linux /proc/cpuinfo names) of units that compute in bfloat16.
BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (empty when the OS does not say: then no bfloat16 is assumed)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, ARM
            return frozenset(value.split())
    return frozenset()


def bf16_units(flags: frozenset[str] | None = None) -> list[str]:
    """The bfloat16 flags this CPU has (``[]``: none, so bfloat16 would be emulated, slowly)."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in BF16_FLAGS if f in flags]


def resolve_precision(requested: str, *, backend: str, device: str,
                      flags: frozenset[str] | None = None) -> tuple[str, dict[str, Any]]:
    """``(Keras dtype policy name, record for fit_info)`` for a requested precision.

    ``backend`` and ``device`` are :func:`cxrbench.plugins.keras_common.backend_info`'s.
    An explicit precision is used as asked, with a note when the hardware lacks the units.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    units = bf16_units(flags)
    on_cpu = device == "cpu"
    if requested == "auto":
        if on_cpu and backend == "tensorflow" and units:
            used, why = "bfloat16", f"TensorFlow on a CPU with {' and '.join(units)}"
        elif on_cpu and backend == "tensorflow":
            used, why = "float32", "this CPU has no bfloat16 units (avx512_bf16, amx_bf16)"
        elif on_cpu:
            used, why = "float32", f"bfloat16 not measured with the {backend} backend on CPU"
        else:
            used, why = "float32", f"bfloat16 not measured on {device}"
    else:
        used, why = requested, "as requested"
        if on_cpu and requested == "bfloat16" and not units:
            why += " (this CPU has no bfloat16 units: emulated, expect it to be slow)"
    return POLICIES[used], {
        "requested": requested, "used": used, "policy": POLICIES[used], "reason": why,
        "cpu_bf16_flags": units, "machine": platform.machine(),
    }
