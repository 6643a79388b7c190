"""Policies as pure JAX functions: random exploration and the scripted P-controller expert (seed 000)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Seed 000's P-controller moves the end effector at half the maximal commanded speed.
P_GAIN = 0.5


def random_action(key: jax.Array, action_dim: int) -> jax.Array:
    """An action drawn uniformly from [-1, 1]^action_dim."""
    return jax.random.uniform(key, (action_dim,), minval=-1.0, maxval=1.0)


def p_controller(ee_pos: jax.Array, target_pos: jax.Array, gripper: float = 0.0) -> jax.Array:
    """Seed 000's scripted expert: action[:3] = normalize(target - ee) * 0.5, action[3] = gripper."""
    delta = target_pos - ee_pos
    norm = jnp.linalg.norm(delta)
    direction = delta / jnp.maximum(norm, 1e-9)
    return jnp.concatenate([direction * P_GAIN, jnp.full((1,), gripper, dtype=delta.dtype)])
