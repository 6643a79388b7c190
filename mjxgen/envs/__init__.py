"""The task registry: env names -> env classes, and `make_env`."""

from __future__ import annotations

import functools
from typing import Any


def _reach():
    from mjxgen.envs.reach import ReachEnv

    return ReachEnv


def _pick_place():
    from mjxgen.envs.pick_place import PickPlaceEnv

    return PickPlaceEnv


ENVS = {"reach": _reach, "pick_place": _pick_place}


def env_class(name: str):
    """The env class registered under name; a ValueError names the choices."""
    if not isinstance(name, str):
        raise TypeError(f"env_name must be a str, got {type(name).__name__} {name!r}")
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r}; choose one of: {', '.join(sorted(ENVS))}")
    return ENVS[name]()


def env_config_type(name: str, config: Any) -> type:
    """The config class of env `name`; a TypeError if `config` is neither None nor an instance of it."""
    cls = env_class(name).config_class
    if config is not None and not isinstance(config, cls):
        raise TypeError(f"env_config for {name!r} must be a {cls.__name__} (or None), got {type(config).__name__}")
    return cls


def make_env(name: str, config: Any = None):
    """The env of that name, with `config` (the task's config dataclass; None: its defaults).

    Cached by (name, config): the same pair gives the same env object, so one compiled rollout per shape,
    and two different configs never share an env."""
    cls = env_config_type(name, config)
    return _make_env(name, cls() if config is None else config)


@functools.cache
def _make_env(name: str, config: Any):
    return env_class(name)(config)
