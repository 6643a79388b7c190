"""The file formats (mjxgen.data.formats): what version 2 adds (terminated/truncated, the final observation, the
root index, normalization statistics), version 1 files still read, and a new format is one object registered
from outside the package."""


import h5py
import numpy as np
import pytest

from support import BATCH, DURABLE_BATCH, DURABLE_HORIZON, HORIZON
from mjxgen import generate_dataset
from mjxgen.data import formats, statistics
from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.data.formats import INDEX_DTYPE, Format, Index, Position
from mjxgen.data.validate import check
from mjxgen.kernels import policies
from mjxgen.sim.rollout import rollout_batch

from support import FIXTURES


def test_each_episode_ends_terminated_or_truncated(scripted_file):
    with h5py.File(scripted_file[0]) as f:
        for name in f:
            g, a = f[name], f[name].attrs
            terminated, truncated = g["terminated"][()], g["truncated"][()]
            assert terminated.dtype == bool and terminated.shape == truncated.shape == (a["length"],)
            assert not terminated[:-1].any() and not truncated[:-1].any()
            assert (terminated[-1], truncated[-1]) == (bool(a["success"]), not a["success"])


def test_the_final_observation_is_the_one_after_the_last_action(scripted_file, reach_env):
    """rollout_batch runs past each episode's end: its observation before step L is the file's final observation
    of an episode of length L. And a successful episode's final end effector lies within the success radius."""
    out = rollout_batch(reach_env, "scripted", np.arange(BATCH), seed=7, max_steps=HORIZON)
    obs = {k: np.asarray(v) for k, v in out.trajectory.observations.items()}
    checked = 0
    with h5py.File(scripted_file[0]) as f:
        for i in range(BATCH):
            g = f[f"episode_{i}"]
            n = int(g.attrs["length"])
            final = {k: g[f"final_observation/{k}"][()] for k in obs}
            for k in obs:
                np.testing.assert_array_equal(final[k], np.asarray(out.final_observations[k])[i], err_msg=k)
            if n < HORIZON:
                for k in obs:
                    np.testing.assert_array_equal(final[k], obs[k][i, n], err_msg=k)
                checked += 1
            if g.attrs["success"]:
                assert np.linalg.norm(final["ee_pos"] - final["target_pos"]) < reach_env.config.success_threshold
    assert checked > BATCH // 2


def test_the_stored_observations_are_those_the_policy_acted_on(scripted_file):
    """Scripted reach acts by seed 000's P-controller on the observation before each action: the stored actions
    are exactly that function of the stored observations (so no observation is shifted by a step)."""
    with h5py.File(scripted_file[0]) as f:
        for name in list(f)[:8]:
            g = f[name]
            ee, target = g["observations/ee_pos"][()].astype(np.float32), g["observations/target_pos"][()]
            expected = np.stack([policies.p_controller(e, t, xp=np) for e, t in zip(ee, target.astype(np.float32))])
            np.testing.assert_allclose(g["actions"][()], expected, rtol=1e-6, atol=1e-7, err_msg=name)
            shifted = np.stack([policies.p_controller(e, t, xp=np) for e, t in zip(ee[1:], target[1:])])
            assert not np.allclose(g["actions"][:-1], shifted, atol=1e-4)


