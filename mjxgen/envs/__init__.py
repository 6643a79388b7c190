"""The envs: the `Env` protocol, the registry (env names -> env classes) and `make_env`.

Every task is a class in this package that satisfies `Env`. The rollout, the writer and the CLIs use an env
only through that protocol, and get one only through `make_env`.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, runtime_checkable

import jax
import mujoco

from mjxgen.runtime import process

with process.warp_prints_hidden():  # mjxgen's first import of MJX: every module that uses it is in this package
    from mujoco import mjx

from mjxgen.kernels import policies, randomize  # noqa: E402
from mjxgen.envs.pick_place import PickPlaceEnv  # noqa: E402
from mjxgen.envs.reach import ReachEnv  # noqa: E402


@runtime_checkable
class Env(Protocol):
    """What the rollout, the writer and the CLIs rely on in an env.

    An env is static: build it once (`make_env`), then trace its pure methods inside one jit. Its states are
    NamedTuples (pytrees) with a `data: mjx.Data` field; the rollout reads `data.qpos` (for rendering) and
    `data.mocap_pos` (the episode's targets) from it. Everything else in a state is the task's own.
    """

    name: str  # the registry name (also the rollout's TRACE_COUNT key)
    config: Any  # the task's frozen, keyword-only config dataclass (an instance of config_class)
    config_class: type  # a class attribute, so configs are checked without building an env
    policy_names: tuple[str, ...]  # a class attribute, so policy names are checked without building an env
    mj_model: mujoco.MjModel  # the compiled scene
    mjx_model: mjx.Model  # the same on the device; the rollout batches its randomized fields
    xml: str  # the scene's self-contained MJCF, stored in every dataset
    substeps: int  # physics steps per control step
    action_size: int  # an action's length: a policy's act returns a (action_size,) floating array

    @property
    def obs_shapes(self) -> dict[str, tuple[int, ...]]:
        """Observation key -> shape, in the order the observations are stored."""

    def reset(self, m: mjx.Model, key: jax.Array) -> Any:
        """An episode's start state, drawn from key."""

    def step(self, m: mjx.Model, state: Any, action: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """One control step: (new state, reward (), success () bool)."""

    def observe(self, state: Any) -> dict[str, jax.Array]:
        """The observations of a state, keyed and ordered as obs_shapes."""

    def draw(self, key: jax.Array, ranges: randomize.RandomizationConfig) -> randomize.Draw:
        """One episode's domain-randomization draw from its key (ranges: float32 arrays, randomize.OFF for none)."""

    def randomize(self, m: mjx.Model, state: Any, draw: randomize.Draw) -> tuple[mjx.Model, Any]:
        """One episode's domain randomization applied: (its model, its start state)."""

    def policy(self, name: str) -> policies.Policy:
        """The named policy; a ValueError names the choices."""

    def config_dict(self) -> dict:
        """The task settings, for the dataset's metadata (JSON)."""


ENVS: dict[str, type[Env]] = {"reach": ReachEnv, "pick_place": PickPlaceEnv}


def env_class(name: str) -> type[Env]:
    """The env class registered under name; a ValueError names the choices."""
    if not isinstance(name, str):
        raise TypeError(f"env_name must be a str, got {type(name).__name__} {name!r}")
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r}; choose one of: {', '.join(sorted(ENVS))}")
    return ENVS[name]


def env_config_type(name: str, config: Any) -> type:
    """The config class of env `name`; a TypeError if `config` is neither None nor an instance of it."""
    cls = env_class(name).config_class
    if config is not None and not isinstance(config, cls):
        raise TypeError(f"env_config for {name!r} must be a {cls.__name__} (or None), got {type(config).__name__}")
    return cls


def make_env(name: str, config: Any = None) -> Env:
    """The env of that name, with `config` (the task's config dataclass; None: its defaults).

    Cached by (name, config): the same pair gives the same env object, so one compiled rollout per shape,
    and two different configs never share an env. Calls mjxgen.configure() first: the env's arrays are the
    first JAX computation of many programs."""
    process.configure()
    cls = env_config_type(name, config)
    return _make_env(name, cls() if config is None else config)


@functools.cache
def _make_env(name: str, config: Any) -> Env:
    return env_class(name)(config)


__all__ = ["ENVS", "Env", "env_class", "env_config_type", "make_env"]
