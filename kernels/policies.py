"""Policies as pure JAX functions: random exploration and the scripted P-controller expert (seed 000)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from mjxgen.kernels import dmp

def _nothing(state) -> dict:
    return {}


class Policy(NamedTuple):
    """A policy as pure functions; its state (a phase, a timer, a DMP, or ()) rides in the rollout's scan.

    `params` is a pytree argument of the compiled rollout (a network's weights, a controller's gains): new
    values of the same shapes reuse the compiled program. The built-in policies take None and ignore it.
    Any object with these methods works as a policy (`record` is optional)."""

    init: Callable[[jax.Array, dict, Any], Any]  # (key, first obs, params) -> initial policy state
    act: Callable[[Any, jax.Array, dict, Any], tuple[jax.Array, Any]]  # (state, key, obs, params) -> (action, state)
    # state -> {field: array}: per-episode values stored with the episode under <policy name>/ (e.g. the DMP)
    record: Callable[[Any], dict] = _nothing


def stateless(fn: Callable[[jax.Array, dict], jax.Array]) -> Policy:
    """A Policy from a function (key, obs) -> action that needs no state and no params."""
    return Policy(init=lambda key, obs, params: (), act=lambda state, key, obs, params: (fn(key, obs), state))


# Seed 000's P-controller moves the end effector at half the maximal commanded speed.
P_GAIN = 0.5


def random_action(key: jax.Array, action_dim: int) -> jax.Array:
    """An action drawn uniformly from [-1, 1]^action_dim."""
    return jax.random.uniform(key, (action_dim,), minval=-1.0, maxval=1.0)


def p_controller(ee_pos, target_pos, gripper: float = 0.0, xp=jnp):
    """Seed 000's scripted expert: action[:3] = normalize(target - ee) * 0.5, action[3] = gripper.

    `xp` is jax.numpy (inside the rollout) or NumPy (the native-MuJoCo reference)."""
    delta = target_pos - ee_pos
    norm = xp.linalg.norm(delta)
    direction = delta / xp.maximum(norm, 1e-9)
    return xp.concatenate([direction * P_GAIN, xp.full((1,), gripper, dtype=delta.dtype)])


def dmp_tracker(
    sample: Callable[[jax.Array, dict], dmp.DMPParams],
    config: dmp.DMPConfig,
    control_dt: float,
    max_step: float,
    gripper: float = 1.0,
) -> Policy:
    """Track a random Cartesian DMP with a P-controller.

    `sample(key, obs)` draws the episode's DMP (start at the end effector). Each control step advances it by
    control_dt in config.substeps steps of mjxgen.kernels.dmp and commands action[:3] = clip((y - ee_pos) / max_step,
    -1, 1), the step that lands the end effector on the DMP's new position y when it is within reach (the arm
    moves at most max_step per action). The gripper action is constant."""
    dt = control_dt / config.substeps

    def init(key, obs, params=None):
        motion = sample(key, obs)
        return motion, dmp.initial_state(motion)

    def act(state, key, obs, params=None):
        motion, st = state
        st = dmp.advance(motion, st, dt, config.substeps, config.scale_forcing)
        move = jnp.clip((st.y - obs["ee_pos"]) / max_step, -1.0, 1.0)
        return jnp.concatenate([move, jnp.full((1,), gripper, move.dtype)]), (motion, st)

    def record(state):
        return state[0]._asdict()

    return Policy(init, act, record)
