"""The DMP kernel against its defining properties and an independent float64 NumPy loop."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxgen.kernels import dmp

DT = 0.0125
ALPHA_S = 1.2


def numpy_reference(start, goal, tau, K, alpha_s, w, dt, n_points, scale_forcing):
    """The equations written out in a plain float64 loop: no code shared with mjxgen.kernels.dmp.

    Returns positions, z, phases and forcing at points 0..n_points-1 (point i after i steps)."""
    n = w.shape[1]
    c = np.linspace(0.0, 1.0, n)
    h = 1.0 / (c[1] - c[0]) ** 2 if n > 1 else np.ones(1)
    y, z, s = np.array(start, float), np.zeros(len(start)), 1.0
    k = (np.asarray(goal, float) - start) if scale_forcing else 1.0
    ys, zs, ss, fs = [y.copy()], [z.copy()], [s], [np.zeros(len(start))]
    for _ in range(n_points - 1):
        psi = np.exp(-h * (s - c) ** 2)
        f = (psi / (psi.sum() + 1e-6)) @ w.T * s * k
        z = z + (K * (K / 4 * (goal - y) - z) + f) * dt / tau
        y = y + z * dt / tau
        s = max(s - alpha_s * s * dt / tau, 0.0)
        ys.append(y.copy())
        zs.append(z.copy())
        ss.append(s)
        fs.append(f)
    return np.array(ys), np.array(zs), np.array(ss), np.array(fs)


def make(start=(0.0, 0.0), goal=(0.8, -0.5), tau=2.0, K=20.0, weights=None, alpha_s=ALPHA_S, n_basis=3):
    w = np.zeros((2, n_basis), np.float32) if weights is None else np.asarray(weights, np.float32)
    return dmp.DMPParams(
        start=jnp.asarray(start, jnp.float32),
        goal=jnp.asarray(goal, jnp.float32),
        duration=jnp.float32(tau),
        stiffness=jnp.float32(K),
        alpha_s=jnp.float32(alpha_s),
        weights=jnp.asarray(w),
    )


CONFIG = dmp.DMPConfig(n_basis=3, alpha_s=ALPHA_S, duration_range=(1.0, 3.0), stiffness_range=(5.0, 35.0),
                       weight_bound=60.0, substeps=8, goal_jitter=0.8)


@pytest.fixture(scope="module")
def sampled():
    keys = jax.random.split(jax.random.key(3), 8)
    starts = jax.random.uniform(jax.random.key(4), (8, 2), minval=-0.8, maxval=0.8)
    return jax.vmap(lambda k, s: dmp.sample_params(k, CONFIG, s, jnp.zeros(2)))(keys, starts)


def test_basis_is_linspace_with_inverse_squared_spacing():
    c, h = dmp.basis(3)
    np.testing.assert_allclose(c, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(h, [4.0, 4.0, 4.0])
    c, h = dmp.basis(5)
    np.testing.assert_allclose(c, np.linspace(0, 1, 5), atol=1e-7)
    np.testing.assert_allclose(h, 16.0)
    np.testing.assert_allclose(dmp.basis(1)[1], [1.0])


def test_zero_weights_converge_without_overshoot():
    p = make(start=(0.2, -0.4), goal=(-0.6, 0.7), tau=1.0, K=20.0)
    r = dmp.integrate(p, 0.01, 501)
    y = np.asarray(r.position)
    np.testing.assert_allclose(y[-1], p.goal, atol=1e-3)
    # Critically damped (spring K^2/4, damping K) from rest: each coordinate moves monotonically towards its
    # goal, never past it.
    direction = np.sign(np.asarray(p.goal) - np.asarray(p.start))
    progress = (y - np.asarray(p.start)) * direction
    assert (np.diff(progress, axis=0) >= -1e-6).all()
    assert (progress <= np.abs(np.asarray(p.goal) - np.asarray(p.start)) + 1e-5).all()


def test_phase_is_the_euler_product():
    p = make(tau=2.5, alpha_s=ALPHA_S)
    r = dmp.integrate(p, DT, 321)
    i = np.arange(321)
    np.testing.assert_allclose(r.phase, (1 - ALPHA_S * DT / 2.5) ** i, rtol=1e-5)
    # ... which is the closed form exp(-alpha_s t / tau) up to the Euler error, at most about
    # x / (2e) for x = alpha_s dt / tau (1.1e-3 here)
    x = ALPHA_S * DT / 2.5
    np.testing.assert_allclose(r.phase, np.exp(-ALPHA_S * i * DT / 2.5), atol=1.05 * x / (2 * np.e))
    # A step with alpha_s dt / tau > 1 would make s negative: it stops at 0.
    r = dmp.integrate(make(tau=0.5), 1.0, 4)
    np.testing.assert_array_equal(r.phase, [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("scale_forcing", [False, True])
def test_matches_numpy_reference(sampled, scale_forcing):
    for j in range(3):
        p = jax.tree.map(lambda x: x[j], sampled)
        r = dmp.integrate(p, DT, 321, scale_forcing)
        y, z, s, f = numpy_reference(
            np.asarray(p.start, float), np.asarray(p.goal, float), float(p.duration), float(p.stiffness),
            float(p.alpha_s), np.asarray(p.weights, float), DT, 321, scale_forcing,
        )
        scale = max(1.0, np.abs(y).max())
        np.testing.assert_allclose(r.position, y, atol=1e-4 * scale)
        np.testing.assert_allclose(r.z, z, rtol=1e-3, atol=1e-4 * np.abs(z).max())
        np.testing.assert_allclose(r.phase, s, rtol=1e-5)
        np.testing.assert_allclose(r.forcing, f, rtol=1e-3, atol=1e-4 * np.abs(f).max())
        np.testing.assert_allclose(r.t, np.arange(321) * DT, rtol=1e-6)


def test_vmap_equals_one_by_one(sampled):
    batched = jax.vmap(lambda p: dmp.integrate(p, DT, 200, True))(sampled)
    for j in range(8):
        single = dmp.integrate(jax.tree.map(lambda x: x[j], sampled), DT, 200, True)
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched)):
            np.testing.assert_allclose(a, np.asarray(b)[j], rtol=1e-5, atol=1e-5)


def test_scale_forcing_multiplies_by_goal_displacement(sampled):
    p = jax.tree.map(lambda x: x[0], sampled)
    for s in (1.0, 0.6, 0.1):
        plain = dmp.forcing(p, jnp.float32(s), scale_forcing=False)
        scaled = dmp.forcing(p, jnp.float32(s), scale_forcing=True)
        np.testing.assert_allclose(scaled, plain * (p.goal - p.start), rtol=1e-5, atol=1e-5)
    # A DMP whose goal equals its start has no forcing at all when scaled, so it stays put.
    still = p._replace(goal=p.start)
    r = dmp.integrate(still, DT, 200, scale_forcing=True)
    np.testing.assert_allclose(r.position, np.broadcast_to(p.start, r.position.shape), atol=1e-6)
    moved = dmp.integrate(still, DT, 200, scale_forcing=False)
    assert np.abs(np.asarray(moved.position) - np.asarray(p.start)).max() > 1e-2


def test_substepping_invariance():
    p = make(weights=np.random.default_rng(0).uniform(-60, 60, (2, 3)), tau=2.0, K=20.0)
    coarse = dmp.downsample(dmp.integrate(p, 0.0125, 241), 8)  # 8 steps per 0.1 s
    fine = dmp.downsample(dmp.integrate(p, 0.003125, 961), 32)  # 32 steps per 0.1 s
    np.testing.assert_allclose(coarse.t, fine.t, atol=1e-5)
    np.testing.assert_allclose(coarse.position, fine.position, atol=3e-2 * np.abs(fine.position).max())
    np.testing.assert_allclose(coarse.phase, fine.phase, atol=2e-3)


def test_downsample_returns_control_instants():
    r = dmp.downsample(dmp.integrate(make(), DT, 81), 8)
    np.testing.assert_allclose(r.t, np.arange(11) * 0.1, atol=1e-6)
    assert r.position.shape == (11, 2) and r.phase.shape == (11,)


def numpy_limit(pos, goal, T, max_step, decay):
    pos = np.array(pos, float)
    lim = max_step * np.linspace(1.0, decay, T)
    for i in range(1, T - 1):
        d = pos[i] - pos[i - 1]
        if np.linalg.norm(d) > lim[i]:
            pos[i] = pos[i - 1] + d * lim[i] / np.linalg.norm(d)
    d = goal - pos[T - 2]
    pos[T - 1] = pos[T - 2] + d * lim[T - 1] / np.linalg.norm(d) if np.linalg.norm(d) > lim[T - 1] else goal
    return pos


@pytest.mark.parametrize("T", [2, 3, 17, 40])
def test_step_limiter(T):
    rng = np.random.default_rng(T)
    pos = np.cumsum(rng.normal(0, 0.3, (40, 2)), axis=0).astype(np.float32)  # steps often longer than 0.36
    goal = np.float32([0.9, -0.9])
    out = np.asarray(dmp.limit_steps(jnp.asarray(pos), jnp.asarray(goal), T, 0.36, 0.4))
    np.testing.assert_allclose(out[:T], numpy_limit(pos[:T], goal, T, 0.36, 0.4), atol=1e-5)
    np.testing.assert_array_equal(out[T:], pos[T:])  # padding is left alone
    steps = np.linalg.norm(np.diff(out[:T], axis=0), axis=1)
    assert (steps <= 0.36 * np.linspace(1, 0.4, T)[1:] + 1e-5).all()


def test_shape_path_clips_limits_and_keeps_the_start():
    p = make(start=(0.95, -0.2), goal=(-0.9, 0.9))
    pos = jnp.asarray(np.random.default_rng(1).uniform(-3, 3, (30, 2)), jnp.float32)
    out = np.asarray(dmp.shape_path(pos, p, 25, dmp.PUSHT_REFERENCE))
    assert np.abs(out).max() <= 1.0
    np.testing.assert_array_equal(out[0], p.start)
    expected = np.clip(np.asarray(pos[:25]), -1, 1)
    expected[0] = p.start
    expected = np.clip(numpy_limit(expected, np.asarray(p.goal), 25, 0.36, 0.4), -1, 1)
    np.testing.assert_allclose(out[:25], expected, atol=1e-5)
    off = dataclasses.replace(dmp.PUSHT_REFERENCE, clip=None, max_step=None)
    np.testing.assert_array_equal(dmp.shape_path(pos, p, 25, off)[1:], pos[1:])  # the arm's: no shaping


def test_sampler_ranges(sampled):
    assert sampled.weights.shape == (8, 2, 3)
    assert np.all(np.abs(np.asarray(sampled.weights)) <= 60)
    assert np.asarray(sampled.weights).std() > 20  # spread over [-60, 60], not a constant
    assert np.all((np.asarray(sampled.duration) >= 1.0) & (np.asarray(sampled.duration) <= 3.0))
    assert np.all((np.asarray(sampled.stiffness) >= 5.0) & (np.asarray(sampled.stiffness) <= 35.0))
    assert np.all(np.abs(np.asarray(sampled.goal)) <= 0.8)  # within the jitter of the given goal point 0
    np.testing.assert_allclose(sampled.alpha_s, ALPHA_S)


def test_config_is_frozen_keyword_only_and_checked():
    with pytest.raises(TypeError):
        dmp.DMPConfig(3, 1.2, (1.0, 4.0), (5.0, 35.0), 60.0, 8)  # positional
    with pytest.raises(dataclasses.FrozenInstanceError):
        dmp.PUSHT_REFERENCE.n_basis = 4
    with pytest.raises(ValueError, match="duration_range"):
        dataclasses.replace(dmp.PUSHT_REFERENCE, duration_range=(4.0, 1.0))
    listed = dataclasses.replace(dmp.PUSHT_REFERENCE, duration_range=[1, 4])
    assert listed == dmp.PUSHT_REFERENCE and hash(listed) == hash(dmp.PUSHT_REFERENCE)
    with pytest.raises(ValueError, match="goal_range"):
        dmp.sample_params(jax.random.key(0), dmp.PUSHT_REFERENCE, jnp.zeros(2), jnp.zeros(2))


def test_pusht_reference_is_the_issue_spec():
    r = dmp.PUSHT_REFERENCE
    assert (r.n_basis, r.alpha_s, r.substeps, r.weight_bound) == (3, 1.2, 8, 60.0)
    assert (r.duration_range, r.stiffness_range, r.goal_range) == ((1.0, 4.0), (5.0, 35.0), (0.0, 512.0))
    assert (r.clip, r.max_step, r.max_step_decay, r.scale_forcing) == ((-1.0, 1.0), 0.36, 0.4, False)
    assert math.isclose(0.1 / r.substeps, 0.0125)
