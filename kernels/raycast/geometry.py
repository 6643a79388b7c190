"""Ray/geom intersections and surface normals in closed form, for mjxgen.kernels.raycast.

Vectors are tuples of 3 arrays (x, y, z), so that a quantity that depends on the ray origin only (one camera: a
scalar per geom) stays a scalar while per-pixel quantities are (P,) arrays. `oa` is the ray origin minus the
geom's centre, `rd` the unit ray direction, `mat` the geom's axes (3 columns), `size` MuJoCo's geom_size
(static). Each ray test returns the distance along the ray to the first hit in front of the origin, inf if none.

Plane, sphere, ellipsoid and box follow MJX's `mujoco.mjx._src.ray` (the same equations); the capsule and the
cylinder (MJX has no cylinder) follow Inigo Quilez's closed forms (iquilezles.org, "intersectors"), rewritten for
a unit axis so that every quantity that depends only on the ray origin is computed once per geom.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# mjtGeom values of the supported types.
PLANE, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX = 0, 2, 3, 4, 5, 6
SUPPORTED_TYPES = (PLANE, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX)
_PARALLEL = 1e-6  # 1 - cos^2 of the angle between a ray and a capsule/cylinder axis below which they are parallel


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
