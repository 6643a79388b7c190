"""Readers check what they claim: `mjxgen info`, TrajectoryDataset and resume refuse a tampered or hostile file with
one DatasetFormatError line naming it, never a traceback, never another file's data, never a silent wrong value.
Files are written from synthetic batches (no simulation), then tampered with one change each."""

import json
import re
import shutil

import h5py
import numpy as np
import pytest

from mjxgen.cli.datagen import info
from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.data.formats import DatasetFormatError
from mjxgen.data.hostbatch import HostBatch
from mjxgen.data.validate import check
from mjxgen.data.writer import DatasetWriter

OBS = {"ee_pos": 3, "target_pos": 3}
N, T = 12, 6  # episodes, steps each


def _batch(first, end):
    rng = np.random.default_rng(first)
    e, n = end - first, (end - first) * T
    return HostBatch(first=first, end=end, episode_ids=np.arange(first, end), lengths=np.full(e, T),
                     success=np.arange(first, end) % 3 == 0, valid=np.ones(e, bool),
                     observations={k: rng.normal(size=(n, d)) for k, d in OBS.items()},
                     actions=rng.normal(size=(n, 4)), rewards=rng.normal(size=n), policy_record={},
                     randomization=None, mocap_pos=np.zeros((e, 1, 3)), qpos=None,
                     final_observations={k: rng.normal(size=(e, d)) for k, d in OBS.items()})


