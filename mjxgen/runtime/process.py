"""Process settings that mjxgen needs, applied by `configure()` and never on import.

Importing mjxgen changes no environment variable and prints nothing. `configure()` sets what JAX and MuJoCo
read from the environment:

- XLA_FLAGS: the CPU flag the installed jaxlib needs (mjxgen.runtime.xla). JAX reads it when it creates its
  backend, at the first computation, so configure() must come before any JAX computation.
- MUJOCO_GL: the OpenGL backend of MuJoCo's renderer on a headless machine (mjxgen.runtime.gl).
- JAX's persistent compilation cache (mjxgen.runtime.compile_cache): on by default, in the user's cache directory.

The CLIs, `generate_dataset`, `make_env` and `rollout_batch` call it; code that computes with JAX before
those calls should call `mjxgen.configure()` first.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Iterator

from mjxgen.runtime import compile_cache as compile_cache_module
from mjxgen.runtime import gl
from mjxgen.runtime import xla

_WARP_LINES = ("Failed to import warp", "Failed to import mujoco_warp")
_configured = False


def configure(compile_cache: str | os.PathLike | bool | None = None) -> None:
    """Apply the XLA CPU flags of the installed jaxlib, choose MuJoCo's GL backend and switch on JAX's persistent
    compilation cache (`compile_cache`: a directory, False for none, None for MJXGEN_COMPILE_CACHE or the user
    cache directory; see mjxgen.runtime.compile_cache). Idempotent: only the first call acts (it warns if JAX's backend
    already exists without the flag it needs)."""
    global _configured
    if _configured:
        return
    _configured = True
    xla.configure()
    gl.configure_gl()
    compile_cache_module.enable(compile_cache)


@contextlib.contextmanager
def warp_prints_hidden() -> Iterator[None]:
    """Hide MJX's "Failed to import warp" lines printed inside the block (Warp is optional: the JAX backend is
    used); any other line printed there is passed through to stdout."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        for line in buf.getvalue().splitlines():
            if not line.startswith(_WARP_LINES):
                print(line)
