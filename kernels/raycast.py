"""Camera images by ray casting, in pure JAX: one ray per pixel against every drawn geom, in closed form.

A pinhole camera casts one ray through the centre of each pixel. Each ray is tested against every drawn geom
(plane, sphere, capsule, ellipsoid, cylinder, box) with a closed-form intersection, and the nearest hit gives
the pixel's depth, geom id and colour. Everything is elementwise arithmetic over the pixels, so `render` is
jittable and vmappable over a batch of worlds, and runs inside the same jitted program as MJX physics on CPU,
GPU or TPU, deterministically. No MuJoCo import, no I/O: the static `Scene` is built once on the host
(mjxgen.raycast_scene.from_model).

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
anti-aliases with 4x multisampling; this renderer shades each pixel exactly at one sample (see the README's
"Camera images in JAX" for the measured differences). Textures, meshes, height fields, reflections, fog,
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

# mjtGeom values of the supported types.
PLANE, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX = 0, 2, 3, 4, 5, 6
SUPPORTED_TYPES = (PLANE, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX)
TRANSPARENT_ALPHA = 0.995  # MuJoCo draws a geom as transparent below this alpha (mjr_render)
_PARALLEL = 1e-6  # 1 - cos^2 of the angle between a ray and a capsule/cylinder axis below which they are parallel


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


# ---------------------------------------------------------------------------------------------------------------
# Ray/geom intersections. Vectors are tuples of 3 arrays (x, y, z), so that a quantity that depends on the ray
# origin only (one camera: a scalar per geom) stays a scalar while per-pixel quantities are (P,) arrays. `oa`
# is the ray origin minus the geom's centre, `rd` the unit ray direction, `mat` the geom's axes (3 columns),
# `size` MuJoCo's geom_size (static). Each returns the distance along the ray to the first hit in front of the
# origin, inf if none.


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _normalize(v):
    inv = jax.lax.rsqrt(jnp.maximum(_dot(v, v), 1e-30))
    return tuple(x * inv for x in v)


def _min(a, b):
    """min(a, b) as one compare and select (jnp.minimum also propagates NaN: several instructions more on x86)."""
    return jnp.where(a < b, a, b)


def _max(a, b):
    return jnp.where(a > b, a, b)


def _col(mat, j):
    return (mat[0, j], mat[1, j], mat[2, j])


def _local(v, mat):
    """World vector v in the frame of mat's columns."""
    return tuple(_dot(_col(mat, j), v) for j in range(3))


def _world(v, mat):
    return tuple(mat[i, 0] * v[0] + mat[i, 1] * v[1] + mat[i, 2] * v[2] for i in range(3))


def _ray_sphere(oa, rd, mat, size):
    r = size[0]
    b = _dot(oa, rd)
    h = b * b - (_dot(oa, oa) - r * r)
    t = -b - jnp.sqrt(_max(h, 0.0))
    return jnp.where((h >= 0) & (t > 0), t, jnp.inf)


def _ray_capsule_or_cylinder(oa, rd, mat, size, capsule: bool):
    """Capsule (half-spheres as caps) or cylinder (flat caps) of radius size[0], half-length size[1] along z."""
    r, half = size[0], size[1]
    u = _col(mat, 2)
    ud, od, uo = _dot(u, rd), _dot(oa, rd), _dot(u, oa)
    # Infinite cylinder: |q - (u.q) u|^2 = r^2 at q = oa + t rd, i.e. a t^2 + 2 b t + c = 0.
    a = 1.0 - ud * ud
    b = od - uo * ud
    c = _dot(oa, oa) - uo * uo - r * r
    h = b * b - a * c
    off_axis = a > _PARALLEL
    t_body = (-b - jnp.sqrt(_max(h, 0.0))) / jnp.where(off_axis, a, 1.0)
    y = uo + t_body * ud  # axial coordinate of the hit
    body = off_axis & (h >= 0) & (jnp.abs(y) <= half) & (t_body > 0)
    # The cap on the side where the ray meets the infinite cylinder (or, along the axis, the cap it faces).
    side = jnp.where(off_axis, jnp.where(y >= 0, 1.0, -1.0), jnp.where(ud > 0, -1.0, 1.0))
    if capsule:  # a sphere of radius r at side * half: |oa - side half u|^2 - r^2 = c + uo^2 - 2 side half uo + half^2
        b2 = od - side * half * ud
        h2 = b2 * b2 - (c + uo * uo - 2.0 * side * half * uo + half * half)
        t_cap = -b2 - jnp.sqrt(_max(h2, 0.0))
        cap = (h2 >= 0) & (t_cap > 0)
    else:  # the disk at side * half: its plane's hit must lie inside the infinite cylinder
        t_cap = (side * half - uo) / jnp.where(jnp.abs(ud) > 1e-12, ud, 1e-12)
        cap = (t_cap > 0) & ((a * t_cap + 2.0 * b) * t_cap + c <= 0)
    return jnp.where(body, t_body, jnp.where(cap, t_cap, jnp.inf))


