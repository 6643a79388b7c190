"""The task registry: env names -> env classes, and `make_env`."""

from __future__ import annotations

import functools


def _reach():
    from mjxgen.reach.env import ReachEnv

    return ReachEnv


def _pick_place():
    from mjxgen.pick_place.env import PickPlaceEnv

    return PickPlaceEnv


ENVS = {"reach": _reach, "pick_place": _pick_place}


@functools.cache
def make_env(name: str):
    """The env of that name with its default config. Cached: one env object, so one compiled rollout."""
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r}; choose one of: {', '.join(sorted(ENVS))}")
    return ENVS[name]()()
