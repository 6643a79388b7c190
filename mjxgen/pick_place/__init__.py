"""The pick_place task: `python -m mjxgen.pick_place`."""

from mjxgen.pick_place.env import PickPlaceConfig, PickPlaceEnv, PickPlaceState

__all__ = ["PickPlaceConfig", "PickPlaceEnv", "PickPlaceState"]
