"""The PushT random-DMP generator (seed 003): the reference's draws and DMP, fields, replay, worker invariance,
videos, pymunk shim."""

import json
import math
import subprocess
import sys

import h5py
import numpy as np
import pytest

from support import (iter_groups, PUSHT_ARRAYS as ARRAYS, PUSHT_ATTRS as ATTRS, PUSHT_BLOBS as BLOBS, PUSHT_NOISY as NOISY,
                      assert_same_pusht_files)
from mjxgen.data.formats.samples import SAMPLES
from mjxgen.pusht import compat, execute, generate, writer

N = 12
SEED = 42
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pusht")
    one = d / "one.h5"
    many = d / "many.h5"
    generate.generate(N, SEED, one, d / "videos_one", video_samples=2, scale_forcing=True, workers=1, progress=False)
    generate.generate(N, SEED, many, d / "videos_many", video_samples=2, scale_forcing=True, workers=2, progress=False)
    return one, many


@pytest.fixture(scope="module")
def unscaled(tmp_path_factory):
    path = tmp_path_factory.mktemp("pusht") / "unscaled.h5"
    generate.generate(6, 7, path, workers=1, progress=False)
    return path


def test_every_field_with_consistent_lengths(files):
    with h5py.File(files[0]) as f:
        assert f.attrs["complete"] and f.attrs["format"] == SAMPLES.attr
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
            # One waypoint per planned action, the first being the start.
            assert g["timestamps"].shape == (planned,)
            assert g["dmp_canonical_phase_actions"].shape == (planned,)
            for key in ("dmp_waypoints_pixels", "dmp_waypoints_normalized", "dmp_velocity_normalized",
                        "dmp_forcing_normalized"):
                assert g[key].shape == (planned, 2), key
            assert g["weights"].shape == (2, 3) and g.attrs["dmp_n_basis"] == 3
            assert np.abs(g["weights"][()]).max() <= 60
            steps = writer.read_json(g, "step_infos")
            assert len(steps) == n
            for key in BLOBS[3:]:  # the reset's value, then one per step
                assert len(writer.read_json(g, key)) == n + 1, key
            assert writer.read_json(g, "env_coverage")[0] is None  # gym-pusht's reset info has no coverage
            reset = writer.read_json(g, "reset_info")
            assert writer.read_json(g, "env_pos_agent")[0] == reset["pos_agent"]
            assert writer.read_json(g, "env_info") == steps[-1]  # the last step's info
            # The DMP starts where the env put the agent, and the actions are its waypoints, the first the start.
            np.testing.assert_array_equal(g["start_pixels"][()], g["observations"][0, :2])
            np.testing.assert_array_equal(g["executed_actions_pixels"][()], g["dmp_waypoints_pixels"][:n])
            np.testing.assert_array_equal(g["executed_actions_pixels"][0], g["start_pixels"][()])
            np.testing.assert_allclose(g["executed_action_timestamps"][()], 0.1 * np.arange(n), atol=1e-6)
            np.testing.assert_allclose(g["observation_timestamps"][()], 0.1 * np.arange(n + 1), atol=1e-6)
            phase = g["dmp_canonical_phase_actions"][()]
            assert phase[0] == 1.0 and (np.diff(phase) < 0).all()
            assert g.attrs["dmp_dt"] == 0.1 / 8 and g.attrs["dmp_alpha_s"] == 1.2
            assert g.attrs["damping"] == pytest.approx(2 * math.sqrt(g.attrs["stiffness"]), rel=1e-12)


def test_file_attributes_are_the_references(files):
    with h5py.File(files[0]) as f:
        a = f.attrs
        assert (a["num_samples"], a["seed"], a["dmp_dt_substeps"], a["video_limit"]) == (N, SEED, 8, 2)
        assert a["scale_forcing_by_goal_delta"] and a["video_directory"].endswith("videos_one")
        config = json.loads(a["config"])
        assert config["dmp"]["n_basis"] == 3 and config["env"]["env_id"] == execute.ENV_ID


# ---- The reference generator, written out here independently of pusht/ and kernels/ (seed 003's script) ----
REF_ALPHA_S = 1.2
REF_N_BASIS = 3
REF_SUBSTEPS = 8
REF_DT = 0.1 / REF_SUBSTEPS


