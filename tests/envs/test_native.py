"""Replay: stored actions applied by native MuJoCo (float64) reproduce the stored MJX states."""

import h5py
import mujoco
import numpy as np

from mjxgen.envs.native import NativeReach

# Open-loop replay in float64 of a float32 MJX episode: measured at most 1.1e-6 rad over 200 steps (4 s).
REPLAY_ATOL = 1e-4  # rad, m


def test_native_replay_reproduces_stored_episodes(scripted_file, random_file, reach_env):
    for path, _ in (scripted_file, random_file):
        with h5py.File(path) as f:
            native = NativeReach(reach_env, mujoco.MjModel.from_xml_string(f.attrs["model_xml"]))
            for name in list(f)[:4]:
                g = f[name]
                obs = g["observations"]
                replayed = native.replay(obs["target_pos"][0], g["actions"][()])
                for k in ("joint_pos", "ee_pos"):
                    np.testing.assert_allclose(replayed[k], obs[k][()], atol=REPLAY_ATOL, err_msg=f"{path.name} {name} {k}")


def test_native_scripted_loop_succeeds(reach_env):
    native = NativeReach(reach_env)
    rng = np.random.default_rng(0)
    lengths = [native.run_scripted(rng.uniform(reach_env.config.target_low, reach_env.config.target_high), 200)
               for _ in range(8)]
    assert max(lengths) < 200, lengths  # every episode reached the target



LIMIT = int(mujoco.mjtDisableBit.mjDSBL_LIMIT)
GRAVITY = int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
# reach.xml's flags against the same model without them, native float64, a constant saturated action per
# episode (arm at the workspace edge, fingers at their range ends): bench.reach_flags measured at most 3.0e-6 rad
# on the arm over 256 such episodes of 200 steps, and fingers up to 3.4e-4 m past their range (not stored in reach).
FLAGS_ARM_ATOL = 2e-5  # rad
FINGER_PAST_RANGE = 5e-4  # m


def test_reach_flags_leave_native_physics_unchanged(reach_env):
    """reach.xml disables gravity (cancelled exactly by gravcomp) and joint limits (servo targets are clipped to
    the ranges): arm motion on the model without the flags is the same, even when driven to the workspace edge."""
    m, arm = reach_env.mj_model, reach_env.arm
    assert m.opt.disableflags & LIMIT and m.opt.disableflags & GRAVITY
    moving = (m.body_weldid != 0) & (m.body_mocapid < 0)
    np.testing.assert_array_equal(m.body_gravcomp[moving], 1.0, err_msg="a moving body without gravcomp")
    joint = m.actuator_trnid[:, 0]
    assert (m.actuator_ctrlrange[:, 0] >= m.jnt_range[joint, 0]).all()
    assert (m.actuator_ctrlrange[:, 1] <= m.jnt_range[joint, 1]).all()
    original = mujoco.MjModel.from_xml_string(reach_env.xml)
    original.opt.disableflags &= ~(LIMIT | GRAVITY)
    fingers = np.flatnonzero(~np.isin(m.jnt_qposadr, arm.arm_qpos_adr))  # joint ids; one qpos each
    lo, hi = m.jnt_range[fingers].T
    rng = np.random.default_rng(1)
    for corner in ([1, 1, 1, 1], [-1, -1, -1, -1], [1, -1, 1, -1], [-1, 1, -1, 1]):
        target = rng.uniform(reach_env.config.target_low, reach_env.config.target_high)
        runs = []
        for model in (original, m):
            native = NativeReach(reach_env, model)
            native.reset(target)
            qpos = []
            for _ in range(150):
                native.step(np.array(corner, float))
                qpos.append(native.data.qpos.copy())
            runs.append(np.array(qpos))
        np.testing.assert_allclose(runs[1][:, arm.arm_qpos_adr], runs[0][:, arm.arm_qpos_adr], rtol=0,
                                   atol=FLAGS_ARM_ATOL, err_msg=f"arm joints, corner action {corner}")
        q = runs[1][:, m.jnt_qposadr[fingers]]
        past = np.maximum(lo - q, q - hi).max()
        assert past < FINGER_PAST_RANGE, (corner, past)
