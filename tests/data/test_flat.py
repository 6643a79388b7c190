"""The flat layout (`layout="flat"`): every array of the per-episode layout round-trips exactly, through shards of any
boundaries, every codec and both dtypes; TrajectoryDataset and `mjxgen info` read it, finished or not."""

import json

import h5py
import numpy as np
import pytest

from mjxgen import cli
from mjxgen.data import chunks
from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.data.formats.flat import FLAT
from mjxgen.data.hostbatch import HostBatch
from mjxgen.data.writer import DatasetWriter

OBS = {"joint_pos": 7, "joint_vel": 7, "ee_pos": 3, "target_pos": 3}
N = 700  # episodes, in blocks of 97: shard boundaries fall inside chunks


def _batch(first, end, rng):
    ids = np.arange(first, end)
    e = len(ids)
    lengths = rng.integers(1, 120, e)
    n = int(lengths.sum())
    return HostBatch(
        first=first, end=end, episode_ids=ids, lengths=lengths, success=rng.random(e) > 0.3, valid=rng.random(e) > 0.1,
        observations={k: rng.normal(size=(n, d)).astype(np.float32) for k, d in OBS.items()},
        actions=rng.normal(size=(n, 4)).astype(np.float32), rewards=rng.normal(size=n).astype(np.float32),
        policy_record={"weights": rng.normal(size=(e, 3, 2)).astype(np.float32)},
        randomization={"friction_scale": rng.random(e).astype(np.float32)}, mocap_pos=np.zeros((e, 1, 3)), qpos=None)


def _write(path, layout, codec="gzip", dtype="float64", on_invalid="drop", finish=True):
    rng = np.random.default_rng(0)
    w = DatasetWriter(path, env_name="reach", policy="dmp", seed=3, config={"x": 1}, model_xml="<mujoco/>",
                      obs_shapes={k: (d,) for k, d in OBS.items()}, action_size=4, compression=codec, layout=layout, dtype=dtype, on_invalid=on_invalid)
    for a in range(0, N, 97):
        w.write_batch(_batch(a, min(a + 97, N), rng))
    if finish:
        w.close()
    else:
        w.abort()
    return path


@pytest.mark.parametrize("codec, dtype, on_invalid", [("gzip", "float64", "drop"), ("lzf", "float32", "flag"),
                                                      ("none", "float64", "flag")])