def reference_draws(seed, n):
    """numpy.random.default_rng(seed), in the reference's order within each sample."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        reset_seed = int(rng.integers(0, 1_000_000))
        goal = rng.uniform(0, 512, size=2).astype(np.float32)
        duration = float(rng.uniform(1, 4))
        stiffness = float(rng.uniform(5, 35))
        weights = rng.uniform(-60, 60, size=(2, REF_N_BASIS)).astype(np.float32)
        out.append((reset_seed, goal, duration, stiffness, weights))
    return out


def reference_waypoints(start_px, goal_px, tau, K, W, scale_forcing):
    """The planar DMP in float64: positions, z, forcing and s at the control waypoints, and the waypoints' indices."""
    start = np.clip((np.float32(start_px) - 256) / 256, -1, 1).astype(float)
    goal = np.clip((np.float32(goal_px) - 256) / 256, -1, 1).astype(float)
    T = max(2, math.ceil(tau / REF_DT))
    c = np.linspace(0, 1, REF_N_BASIS)
    h = 1 / (c[1] - c[0]) ** 2
    y, z, s = start.copy(), np.zeros(2), 1.0
    pos, vel, frc, phase = np.zeros((T, 2)), np.zeros((T, 2)), np.zeros((T, 2)), np.ones(T)
    pos[0] = start
    for i in range(1, T):
        psi = np.exp(-h * (s - c) ** 2)
        f = psi / (psi.sum() + 1e-6) @ W.astype(float).T * s
        if scale_forcing:
            f = f * (goal - start)
        z = z + (K * (K / 4 * (goal - y) - z) + f) * REF_DT / tau
        y = y + z * REF_DT / tau
        s = max(s - REF_ALPHA_S * s * REF_DT / tau, 0.0)
        pos[i], vel[i], frc[i], phase[i] = np.clip(y, -1, 1), z, f, s
    limit = 0.36 * np.linspace(1, 0.4, T)
    for i in range(1, T):
        target = goal if i == T - 1 else pos[i]
        d = target - pos[i - 1]
        norm = np.linalg.norm(d)
        pos[i] = pos[i - 1] + d * limit[i] / norm if norm > limit[i] else target
    pos = np.clip(pos, -1, 1)
    pos[0] = start
    idx = list(range(0, T, REF_SUBSTEPS))
    if idx[-1] != T - 1:
        idx.append(T - 1)
    return pos[idx], vel[idx], frc[idx], phase[idx], np.array(idx)


def test_draws_equal_the_reference_generator(files, unscaled):
    for path, seed in ((files[0], SEED), (unscaled, 7)):
        with h5py.File(path) as f:
            names = sorted(f)
            for name, (reset_seed, goal, duration, stiffness, weights) in zip(names, reference_draws(seed, len(names))):
                g = f[name]
                assert g.attrs["seed"] == reset_seed, name
                assert g.attrs["duration"] == duration and g.attrs["stiffness"] == stiffness, name
                np.testing.assert_array_equal(g["goal_pixels"][()], goal, err_msg=name)
                np.testing.assert_array_equal(g["weights"][()], weights, err_msg=name)


@pytest.mark.parametrize("which", ["scaled", "unscaled"])
def test_dmp_matches_an_independent_numpy_loop(files, unscaled, which):
    """Waypoints, phases, actions (and z, forcing, timestamps) against the float64 loop above, to 1e-3."""
    path, seed, scale = (files[0], SEED, True) if which == "scaled" else (unscaled, 7, False)
    env = execute.make_env()
    try:
        with h5py.File(path) as f:
            assert bool(f.attrs["scale_forcing_by_goal_delta"]) is scale
            for name, (reset_seed, goal, tau, K, W) in zip(sorted(f), reference_draws(seed, len(f))):
                g = f[name]
                obs, _ = env.reset(seed=reset_seed)
                pos, vel, frc, phase, idx = reference_waypoints(obs[:2], goal, tau, K, W, scale)
                n = int(g.attrs["executed_steps"])
                assert g.attrs["planned_steps"] == len(idx), name
                np.testing.assert_allclose(g["dmp_waypoints_normalized"][()], pos, atol=1e-3, err_msg=name)
                np.testing.assert_allclose(g["dmp_canonical_phase_actions"][()], phase, atol=1e-3, err_msg=name)
                np.testing.assert_allclose(g["executed_actions_pixels"][()] / 256 - 1, pos[:n], atol=1e-3,
                                           err_msg=name)
                np.testing.assert_allclose(g["dmp_waypoints_pixels"][()] / 256 - 1, pos, atol=1e-3, err_msg=name)
                np.testing.assert_allclose(g["dmp_velocity_normalized"][()], vel, rtol=1e-3,
                                           atol=1e-3 * max(1, np.abs(vel).max()), err_msg=name)
                np.testing.assert_allclose(g["dmp_forcing_normalized"][()], frc, rtol=1e-3,
                                           atol=1e-3 * max(1, np.abs(frc).max()), err_msg=name)
                np.testing.assert_allclose(g["timestamps"][()], idx * REF_DT, atol=1e-5, err_msg=name)
                t = 0.1 * np.arange(n + 1)
                np.testing.assert_allclose(g["dmp_canonical_phase_observations"][()],
                                           np.exp(-REF_ALPHA_S * t / tau), rtol=1e-5, err_msg=name)
    finally:
        env.close()


