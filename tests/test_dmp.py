"""The DMP kernel against its defining properties and an independent NumPy reference."""

import mjxgen  # noqa: F401  (XLA flags first)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import dmp

DT = 0.01


def numpy_reference(start, goal, tau, K, D, alpha_s, w, dt, n_steps, scale_forcing):
    """Ijspeert's equations written out in a plain loop: no code shared with kernels.dmp."""
    n = w.shape[0]
    c = np.exp(-alpha_s * np.arange(n) / (n - 1))
    h = n**1.5 / c / alpha_s
    y, z, s = np.array(start, float), np.zeros(len(start)), 1.0
    k = (np.asarray(goal) - start) if scale_forcing else 1.0
    ys, ss, fs = [y.copy()], [s], []
    for _ in range(n_steps + 1):
        psi = np.exp(-h * (s - c) ** 2)
        f = (psi @ w) / psi.sum() * s * k
        fs.append(f)
        z = z + dt * (K * (goal - y) - D * z + f) / tau
        y = y + dt * z / tau
        s = s * np.exp(-alpha_s * dt / tau)
        ys.append(y.copy())
        ss.append(s)
    return np.array(ys[: n_steps + 1]), np.array(ss[: n_steps + 1]), np.array(fs[: n_steps + 1])


def make(start=(0.0, 0.0), goal=(1.0, -0.5), tau=2.0, K=150.0, weights=None, alpha_s=dmp.ALPHA_S):
    w = np.zeros((dmp.N_BASIS, 2), np.float32) if weights is None else np.asarray(weights, np.float32)
    return dmp.DMPParams(
        start=jnp.asarray(start, jnp.float32),
        goal=jnp.asarray(goal, jnp.float32),
        duration=jnp.float32(tau),
        stiffness=jnp.float32(K),
        damping=jnp.float32(2 * np.sqrt(K)),
        alpha_s=jnp.float32(alpha_s),
        weights=jnp.asarray(w),
    )


@pytest.fixture(scope="module")
def sampled():
    keys = jax.random.split(jax.random.key(3), 8)
    starts = jax.random.uniform(jax.random.key(4), (8, 2), minval=-0.8, maxval=0.8)
    return jax.vmap(lambda k, s: dmp.sample_params(k, s, -0.8, 0.8, (1.0, 3.0), (50.0, 300.0)))(keys, starts)


def test_zero_weights_converge_without_overshoot():
    p = make(start=(0.2, -0.4), goal=(-0.6, 0.7), tau=1.0)
    r = dmp.integrate(p, DT, 500)
    y = np.asarray(r.position)
    np.testing.assert_allclose(y[-1], p.goal, atol=1e-3)
    # Critically damped from rest: each coordinate moves monotonically towards its goal, never past it.
    direction = np.sign(np.asarray(p.goal) - np.asarray(p.start))
    progress = (y - np.asarray(p.start)) * direction
    assert (np.diff(progress, axis=0) >= -1e-6).all()
    assert (progress <= np.abs(np.asarray(p.goal) - np.asarray(p.start)) + 1e-5).all()


def test_phase_is_the_closed_form_exponential():
    p = make(tau=2.5, alpha_s=3.0)
    r = dmp.integrate(p, DT, 400)
    np.testing.assert_allclose(r.phase, np.exp(-3.0 * np.asarray(r.t) / 2.5), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(r.phase, dmp.canonical_phase(r.t, p.duration, p.alpha_s), rtol=1e-4)


@pytest.mark.parametrize("scale_forcing", [False, True])
def test_matches_numpy_reference(sampled, scale_forcing):
    for j in range(3):
        p = jax.tree.map(lambda x: x[j], sampled)
        r = dmp.integrate(p, DT, 300, scale_forcing)
        y, s, f = numpy_reference(
            np.asarray(p.start, float), np.asarray(p.goal, float), float(p.duration), float(p.stiffness),
            float(p.damping), float(p.alpha_s), np.asarray(p.weights, float), DT, 300, scale_forcing,
        )
        np.testing.assert_allclose(r.position, y, atol=2e-4)
        np.testing.assert_allclose(r.phase, s, rtol=1e-5)
        np.testing.assert_allclose(r.forcing, f, rtol=1e-3, atol=1e-3)


def test_vmap_equals_one_by_one(sampled):
    batched = jax.vmap(lambda p: dmp.integrate(p, DT, 200, True))(sampled)
    for j in range(8):
        single = dmp.integrate(jax.tree.map(lambda x: x[j], sampled), DT, 200, True)
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched)):
            np.testing.assert_allclose(a, np.asarray(b)[j], rtol=1e-5, atol=1e-6)


def test_scale_forcing_multiplies_by_goal_displacement(sampled):
    p = jax.tree.map(lambda x: x[0], sampled)
    for s in (1.0, 0.6, 0.1):
        plain = dmp.forcing(p, jnp.float32(s), scale_forcing=False)
        scaled = dmp.forcing(p, jnp.float32(s), scale_forcing=True)
        np.testing.assert_allclose(scaled, plain * (p.goal - p.start), rtol=1e-5, atol=1e-6)
    # A DMP whose goal equals its start has no forcing at all when scaled, so it stays put.
    still = p._replace(goal=p.start)
    r = dmp.integrate(still, DT, 200, scale_forcing=True)
    np.testing.assert_allclose(r.position, np.broadcast_to(p.start, r.position.shape), atol=1e-6)
    moved = dmp.integrate(still, DT, 200, scale_forcing=False)
    assert np.abs(np.asarray(moved.position) - np.asarray(p.start)).max() > 1e-2


def test_substepping_invariance():
    p = make(weights=np.random.default_rng(0).uniform(-60, 60, (dmp.N_BASIS, 2)), tau=2.0)
    coarse = dmp.downsample(dmp.integrate(p, 0.01, 300), 10)
    fine = dmp.downsample(dmp.integrate(p, 0.0025, 1200), 40)
    np.testing.assert_allclose(coarse.t, fine.t, atol=1e-5)
    np.testing.assert_allclose(coarse.position, fine.position, atol=2e-2)


def test_downsample_returns_control_instants():
    r = dmp.downsample(dmp.integrate(make(), DT, 100), 10)
    np.testing.assert_allclose(r.t, np.arange(11) * 0.1, atol=1e-6)
    assert r.position.shape == (11, 2) and r.phase.shape == (11,)


def test_sampler_ranges(sampled):
    assert np.all(np.abs(np.asarray(sampled.weights)) <= dmp.WEIGHT_BOUND)
    assert np.asarray(sampled.weights).std() > 20  # spread over [-60, 60], not a constant
    np.testing.assert_allclose(sampled.damping, 2 * np.sqrt(np.asarray(sampled.stiffness)), rtol=1e-6)
    assert np.all((np.asarray(sampled.duration) >= 1.0) & (np.asarray(sampled.duration) <= 3.0))
    assert np.all(np.abs(np.asarray(sampled.goal)) <= 0.8)
