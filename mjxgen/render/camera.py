"""Camera images made inside the simulation programs, by the JAX renderer (mjxgen.kernels.raycast).

`Camera` names what a program renders (size, shadows); it is hashable, so it keys compiled programs. `frames`
renders a batch of worlds from their MJX Data and their episodes' draws (light direction, camera offset, geom
colour factors) as uint8 (B, H, W, 3), the images MuJoCo's renderer draws of the same states
(docs/rendering.md gives the measured differences).

A program's segment holds K steps x B slots of frames; `segment_steps` picks K so that a segment's frames stay
within FRAME_BUDGET bytes (the device holds one segment being made and one being fetched).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen.kernels import raycast
from mjxgen.render import scene as raycast_scene

FRAME_BUDGET = 256 * 2**20  # bytes of frames per segment
CPU_CHUNK = 8  # worlds rendered at once on a CPU (lax.map): each stage's arrays stay in cache


@dataclasses.dataclass(frozen=True)
class Camera:
    """What the programs render: the scene's "front" camera at height x width pixels."""

    height: int
    width: int
    shadows: bool = True  # the directional light's hard shadows (about 30% of a frame's cost on a CPU)

    @property
    def frame_bytes(self) -> int:
        return self.height * self.width * 3


@functools.cache
def scene_of(env, camera: Camera) -> raycast.Scene:
    """The static scene of an env's model at the camera's size (made once per env and camera)."""
    return raycast_scene.from_model(env.mj_model, camera.height, camera.width)


@functools.cache
def _base_rgba(env, camera: Camera) -> np.ndarray:
    """(ngeom, 4) the model's drawn colours (materials resolved), by model geom id."""
    scene = scene_of(env, camera)
    out = np.zeros((env.mj_model.ngeom, 4), np.float32)
    out[scene.geom_id] = scene.geom_rgba
    return out


def frames(env, camera: Camera, geom_xpos: jax.Array, geom_xmat: jax.Array, draw) -> jax.Array:
    """(B, H, W, 3) uint8 images of B worlds: geom_xpos (B, ngeom, 3), geom_xmat (B, ngeom, 3, 3) and each
    world's Draw (leaves with a leading B axis)."""
    scene = scene_of(env, camera)
    cam_pos, cam_mat = jax.vmap(lambda offset: raycast.camera_pose(scene, offset))(draw.camera_offset)
    base = jnp.asarray(_base_rgba(env, camera))
    rgb = jnp.clip(base[None, :, :3] * draw.geom_rgb_scale, 0.0, 1.0)
    rgba = jnp.concatenate([rgb, jnp.broadcast_to(base[None, :, 3:], rgb.shape[:2] + (1,))], axis=-1)
    chunk = CPU_CHUNK if jax.default_backend() == "cpu" else None
    return raycast.render_batch(scene, geom_xpos, geom_xmat, cam_pos, cam_mat, draw.light_dir, rgba=rgba,
                                shadows=camera.shadows, chunk=chunk).rgb


def segment_steps(camera: Camera | None, slots: int, default: int) -> int:
    """Steps per segment: `default`, or fewer when B slots' frames of that many steps would pass FRAME_BUDGET."""
    if camera is None:
        return default
    return max(1, min(default, FRAME_BUDGET // (slots * camera.frame_bytes)))
