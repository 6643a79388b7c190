"""The PushT random-DMP generator (seed 003): fields, replay, worker invariance, videos, pymunk shim."""

import json
import subprocess
import sys

import mjxgen  # noqa: F401  (XLA flags first)
import h5py
import numpy as np
import pytest

from pusht import compat, execute, generate, writer

N = 12
ARRAYS = [
    "weights", "start_pixels", "start_normalized", "goal_pixels", "goal_normalized", "timestamps",
    "dmp_waypoints_pixels", "dmp_waypoints_normalized", "dmp_velocity_normalized", "dmp_forcing_normalized",
    "dmp_canonical_phase_actions", "dmp_canonical_phase_observations",
    "executed_actions_pixels", "executed_action_timestamps", "observations", "observation_timestamps", "rewards",
]
BLOBS = [
    "reset_info", "env_info", "step_infos", "env_pos_agent", "env_vel_agent", "env_block_pose", "env_goal_pose",
    "env_n_contacts", "env_is_success", "env_coverage",
]
ATTRS = [
    "seed", "duration", "stiffness", "damping", "executed_steps", "terminated", "truncated", "dmp_dt",
    "dmp_alpha_s", "dmp_n_basis",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pusht")
    one = d / "one.h5"
    many = d / "many.h5"
    generate.generate(N, 42, one, d / "videos_one", video_samples=2, scale_forcing=True, workers=1, progress=False)
    generate.generate(N, 42, many, d / "videos_many", video_samples=2, scale_forcing=True, workers=2, progress=False)
    return one, many


def test_every_field_with_consistent_lengths(files):
    with h5py.File(files[0]) as f:
        assert f.attrs["complete"] and f.attrs["format"] == writer.FORMAT
        assert "gym-pusht" in json.loads(f.attrs["versions"]) and "pymunk" in json.loads(f.attrs["versions"])
        assert sorted(f) == [f"sample_{i:05d}" for i in range(N)]
        for name in f:
            g = f[name]
            for key in ARRAYS:
                assert g[key].dtype == np.float32, key
            for key in ATTRS:
                assert key in g.attrs, key
            n, planned = int(g.attrs["executed_steps"]), int(g.attrs["planned_steps"])
            assert 1 <= n <= planned
            assert g["executed_actions_pixels"].shape == (n, 2)
            assert g["executed_action_timestamps"].shape == (n,)
            assert g["rewards"].shape == (n,)
            assert g["observations"].shape == (n + 1, 5)
            assert g["observation_timestamps"].shape == (n + 1,)
            assert g["dmp_canonical_phase_observations"].shape == (n + 1,)
            assert g["timestamps"].shape == (planned + 1,)
            assert g["dmp_canonical_phase_actions"].shape == (planned,)
            for key in ("dmp_waypoints_pixels", "dmp_waypoints_normalized", "dmp_velocity_normalized",
                        "dmp_forcing_normalized"):
                assert g[key].shape == (planned + 1, 2), key
            assert g["weights"].shape == (int(g.attrs["dmp_n_basis"]), 2)
            assert np.abs(g["weights"][()]).max() <= 60
            steps = writer.read_json(g, "step_infos")
            assert len(steps) == n
            for key in BLOBS[3:]:
                assert len(writer.read_json(g, key)) == n, key
            assert "pos_agent" in writer.read_json(g, "reset_info")
            assert writer.read_json(g, "env_info")["versions"]["gym-pusht"]
            # The DMP starts where the env put the agent, and the actions are its clipped waypoints.
            np.testing.assert_allclose(g["start_pixels"][()], g["observations"][0, :2], atol=1e-3)
            np.testing.assert_allclose(
                g["executed_actions_pixels"][()], np.clip(g["dmp_waypoints_pixels"][1 : n + 1], 0, 512), atol=1e-3
            )
            np.testing.assert_allclose(np.diff(g["timestamps"][()]), 0.1, atol=1e-5)


def test_pushes_happen(files):
    """The contact counter (the callback the pymunk shim exists for) sees contacts, and blocks move."""
    with h5py.File(files[0]) as f:
        contacts = sum(sum(writer.read_json(f[n], "env_n_contacts")) for n in f)
        moved = sum(np.abs(np.diff(f[n]["observations"][:, 2:4], axis=0)).sum() > 1.0 for n in f)
    assert contacts > 0 and moved > 0


# gym-pusht's coverage (shapely/GEOS polygon intersection) is not bit-reproducible: the same state gives
# values one float64 ulp apart from call to call, even in one process. Coverage, the reward derived from it,
# and the info blobs that carry it are therefore compared to 1e-12; everything else must be identical.
NOISY = {"rewards", "step_infos", "env_coverage"}


def _close(x, y, name):
    if isinstance(x, dict):
        assert x.keys() == y.keys(), name
        for k in x:
            _close(x[k], y[k], f"{name}.{k}")
    elif isinstance(x, list):
        assert len(x) == len(y), name
        for i, (u, v) in enumerate(zip(x, y)):
            _close(u, v, f"{name}[{i}]")
    elif isinstance(x, float):
        assert x == pytest.approx(y, rel=1e-12, abs=1e-15), name
    else:
        assert x == y, name


def test_one_worker_equals_many(files):
    with h5py.File(files[0]) as a, h5py.File(files[1]) as b:
        for name in a:
            for key in ARRAYS:
                x, y = a[name][key][()], b[name][key][()]
                if key in NOISY:
                    np.testing.assert_allclose(x, y, rtol=1e-6, err_msg=f"{name}/{key}")
                else:
                    np.testing.assert_array_equal(x, y, err_msg=f"{name}/{key}")
            for key in BLOBS:
                if key in NOISY:
                    _close(writer.read_json(a[name], key), writer.read_json(b[name], key), f"{name}/{key}")
                else:
                    assert a[name][key][()] == b[name][key][()], f"{name}/{key}"
            for key in ATTRS:
                assert a[name].attrs[key] == b[name].attrs[key]


def test_replay_reproduces_observations_and_rewards(files):
    env = execute.make_env()
    try:
        with h5py.File(files[0]) as f:
            for name in list(f)[:4]:
                g = f[name]
                obs, _ = env.reset(seed=int(g.attrs["seed"]))
                observations, rewards = [obs], []
                for action in g["executed_actions_pixels"][()]:
                    obs, reward, *_ = env.step(np.asarray(action, np.float64))
                    observations.append(obs)
                    rewards.append(reward)
                np.testing.assert_array_equal(np.asarray(observations, np.float32), g["observations"][()])
                np.testing.assert_allclose(np.asarray(rewards, np.float32), g["rewards"][()], rtol=1e-6)  # NOISY
    finally:
        env.close()


def test_videos_are_playable_mp4s(files):
    import imageio_ffmpeg

    with h5py.File(files[0]) as f:
        paths = [f[n].attrs["video_path"] for n in f if "video_path" in f[n].attrs]
        assert len(paths) == 2
        for name in ("sample_00000", "sample_00001"):
            path = f[name].attrs["video_path"]
            frames, _ = imageio_ffmpeg.count_frames_and_secs(path)
            assert frames == f[name].attrs["executed_steps"] + 1
            decoded = subprocess.run(
                [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "warning", "-i", path, "-f", "null", "-"],
                capture_output=True, text=True,
            )
            assert decoded.returncode == 0 and decoded.stderr.strip() == ""


def test_agent_reset_position_matches_env():
    env = execute.make_env()
    try:
        for seed in (0, 7, 2**31 - 2):
            obs, _ = env.reset(seed=seed)
            np.testing.assert_array_equal(obs[:2], execute.agent_reset_position(seed))
    finally:
        env.close()


def test_bad_arguments_are_one_line_errors(tmp_path):
    for args in (["--num-samples", "0"], ["--num-samples", "x"], ["--video-samples", "-1"], ["--seed", "-2"]):
        r = subprocess.run([sys.executable, "-m", "pusht.generate", *args, "--output-h5", str(tmp_path / "x.h5")],
                           capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and ": error: " in r.stderr, (args, r.stderr)


class _FakeArbiter:
    process_collision = True


class _FakeSpace:
    """pymunk 7's on_collision surface, recording what it is given."""

    def __init__(self):
        self.calls = []

    def on_collision(self, a=None, b=None, **callbacks):
        self.calls.append((a, b, callbacks))


def test_compat_shim_forwards_to_on_collision():
    space = _FakeSpace()
    handler = compat._add_collision_handler(space, 0, 0)
    seen = []
    handler.post_solve = lambda arbiter, sp, data: seen.append("post")
    handler.begin = lambda arbiter, sp, data: False
    a, b, callbacks = space.calls[-1]
    assert (a, b) == (0, 0) and set(callbacks) == {"post_solve", "begin", "data"}
    callbacks["post_solve"](_FakeArbiter(), space, {})
    arbiter = _FakeArbiter()
    callbacks["begin"](arbiter, space, {})
    assert seen == ["post"] and arbiter.process_collision is False
    assert handler.post_solve is not None
    with pytest.raises(AttributeError):
        handler.bogus = 1


def test_compat_patch_only_where_needed():
    import pymunk

    had = hasattr(pymunk.Space, "add_collision_handler")
    assert compat.needs_patch() is (not had)
    if had:
        assert compat.patch_pymunk() is False  # pymunk 6: untouched


def _all(path):
    out = {}
    with h5py.File(path) as f:
        for name in f:
            out[name] = ({k: f[name][k][()] for k in f[name]}, dict(f[name].attrs))
    return out


def test_interrupted_run_resumes_to_the_same_file(tmp_path, monkeypatch):
    import signal

    from mjxgen import shards
    from mjxgen.generate import GenerationInterrupted
    from mjxgen.signals import Signalled

    ref, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    generate.generate(10, 5, ref, workers=1, progress=False, shard_size=4)
    real = writer.write_sample

    def interrupted(f, plan, ex, env_info):
        if plan.index == 9:  # as if Ctrl-C arrived while the third shard was being written
            raise Signalled(signal.SIGINT)
        real(f, plan, ex, env_info)

    monkeypatch.setattr(writer, "write_sample", interrupted)
    with pytest.raises(GenerationInterrupted, match=r"samples 0 to 7 \(8 of 10\) are safe") as e:
        generate.generate(10, 5, out, workers=1, progress=False, shard_size=4)
    assert e.value.signum == signal.SIGINT and not out.exists()
    assert [name for name, _ in shards.iter_groups(shards.partial_dir(out))] == [f"sample_{i:05d}" for i in range(8)]
    monkeypatch.setattr(writer, "write_sample", real)
    with pytest.raises(FileExistsError, match="--resume"):
        generate.generate(10, 5, out, workers=1, progress=False, shard_size=4)
    with pytest.raises(ValueError, match="settings differ in seed"):
        generate.generate(10, 6, out, workers=1, progress=False, shard_size=4, resume=True)
    stats = generate.generate(10, 5, out, workers=2, progress=False, shard_size=4, resume=True)
    assert stats["num_samples"] == 10
    a, b = _all(ref), _all(out)
    assert a.keys() == b.keys()
    for name in a:
        for key in ARRAYS:
            if key in NOISY:
                np.testing.assert_allclose(a[name][0][key], b[name][0][key], rtol=1e-6)
            else:
                np.testing.assert_array_equal(a[name][0][key], b[name][0][key], err_msg=f"{name}/{key}")
        assert a[name][1] == b[name][1]
    with h5py.File(out) as f:
        assert f.attrs["complete"] and f.attrs["total_steps"] == stats["total_steps"]