@pytest.fixture(scope="module", params=["episodes", "flat"])
def good(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / f"{request.param}.h5"
    w = DatasetWriter(path, env_name="reach", policy="random", seed=0, model_xml="<mujoco/>", layout=request.param,
                      config={"n_episodes": N, "max_steps": T}, obs_shapes={k: (d,) for k, d in OBS.items()},
                      action_size=4)
    for a in range(0, N, 4):
        w.write_batch(_batch(a, a + 4))
    w.close()
    return path


def _tampered(good, tmp_path, change):
    path = tmp_path / good.name
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def _refused(path, match, read=True):
    """Every reader refuses the file with one line naming it and the problem (`match`, searched in the message
    with the file's path left out): info (full), and TrajectoryDataset (opening, or reading every episode)."""

    def refuses(call):
        with pytest.raises(DatasetFormatError) as e:
            call()
        message = str(e.value)
        assert "\n" not in message and str(path) in message
        assert re.search(match, message.replace(str(path), "")), message

    def read_all():
        ds = TrajectoryDataset(path)
        for e in range(ds.n_episodes if read else 0):
            ds.episode(e)

    refuses(lambda: check(path))
    refuses(read_all)
    assert info(str(path)) == 2


def test_the_untampered_file_passes_every_check(good):
    r = check(good)
    assert r.read_every_episode and r.stats.episodes == N
    ds = TrajectoryDataset(good)
    assert ds.n_episodes == N and len(ds) == N * T and ds.statistics["actions"]["count"] == [N * T]


def _episode_member(f, member):
    """(group, name) of episode 1's member in either format: the episode group or the flat data group."""
    return (f["episode_1"], member) if "episode_1" in f else (f["data"], member.split("/")[-1])


def _replaced(member, values):
    """A change that replaces episode 1's `member` with `values(rows)`, keeping its row count."""
    def change(f):
        g, name = _episode_member(f, member)
        rows = g[name].shape[0]
        del g[name]
        g.create_dataset(name, data=values(rows))

    return change


def test_a_wrong_shape(good, tmp_path):
    _refused(_tampered(good, tmp_path, _replaced("observations/ee_pos", lambda rows: np.zeros((rows, 2)))), "ee_pos")


def test_actions_of_the_wrong_width(good, tmp_path):
    """TrajectoryDataset returned 3-element actions from a file whose actions were (T, 3)."""
    _refused(_tampered(good, tmp_path, _replaced("actions", lambda rows: np.zeros((rows, 3)))), "actions")


def test_string_actions(good, tmp_path):
    change = _replaced("actions", lambda rows: np.array([["a"] * 4] * rows, dtype="S1"))

    _refused(_tampered(good, tmp_path, change), "actions")


def test_a_huge_declared_shape_is_refused_without_reading(good, tmp_path):
    def change(f):
        g, name = _episode_member(f, "rewards")
        del g[name]
        g.create_dataset(name, shape=(10**12,), dtype="f8", chunks=(1024,))

    _refused(_tampered(good, tmp_path, change), "rewards")


@pytest.mark.parametrize("kind", ["external", "soft", "dangling", "virtual"])
def test_links_out_of_the_file(good, tmp_path, kind):
    """Both formats followed HDF5 external links into other files and served their values as this dataset's. The
    other file's array has exactly the shape and dtype of the one it replaces: only the link gives it away."""
    other = tmp_path / "other.h5"

    def change(f):
        g, name = _episode_member(f, "actions")
        values = g[name][()]
        with h5py.File(other, "w") as o:
            o["actions"] = values + 7.0
        del g[name]
        if kind == "external":
            g[name] = h5py.ExternalLink(str(other), "/actions")
        elif kind == "soft":
            g["elsewhere"] = values
            g[name] = h5py.SoftLink(f"{g.name}/elsewhere")
        elif kind == "dangling":
            g[name] = h5py.SoftLink("/nowhere")
        else:
            layout = h5py.VirtualLayout(shape=values.shape, dtype=values.dtype)
            layout[:] = h5py.VirtualSource(str(other), "actions", shape=values.shape)
            g.create_virtual_dataset(name, layout)

    _refused(_tampered(good, tmp_path, change), "external link|soft link|virtual dataset")


@pytest.mark.parametrize("length", [0, -3, 10**9])
def test_a_length_out_of_range(good, tmp_path, length):
    def change(f):
        if "index" in f.attrs:
            rows = f.attrs["index"]
            rows["length"][1] = length
            f.attrs["index"] = rows
        else:
            lengths = f["meta/length"][()]
            lengths[1] = length
            f["meta/length"][...] = lengths

    _refused(_tampered(good, tmp_path, change), "length")


def test_duplicate_ids(good, tmp_path):
    def change(f):
        key = "index" if "index" in f.attrs else None
        if key:
            rows = f.attrs[key]
            rows["episode_index"][2] = rows["episode_index"][1]
            f.attrs[key] = rows
        else:
            ids = f["meta/episode_index"][()]
            ids[2] = ids[1]
            f["meta/episode_index"][...] = ids

    _refused(_tampered(good, tmp_path, change), "unique|episode")


def test_a_deleted_episode(good, tmp_path):
    def change(f):
        if "episode_5" in f:
            del f["episode_5"]
        else:  # the flat format: an episode's metadata gone, its rows left
            for name in ("episode_index", "length", "success", "invalid", "total_reward"):
                values = f[f"meta/{name}"][()]
                del f[f"meta/{name}"]
                f[f"meta/{name}"] = np.delete(values, 5)

    _refused(_tampered(good, tmp_path, change), "episode|rows|missing")


def test_a_wrong_total(good, tmp_path):
    _refused(_tampered(good, tmp_path, lambda f: f.attrs.__setitem__("total_episodes", N + 1)), "total_episodes")


def test_a_flat_index_that_disagrees_with_its_data(good, tmp_path):
    with h5py.File(good, "r") as f:
        if "meta" not in f:
            pytest.skip("the flat format's episode_ends")

    def change(f):
        ends = f["meta/episode_ends"][()]
        ends[3] += 1
        f["meta/episode_ends"][...] = ends

    _refused(_tampered(good, tmp_path, change), "episode_ends")


def test_an_injected_nan_is_found_by_the_full_check_only(good, tmp_path):
    def change(f):
        g, name = _episode_member(f, "observations/target_pos")
        values = g[name][()]
        values[0, 0] = np.nan
        g[name][...] = values

    path = _tampered(good, tmp_path, change)
    quick = check(path, full=False)
    assert not quick.read_every_episode and "not read" in quick.checked
    with pytest.raises(DatasetFormatError, match="NaN"):
        check(path)
    assert info(str(path)) == 2


def test_faked_root_attributes_with_no_episodes(good, tmp_path):
    path = tmp_path / "fake.h5"
    with h5py.File(good, "r") as src, h5py.File(path, "w") as f:
        f.attrs.update(dict(src.attrs))
    _refused(path, "missing|holds|total", read=False)


def test_a_deeply_nested_json_config(good, tmp_path):
    path = _tampered(good, tmp_path, lambda f: f.attrs.__setitem__("config", "[" * 100_000 + "]" * 100_000))
    _refused(path, "config", read=False)


def test_a_config_too_large(good, tmp_path):
    big = json.dumps({"x": "y" * (20 * 2**20)})
    _refused(_tampered(good, tmp_path, lambda f: f.attrs.__setitem__("config", big)), "config", read=False)


def test_a_full_check_in_worker_processes_finds_what_one_process_finds(good, tmp_path, monkeypatch):
    """A large file's full check reads its episodes in worker processes; the problem it reports is the first
    episode's, the same line one process gives, and a good file passes."""
    import mjxgen.data.validate as validate

    def poison(f):
        for e in (5, 9):  # two bad episodes in two spans: the first one is named
            if "episode_0" in f:
                f[f"episode_{e}/rewards"][0] = np.nan
            else:
                rewards = f["data/rewards"][()]
                rewards[e * T] = np.nan
                f["data/rewards"][...] = rewards

    bad = _tampered(good, tmp_path, poison)
    with pytest.raises(DatasetFormatError) as one:
        check(bad)
    monkeypatch.setattr(validate, "PARALLEL_FROM", 1)
    monkeypatch.setattr(validate, "SPAN", 4)
    monkeypatch.setattr(validate.os, "sched_getaffinity", lambda pid: {0, 1})
    with pytest.raises(DatasetFormatError) as many:
        check(bad)
    assert str(many.value) == str(one.value) and "episode 5 " in str(one.value)
    assert check(good).read_every_episode
