"""Domain-randomization samplers: pure JAX, one draw per episode from that episode's own key.

`RandomizationConfig` is a pytree: its fields travel into the jitted rollout as float32 array leaves
(`as_arrays`), so turning randomization on or off, or changing a range, reuses the compiled program. With
randomization off (`OFF`) every range is 0: every scale is exactly 1 and every offset exactly 0, and the model
is unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomizationConfig:
    """Per-episode randomization. A scale s means a factor uniform in [1 - s, 1 + s]; 0 turns that item off.

    A pytree whose every field is a leaf; inside the rollout the leaves are float32 arrays (`as_arrays`)."""

    light: bool = True  # light direction uniform on the unit sphere (seed 000); it changes camera images only
    friction: float = 0.2  # sliding (and pair tangential) friction of every contact, +-20% (seed 000)
    object_mass: float = 0.2  # pick_place: the cube's mass and inertia, +-20%
    joint_damping: float = 0.2  # arm joint damping, +-20%
    actuator_gain: float = 0.1  # arm servo stiffness kp and damping kv together, +-10%
    joint_noise: float = 0.02  # rad: the start posture's arm joints, each offset uniformly by up to this much
    camera_jitter: float = 0.02  # m: the camera's position, each axis offset uniformly by up to this much
    colour: float = 0.0  # each geom's RGB, each channel scaled by a factor in [1 - c, 1 + c] (images only; off)

    def as_arrays(self) -> RandomizationConfig:
        """The traced form: every field a float32 array (light: 1.0 or 0.0), never weakly typed, so another
        range or switching randomization on or off does not recompile."""
        return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), self)


# No randomization: every item off.
OFF = RandomizationConfig(light=False, friction=0.0, object_mass=0.0, joint_damping=0.0, actuator_gain=0.0,
                          joint_noise=0.0, camera_jitter=0.0, colour=0.0)


class Draw(NamedTuple):
    """One episode's randomization. Stored in the episode as `randomization/<field>`."""

    light_dir: jax.Array  # (3,) unit vector the light points along (the model's own when light is off)
    friction_scale: jax.Array  # ()
    object_mass_scale: jax.Array  # ()
    joint_damping_scale: jax.Array  # ()
    actuator_gain_scale: jax.Array  # ()
    joint_offset: jax.Array  # (n_joints,) rad
    camera_offset: jax.Array  # (3,) m
    geom_rgb_scale: jax.Array  # (ngeom, 3): each geom's colour factors (images only)


def _scale(key, s):
    return 1.0 + s * jax.random.uniform(key, (), minval=-1.0, maxval=1.0)


def sample(key: jax.Array, cfg: RandomizationConfig, default_light_dir: jax.Array, n_joints: int,
           n_geoms: int) -> Draw:
    """One episode's draw. `cfg` is a RandomizationConfig (OFF for none), as float32 arrays in the rollout. The
    colour factors take their own key (fold_in(key, 7)), so the other items' draws are those of every earlier
    release."""
    k = jax.random.split(key, 7)
    g = jax.random.normal(k[0], (3,))
    light = jnp.where(cfg.light > 0, g / jnp.maximum(jnp.linalg.norm(g), 1e-9), default_light_dir)
    return Draw(
        light_dir=light.astype(jnp.float32),
        friction_scale=_scale(k[1], cfg.friction),
        object_mass_scale=_scale(k[2], cfg.object_mass),
        joint_damping_scale=_scale(k[3], cfg.joint_damping),
        actuator_gain_scale=_scale(k[4], cfg.actuator_gain),
        joint_offset=cfg.joint_noise * jax.random.uniform(k[5], (n_joints,), minval=-1.0, maxval=1.0),
        camera_offset=cfg.camera_jitter * jax.random.uniform(k[6], (3,), minval=-1.0, maxval=1.0),
        geom_rgb_scale=1.0 + cfg.colour * jax.random.uniform(jax.random.fold_in(key, 7), (n_geoms, 3), minval=-1.0,
                                                             maxval=1.0),
    )
