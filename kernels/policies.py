"""Policies as pure JAX functions: random exploration and the scripted P-controller expert (seed 000)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

class Policy(NamedTuple):
    """A policy as two pure functions; its state (a phase, a timer, or ()) rides in the rollout's scan."""

    init: Callable[[], Any]  # () -> initial policy state
    act: Callable[[Any, jax.Array, dict], tuple[jax.Array, Any]]  # (state, key, obs) -> (action, state)


def stateless(fn: Callable[[jax.Array, dict], jax.Array]) -> Policy:
    """A Policy from a function (key, obs) -> action."""
    return Policy(init=lambda: (), act=lambda state, key, obs: (fn(key, obs), state))


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
