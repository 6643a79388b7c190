"""mjxgen: vectorized MJX batch simulation for robot-learning trajectory datasets.

Importing it changes no environment variable and prints nothing. `configure()` applies the XLA flags and the
GL backend choice; the CLIs, generate_dataset, make_env and rollout_batch call it, and code that computes
with JAX before them should call it first.
"""

from mjxgen.dataset import DatasetFormatError, TrajectoryDataset
from mjxgen.envs import make_env
from mjxgen.generate import generate_dataset
from mjxgen.rollout import Rollout, rollout_batch
from mjxgen.runtime import configure

__all__ = ["configure", "make_env", "rollout_batch", "Rollout", "generate_dataset", "TrajectoryDataset",
           "DatasetFormatError"]
__version__ = "0.1.0"
