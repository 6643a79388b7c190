"""The reach task: `python -m mjxgen.reach`.

Its names (mjxgen.envs.reach's) are imported on first use: `python -m mjxgen.reach` imports this package before its
__main__, and the command must install its signal handlers before JAX and MuJoCo load (mjxgen.cli.interrupts).
"""

import importlib

__all__ = ["ReachConfig", "ReachEnv", "ReachState"]


def __getattr__(name: str):
    if name in __all__:
        value = getattr(importlib.import_module("mjxgen.envs.reach"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mjxgen.reach' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
