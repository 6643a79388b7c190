"""mjxgen: vectorized MJX batch simulation for robot-learning trajectory datasets.

Importing it changes no environment variable, prints nothing and loads nothing heavy: the public names below are
imported on first use (so `mjxgen.pusht`'s worker processes never load JAX). `configure()` applies the XLA flags
and the GL backend choice; the CLIs, generate_dataset, make_env and rollout_batch call it, and code that computes
with JAX before them should call it first.
"""

import importlib
import os

# Run from a source checkout (`python -m mjxgen.reach` in the repository's root puts the root first on sys.path),
# the repository's kernels/ and pusht/ folders are mjxgen.kernels and mjxgen.pusht, as the installed package holds
# them (setup.py's package_dir). An installed package has both inside it and is left as it is.
_HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.isdir(os.path.join(_HERE, "kernels")) and os.path.isfile(
        os.path.join(os.path.dirname(_HERE), "kernels", "__init__.py")):
    __path__.append(os.path.dirname(_HERE))

# Public name -> the module that defines it.
_API = {
    "configure": "mjxgen.runtime.process",
    "make_env": "mjxgen.envs",
    "rollout_batch": "mjxgen.sim.rollout",
    "Rollout": "mjxgen.sim.rollout",
    "generate_dataset": "mjxgen.generate.pipeline",
    "TrajectoryDataset": "mjxgen.data.dataset",
    "DatasetFormatError": "mjxgen.data.files",
}
__all__ = list(_API)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mjxgen' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
