"""The arm's physics step: mjx.step's stages without the work the arm scenes never need.

This is the one module of mjxgen that uses MJX internals (functions and Data fields that mujoco-mjx does not
export). They are looked up once, at import, by `_Private`: an unsupported mujoco-mjx fails there with one line
that names the version and what is missing, never later inside a trace. pyproject.toml pins the releases that
were tested (SUPPORTED_MJX).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata

import jax
import jax.numpy as jnp
from mujoco import mjx

# mujoco-mjx releases whose internals this module was tested against (pyproject.toml pins the same range).
SUPPORTED_MJX = ((3, 17),)


class _Private:
    """The MJX internals the step needs, resolved at import."""

    def __init__(self):
        version = importlib.metadata.version("mujoco-mjx")
        try:
            from mujoco.mjx._src import forward, smooth, types

            self._advance, self._solve_m = forward._advance, smooth.solve_m
            fields = {f.name for f in dataclasses.fields(mjx.Data)} | {f.name for f in dataclasses.fields(types.DataJAX)}
            missing = {"_impl", "M", "efc_J"} - fields
            if missing:
                raise AttributeError(f"Data fields {sorted(missing)}")
        except (ImportError, AttributeError) as e:
            raise ImportError(f"mjxgen needs mujoco-mjx {_supported()}; mujoco-mjx {version} lacks an internal "
                              f"the arm's physics step uses ({e})") from None
        if tuple(int(x) for x in version.split(".")[:2]) not in SUPPORTED_MJX:
            raise ImportError(f"mjxgen needs mujoco-mjx {_supported()}, found {version}: its physics step uses MJX "
                              "internals (mjxgen.envs.physics) that other releases may change; install a "
                              "supported one")

    def advance(self, m, d, act_dot, qacc):
        """mjx forward's _advance: integrate with the given accelerations."""
        return self._advance(m, d, act_dot, qacc)

    def solve_m(self, m, d, x):
        """M^-1 x with M's factorization in d."""
        return self._solve_m(m, d, x)

    @staticmethod
    def constraint_rows(d) -> int:
        """Rows of the constraint Jacobian (static: the model fixes it)."""
        return d._impl.efc_J.shape[0]

    @staticmethod
    def mass_matrix(d) -> jax.Array:
        """The joint-space inertia M (dense)."""
        return d._impl.M


def _supported() -> str:
    return " or ".join(".".join(map(str, v)) + ".x" for v in SUPPORTED_MJX)


_private = _Private()


def refresh(m: mjx.Model, d: mjx.Data) -> mjx.Data:
    """Positions and Jacobian inputs (site_xpos, cdof, subtree_com) computed from the current qpos.

    mjx.step computes kinematics before integrating, so after it they lag qpos by one physics step.
    """
    return mjx.com_pos(m, mjx.kinematics(m, d))


def step(m: mjx.Model, d: mjx.Data, kinematics_current: bool = False) -> mjx.Data:
    """mjx.step (JAX implementation, implicitfast integrator) without the work the arm scenes never need.

    The stages of mjx.step in its order, built from MJX's public stage functions, except that:
    - kinematics and com_pos are skipped when `kinematics_current` (d's positions already match its qpos);
    - camlight is skipped: cameras and lights are rendered on the host from qpos, never from MJX data;
    - xfrc_applied is not accumulated: the arm tasks never apply Cartesian forces, and MJX builds a body
      Jacobian per body for it (about a fifth of a step);
    - a model without constraint rows (reach) skips the factorization of M and qacc_smooth: implicitfast
      integrates qfrc_smooth with its own factorization, so d.qacc is left as it was;
    - implicitfast factorizes M - dt * dqfrc/dqvel with an unrolled Cholesky (`_cholesky`) instead of a
      batched LAPACK call. The matrix is nv x nv with nv = 9 (reach) or 15 (pick_place).
    Physics are unchanged: tests/sim/test_rollout.py compares it with native mujoco.mj_step.
    """
    if m.opt.integrator != mjx.IntegratorType.IMPLICITFAST:
        raise NotImplementedError(f"the arm's physics step implements implicitfast only, not {m.opt.integrator}")
    if not kinematics_current:
        d = refresh(m, d)
    d = mjx.tendon(m, d)
    d = mjx.crb(m, d)
    d = mjx.tendon_armature(m, d)
    d = mjx.collision(m, d)
    d = mjx.make_constraint(m, d)
    constrained = _private.constraint_rows(d) > 0  # static: the model fixes the number of constraint rows
    if constrained:
        d = mjx.factor_m(m, d)
    d = mjx.transmission(m, d)
    if m.nsensor:
        d = mjx.sensor_pos(m, d)
    d = mjx.fwd_velocity(m, d)
    if m.nsensor:
        d = mjx.sensor_vel(m, d)
    d = mjx.fwd_actuation(m, d)
    d = d.replace(qfrc_smooth=d.qfrc_passive - d.qfrc_bias + d.qfrc_actuator + d.qfrc_applied)
    if constrained:
        d = d.replace(qacc_smooth=_private.solve_m(m, d, d.qfrc_smooth))
        d = mjx.solve(m, d)
        if m.nsensor:
            d = mjx.sensor_acc(m, d)
    return _implicitfast(m, d)


def _implicitfast(m: mjx.Model, d: mjx.Data) -> mjx.Data:
    """mjx.implicit: qacc = (M - dt * dqfrc_smooth/dqvel)^-1 (qfrc_smooth + qfrc_constraint), then advance."""
    qderiv = mjx.deriv_smooth_vel(m, d)
    if qderiv is None or mjx.is_sparse(m):
        return mjx.implicit(m, d)
    qm = _private.mass_matrix(d) - m.opt.timestep * qderiv
    qacc = _cho_solve(_cholesky(qm), d.qfrc_smooth + d.qfrc_constraint)
    return _private.advance(m, d, d.act_dot, qacc)


def _cholesky(a: jax.Array) -> list[list[jax.Array]]:
    """Lower Cholesky factor of a small SPD matrix (n, n), unrolled: rows of scalars, upper half None.

    Under the rollout's vmap every entry is one vector over the batch, which XLA fuses; a batched LAPACK
    call (jax.scipy.linalg.cho_factor) factorizes the matrices one by one and transposes them first.
    """
    n = a.shape[-1]
    low = [[None] * n for _ in range(n)]
    for j in range(n):
        low[j][j] = jnp.sqrt(a[j, j] - sum((low[j][k] * low[j][k] for k in range(j)), 0.0))
        inv = 1.0 / low[j][j]
        for i in range(j + 1, n):
            low[i][j] = (a[i, j] - sum((low[i][k] * low[j][k] for k in range(j)), 0.0)) * inv
    return low


def _cho_solve(low: list[list[jax.Array]], b: jax.Array) -> jax.Array:
    """x (n,) with L L^T x = b, for L from _cholesky."""
    n = len(low)
    y = [None] * n
    for i in range(n):
        y[i] = (b[i] - sum((low[i][k] * y[k] for k in range(i)), 0.0)) / low[i][i]
    x = [None] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - sum((low[k][i] * x[k] for k in range(i + 1, n)), 0.0)) / low[i][i]
    return jnp.stack(x)
