"""Replay: stored actions applied by native MuJoCo (float64) reproduce the stored MJX states."""

import h5py
import mujoco
import numpy as np

from mjxgen.native import NativeReach

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
