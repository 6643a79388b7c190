"""Camera images by ray casting, in pure JAX: one ray per pixel against every drawn geom, in closed form.

A pinhole camera casts one ray through the centre of each pixel. Each ray is tested against every drawn geom
(plane, sphere, capsule, ellipsoid, cylinder, box) with a closed-form intersection, and the nearest hit gives
the pixel's depth, geom id and colour. Everything is elementwise arithmetic over the pixels, so `render` is
jittable and vmappable over a batch of worlds, and runs inside the same jitted program as MJX physics on CPU,
GPU or TPU, deterministically. No MuJoCo import, no I/O: the static `Scene` is built once on the host
(mjxgen.render.scene.from_model).

The image imitates MuJoCo's classic OpenGL renderer (`mujoco.Renderer`; src/render/classic/render_gl3.c):
- Lighting is OpenGL's fixed-function model as MuJoCo sets it up: per light, ambient + diffuse (Lambert) +
  Blinn-Phong specular with a local viewer, material ambient and diffuse = the geom's rgba, specular and
  shininess * 128 from the material. The headlight is a directional light along the camera's view; the
  model's (one) directional light casts hard shadows, computed here with a shadow ray where MuJoCo uses a
  shadow map: in shadow, that light's whole term is dropped. Shadow occluders are limited as MuJoCo's map
  limits them: in front of the light's near plane and within `shadow_clip` of its axis.
- Geoms with alpha < 0.995 are transparent. MuJoCo draws them after the opaque ones, without writing depth,
  blended twice (sorted front to back, then back to front), so one such geom covers what is behind it with
  an effective alpha of 1 - (1 - a)^2. They are lit by every light, receive no shadow, but cast one.
- Depth and segmentation come from MuJoCo's segmentation pass, where transparent geoms are opaque: here too
  they are the nearest hit of any drawn geom, transparent or not.
Differences that remain: MuJoCo interpolates lighting from the vertices of tessellated shapes (Gouraud) and
anti-aliases with 4x multisampling; this renderer shades each pixel exactly at one sample (docs/rendering.md gives the
measured differences). Textures, meshes, height fields, reflections, fog,
point and spot lights are not drawn; a plane is invisible from behind (MuJoCo draws it faintly).

Ray/geom intersections follow MJX's `mujoco.mjx._src.ray` (plane, sphere, ellipsoid, box: the same
equations) and, for the capsule and the cylinder (MJX has no cylinder), Inigo Quilez's closed forms
(iquilezles.org, "intersectors"), rewritten for a unit axis so that every quantity that depends only on the
ray origin is computed once per geom, not once per pixel.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen.kernels.raycast.geometry import (BOX, CAPSULE, CYLINDER, ELLIPSOID, PLANE, SPHERE,  # noqa: F401
                                             SUPPORTED_TYPES, intersect)
from mjxgen.kernels.raycast.geometry import _NORMAL, _RAY, _min, _world
from mjxgen.kernels.raycast.shading import (_HIT, _MISS, _bits, _float, _lit, _once, _pack, _quantize, _shade,
                                            _unit, _unpack)

TRANSPARENT_ALPHA = 0.995  # MuJoCo draws a geom as transparent below this alpha (mjr_render)


class Scene(NamedTuple):
    """Everything about a camera image that does not change from step to step: NumPy arrays and Python numbers.

    Geoms are the drawn ones only, in model order (`geom_id` maps them to the model's geom ids).
    """

    height: int
    width: int
    fovy: float  # degrees: the vertical field of view
    znear: float  # m: the camera's near clipping distance (also the near plane of the light's shadow map)
    zfar: float  # m: the depth of background pixels, along the optical axis (as MuJoCo's depth image)
    cam_bodyid: int  # the camera's body (0: the world)
    cam_pos: np.ndarray  # (3,) the camera's position in its body's frame
    cam_mat: np.ndarray  # (3, 3) the camera's axes in its body's frame (columns: right, up, backward)
    geom_id: np.ndarray  # (n,) int32: model geom ids
    geom_type: np.ndarray  # (n,) int32: mjtGeom
    geom_size: np.ndarray  # (n, 3) float32: MuJoCo's geom_size (radius, half-length, half-sizes)
    geom_rgba: np.ndarray  # (n, 4) float32: colour, the material's resolved as MuJoCo resolves it
    geom_rbound: np.ndarray  # (n,) float32: bounding-sphere radius (orders transparent geoms, as MuJoCo does)
    geom_specular: np.ndarray  # (n,) float32
    geom_shininess: np.ndarray  # (n,) float32: MuJoCo's [0, 1]; the Phong exponent is 128 times this
    geom_emission: np.ndarray  # (n,) float32
    global_ambient: np.ndarray  # (3,)
    headlight_ambient: np.ndarray  # (3,)
    headlight_diffuse: np.ndarray  # (3,)
    headlight_specular: np.ndarray  # (3,)
    has_light: bool  # the model has a directional light (at most one is supported)
    light_pos: np.ndarray  # (3,) world position of the light (it places the shadow map)
    light_dir: np.ndarray  # (3,) the light's default world direction (the way its light travels)
    light_ambient: np.ndarray  # (3,)
    light_diffuse: np.ndarray  # (3,)
    light_specular: np.ndarray  # (3,)
    light_castshadow: bool
    shadow_clip: float  # m: half-width of the shadow map's square around the light's axis


class Image(NamedTuple):
    """One camera image."""

    rgb: jax.Array  # (H, W, 3) uint8
    depth: jax.Array  # (H, W) float32, metres along each pixel's ray; background: the far plane
    seg: jax.Array  # (H, W) int32, model geom id of the nearest geom (transparent ones too); background -1


def camera_rays(height: int, width: int, fovy: float) -> np.ndarray:
    """Unit ray directions (3, H*W) in the camera frame (x right, y up, looking along -z), one per pixel centre."""
    tan = np.tan(np.deg2rad(fovy) / 2)
    y = (1 - 2 * (np.arange(height) + 0.5) / height) * tan  # row 0 is the top of the image
    x = (2 * (np.arange(width) + 0.5) / width - 1) * tan * width / height
    x, y = np.meshgrid(x, y)
    d = np.stack([x.ravel(), y.ravel(), -np.ones(height * width)])
    return (d / np.linalg.norm(d, axis=0)).astype(np.float32)


def camera_pose(scene: Scene, offset: jax.Array, body_xpos: jax.Array | None = None,
                body_xmat: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """World camera position (3,) and axes (3, 3), its body-frame position moved by offset (3,) as
    mjxgen.render does (`cam_pos + camera_offset`); body_xpos/body_xmat: its body's pose (None: the world)."""
    pos = jnp.asarray(scene.cam_pos, jnp.float32) + offset
    mat = jnp.asarray(scene.cam_mat, jnp.float32)
    if body_xpos is None:
        return pos, mat
    return body_xpos + body_xmat @ pos, body_xmat @ mat


def render(scene: Scene, geom_xpos: jax.Array, geom_xmat: jax.Array, cam_pos: jax.Array, cam_mat: jax.Array,
           light_dir: jax.Array, *, rgba: jax.Array | None = None, shadows: bool = True) -> Image:
    """One world's camera image (rgb, depth, seg) from geom poses, camera pose and the light's direction.

    Args:
      scene: the static scene (NumPy), closed over: `functools.partial(render, scene)`.
      geom_xpos: (ngeom, 3) world geom positions (MuJoCo/MJX `geom_xpos`, every model geom).
      geom_xmat: (ngeom, 3, 3) world geom orientations (`geom_xmat`).
      cam_pos: (3,) world camera position (e.g. `camera_pose(scene, camera_offset)[0]`).
      cam_mat: (3, 3) world camera axes as columns (MuJoCo's `cam_xmat`: right, up, backward).
      light_dir: (3,) world direction the model's light travels (`Draw.light_dir`; `scene.light_dir` by default).
      rgba: (ngeom, 4) optional colours of this world; which geoms are transparent stays the scene's choice.
      shadows: trace the model light's shadows (static; MuJoCo draws them when the light casts shadows).

    Returns:
      Image(rgb (H, W, 3) uint8, depth (H, W) float32 along each ray in metres, seg (H, W) int32 geom ids).
    """
    return _image(scene, *_render(scene, geom_xpos, geom_xmat, cam_pos, cam_mat, light_dir, rgba, shadows))


def _image(scene: Scene, rgb: jax.Array, depth: jax.Array, seg: jax.Array) -> Image:
    """Image from _render's arrays (..., P): rgb packed as r + 256 g + 65536 b (int32)."""
    # One broadcast reads `rgb` three times (a concatenate of three channels would recompute it for each).
    rgb8 = ((rgb[..., None] >> np.array([0, 8, 16], np.int32)) & 255).astype(jnp.uint8)
    shape = rgb.shape[:-1] + (scene.height, scene.width)
    return Image(rgb=rgb8.reshape(shape + (3,)), depth=depth.reshape(shape), seg=seg.reshape(shape))


def _render(scene, geom_xpos, geom_xmat, cam_pos, cam_mat, light_dir, rgba, shadows):
    """render's arrays (P,): rgb packed into one int32 per pixel (r + 256 g + 65536 b), depth, seg."""
    f32 = jnp.float32
    n_geom = len(scene.geom_id)
    bits = max(1, int(n_geom).bit_length())  # geom index k < 2^bits
    xpos = jnp.asarray(geom_xpos, f32)[scene.geom_id]
    xmat = jnp.asarray(geom_xmat, f32)[scene.geom_id]
    colour = jnp.asarray(scene.geom_rgba if rgba is None else jnp.asarray(rgba, f32)[scene.geom_id], f32)
    cam_pos, cam_mat = jnp.asarray(cam_pos, f32), jnp.asarray(cam_mat, f32)
    light_dir = _unit(light_dir)
    to_light = tuple(-light_dir[i] for i in range(3))
    fwd = tuple(-cam_mat[i, 2] for i in range(3))
    ro = tuple(cam_pos[i] for i in range(3))

    # Primary rays: one origin (the camera), one direction per pixel.
    dcam = camera_rays(scene.height, scene.width, scene.fovy)  # (3, P)
    rd = _world(tuple(dcam), cam_mat)
    transparent = scene.geom_rgba[:, 3] < TRANSPARENT_ALPHA
    opaque = [k for k in range(n_geom) if not transparent[k]]
    glass = [k for k in range(n_geom) if transparent[k]]

    def oa_of(k, origin):
        return tuple(origin[i] - xpos[k, i] for i in range(3))

    # Stage 1: the nearest opaque hit (distance and index in one array), and each transparent geom's distance.
    key = jnp.full(dcam.shape[1:], _MISS, f32)
    for k in opaque:
        t = _RAY[int(scene.geom_type[k])](oa_of(k, ro), rd, xmat[k], scene.geom_size[k])
        key = _min(key, _pack(t, k, bits))
    t_glass = [_RAY[int(scene.geom_type[k])](oa_of(k, ro), rd, xmat[k], scene.geom_size[k]) for k in glass]
    one = (1.0 + 0.0 * cam_pos[0]).astype(jnp.int32)  # a 1 that XLA cannot fold (see _once)
    key = _once(_bits(key), one)
    t_glass = [_float(_once(_bits(t), one)) for t in t_glass]
    t_op, k_op = _unpack(key, bits)
    hit_op = t_op < _HIT
    p = tuple(ro[i] + jnp.where(hit_op, t_op, 0.0) * rd[i] for i in range(3))  # the opaque hit point

    # Stage 2: the model light's shadow at the opaque hit.
    lit = jnp.ones_like(t_op)
    if scene.has_light and shadows and scene.light_castshadow:
        lit = _lit(scene, xpos, xmat, p, k_op, light_dir, to_light)

    # Stage 3: the colour, packed into one int32 per pixel.
    c = _opaque_colour(scene, t_op, k_op, hit_op, opaque, p, rd, fwd, to_light, lit, xmat, colour, oa_of)
    if glass:
        c = _transparent_over(scene, c, glass, t_glass, t_op, ro, rd, fwd, to_light, xpos, xmat, cam_pos, colour, oa_of)
    byte = [jnp.round(x * 255.0).astype(jnp.int32) for x in c]
    packed = _once(byte[0] | (byte[1] << 8) | (byte[2] << 16), one)

    depth, seg = _depth_and_seg(scene, key, glass, t_glass, bits, dcam)
    # packed >= 0, so this adds 0; but with a second reader XLA keeps the colour loop out of render_batch's in-place
    # output copy (a loop XLA:CPU runs on one thread), in a loop of its own that it splits across the cores (the
    # optimized HLO shows outer_dimension_partitions 2 on it).
    seg = seg + (packed >> 31)
    return packed, depth, seg


def _opaque_colour(scene, t_op, k_op, hit_op, opaque, p, rd, fwd, to_light, lit, xmat, colour, oa_of):
    """The lit colour of each pixel's nearest opaque geom, quantized as MuJoCo's framebuffer (black: background)."""
    n_geom = len(scene.geom_id)
    uniform = all(len(set(np.asarray(a).tolist())) <= 1
                  for a in (scene.geom_specular, scene.geom_shininess, scene.geom_emission))
    zero = jnp.zeros_like(t_op)
    n, rgb, mat = (zero,) * 3, (zero,) * 3, (zero,) * 3
    for k in opaque:  # the hit geom's normal, colour and material
        this = k_op == k
        nk = _NORMAL[int(scene.geom_type[k])](oa_of(k, p), xmat[k], scene.geom_size[k])
        n = tuple(jnp.where(this, nk[i], n[i]) for i in range(3))
        rgb = tuple(jnp.where(this, colour[k, i], rgb[i]) for i in range(3))
        if not uniform:
            m = (scene.geom_specular[k], scene.geom_shininess[k] * 128.0, scene.geom_emission[k])
            mat = tuple(jnp.where(this, jnp.float32(m[i]), mat[i]) for i in range(3))
    if uniform:  # one material for all: static numbers (an integer exponent is a few multiplications)
        mat = ((float(scene.geom_specular[0]), float(scene.geom_shininess[0]) * 128.0, float(scene.geom_emission[0]))
               if n_geom else (0.0, 0.0, 0.0))
    c = _shade(scene, rgb, n, rd, fwd, to_light, lit, mat[0], mat[2], mat[1])
    c = _quantize(tuple(jnp.where(hit_op, x, 0.0) for x in c))  # background: MuJoCo's clear colour, black
    return c


def _transparent_over(scene, c, glass, t_glass, t_op, ro, rd, fwd, to_light, xpos, xmat, cam_pos, colour, oa_of):
    """The transparent geoms over the opaque colour c, in MuJoCo's order: sorted by distance to the camera (centre
    minus bounding radius), blended front to back, then back to front."""
    shaded = []
    for k, t in zip(glass, t_glass):
        q = tuple(ro[i] + jnp.where(jnp.isinf(t), 0.0, t) * rd[i] for i in range(3))
        nk = _NORMAL[int(scene.geom_type[k])](oa_of(k, q), xmat[k], scene.geom_size[k])
        s = _shade(scene, tuple(colour[k, i] for i in range(3)), nk, rd, fwd, to_light, None,
                   float(scene.geom_specular[k]), float(scene.geom_emission[k]), float(scene.geom_shininess[k]) * 128.0)
        shaded.append((t < t_op, colour[k, 3], s))
    dist = [jnp.linalg.norm(xpos[k] - cam_pos) - scene.geom_rbound[k] for k in glass]
    rank = [sum(((dist[j] < dist[i]) | ((dist[j] == dist[i]) & (j < i))).astype(jnp.int32)
                for j in range(len(glass)) if j != i) for i in range(len(glass))]
    for pos in list(range(len(glass))) + list(reversed(range(len(glass)))):
        for i, (cover, alpha, s) in enumerate(shaded):
            blend = cover & (rank[i] == pos) if len(glass) > 1 else cover
            c = _quantize(tuple(jnp.where(blend, alpha * s[j] + (1.0 - alpha) * c[j], c[j]) for j in range(3)))
    return c


def _depth_and_seg(scene, key, glass, t_glass, bits, dcam):
    """Depth along each ray and the geom id of the nearest geom, transparent or not (-1: background)."""
    key_all = _float(key)
    for k, t in zip(glass, t_glass):
        key_all = _min(key_all, _pack(t, k, bits))
    t_all, k_all = _unpack(_bits(key_all), bits)
    hit = t_all < _HIT
    axial = -dcam[2]  # cosine between each ray and the optical axis
    depth = jnp.where(hit, t_all, np.float32(scene.zfar) / axial)
    seg = jnp.full(k_all.shape, -1, jnp.int32)
    for k in range(len(scene.geom_id)):
        seg = jnp.where(hit & (k_all == k), int(scene.geom_id[k]), seg)
    return depth, seg


def render_batch(scene: Scene, geom_xpos: jax.Array, geom_xmat: jax.Array, cam_pos: jax.Array, cam_mat: jax.Array,
                 light_dir: jax.Array, *, rgba: jax.Array | None = None, shadows: bool = True,
                 chunk: int | None = 8) -> Image:
    """`render` for a batch of B worlds (every argument with a leading B axis), `chunk` worlds at a time.

    On a CPU a chunk of a few worlds keeps each stage's arrays in cache, several times faster than one vmap over
    a large batch (bench/render.py); chunk=None is a plain vmap (for a GPU). Returns Image with a leading B axis.
    """
    one = lambda a: _render(scene, *a, shadows)  # noqa: E731
    args = (geom_xpos, geom_xmat, cam_pos, cam_mat, light_dir, rgba)
    # The uint8 image is unpacked after the loop: written from inside lax.map it cost 4x the rest (measured).
    return _image(scene, *(jax.vmap(one)(args) if chunk is None else jax.lax.map(one, args, batch_size=chunk)))
