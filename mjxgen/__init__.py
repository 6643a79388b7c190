"""mjxgen: vectorized MJX batch simulation for robot-learning trajectory datasets."""

from mjxgen import xla_config as _xla_config

_xla_config.configure()  # before anything imports jax and creates its CPU backend

from mjxgen.envs import make_env  # noqa: E402
from mjxgen.rollout import Rollout, rollout_batch  # noqa: E402

__all__ = ["make_env", "rollout_batch", "Rollout"]
__version__ = "0.1.0"
