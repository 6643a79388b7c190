"""The pure JAX kernels, against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxgen.kernels import ik, policies


def test_inv3_matches_numpy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.normal(size=(3, 3)) + 3 * np.eye(3)
        np.testing.assert_allclose(ik.inv3(jnp.asarray(a)), np.linalg.inv(a), rtol=1e-5, atol=1e-6)


def test_dls_step_is_damped_pseudoinverse():
    rng = np.random.default_rng(1)
    jac = rng.normal(size=(3, 7)).astype(np.float32)
    dx = np.array([0.01, -0.02, 0.005], np.float32)
    q = np.zeros(7, np.float32)
    dq = ik.dls_step(jnp.asarray(jac), jnp.asarray(dx), q, q, damping=0.05, nullspace_gain=0.0)
    expected = jac.T @ np.linalg.solve(jac @ jac.T + 0.05**2 * np.eye(3), dx)
    np.testing.assert_allclose(dq, expected, rtol=1e-4, atol=1e-7)
    # Small damping: the step achieves the requested displacement.
    dq0 = ik.dls_step(jnp.asarray(jac), jnp.asarray(dx), q, q, damping=1e-4, nullspace_gain=0.0)
    np.testing.assert_allclose(jac @ np.asarray(dq0), dx, atol=1e-5)


def test_nullspace_term_does_not_move_the_point():
    rng = np.random.default_rng(2)
    jac = rng.normal(size=(3, 7)).astype(np.float32)
    q = rng.normal(size=7).astype(np.float32)
    dq = ik.dls_step(jnp.asarray(jac), jnp.zeros(3), q, np.zeros(7, np.float32), damping=1e-4, nullspace_gain=0.5)
    assert np.abs(np.asarray(dq)).max() > 1e-2  # it does move the joints toward rest
    np.testing.assert_allclose(jac @ np.asarray(dq), 0.0, atol=1e-4)


def test_p_controller_is_seed_000():
    ee = jnp.array([0.1, 0.2, 0.3])
    target = jnp.array([0.4, -0.2, 0.3])
    a = np.asarray(policies.p_controller(ee, target))
    direction = np.array([0.3, -0.4, 0.0]) / 0.5
    np.testing.assert_allclose(a[:3], direction * 0.5, rtol=1e-6)
    assert a[3] == 0.0
    # At the target the action is finite and zero.
    np.testing.assert_allclose(policies.p_controller(target, target), 0.0)


def test_random_action_is_uniform_in_box():
    keys = jax.random.split(jax.random.key(0), 2000)
    a = np.asarray(jax.vmap(lambda k: policies.random_action(k, 4))(keys))
    assert a.shape == (2000, 4)
    assert a.min() >= -1.0 and a.max() <= 1.0
    assert abs(a.mean()) < 0.05 and a.std() == pytest.approx(1 / np.sqrt(3), abs=0.03)
