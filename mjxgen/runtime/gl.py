"""MuJoCo's OpenGL backend on a headless machine, chosen before MuJoCo's renderer loads (mjxgen.configure()).

The user's MUJOCO_GL if set; a window system's default where there is a display; otherwise EGL, else OSMesa,
whichever library is present. Without any, asking for images fails with one clear line (mjxgen.render).
"""

from __future__ import annotations

import ctypes.util
import importlib
import os
import sys


def configure_gl() -> str | None:
    """Choose MuJoCo's GL backend for a headless machine; returns the choice (None: MuJoCo's default)."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            _reread_mujoco_gl()
            return backend
    return None


def _reread_mujoco_gl() -> None:
    """MuJoCo reads MUJOCO_GL when it imports its gl_context module, and mujoco.Renderer takes
    gl_context.GLContext when it is built: if mujoco is already imported, reload that module."""
    module = sys.modules.get("mujoco.rendering.classic.gl_context")
    if module is not None:
        importlib.reload(module)
