"""The arm tasks' `dmp` policy: stored parameters reproduce the commanded trajectory; motions are smooth
and varied."""

import h5py
import jax
import numpy as np
import pytest

from support import HORIZON, generate_file
from mjxgen.kernels import dmp
from mjxgen import make_env

N = 16


@pytest.fixture(scope="module")
def dmp_file(tmp_path_factory):
    return generate_file(tmp_path_factory, "reach", N, "dmp", HORIZON, N, seed=5)


def _episodes(path):
    with h5py.File(path) as f:
        for name in f:
            g = f[name]
            params = dmp.DMPParams(**{k: g["dmp"][k][()] for k in dmp.DMPParams._fields})
            yield params, g["observations/ee_pos"][()], g["observations/target_pos"][()], g["actions"][()]


def test_the_arm_uses_the_one_dmp_config_type():
    c = make_env("reach").config.arm.dmp_policy
    assert type(c) is type(dmp.PUSHT_REFERENCE) is dmp.DMPConfig
    assert c.clip is None and c.max_step is None  # no workspace clipping or step limiter for the arm


def test_stored_parameters_reproduce_the_commanded_trajectory(dmp_file):
    path, result = dmp_file
    env = make_env("reach")
    cfg = env.config.arm
    c = cfg.dmp_policy
    substep = env.arm.dt / c.substeps
    for params, ee, target, actions in _episodes(path):
        np.testing.assert_allclose(params.start, ee[0], atol=1e-6)  # starts at the end effector
        np.testing.assert_allclose(params.goal, target[0], atol=1e-6)  # ends on the target (no jitter)
        assert params.weights.shape == (3, c.n_basis)  # (D, n_basis)
        np.testing.assert_allclose(params.alpha_s, c.alpha_s)
        n = len(actions)
        commanded = dmp.downsample(dmp.integrate(jax.tree.map(np.asarray, params), substep, n * c.substeps + 1,
                                                 c.scale_forcing), c.substeps).position
        expected = np.clip((np.asarray(commanded)[1:] - ee) / cfg.max_ee_step, -1, 1)
        np.testing.assert_allclose(actions[:, :3], expected, atol=2e-3)
        assert (actions[:, 3] == 1.0).all()


def test_trajectories_are_smooth_and_varied(dmp_file):
    path, result = dmp_file
    assert result.stats["success_rate"] >= 0.8  # the DMPs end on the target
    detours, weights = [], []
    for params, ee, target, _ in _episodes(path):
        assert np.abs(np.diff(ee, 2, axis=0)).max() < 5e-3  # m per step^2: no jumps
        line = target[0] - ee[0]
        along = (ee - ee[0]) @ line / (line @ line)
        detours.append(np.linalg.norm(ee - ee[0] - along[:, None] * line, axis=1).max())
        weights.append(params.weights)
    assert np.std(detours) > 0.005 and np.max(detours) > 0.02  # m: different curved paths, not straight lines
    assert np.std(np.stack(weights), axis=0).min() > 10
