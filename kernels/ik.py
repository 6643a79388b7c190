"""Damped-least-squares (DLS) inverse kinematics, in pure JAX."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def inv3(a: jax.Array) -> jax.Array:
    """Inverse of a 3x3 matrix by its adjugate (no LAPACK call, so no batched-LAPACK CPU trap)."""
    c0 = jnp.cross(a[1], a[2])
    c1 = jnp.cross(a[2], a[0])
    c2 = jnp.cross(a[0], a[1])
    det = jnp.dot(a[0], c0)
    return jnp.stack([c0, c1, c2], axis=1) / det


def dls_step(
    jacp: jax.Array,
    dx: jax.Array,
    q: jax.Array,
    q_rest: jax.Array,
    damping: float,
    nullspace_gain: float,
) -> jax.Array:
    """Joint displacement dq (n,) that moves a point by dx (3,), given its Jacobian jacp (3, n).

    dq = J^T (J J^T + damping^2 I)^-1 dx, plus a null-space pull of nullspace_gain * (q_rest - q), which
    keeps a redundant arm near its rest posture and away from its joint limits.
    """
    j_pinv = jacp.T @ inv3(jacp @ jacp.T + damping**2 * jnp.eye(3, dtype=jacp.dtype))  # (n, 3)
    dq = j_pinv @ dx
    null_proj = jnp.eye(jacp.shape[1], dtype=jacp.dtype) - j_pinv @ jacp
    return dq + null_proj @ (nullspace_gain * (q_rest - q))
