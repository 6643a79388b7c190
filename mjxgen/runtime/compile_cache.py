"""JAX's persistent compilation cache, on by default: a compiled rollout is written to disk once and loaded by
every later process with the same program, XLA flags and device count (JAX's cache key covers them).

Where: `--compile-cache DIR` / `configure(compile_cache=DIR)`, else the environment variable
MJXGEN_COMPILE_CACHE (a directory, or 0/off/false/no to switch it off), else $XDG_CACHE_HOME/mjxgen, else
~/.cache/mjxgen. Off: `--no-compile-cache`, `configure(compile_cache=False)` or MJXGEN_COMPILE_CACHE=0; mjxgen
then leaves JAX's own settings (JAX_COMPILATION_CACHE_DIR) alone. A directory that can't be created or written
gives one warning and no cache, never an error. Applied by mjxgen.configure(), before JAX compiles anything.
The same directory holds mjxgen's exported programs (mjxgen.sim.programs) in `programs/`: on and off with it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

ENV_VAR = "MJXGEN_COMPILE_CACHE"
OFF = ("0", "off", "false", "no")
# Programs that compile faster than this are not worth a disk entry (the rollouts take 10-30 s on a CPU; the
# per-episode values program about 1 s).
MIN_COMPILE_SECS = 0.5
# The directory enable() switched on in this process (None: no cache, or enable() not called yet).
_active: Path | None = None


def default_dir() -> Path:
    """$XDG_CACHE_HOME/mjxgen, or ~/.cache/mjxgen."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mjxgen"


def resolve(setting: str | os.PathLike | bool | None = None) -> Path | None:
    """The cache directory that `setting` (a directory, False for off, None for the environment's choice)
    asks for, or None for no cache."""
    if setting is False:
        return None
    if setting is None or setting is True:
        env = os.environ.get(ENV_VAR)
        if env is None:
            return default_dir()
        if env.strip().lower() in OFF or not env.strip():
            return None
        setting = env
    return Path(os.fspath(setting)).expanduser()


def _writable(path: Path) -> str | None:
    """None if path is (or can be made) a writable directory, else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".mjxgen-probe-"):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return None


def active() -> Path | None:
    """The cache directory in use in this process, or None (off, unwritable, or mjxgen.configure() not run)."""
    return _active


def enable(setting: str | os.PathLike | bool | None = None) -> Path | None:
    """Point JAX's persistent compilation cache at the chosen directory; returns it, or None (off, or not
    writable: then one warning)."""
    global _active
    path = resolve(setting)
    if path is None:
        return None
    problem = _writable(path)
    if problem is not None:
        warnings.warn(f"mjxgen: the compile cache {path} is not writable ({problem}); compiling without a "
                      f"persistent cache (choose another with --compile-cache DIR or {ENV_VAR}=DIR, or "
                      f"{ENV_VAR}=0 to silence this)", stacklevel=3)
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS)
    _active = path
    return path
