"""The versions of everything that shapes the data, recorded in every file and keyed into exported programs."""

from __future__ import annotations

import importlib.metadata
import platform


def package_versions() -> dict[str, str]:
    """Versions of everything that shapes the arm tasks' data, for the file's `versions` attribute."""
    out = {"python": platform.python_version()}
    for name in ("mjxgen", "jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy", "h5py"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
