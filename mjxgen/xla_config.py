"""XLA settings that depend on the installed jaxlib, applied before JAX creates its CPU backend.

Two CPU traps (see the README, "CPU performance"):

1. jaxlib 0.7-0.10 compile MJX with XLA's new CPU fusion emitters, which makes it ~500x slower.
   `--xla_cpu_use_fusion_emitters=false` fixes it. Newer XLA does not know the flag and *aborts* the
   process on it, so it is added only for the versions that need it, and appended to any XLA_FLAGS the
   user already has.
2. jaxlib 0.10.x deadlocks on batched LAPACK calls (MJX's Cholesky factorizations) once
   B * nv^3 / 3 >= 200000: it splits them into chunks on the XLA thread pool, and two concurrent
   factorizations leave no thread to run the chunks. `cpu_safe_batch` gives the largest batch that
   stays under the split; `mjxgen.rollout` runs larger batches in chunks of that size.

Nothing here runs on import. `configure` is called by `mjxgen.configure()`, which must come before JAX creates
its backend; this module does not import jax.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import os
import sys
import warnings

FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"
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


def has_lapack_split_deadlock(version: tuple[int, ...]) -> bool:
    """True for jaxlib 0.10.x, whose batched LAPACK calls deadlock on the CPU past a size threshold."""
    return version[:2] == (0, 10)


def cpu_safe_batch(nv: int) -> int:
    """Largest batch of nv x nv Cholesky factorizations that jaxlib 0.10.x does not split."""
    return max(1, math.ceil(_LAPACK_SPLIT_FLOPS / (nv**3 / 3)) - 1)


def _backend_initialized() -> bool:
    xb = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(xb, "_backends", None))


def configure() -> None:
    """Add the XLA flags the installed jaxlib needs to XLA_FLAGS, keeping the user's own flags."""
    version = jaxlib_version()
    if not needs_fusion_flag(version):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" in flags:
        return  # the user chose a value; respect it
    if _backend_initialized():
        warnings.warn(
            "mjxgen.configure() ran after JAX created its backend, so XLA_FLAGS can no longer be set; "
            "MJX on the CPU will be very slow. Call mjxgen.configure() before any JAX computation, "
            f"or set XLA_FLAGS={FUSION_FLAG}.",
            stacklevel=2,
        )
        return
    os.environ["XLA_FLAGS"] = f"{flags} {FUSION_FLAG}".strip()
