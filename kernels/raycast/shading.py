"""Lighting, shadows and the packed per-pixel arithmetic of mjxgen.kernels.raycast.

Rendering. The stages are shaped for XLA's CPU compiler, which (measured, jaxlib 0.9.2) has two traps:
- It fuses elementwise work into one loop per output array and recomputes cheap shared work in every loop that
  needs it (it keeps no optimization_barrier): so each stage ends in one array, the nearest hit (distance and
  geom index packed into one number), the colour (r, g, b packed into one number), and `_once` makes XLA
  compute each of them once.
- An elementwise loop may write its output into the buffer of an input that dies there; LLVM's vectorized loop
  then fails its runtime overlap check and the whole loop runs scalar (5x slower here). The stages' outputs are
  int32 while their per-pixel inputs are float32, so no such reuse is possible.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen.kernels.raycast.geometry import CAPSULE, _RAY, _capsule_occludes, _cross, _dot, _min, _normalize

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
