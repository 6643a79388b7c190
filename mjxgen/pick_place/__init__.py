"""The pick_place task: `python -m mjxgen.pick_place`."""

from mjxgen.envs.pick_place import PickPlaceConfig, PickPlaceEnv, PickPlaceState

__all__ = ["PickPlaceConfig", "PickPlaceEnv", "PickPlaceState"]
