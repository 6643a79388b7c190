"""XLA settings that depend on the installed jaxlib, applied before JAX creates its CPU backend.

Two CPU traps and one guarantee (see docs/determinism.md):

1. jaxlib 0.7-0.10 compile MJX with XLA's new CPU fusion emitters, which makes it ~500x slower.
   `--xla_cpu_use_fusion_emitters=false` fixes it. Newer XLA does not know the flag and *aborts* the
   process on it, so it is added only for the versions that need it, and appended to any XLA_FLAGS the
   user already has.
2. jaxlib 0.10.x deadlocks on batched LAPACK calls (MJX's Cholesky factorizations) once
   B * nv^3 / 3 >= 200000: it splits them into chunks on the XLA thread pool, and two concurrent
   factorizations leave no thread to run the chunks. `cpu_safe_batch` gives the largest batch that
   stays under the split; `mjxgen.sim.rollout` runs larger batches in chunks of that size.
3. Batch-invariant math. XLA's CPU compiler always lets LLVM fuse a*b+c into FMA instructions, and whether an
   element is computed in a vector loop (fused) or a remainder loop (not) depends on the array shapes, so
   the same episode rounds differently in a batch of 8 than in a batch of 16 (measured: 1 float32 ulp at the
   first step, and pick_place episodes whose length then changed). `--xla_cpu_max_isa=AVX` (no FMA) makes an
   episode's data bit-identical whatever the batch, the devices or the program it runs in; it cost 3% of
   reach's physics steps per CPU-second here. It is set on x86-64 unless MJXGEN_DETERMINISTIC=0 or the user's
   XLA_FLAGS choose an ISA; jaxlib 0.6.2 through 0.12.0.1 know the flag.

Nothing here runs on import. `configure` is called by `mjxgen.configure()`, which must come before JAX creates
its backend; this module does not import jax.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import os
import platform
import sys
import warnings

FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"
DETERMINISTIC_FLAG = "--xla_cpu_max_isa=AVX"  # no FMA contraction: shape-independent rounding (see 3. above)
# jaxlib 0.10.x splits a batched LAPACK call once batch * n^3 / 3 reaches this many flops.
_LAPACK_SPLIT_FLOPS = 200_000


@functools.cache
def jaxlib_version() -> tuple[int, ...]:
    """The installed jaxlib version as a tuple of ints, e.g. (0, 9, 2); () if unknown."""
    try:
        raw = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return ()
    parts = []
    for piece in raw.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def needs_fusion_flag(version: tuple[int, ...]) -> bool:
    """True for the jaxlib releases (0.7-0.10) whose CPU fusion emitters make MJX pathologically slow."""
    return (0, 7) <= version[:2] <= (0, 10)


def wants_deterministic_flag(version: tuple[int, ...], machine: str, environ) -> bool:
    """True where the ISA cap applies: an x86-64 CPU, a jaxlib that knows the flag, and no opt-out
    (MJXGEN_DETERMINISTIC=0)."""
    x86 = machine.lower() in ("x86_64", "amd64")
    return x86 and version[:2] >= (0, 6) and environ.get("MJXGEN_DETERMINISTIC", "1") != "0"


def has_lapack_split_deadlock(version: tuple[int, ...]) -> bool:
    """True for jaxlib 0.10.x, whose batched LAPACK calls deadlock on the CPU past a size threshold."""
    return version[:2] == (0, 10)


def cpu_safe_batch(nv: int) -> int:
    """Largest batch of nv x nv Cholesky factorizations that jaxlib 0.10.x does not split."""
    return max(1, math.ceil(_LAPACK_SPLIT_FLOPS / (nv**3 / 3)) - 1)


def _backend_initialized() -> bool:
    xb = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(xb, "_backends", None))


def needed_flags(flags: str) -> list[str]:
    """The flags mjxgen adds to XLA_FLAGS for the installed jaxlib, leaving any the user set themselves."""
    version = jaxlib_version()
    out = []
    if needs_fusion_flag(version) and "xla_cpu_use_fusion_emitters" not in flags:
        out.append(FUSION_FLAG)
    if wants_deterministic_flag(version, platform.machine(), os.environ) and "xla_cpu_max_isa" not in flags:
        out.append(DETERMINISTIC_FLAG)
    return out


def configure() -> None:
    """Append the XLA flags the installed jaxlib needs to XLA_FLAGS, keeping the user's own flags."""
    flags = os.environ.get("XLA_FLAGS", "")
    needed = needed_flags(flags)
    if not needed:
        return
    if _backend_initialized():
        warnings.warn(
            "mjxgen.configure() ran after JAX created its backend, so XLA_FLAGS can no longer be set; "
            f"MJX on the CPU may be very slow or round differently per batch size ({' '.join(needed)} missing). "
            "Call mjxgen.configure() before any JAX computation, "
            f"or set XLA_FLAGS='{' '.join(needed)}'.",
            stacklevel=2,
        )
        return
    os.environ["XLA_FLAGS"] = " ".join([flags, *needed]).strip()
