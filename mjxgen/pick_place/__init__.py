"""The pick_place task: `python -m mjxgen.pick_place`.

Its names (mjxgen.envs.pick_place's) are imported on first use: `python -m mjxgen.pick_place` imports this package
before its __main__, and the command must install its signal handlers before JAX and MuJoCo load
(mjxgen.cli.interrupts).
"""

import importlib

__all__ = ["PickPlaceConfig", "PickPlaceEnv", "PickPlaceState"]


def __getattr__(name: str):
    if name in __all__:
        value = getattr(importlib.import_module("mjxgen.envs.pick_place"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mjxgen.pick_place' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