def _ray_capsule(oa, rd, mat, size):
    return _ray_capsule_or_cylinder(oa, rd, mat, size, capsule=True)


def _ray_cylinder(oa, rd, mat, size):
    return _ray_capsule_or_cylinder(oa, rd, mat, size, capsule=False)


def _ray_ellipsoid(oa, rd, mat, size):
    o = tuple(x * (1.0 / size[i]) for i, x in enumerate(_local(oa, mat)))
    d = tuple(x * (1.0 / size[i]) for i, x in enumerate(_local(rd, mat)))
    a, b, c = _dot(d, d), _dot(o, d), _dot(o, o) - 1.0
    h = b * b - a * c
    t = (-b - jnp.sqrt(_max(h, 0.0))) / a
    return jnp.where((h >= 0) & (t > 0), t, jnp.inf)


def _ray_box(oa, rd, mat, size):
    o, d = _local(oa, mat), _local(rd, mat)
    near, far = [], []
    for i in range(3):
        inv = 1.0 / jnp.where(jnp.abs(d[i]) > 1e-12, d[i], 1e-12)
        t1, t2 = (-size[i] - o[i]) * inv, (size[i] - o[i]) * inv
        near.append(_min(t1, t2))
        far.append(_max(t1, t2))
    tn = _max(_max(near[0], near[1]), near[2])
    tf = _min(_min(far[0], far[1]), far[2])
    return jnp.where((tn <= tf) & (tn > 0), tn, jnp.inf)


def _ray_plane(oa, rd, mat, size):
    o, d = _local(oa, mat), _local(rd, mat)
    t = -o[2] / jnp.where(d[2] < -1e-12, d[2], -1e-12)
    inside = (d[2] < -1e-12) & (t > 0)  # front side only
    for i in range(2):  # size <= 0: infinite in that direction
        if size[i] > 0:
            inside &= jnp.abs(o[i] + t * d[i]) <= size[i]
    return jnp.where(inside, t, jnp.inf)


# Outward unit normals at a surface point, from v = point - geom centre.


def _normal_sphere(v, mat, size):
    return tuple(x * (1.0 / size[0]) for x in v)


def _normal_capsule(v, mat, size):
    u = _col(mat, 2)
    y = jnp.clip(_dot(u, v), -size[1], size[1])  # nearest point of the axis segment
    return tuple((v[i] - y * u[i]) * (1.0 / size[0]) for i in range(3))


def _normal_cylinder(v, mat, size):
    u = _col(mat, 2)
    y = _dot(u, v)
    radial = tuple(v[i] - y * u[i] for i in range(3))
    rho = jnp.sqrt(_dot(radial, radial))
    cap = size[1] - jnp.abs(y) < size[0] - rho  # nearer the cap's plane than the side
    side = jnp.where(y >= 0, 1.0, -1.0)
    return tuple(jnp.where(cap, side * u[i], radial[i] * (1.0 / size[0])) for i in range(3))


def _normal_ellipsoid(v, mat, size):
    g = tuple(x * (1.0 / (size[i] * size[i])) for i, x in enumerate(_local(v, mat)))
    return _normalize(_world(g, mat))


def _normal_box(v, mat, size):
    q = _local(v, mat)
    gap = [size[i] - jnp.abs(q[i]) for i in range(3)]  # distance to the face on each axis: the smallest is hit
    on_x = (gap[0] <= gap[1]) & (gap[0] <= gap[2])
    on_y = gap[1] <= gap[2]
    sign = [jnp.where(q[i] >= 0, 1.0, -1.0) for i in range(3)]
    return tuple(jnp.where(on_x, sign[0] * mat[i, 0], jnp.where(on_y, sign[1] * mat[i, 1], sign[2] * mat[i, 2]))
                 for i in range(3))


def _normal_plane(v, mat, size):
    return _col(mat, 2)


_RAY = {PLANE: _ray_plane, SPHERE: _ray_sphere, CAPSULE: _ray_capsule, ELLIPSOID: _ray_ellipsoid,
        CYLINDER: _ray_cylinder, BOX: _ray_box}
