"""Damped-least-squares (DLS) inverse kinematics.

Written against the array API shared by jax.numpy and NumPy (`xp`), so the JAX rollout and the native
MuJoCo reference (mjxgen.envs.native) run the same code.
"""

from __future__ import annotations

import jax.numpy as jnp


def inv3(a, xp=jnp):
    """Inverse of a 3x3 matrix by its adjugate (no LAPACK call, so no batched-LAPACK CPU trap)."""
    c0 = xp.cross(a[1], a[2])
    c1 = xp.cross(a[2], a[0])
    c2 = xp.cross(a[0], a[1])
    det = xp.dot(a[0], c0)
    return xp.stack([c0, c1, c2], axis=1) / det


def dls_step(jacp, dx, q, q_rest, damping: float, nullspace_gain: float, xp=jnp):
    """Joint displacement dq (n,) that moves a point by dx (3,), given its Jacobian jacp (3, n).

    dq = J^T (J J^T + damping^2 I)^-1 dx, plus a null-space pull of nullspace_gain * (q_rest - q), which
    keeps a redundant arm near its rest posture and away from its joint limits.
    """
    j_pinv = jacp.T @ inv3(jacp @ jacp.T + damping**2 * xp.eye(3, dtype=jacp.dtype), xp)  # (n, 3)
    dq = j_pinv @ dx
    null_proj = xp.eye(jacp.shape[1], dtype=jacp.dtype) - j_pinv @ jacp
    return dq + null_proj @ (nullspace_gain * (q_rest - q))
