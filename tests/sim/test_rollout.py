"""rollout_batch: determinism across batch layouts, no recompiles, agreement with native MuJoCo."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

# The rollout tests run at seed 000's shape (100 episodes, 200 steps), which the README's rollout_batch block compiles
# too, and at a batch of 5 (odd batches and chunks).
from support import SEED_N as BATCH, SEED_T as HORIZON
from mjxgen.sim import rollout
from mjxgen.sim.rollout import rollout_batch

# MJX runs in float32, native MuJoCo in float64: over 100 physics steps (0.5 s) of the servoed arm they
# agree to this (measured: 2.7e-7 rad, and 1.8e-7 m at the TCP).
QPOS_ATOL = 1e-5  # rad
QVEL_ATOL = 1e-3  # rad/s
TCP_ATOL = 1e-5  # m


@pytest.fixture(scope="module")
def batch100(reach_env):
    return jax.device_get(rollout_batch(reach_env, "scripted", np.arange(BATCH), seed=3, max_steps=HORIZON))


def test_shapes(batch100, reach_env):
    tr = batch100.trajectory
    assert tr.actions.shape == (BATCH, HORIZON, 4)
    assert tr.rewards.shape == (BATCH, HORIZON)
    for k, shape in reach_env.obs_shapes.items():
        assert tr.observations[k].shape == (BATCH, HORIZON, *shape), k
        assert tr.observations[k].dtype == np.float32
    assert batch100.lengths.shape == (BATCH,) and batch100.success.shape == (BATCH,)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(tr))


def test_an_odd_batch_gives_the_same_episodes(batch100, reach_env):
    """Episode i's data depend only on (seed, i), not on the batch it ran in: episodes 5..9 alone (a batch of 5:
    other vector/remainder loop splits) equal the same ids in the batch of 100. This holds because XLA may not
    fuse multiply-adds on the CPU (mjxgen.runtime.xla, the ISA cap); with fusion, the first step already differs by
    1 float32 ulp."""
    five = jax.device_get(rollout_batch(reach_env, "scripted", np.arange(5, 10), seed=3, max_steps=HORIZON))
    for a, b in zip(jax.tree.leaves(five), jax.tree.leaves(batch100)):
        np.testing.assert_array_equal(a, b[5:10])


def test_chunked_batch_equals_whole_batch(reach_env, batch100):
    """The jaxlib-0.10 CPU path (device-sized chunks) gives the same data as one batch: episodes 0..97 as chunks of
    5 (98 = 19 x 5 + 3, the last chunk padded; the odd batch's compiled shape) equal those of the batch of 100."""
    n = BATCH - 2
    chunked = jax.device_get(rollout_batch(reach_env, "scripted", np.arange(n), seed=3, max_steps=HORIZON, chunk_size=5))
    for a, b in zip(jax.tree.leaves(chunked), jax.tree.leaves(batch100)):
        np.testing.assert_array_equal(a, b[:n])


def test_second_call_does_not_recompile(batch100, reach_env):
    key = ("reach", "scripted", HORIZON, BATCH, rollout.SEGMENT_STEPS)
    assert rollout.TRACE_COUNT[key] == 1
    out = rollout_batch(reach_env, "scripted", np.arange(100, 100 + BATCH), seed=11, max_steps=HORIZON)
    jax.block_until_ready(out)
    assert rollout.TRACE_COUNT[key] == 1


def test_lengths_end_at_first_success(batch100, reach_env):
    thr = reach_env.config.success_threshold
    for b in range(BATCH):
        dist = -batch100.trajectory.rewards[b]
        n = batch100.lengths[b]
        assert (dist[: n - 1] >= thr).all()
        if batch100.success[b]:
            assert dist[n - 1] < thr
        else:
            assert n == HORIZON


def test_different_seeds_differ(batch100, reach_env):
    other = jax.device_get(rollout_batch(reach_env, "scripted", np.arange(BATCH), seed=4, max_steps=HORIZON))
    assert not np.allclose(other.trajectory.observations["target_pos"], batch100.trajectory.observations["target_pos"])


def test_bad_arguments(reach_env):
    with pytest.raises(ValueError, match="unknown policy"):
        rollout_batch(reach_env, "teleop", np.arange(2))
    with pytest.raises(ValueError, match="unknown env"):
        rollout_batch("juggle", "random", np.arange(2))
    with pytest.raises(ValueError, match="episode_ids"):
        rollout_batch(reach_env, "random", np.array([], int))
    with pytest.raises(ValueError, match="max_steps"):
        rollout_batch(reach_env, "random", np.arange(2), max_steps=0)


def test_mjx_matches_native_mujoco(reach_env):
    """The same controls from the same state through the env's physics_step (mjxgen.envs.arm.step: the first
    substep reuses the refreshed kinematics, the unrolled Cholesky) and through mujoco.mj_step + kinematics."""
    mj_model, arm = reach_env.mj_model, reach_env.arm
    d = mujoco.MjData(mj_model)
    mujoco.mj_resetDataKeyframe(mj_model, d, mj_model.key("home").id)
    d.qvel[:7] = [0.3, -0.2, 0.1, 0.2, -0.3, 0.2, 0.4]
    mujoco.mj_forward(mj_model, d)
    mx = mjx.put_data(mj_model, d)
    n_steps = 25  # control steps: 100 physics steps, 0.5 s
    t = np.arange(n_steps)[:, None] * arm.dt
    ctrl = mj_model.key_ctrl[0] + np.concatenate([0.3 * np.sin(2 * np.pi * t * np.arange(1, 8)), 0.01 * np.ones((n_steps, 2))], 1)
    ctrl = np.clip(ctrl, mj_model.actuator_ctrlrange[:, 0], mj_model.actuator_ctrlrange[:, 1])

    def body(x, c):
        x = arm.physics_step(reach_env.mjx_model, x, c)
        return x, (x.qpos, x.qvel, arm.tcp_pos(x))

    _, (qpos_mjx, qvel_mjx, tcp_mjx) = jax.jit(lambda x, c: jax.lax.scan(body, x, c))(mx, jnp.asarray(ctrl, jnp.float32))
    qpos_mj, qvel_mj, tcp_mj = [], [], []
    for c in ctrl:
        d.ctrl[:] = c
        for _ in range(reach_env.substeps):
            mujoco.mj_step(mj_model, d)
        mujoco.mj_kinematics(mj_model, d)
        qpos_mj.append(d.qpos.copy())
        qvel_mj.append(d.qvel.copy())
        tcp_mj.append(d.site_xpos[arm.tcp_site].copy())
    np.testing.assert_allclose(qpos_mjx, np.array(qpos_mj), atol=QPOS_ATOL, err_msg="qpos")
    np.testing.assert_allclose(qvel_mjx, np.array(qvel_mj), atol=QVEL_ATOL, err_msg="qvel")
    np.testing.assert_allclose(tcp_mjx, np.array(tcp_mj), atol=TCP_ATOL, err_msg="tcp position after the step")
    assert np.abs(np.array(qpos_mj) - qpos_mj[0]).max() > 0.05  # the arm really moved


def test_large_cpu_batch_does_not_hang():
    """B=4096 must finish on the CPU (jaxlib 0.10.x deadlocked past B=1755). Run in a subprocess so a
    hang fails the test after a timeout instead of stalling the suite."""
    code = textwrap.dedent(
        """
        import numpy as np, jax, mjxgen
        r = mjxgen.rollout_batch("reach", "random", np.arange(4096), seed=0, max_steps=2)
        jax.block_until_ready(r)
        print("ok", r.lengths.shape[0])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok 4096" in out.stdout


class TowardPoint:
    """A user-written policy: a P-controller toward params["point"] with gain params["gain"], gripper open."""

    def init(self, key, obs, params):
        return jnp.int32(0)  # a step counter, to show that policy state rides in the scan

    def act(self, state, key, obs, params):
        move = jnp.clip(params["gain"] * (params["point"] - obs["ee_pos"]), -1.0, 1.0)
        return jnp.concatenate([move, jnp.ones(1)]), state + 1

    def record(self, state):
        return {"steps_at_start": state}


USER_B, USER_T = 8, 60


def test_a_user_policy_with_params_runs_and_new_params_do_not_recompile(reach_env):
    policy = TowardPoint()
    params = {"point": jnp.array([0.5, 0.1, 0.3]), "gain": jnp.float32(20.0)}
    out = jax.device_get(rollout_batch(reach_env, policy, np.arange(USER_B), seed=0, max_steps=USER_T,
                                       policy_params=params))
    ee = out.trajectory.observations["ee_pos"]
    np.testing.assert_allclose(ee[:, -1], np.broadcast_to([0.5, 0.1, 0.3], (USER_B, 3)), atol=5e-3)
    assert (out.trajectory.actions[:, :, 3] == 1).all() and (out.policy_record["steps_at_start"] == 0).all()
    key = ("reach", "TowardPoint", USER_T, USER_B, rollout.SEGMENT_STEPS)
    assert rollout.TRACE_COUNT[key] == 1
    other = {"point": jnp.array([0.4, -0.2, 0.2]), "gain": jnp.float32(10.0)}  # new values, same shapes
    moved = jax.device_get(rollout_batch(reach_env, policy, np.arange(USER_B), seed=0, max_steps=USER_T,
                                         policy_params=other))
    assert rollout.TRACE_COUNT[key] == 1
    np.testing.assert_allclose(moved.trajectory.observations["ee_pos"][:, -1],
                               np.broadcast_to([0.4, -0.2, 0.2], (USER_B, 3)), atol=5e-3)


def test_bad_policy_objects_are_refused(reach_env):
    class NoAct:
        def init(self, key, obs, params):
            return ()

    import dataclasses

    @dataclasses.dataclass
    class Unhashable(TowardPoint):
        gain: float = 1.0

    with pytest.raises(TypeError, match="init\\(key, obs, params\\) and act"):
        rollout_batch(reach_env, NoAct(), np.arange(2))
    with pytest.raises(TypeError, match="hashable"):
        rollout_batch(reach_env, Unhashable(), np.arange(2))