def test_pushes_happen(files):
    """The contact counter (the callback the pymunk shim exists for) sees contacts, and blocks move."""
    with h5py.File(files[0]) as f:
        contacts = sum(sum(writer.read_json(f[n], "env_n_contacts")) for n in f)
        moved = sum(np.abs(np.diff(f[n]["observations"][:, 2:4], axis=0)).sum() > 1.0 for n in f)
    assert contacts > 0 and moved > 0


def test_one_worker_equals_many(files):
    assert_same_pusht_files(files[0], files[1])


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
            assert path.endswith(f"sample_{int(name[-5:]):03d}.mp4")
            frames, _ = imageio_ffmpeg.count_frames_and_secs(path)
            assert frames == f[name].attrs["executed_steps"]  # one frame after each step, as the reference
            reader = imageio_ffmpeg.read_frames(path)
            assert next(reader)["size"] == (688, 688)  # 680 edge-padded to a multiple of 16
            reader.close()
            decoded = subprocess.run(
                [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "warning", "-i", path, "-f", "null", "-"],
                capture_output=True, text=True,
            )
            assert decoded.returncode == 0 and decoded.stderr.strip() == ""


def test_agent_reset_position_matches_env():
    env = execute.make_env()
    try:
        for seed in (0, 7, 999_999, 2**31 - 2):
            obs, _ = env.reset(seed=seed)
            np.testing.assert_array_equal(obs[:2], execute.agent_reset_position(seed))
    finally:
        env.close()


def test_bad_arguments_are_one_line_errors(tmp_path):
    for args in (["--num-samples", "0"], ["--num-samples", "x"], ["--video-samples", "-1"], ["--seed", "-2"]):
        r = subprocess.run([sys.executable, "-m", "mjxgen.pusht", *args, "--output-h5", str(tmp_path / "x.h5")],
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

    from mjxgen.data import shards
    from mjxgen.runtime.signals import GenerationInterrupted
    from mjxgen.runtime.signals import Signalled

    ref, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    generate.generate(10, 5, ref, workers=1, progress=False, shard_size=4)
    real = writer.write_sample

    def interrupted(f, plan, ex, *args):
        if plan.index == 9:  # as if Ctrl-C arrived while the third shard was being written
            raise Signalled(signal.SIGINT)
        real(f, plan, ex, *args)

    monkeypatch.setattr(writer, "write_sample", interrupted)
    with pytest.raises(GenerationInterrupted, match=r"samples 0 to 7 \(8 of 10\) are safe") as e:
        generate.generate(10, 5, out, workers=1, progress=False, shard_size=4)
    assert e.value.signum == signal.SIGINT and not out.exists()
    assert [name for name, _ in iter_groups(shards.partial_dir(out))] == [f"sample_{i:05d}" for i in range(8)]
    monkeypatch.setattr(writer, "write_sample", real)
    with pytest.raises(FileExistsError, match="--resume"):
        generate.generate(10, 5, out, workers=1, progress=False, shard_size=4)
    with pytest.raises(ValueError, match="settings differ in seed"):
        generate.generate(10, 6, out, workers=1, progress=False, shard_size=4, resume=True)
    stats = generate.generate(10, 5, out, workers=2, progress=False, shard_size=4, resume=True)
    assert stats["total_episodes"] == 10
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


def test_info_summarizes_a_pusht_file(files, capsys):
    """`mjxgen info` reads PushT files through the shared layout and stats (before: "not an mjxgen dataset")."""
    from mjxgen import cli

    assert cli.main(["info", str(files[0])]) == 0
    out = capsys.readouterr().out
    with h5py.File(files[0]) as f:
        steps = sum(int(f[n].attrs["executed_steps"]) for n in f)
        reached = np.mean([bool(f[n].attrs["terminated"]) for n in f])
    assert f"Episodes             {N}" in out and f"Total steps          {steps}" in out
    assert f"Success rate         {reached:.1%}" in out and "mjxgen-pusht v2" in out
