"""mjxgen: vectorized MJX batch simulation for robot-learning trajectory datasets."""

import contextlib as _contextlib
import io as _io
import sys as _sys

from mjxgen import render as _render
from mjxgen import xla_config as _xla_config

_xla_config.configure()  # before anything imports jax and creates its CPU backend
_render.configure_gl()  # before mujoco is imported: it reads MUJOCO_GL once


def _import_mjx_quietly() -> None:
    """Import mujoco.mjx without its "Failed to import warp" prints (Warp is optional; the JAX backend
    is used). Anything else it prints is passed through."""
    buf = _io.StringIO()
    with _contextlib.redirect_stdout(buf):
        import mujoco.mjx  # noqa: F401
    for line in buf.getvalue().splitlines():
        if not line.startswith(("Failed to import warp", "Failed to import mujoco_warp")):
            print(line, file=_sys.stdout)


_import_mjx_quietly()

from mjxgen.dataset import DatasetFormatError, TrajectoryDataset  # noqa: E402
from mjxgen.envs import make_env  # noqa: E402
from mjxgen.generate import generate_dataset  # noqa: E402
from mjxgen.rollout import Rollout, rollout_batch  # noqa: E402

__all__ = ["make_env", "rollout_batch", "Rollout", "generate_dataset", "TrajectoryDataset", "DatasetFormatError"]
__version__ = "0.1.0"