_NORMAL = {PLANE: _normal_plane, SPHERE: _normal_sphere, CAPSULE: _normal_capsule, ELLIPSOID: _normal_ellipsoid,
           CYLINDER: _normal_cylinder, BOX: _normal_box}


def intersect(geom_type: int, size: np.ndarray, pos: jax.Array, mat: jax.Array, ro: jax.Array, rd: jax.Array
              ) -> tuple[jax.Array, jax.Array]:
    """Distance (...) along unit rays ro + t rd (..., 3) to one geom (inf: no hit), and the outward unit normal
    (..., 3) there; pos (3,), mat (3, 3) the geom's pose, size (3,) MuJoCo's geom_size."""
    ro, rd = jnp.asarray(ro, jnp.float32), jnp.asarray(rd, jnp.float32)
    pos, mat, size = jnp.asarray(pos, jnp.float32), jnp.asarray(mat, jnp.float32), np.asarray(size, np.float32)
    oa = tuple(ro[..., i] - pos[i] for i in range(3))
    d = tuple(rd[..., i] for i in range(3))
    t = _RAY[int(geom_type)](oa, d, mat, size)
    hit = jnp.where(jnp.isinf(t), 0.0, t)
    n = _NORMAL[int(geom_type)](tuple(oa[i] + hit * d[i] for i in range(3)), mat, size)
    return t, jnp.stack([jnp.broadcast_to(x, t.shape) for x in n], axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# Rendering. The stages are shaped for XLA's CPU compiler, which (measured, jaxlib 0.9.2) has two traps:
# - It fuses elementwise work into one loop per output array and recomputes cheap shared work in every loop that
#   needs it (it keeps no optimization_barrier): so each stage ends in one array, the nearest hit (distance and
#   geom index packed into one number), the colour (r, g, b packed into one number), and `_once` makes XLA
#   compute each of them once.
# - An elementwise loop may write its output into the buffer of an input that dies there; LLVM's vectorized loop
#   then fails its runtime overlap check and the whole loop runs scalar (5x slower here). The stages' outputs are
#   int32 while their per-pixel inputs are float32, so no such reuse is possible.

_MISS = 1e30  # distance of no hit (finite, so that packing a geom index into it stays a number)
_HIT = 1e29  # distances below this are hits
_SHADOW_BIAS = 1e-4  # m: shadow rays start this far behind the surface (see _lit)


def _bits(x):
    return jax.lax.bitcast_convert_type(x, jnp.int32)


def _float(x):
    return jax.lax.bitcast_convert_type(x, jnp.float32)


def _pack(t, k: int, bits: int):
    """Distance t (P,) with geom index k in its `bits` low mantissa bits (they are cleared first: a relative
    change below 2^(bits - 23)), as float32; the min over packed values gives the nearest hit and its index."""
    return _float((_bits(_min(t, _MISS)) & ~((1 << bits) - 1)) | k)


def _unpack(key, bits: int):
    """(distance, geom index) of a packed key (int32 bits); a hit only where distance < _HIT (the index bits can
    move a miss below _MISS)."""
    return _float(key), key & ((1 << bits) - 1)


def _once(x, one):
    """int32 x (P,), computed once: XLA never copies a division (an expensive op) into several consumers, so it
    stores x // one (exact: `one` is a traced 1) and every consumer reads it; one integer division per pixel."""
    return jax.lax.div(x, one)


def _unit(v):
    v = jnp.asarray(v, jnp.float32)
    return v / jnp.maximum(jnp.linalg.norm(v), 1e-12)


def _phong(exponent, x):
    """x ** exponent for x in [0, 1]; multiplications when the exponent is a static whole number (MuJoCo's 64)."""
    if isinstance(exponent, float) and exponent.is_integer():
        return jax.lax.integer_pow(x, int(exponent))
    return jnp.where(x > 0, jnp.exp(exponent * jnp.log(jnp.maximum(x, 1e-30))), 0.0)


def _light(n, rd, to_light, ambient, diffuse, specular, spec, exponent):
    """Fixed-function OpenGL terms of one directional light with a local viewer: (factor on the colour,
    specular addend or None where the light's specular is statically 0, n . to_light); `to_light` points at it."""
    nl = _dot(n, to_light)
    diff = jnp.maximum(nl, 0.0)
    factor = tuple(ambient[i] + diffuse[i] * diff for i in range(3))
    if not np.any(specular):
        return factor, None, nl
    # Blinn-Phong half vector of the light and the viewer (-rd): n.h = (n.l + n.v) / |l + v|.
    nv = -_dot(n, rd)
    lv = -_dot(to_light, rd)
    nh = (nl + nv) * jax.lax.rsqrt(jnp.maximum(2.0 + 2.0 * lv, 1e-12))
    s = jnp.where(nl > 0, _phong(exponent, jnp.clip(nh, 0.0, 1.0)), 0.0) * spec
    return factor, tuple(specular[i] * s for i in range(3)), nl


def _shade(scene, rgb, n, rd, fwd, to_light, lit, spec, emission, exponent):
    """Lit colour (3-tuple) of surface colour rgb (3-tuple) with normal n; `lit` (P,) scales the model's light
    (None: no shadows, the transparent geoms' case)."""
    f_head, s_head, _ = _light(n, rd, tuple(-x for x in fwd), scene.headlight_ambient, scene.headlight_diffuse,
                            scene.headlight_specular, spec, exponent)
    head = tuple(rgb[i] * (scene.global_ambient[i] + emission + f_head[i]) + (0.0 if s_head is None else s_head[i])
                 for i in range(3))
    if not scene.has_light:
        return tuple(jnp.minimum(x, 1.0) for x in head)
    f_sun, s_sun, nl = _light(n, rd, to_light, scene.light_ambient, scene.light_diffuse, scene.light_specular, spec,
                              exponent)
    sun = tuple(rgb[i] * f_sun[i] + (0.0 if s_sun is None else s_sun[i]) for i in range(3))
    if lit is None:
        lit = 1.0
    else:  # a side facing away from the light is in its geom's own shadow: only the light's ambient term changes
        lit = jnp.where(nl > 0, lit, 0.0)
    # Two passes in MuJoCo (the shadowed light is added onto the others' image): each saturates on its own.
    return tuple(jnp.minimum(jnp.minimum(head[i], 1.0) + lit * jnp.minimum(sun[i], 1.0), 1.0) for i in range(3))


def _quantize(c):
    """A colour as MuJoCo's 8-bit framebuffer stores it (between blending passes), as floats in [0, 1]."""
    return tuple(jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0) * (1.0 / 255.0) for x in c)


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
            mat = tuple(jnp.where(this, f32(m[i]), mat[i]) for i in range(3))
    if uniform:  # one material for all: static numbers (an integer exponent is a few multiplications)
        mat = ((float(scene.geom_specular[0]), float(scene.geom_shininess[0]) * 128.0, float(scene.geom_emission[0]))
               if n_geom else (0.0, 0.0, 0.0))
    c = _shade(scene, rgb, n, rd, fwd, to_light, lit, mat[0], mat[2], mat[1])
    c = _quantize(tuple(jnp.where(hit_op, x, 0.0) for x in c))  # background: MuJoCo's clear colour, black

    # Transparent geoms over the opaque image, in MuJoCo's order: sorted by distance to the camera (centre
    # minus bounding radius), blended front to back, then back to front.
    if glass:
        shaded = []
        for k, t in zip(glass, t_glass):
            q = tuple(ro[i] + jnp.where(jnp.isinf(t), 0.0, t) * rd[i] for i in range(3))
            nk = _NORMAL[int(scene.geom_type[k])](oa_of(k, q), xmat[k], scene.geom_size[k])
            s = _shade(scene, tuple(colour[k, i] for i in range(3)), nk, rd, fwd, to_light, None,
                       float(scene.geom_specular[k]), float(scene.geom_emission[k]),
                       float(scene.geom_shininess[k]) * 128.0)
            shaded.append((t < t_op, colour[k, 3], s))
        dist = [jnp.linalg.norm(xpos[k] - cam_pos) - scene.geom_rbound[k] for k in glass]
        rank = [sum(((dist[j] < dist[i]) | ((dist[j] == dist[i]) & (j < i))).astype(jnp.int32)
                    for j in range(len(glass)) if j != i) for i in range(len(glass))]
        for pos in list(range(len(glass))) + list(reversed(range(len(glass)))):
            for i, (cover, alpha, s) in enumerate(shaded):
                blend = cover & (rank[i] == pos) if len(glass) > 1 else cover
                c = _quantize(tuple(jnp.where(blend, alpha * s[j] + (1.0 - alpha) * c[j], c[j]) for j in range(3)))
    byte = [jnp.round(x * 255.0).astype(jnp.int32) for x in c]
    packed = _once(byte[0] | (byte[1] << 8) | (byte[2] << 16), one)

    # Depth and segmentation: the nearest geom, transparent or not.
    key_all = _float(key)
    for k, t in zip(glass, t_glass):
        key_all = _min(key_all, _pack(t, k, bits))
    t_all, k_all = _unpack(_bits(key_all), bits)
    hit = t_all < _HIT
    axial = -dcam[2]  # cosine between each ray and the optical axis
    depth = jnp.where(hit, t_all, np.float32(scene.zfar) / axial)
    seg = jnp.full(k_all.shape, -1, jnp.int32)
    for k in range(n_geom):
        seg = jnp.where(hit & (k_all == k), int(scene.geom_id[k]), seg)
    # packed >= 0, so this adds 0; but with a second reader XLA keeps the colour loop out of render_batch's in-place
    # output copy (a loop XLA:CPU runs on one thread), in a loop of its own that it splits across the cores (the
    # optimized HLO shows outer_dimension_partitions 2 on it).
    seg = seg + (packed >> 31)
    return packed, depth, seg


