"""Domain-randomization samplers: pure JAX, one draw per episode from that episode's own key.

The ranges travel into the jitted rollout as an array argument (`RandomizationConfig.ranges()`), so turning
randomization on or off, or changing a range, reuses the compiled program. With randomization off every
range is 0: every scale is exactly 1 and every offset exactly 0, and the model is unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomizationConfig:
    """Per-episode randomization. A scale s means a factor uniform in [1 - s, 1 + s]; 0 turns that item off."""

    light: bool = True  # light direction uniform on the unit sphere (seed 000); it changes camera images only
    friction: float = 0.2  # sliding (and pair tangential) friction of every contact, +-20% (seed 000)
    object_mass: float = 0.2  # pick_place: the cube's mass and inertia, +-20%
    joint_damping: float = 0.2  # arm joint damping, +-20%
    actuator_gain: float = 0.1  # arm servo stiffness kp and damping kv together, +-10%
    joint_noise: float = 0.02  # rad: the start posture's arm joints, each offset uniformly by up to this much
    camera_jitter: float = 0.02  # m: the camera's position, each axis offset uniformly by up to this much

    def ranges(self) -> np.ndarray:
        """The traced form: [light, friction, object_mass, joint_damping, actuator_gain, joint_noise, camera]."""
        return np.array(
            [float(self.light), self.friction, self.object_mass, self.joint_damping, self.actuator_gain,
             self.joint_noise, self.camera_jitter],
            np.float32,
        )


OFF = np.zeros(7, np.float32)  # ranges() of "no randomization"


class Draw(NamedTuple):
    """One episode's randomization. Stored in the episode as `randomization/<field>`."""

    light_dir: jax.Array  # (3,) unit vector the light points along (the model's own when light is off)
    friction_scale: jax.Array  # ()
    object_mass_scale: jax.Array  # ()
    joint_damping_scale: jax.Array  # ()
    actuator_gain_scale: jax.Array  # ()
    joint_offset: jax.Array  # (n_joints,) rad
    camera_offset: jax.Array  # (3,) m


def _scale(key, s):
    return 1.0 + s * jax.random.uniform(key, (), minval=-1.0, maxval=1.0)


def sample(key: jax.Array, ranges: jax.Array, default_light_dir: jax.Array, n_joints: int) -> Draw:
    """One episode's draw. `ranges` is RandomizationConfig.ranges() (or OFF)."""
    k = jax.random.split(key, 7)
    on, friction, mass, damping, gain, noise, camera = (ranges[i] for i in range(7))
    g = jax.random.normal(k[0], (3,))
    light = jnp.where(on > 0, g / jnp.maximum(jnp.linalg.norm(g), 1e-9), default_light_dir)
    return Draw(
        light_dir=light.astype(jnp.float32),
        friction_scale=_scale(k[1], friction),
        object_mass_scale=_scale(k[2], mass),
        joint_damping_scale=_scale(k[3], damping),
        actuator_gain_scale=_scale(k[4], gain),
        joint_offset=noise * jax.random.uniform(k[5], (n_joints,), minval=-1.0, maxval=1.0),
        camera_offset=camera * jax.random.uniform(k[6], (3,), minval=-1.0, maxval=1.0),
    )