def test_statistics_are_those_of_every_kept_step(scripted_file):
    ds = TrajectoryDataset(scripted_file[0])
    arrays = {f"observations/{k}": v for k, v in ds.observations.items()} | {"actions": ds.actions,
                                                                              "rewards": ds.rewards}
    stats = ds.statistics
    assert sorted(stats) == sorted(arrays)
    for name, x in arrays.items():
        x = x.reshape(len(x), -1).astype(np.float64)
        s = {k: np.asarray(v) for k, v in stats[name].items()}
        assert s["count"].tolist() == [len(x)]
        np.testing.assert_allclose(s["mean"], x.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s["std"], x.std(axis=0), rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(s["min"], x.min(axis=0))
        np.testing.assert_array_equal(s["max"], x.max(axis=0))
        for label, q in statistics.QUANTILES.items():
            _assert_rank(x, s[label], q, (name, label))


def test_combined_statistics_equal_one_pass_over_all_rows():
    rng = np.random.default_rng(3)
    parts = [rng.normal(loc=i, size=(n, 2)) for i, n in enumerate((500, 3000, 7))]
    combined = statistics.combine([statistics.partial({"x": p}) for p in parts])["x"]
    whole = np.concatenate(parts)
    np.testing.assert_allclose(combined["mean"], whole.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(combined["std"], whole.std(axis=0), rtol=1e-12)
    for label, q in statistics.QUANTILES.items():
        _assert_rank(whole, np.asarray(combined[label]), q, label)


def _assert_rank(x, value, q, what):
    """value (per column) is a q-quantile of x (N, D) within the sketches' rank error: the fraction of x below it
    is at most q + 2 steps, and the fraction at or below it at least q - 2 steps (ties count either way)."""
    step = 2.0 / (statistics.SKETCH_POINTS - 1)
    below, at_or_below = (x < value).mean(axis=0), (x <= value).mean(axis=0)
    assert np.all((below <= q + step) & (at_or_below >= q - step)), (what, below, at_or_below)


def test_the_root_index_agrees_with_every_group(scripted_file):
    with h5py.File(scripted_file[0]) as f:
        rows = np.asarray(f.attrs["index"], INDEX_DTYPE)
        assert len(rows) == len(f) == f.attrs["total_episodes"]
        for r in rows:
            a = f[f"episode_{r['episode_index']}"].attrs
            assert (r["length"], r["success"], r["total_reward"]) == (a["length"], a["success"], a["total_reward"])


@pytest.mark.parametrize("name", ["v1_episodes.h5", "v1_flat.h5"])
def test_version_1_files_still_read(name):
    """Files of format version 1 (written by mjxgen before the final observation, flags, index and statistics;
    kept in tests/fixtures): every reader takes them."""
    path = FIXTURES / name
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == 1
    r = check(path)
    assert r.read_every_episode and r.stats.episodes == 4
    ds = TrajectoryDataset(path)
    assert ds.n_episodes == 4 and ds.statistics is None and ds[0]["actions"].shape == (4,)


class ToyEncoder:
    """A format in a few lines: each batch as one group of concatenated arrays plus its index."""

    def __init__(self, settings):
        self.settings, self.frames = settings, None

    def encode(self, f, batch, position: Position):
        g = f.create_group(f"toy_{batch.first:09d}")
        for k in self.settings.obs_keys:
            g[k] = batch.observations[k]
        g["actions"], g["rewards"], g["lengths"] = batch.actions, batch.rewards, batch.lengths
        f.attrs["index"] = formats.index_rows(batch)

    def close(self):
        pass


class ToyReader:
    def __init__(self, path, files, attrs):
        self.files = files

    def index(self):
        rows = np.concatenate([np.asarray(f.attrs["index"], INDEX_DTYPE) for f in self.files])
        first = next(iter(self.files[0].values()))
        self._rows = [(f, name, o) for f in self.files for name in sorted(f)
                      for o in np.concatenate([[0], np.cumsum(f[name]["lengths"][()])[:-1]])]
        keys = tuple(k for k in first if k not in ("actions", "rewards", "lengths"))
        return Index(keys, rows["length"], rows["episode_index"], rows["success"], rows["invalid"])

    def episode(self, e, keys, length):
        f, name, o = self._rows[e]
        g = f[name]
        return {"observations": {k: g[k][o:o + length] for k in keys}, "actions": g["actions"][o:o + length],
                "rewards": g["rewards"][o:o + length]}


class ToyFormat(Format):
    attr, version, option = "toy", 1, "toy"

    def encoder(self, settings):
        return ToyEncoder(settings)

    def recount(self, f, stats):
        stats.add_index(np.asarray(f.attrs["index"], INDEX_DTYPE))

    def reader(self, path, files, attrs):
        return ToyReader(path, files, attrs)

    def merge(self, out, shards):
        super().merge(out, shards)  # the shards' groups, copied
        rows = []
        for shard in shards:
            with h5py.File(shard, "r") as f:
                rows.append(np.asarray(f.attrs["index"], INDEX_DTYPE))
        out.attrs["index"] = np.concatenate(rows)


@pytest.fixture
def toy_format():
    fmt = formats.register(ToyFormat())
    yield fmt
    formats.unregister(fmt.attr)


def test_a_new_format_is_one_registered_object(toy_format, tmp_path, scripted_file):
    """generate_dataset(..., layout="toy") and TrajectoryDataset work with a format defined here, with no edit to
    the writer, the shard store or the dataset reader; its episodes equal the per-episode format's."""
    kw = dict(n_episodes=2 * DURABLE_BATCH, policy_type="scripted", max_steps=DURABLE_HORIZON, seed=4,
              batch_size=DURABLE_BATCH, progress=False)
    toy = generate_dataset("reach", output_path=tmp_path / "toy.h5", layout="toy", **kw)
    ref = generate_dataset("reach", output_path=tmp_path / "ref.h5", **kw)
    assert toy["total_steps"] == ref["total_steps"]
    a, b = TrajectoryDataset(tmp_path / "toy.h5"), TrajectoryDataset(tmp_path / "ref.h5")
    assert a.format is toy_format and len(a) == len(b)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.observations["ee_pos"], b.observations["ee_pos"])