def test_flat_round_trips_every_array_of_the_episode_layout(tmp_path, codec, dtype, on_invalid):
    ep = _write(tmp_path / "episodes.h5", "episodes", codec, dtype, on_invalid)
    fl = _write(tmp_path / "flat.h5", "flat", codec, dtype, on_invalid)
    with h5py.File(ep) as g, h5py.File(fl) as f:
        assert f.attrs["format"] == FLAT.attr and f.attrs["complete"] and f.attrs["dtype"] == dtype
        for name in ("total_episodes", "total_steps", "invalid_episodes", "seed", "config", "compression"):
            assert f.attrs[name] == g.attrs[name], name
        np.testing.assert_array_equal(f.attrs["dropped_episodes"], g.attrs["dropped_episodes"])
        assert json.loads(f["data"].attrs["obs_keys"]) == list(OBS)
        ends = f["meta/episode_ends"][()]
        assert len(ends) == len(g) == f.attrs["total_episodes"] and ends[-1] == f["data/actions"].shape[0]
        starts = np.concatenate([[0], ends[:-1]])
        for j, i in enumerate(f["meta/episode_index"][()]):
            e = g[f"episode_{i}"]
            rows = slice(starts[j], ends[j])
            for k in OBS:
                assert f[f"data/{k}"].dtype == np.dtype(dtype)
                np.testing.assert_array_equal(f[f"data/{k}"][rows], e[f"observations/{k}"][()], err_msg=f"{i}/{k}")
            np.testing.assert_array_equal(f["data/actions"][rows], e["actions"][()])
            np.testing.assert_array_equal(f["data/rewards"][rows], e["rewards"][()])
            np.testing.assert_array_equal(f["meta/dmp/weights"][j], e["dmp/weights"][()])
            np.testing.assert_array_equal(f["meta/randomization/friction_scale"][j], e["randomization/friction_scale"][()])
            for name in ("length", "success", "total_reward"):
                assert f[f"meta/{name}"][j] == e.attrs[name], name
            assert f["meta/invalid"][j] == e.attrs.get("invalid", False)
        expected = {"gzip": "gzip", "lzf": "lzf", "none": None}[codec]
        assert {f[f"data/{k}"].compression for k in (*OBS, "actions", "rewards")} == {expected}
        assert f["data/joint_pos"].chunks[0] * 7 * np.dtype(dtype).itemsize <= 256 * 1024  # large chunks, bounded
    a, b = TrajectoryDataset(ep), TrajectoryDataset(fl)
    assert len(a) == len(b) and a.n_episodes == b.n_episodes and (a.episode_index == b.episode_index).all()
    assert (a.success == b.success).all() and (a.invalid == b.invalid).all()
    for i in (0, 1, len(a) // 2, len(a) - 1):
        x, y = a[i], b[i]
        assert (x["episode"], x["timestep"]) == (y["episode"], y["timestep"])
        for k in OBS:
            np.testing.assert_array_equal(x["observations"][k], y["observations"][k])
    np.testing.assert_array_equal(a.actions, b.actions)
    wa, wb = TrajectoryDataset(ep, horizon=8), TrajectoryDataset(fl, horizon=8)  # windows read both layouts alike
    for i in (0, len(a) // 2, len(a) - 1):
        x, y = wa[i], wb[i]
        np.testing.assert_array_equal(x["mask"], y["mask"])
        np.testing.assert_array_equal(x["actions"], y["actions"])
        np.testing.assert_array_equal(x["observations"]["joint_pos"], y["observations"]["joint_pos"])
    last = wb[len(a) - 1]  # the last step of the last episode: one real step, then its padding
    assert last["actions"].shape == (8, 4) and last["mask"].tolist() == [True] + [False] * 7


def test_an_unfinished_flat_run_is_readable_and_info_reports_it(tmp_path, capsys):
    path = _write(tmp_path / "run.h5", "flat", finish=False)
    ref = TrajectoryDataset(_write(tmp_path / "ref.h5", "episodes"))
    ds = TrajectoryDataset(path, allow_incomplete=True)
    assert not ds.complete and ds.n_episodes == ref.n_episodes
    np.testing.assert_array_equal(ds.observations["ee_pos"], ref.observations["ee_pos"])  # the shards' pads skipped
    assert cli.main(["info", str(path), "--allow-incomplete"]) == 0
    out = capsys.readouterr().out
    assert f"Episodes             {ref.n_episodes}" in out and "mjxgen-flat v2" in out and "NO: an unfinished" in out


def test_merge_copies_whole_chunks_and_rewrites_only_shared_ones(tmp_path, monkeypatch):
    """Shards hold rows aligned to the finished array's chunks: finalize copies every chunk one shard fills whole
    as raw bytes and rewrites only the chunks two shards share (at most two per shard and array)."""
    counts = []
    real = chunks.copy_rows
    monkeypatch.setattr(chunks, "copy_rows", lambda *a: counts.append(real(*a)) or counts[-1])
    path = _write(tmp_path / "f.h5", "flat", "gzip")
    n_shards, n_arrays = -(-N // 97), len(OBS) + 4  # actions, rewards, terminated, truncated
    assert len(counts) == n_shards * n_arrays
    copied, rewritten = np.sum(counts, axis=0)
    assert all(r <= 2 for _, r in counts) and copied > 0  # (small shards: most chunks here are shared)
    with h5py.File(path) as f:
        total = 0
        for k in (*OBS, "actions", "rewards"):
            ds = f[f"data/{k}"]
            n_chunks = -(-ds.shape[0] // ds.chunks[0])
            total += n_chunks
            assert ds.id.get_num_chunks() == n_chunks
            for j in range(n_chunks):  # every chunk is HDF5's own gzip + shuffle, whichever way it was written
                mask, data = ds.id.read_direct_chunk((j * ds.chunks[0], *(0,) * (ds.ndim - 1)))
                assert mask == 0 and len(data) < ds.chunks[0] * ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
    assert copied + rewritten >= total  # a shared chunk is rewritten once from each side


def test_from_padded_and_select(tmp_path):
    padded = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)
    b = HostBatch.from_padded(first=0, end=3, episode_ids=np.arange(3), lengths=np.array([2, 4, 1]),
                              success=np.ones(3, bool), valid=np.ones(3, bool), observations={"x": padded[..., None]},
                              actions=padded[..., None], rewards=padded, qpos=None, policy_record={},
                              randomization=None, mocap_pos=np.zeros((3, 1, 3)))
    np.testing.assert_array_equal(b.rewards, [0, 1, 4, 5, 6, 7, 8])
    s = b.select(np.array([True, False, True]))
    assert (s.first, s.end, list(s.lengths)) == (0, 3, [2, 1])
    np.testing.assert_array_equal(s.rewards, [0, 1, 8])
    empty = b.select(np.zeros(3, bool))
    assert empty.first == empty.end == 0 and len(empty.rewards) == 0
