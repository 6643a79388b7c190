"""The streaming generator (auto-reset slots) writes exactly the files of the fixed-horizon form, dataset by
dataset, while simulating fewer steps; resume after an interruption with episodes ending out of order gives the
uninterrupted file; the id source runs any (first, stride) subsequence.

Every run here reuses a compiled program of the suite: the streaming generator and rollout_batch run the same
program for the same (env, policy, horizon, slots)."""

import h5py
import jax
import numpy as np
import pytest

from support import BATCH, DURABLE_BATCH, DURABLE_HORIZON, HORIZON, PP_BATCH, PP_HORIZON, SEED_N, SEED_T
from mjxgen.data import shards
from mjxgen.generate import stitch
from mjxgen.sim import stream
from mjxgen.generate.config import GenerationConfig
from mjxgen.generate.pipeline import run_generation
from mjxgen.sim.rollout import SEGMENT_STEPS


def _run(path, rollout, **settings):
    base = dict(env_name="reach", policy_type="scripted", seed=7, progress=False, output_path=path, rollout=rollout)
    return run_generation(GenerationConfig(**(base | settings)))


def _datasets(path):
    """{episode group: ({dataset path: array}, attrs)} of a file, plus the file's attributes."""
    out = {}
    with h5py.File(path) as f:
        for name, g in f.items():
            arrays = {}
            g.visititems(lambda k, v: arrays.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
            out[name] = (arrays, dict(g.attrs))
        attrs = {k: v for k, v in f.attrs.items() if k not in ("config", "versions")}
    return out, attrs


def _assert_same_file(a, b):
    (ea, fa), (eb, fb) = _datasets(a), _datasets(b)
    assert ea.keys() == eb.keys()
    for name in ea:
        assert ea[name][0].keys() == eb[name][0].keys(), name
        for k in ea[name][0]:
            np.testing.assert_array_equal(ea[name][0][k], eb[name][0][k], err_msg=f"{name}/{k}")
        assert ea[name][1] == eb[name][1], name
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def _pair(tmp_path, padding=True, **settings):
    """The same dataset from the streaming and the fixed-horizon form (padding: the fixed form simulates some)."""
    s = _run(tmp_path / "stream.h5", "stream", **settings)
    f = _run(tmp_path / "fixed.h5", "fixed", **settings)
    _assert_same_file(tmp_path / "stream.h5", tmp_path / "fixed.h5")
    assert s.useful_steps == f.useful_steps == s.stats["total_steps"]
    assert s.simulated_steps < f.simulated_steps if padding else s.simulated_steps == f.simulated_steps
    return s, f


def test_reach_scripted_stream_equals_fixed_horizon(tmp_path):
    # Seed 000's shape (100 slots, 200 steps: the README's blocks compile both forms), 200 episodes through 100
    # slots: 2 episodes per slot, the last ones set the end.
    result, fixed = _pair(tmp_path, n_episodes=2 * SEED_N, max_steps=SEED_T, batch_size=SEED_N)
    assert result.rollout == "stream" and fixed.rollout == "fixed"
    assert result.useful_steps == fixed.useful_steps == result.stats["total_steps"]
    assert fixed.simulated_steps == 2 * SEED_N * SEED_T
    assert result.simulated_steps < fixed.simulated_steps


def test_pick_place_scripted_with_randomization(tmp_path):
    _pair(tmp_path, env_name="pick_place", n_episodes=PP_BATCH, max_steps=PP_HORIZON, batch_size=PP_BATCH,
          domain_randomization=True)
    with h5py.File(tmp_path / "stream.h5") as f:
        friction = [f[n]["randomization/friction_scale"][()] for n in f]
        assert len(set(friction)) == PP_BATCH and "object_pos" in f["episode_0/observations"]


def test_dmp_policy_records_per_episode(tmp_path):
    # Two blocks of 16: the second block's per-episode values are those of its own ids (16 to 31).
    _pair(tmp_path, policy_type="dmp", n_episodes=32, max_steps=HORIZON, batch_size=16, seed=5)
    with h5py.File(tmp_path / "stream.h5") as f:
        weights = np.stack([f[f"episode_{i}"]["dmp/weights"][()] for i in range(32)])
        assert weights.shape == (32, 3, 10) and weights.std(axis=0).min() > 10  # one DMP per episode
        assert not np.allclose(weights[:16], weights[16:])


def test_images(tmp_path):
    """Streamed and fixed-horizon camera files are equal (frames made in the program); one frame per step."""
    s, _ = _pair(tmp_path, padding=False, n_episodes=DURABLE_BATCH, max_steps=DURABLE_HORIZON,  # 20 steps: no success
                 batch_size=DURABLE_BATCH, camera=True, image_size=(24, 40), domain_randomization=True)
    assert s.frames == s.useful_steps
    with h5py.File(tmp_path / "stream.h5") as f:
        assert f["episode_3/observations/image"].shape == (f["episode_3"].attrs["length"], 24, 40, 3)


def test_resume_after_out_of_order_endings_gives_the_uninterrupted_file(tmp_path, scripted_file, monkeypatch):
    """The second block's shard fails: the episodes that had ended beyond the first block (out of order) are
    lost and simulated again on resume; the file equals the uninterrupted one."""
    out_of_order = []
    real_add = stitch.Stitcher.add

    def add(self, seg):
        real_add(self, seg)
        out_of_order.append(self.out_of_order)

    real_write = shards.ShardStore.write_shard
    calls = []

    def failing(self, first, end, write):
        calls.append((first, end))
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write(self, first, end, write)

    monkeypatch.setattr(stitch.Stitcher, "add", add)
    monkeypatch.setattr(shards.ShardStore, "write_shard", failing)
    path = tmp_path / "run.h5"
    settings = dict(n_episodes=64, max_steps=HORIZON, batch_size=BATCH)
    with pytest.raises(OSError, match="episodes 0 to 31 are safe"):
        _run(path, "stream", **settings)
    assert out_of_order[-1] > 0  # episodes ended while a lower id was still running
    monkeypatch.setattr(shards.ShardStore, "write_shard", real_write)
    resumed = _run(path, "stream", resume=True, **settings)
    assert resumed.stats["total_episodes"] == 64 and resumed.useful_steps < resumed.stats["total_steps"]
    _assert_same_file(path, scripted_file[0])


def test_an_id_subsequence_runs_exactly_its_episodes(scripted_file, reach_env):
    """Stream ids 1, 3, 5, ... (first 1, stride 2): each equals its episode in the file, whatever slot ran it."""
    rows = {}
    for seg in stream.run_segments(reach_env, "scripted", first=1, stride=2, count=BATCH, slots=BATCH, seed=7,
                                   max_steps=HORIZON, steps=SEGMENT_STEPS):
        k, b = np.nonzero(seg.active)
        for kk, bb in zip(k, b):
            rows.setdefault(int(seg.episode_id[kk, bb]), []).append(jax.tree.map(lambda x: x[kk, bb], seg.step))
    assert sorted(rows) == list(range(1, 2 * BATCH, 2))
    with h5py.File(scripted_file[0]) as f:
        for i, steps in rows.items():
            g = f[f"episode_{i}"]
            assert len(steps) == g.attrs["length"]
            np.testing.assert_array_equal(np.stack([s.actions for s in steps]), g["actions"][()])
            # the observation after each action is the one before the next
            np.testing.assert_array_equal(np.stack([s.next_observations["joint_vel"] for s in steps[:-1]]),
                                          g["observations/joint_vel"][1:])


def test_the_segment_program_compiles_once_per_shape(scripted_file):
    from mjxgen.sim.rollout import TRACE_COUNT

    assert TRACE_COUNT[("reach", "scripted", HORIZON, BATCH, SEGMENT_STEPS)] == 1


def test_a_second_run_traces_no_reset(tmp_path, scripted_file, monkeypatch):
    """A second generate_dataset call of an env and policy traces no reset: the per-episode values program is
    traced once per shape (tracing a reset took 1.5-3 s in every call once, and dominated a GPU run's end to
    end)."""
    from mjxgen.sim import per_episode

    traced = []
    real = per_episode.start_episode
    monkeypatch.setattr(per_episode, "start_episode", lambda *a, **k: traced.append(1) or real(*a, **k))
    cfg = GenerationConfig(env_name="reach", n_episodes=BATCH, output_path=tmp_path / "again.h5",
                           policy_type="scripted", max_steps=HORIZON, seed=3, batch_size=BATCH, progress=False)
    run_generation(cfg)  # the env and policy of scripted_file: answered already
    assert not traced


def test_segments_without_qpos_fetch_the_rest_unchanged(scripted_file, reach_env):
    """keep_qpos=False (generate_dataset without a camera) leaves qpos on the device and fetches every other
    array as keep_qpos=True does."""
    run = lambda keep: list(stream.run_segments(reach_env, "scripted", first=0, count=BATCH, slots=BATCH, seed=7,  # noqa: E731
                                                max_steps=HORIZON, steps=SEGMENT_STEPS, keep_qpos=keep))
    with_qpos, without = run(True), run(False)
    assert len(with_qpos) == len(without)
    for a, b in zip(with_qpos, without):
        assert a.step.next_qpos is not None and b.step.next_qpos is None
        a = a._replace(step=a.step._replace(next_qpos=None))
        jax.tree.map(np.testing.assert_array_equal, a, b)


def test_the_generator_and_rollout_batch_share_one_compiled_program(scripted_file, reach_env):
    """The generator (scripted_file) and rollout_batch at one shape run one XLA executable: their arguments are
    placed alike (stream.program_args). With the generator's arguments left uncommitted, JAX compiled the
    shape a second time for rollout_batch (jit's cache then holds 2 executables)."""
    from mjxgen.sim.rollout import rollout_batch

    jax.block_until_ready(rollout_batch(reach_env, "scripted", np.arange(BATCH), seed=7, max_steps=HORIZON))
    fn = stream.compiled_segment(reach_env, "scripted", HORIZON, SEGMENT_STEPS, None)  # as both callers call it
    (program,) = fn._programs.values()  # the exported program of the one argument signature
    assert program._cache_size() == 1