def _lit(scene, xpos, xmat, p, k_op, light_dir, to_light):
    """(P,) 1 where the opaque hit point p sees the model's light, 0 where a drawn geom shadows it, as MuJoCo's
    shadow map decides: occluders count in front of the light's near plane and within shadow_clip of its axis.

    The shadow ray starts _SHADOW_BIAS behind p (away from the light), so that an occluder whose face touches p's
    surface (the place marker lying on the table) still shadows it, as in MuJoCo's map, where it is nearer the
    light by more than the depth bias. p's own geom is skipped: a convex geom does not shadow itself where it
    faces the light, and where it does not, the light's diffuse and specular terms are 0 anyway (_shade)."""
    rel = tuple(p[i] - scene.light_pos[i] for i in range(3))
    t_max = _dot(rel, light_dir) - scene.znear + _SHADOW_BIAS
    p = tuple(p[i] - _SHADOW_BIAS * to_light[i] for i in range(3))
    # The shadow map's axes (mjr_orthoVec, mjr_lookAt): up = dir x (-x axis), or dir x (y axis) near the x axis.
    f = tuple(light_dir[i] for i in range(3))
    up_x = (0.0 * f[0], -f[2], f[1])  # f x (-1, 0, 0)
    up_y = (-f[2], 0.0 * f[1], f[0])  # f x (0, 1, 0)
    use_x = _dot(up_x, up_x) > 0.01
    up = tuple(jnp.where(use_x, up_x[i], up_y[i]) for i in range(3))
    side = _normalize(_cross(f, up))
    up = _normalize(_cross(side, f))
    inside = (jnp.abs(_dot(rel, side)) <= scene.shadow_clip) & (jnp.abs(_dot(rel, up)) <= scene.shadow_clip)
    blocked = jnp.zeros(t_max.shape, bool)
    for k in range(len(scene.geom_id)):
        oa = tuple(p[i] - xpos[k, i] for i in range(3))
        if scene.geom_type[k] == CAPSULE:
            hit = _capsule_occludes(oa, to_light, xmat[k], scene.geom_size[k], t_max)
        else:
            hit = _RAY[int(scene.geom_type[k])](oa, to_light, xmat[k], scene.geom_size[k]) < t_max
        # A convex geom never shadows itself where it faces the light: the hit geom is skipped (no shadow acne).
        blocked |= hit & (k_op != k)
    return jnp.where(blocked & inside, 0.0, 1.0)


def _capsule_occludes(oa, rd, mat, size, t_max):
    """Whether the segment oa + t rd, 0 <= t <= t_max (P,), comes within the radius of a capsule's axis segment:
    the closest points of two segments (Ericson, Real-Time Collision Detection, 5.1.9). For a shadow ray rd is one
    direction for all pixels, so this needs no square root and no per-pixel division, unlike _ray_capsule."""
    r, half = size[0], size[1]
    u = _col(mat, 2)
    b = _dot(u, rd)  # one per world
    c, f = _dot(rd, oa), _dot(u, oa)
    denom = 1.0 - b * b
    inv = 1.0 / jnp.where(denom > _PARALLEL, denom, 1.0)
    t = jnp.clip(jnp.where(denom > _PARALLEL, (b * f - c) * inv, 0.0), 0.0, t_max)  # nearest on the ray's line
    y = b * t + f  # then the axis point nearest to it, clamped to the segment, and the ray point nearest to that
    y_end = jnp.clip(y, -half, half)
    t = jnp.where(y == y_end, t, jnp.clip(y_end * b - c, 0.0, t_max))
    q = tuple(oa[i] + t * rd[i] - y_end * u[i] for i in range(3))
    return _dot(q, q) <= r * r


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
