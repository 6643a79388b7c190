"""mjxgen export: LeRobot v3.0, robomimic and Minari files from reach, pick_place (both layouts) and PushT files,
checked against the source read independently (TrajectoryDataset, h5py), and every argument's effect.

Sources: synthetic arm files written by the real writer (no simulation), one real reach file with camera frames
(the suite's small reach/scripted shape) and a tiny PushT run."""

import json

import av
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from support import DURABLE_BATCH, DURABLE_HORIZON, FIXTURES, iter_groups
from mjxgen import TrajectoryDataset, cli
from mjxgen.data.hostbatch import HostBatch
from mjxgen.data.writer import DatasetWriter
from mjxgen.export import export, lerobot, robomimic
from mjxgen.export import stats as export_stats

REACH = {"joint_pos": (7,), "joint_vel": (7,), "ee_pos": (3,), "target_pos": (3,)}
PICK_PLACE = REACH | {"object_pos": (3,), "object_quat": (4,), "gripper_pos": (1,), "place_pos": (3,)}
CAMERA = (24, 32)


def synthetic(path, env_name, keys, n, horizon, layout, dtype="float64", seed=0, nan=(), control_dt=0.02):
    """An arm file of random steps through the real writer: lengths in [horizon / 3, horizon], success where
    shorter; episodes in `nan` get a NaN and are kept flagged invalid."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(horizon // 3, horizon + 1, n)
    rows = int(lengths.sum())
    obs = {k: rng.normal(size=(rows, *s)) for k, s in keys.items()}
    valid = np.ones(n, bool)
    for e in nan:
        obs["joint_vel"][int(lengths[:e].sum())] = np.nan
        valid[e] = False
    w = DatasetWriter(path, env_name=env_name, policy="scripted", seed=seed, model_xml="<mujoco/>", layout=layout,
                      config={"n_episodes": n, "max_steps": horizon, "env_config": {"control_dt": control_dt}},
                      compression="lzf", obs_shapes=keys, action_size=4, dtype=dtype, on_invalid="flag")
    w.write_batch(HostBatch(first=0, end=n, episode_ids=np.arange(n), lengths=lengths, success=lengths < horizon,
                            valid=valid, observations=obs, actions=rng.uniform(-1, 1, (rows, 4)),
                            rewards=rng.normal(size=rows), policy_record={}, randomization=None,
                            mocap_pos=np.zeros((n, 1, 3)), qpos=None,
                            final_observations={k: rng.normal(size=(n, *s)) for k, s in keys.items()}))
    w.close()
    return path


@pytest.fixture(scope="module")
def reach_file(tmp_path_factory):
    """12 reach episodes (episodes layout, float64), episode 3 flagged invalid."""
    return synthetic(tmp_path_factory.mktemp("src") / "reach.h5", "reach", REACH, 12, 20, "episodes", nan=(3,))


@pytest.fixture(scope="module")
def pick_place_file(tmp_path_factory):
    """10 pick_place episodes in the flat layout, float32."""
    return synthetic(tmp_path_factory.mktemp("src") / "pp.h5", "pick_place", PICK_PLACE, 10, 30, "flat", "float32",
                     seed=1)


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory):
    """A real reach/scripted run with camera frames (the suite's small shape: one compile)."""
    from mjxgen.generate.config import GenerationConfig
    from mjxgen.generate.pipeline import run_generation

    path = tmp_path_factory.mktemp("src") / "camera.h5"
    run_generation(GenerationConfig(env_name="reach", n_episodes=DURABLE_BATCH, output_path=path,
                                    policy_type="scripted", max_steps=DURABLE_HORIZON, seed=7, batch_size=DURABLE_BATCH,
                                    camera=True, image_size=CAMERA, progress=False))
    return path


@pytest.fixture(scope="module")
def pusht_file(tmp_path_factory):
    from mjxgen.pusht.generate import generate

    path = tmp_path_factory.mktemp("src") / "pusht.h5"
    generate(3, 7, path, workers=1, progress=False)
    return path


def source_steps(path):
    """Every valid episode's arrays, read by TrajectoryDataset: [(id, obs {key: (L, ...)}, actions, rewards)]."""
    with TrajectoryDataset(path) as ds:
        return [(int(ds.episode_index[e]), *(ds.episode(e)[k] for k in ("observations", "actions", "rewards")))
                for e in range(ds.n_episodes) if not ds.invalid[e]], ds.obs_keys


def parquet(out, part):
    return pq.read_table(out / part)


# --- LeRobot -----------------------------------------------------------------------------------------------------
def test_lerobot_schema(reach_file, tmp_path):
    out = export(reach_file, to="lerobot", output=tmp_path / "lr", progress=False).output
    info = json.loads((out / "meta/info.json").read_text())
    steps, _ = source_steps(reach_file)
    total = sum(len(a) for _, _, a, _ in steps)
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50 and info["robot_type"] == "mjxgen_arm"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (len(steps), total, 1)
    assert info["chunks_size"] == 1000 and info["splits"] == {"train": f"0:{len(steps)}"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] is None
    f = info["features"]
    assert f["observation.state"] == {"dtype": "float32", "shape": [14], "names": [
        *(f"joint_pos_{i}" for i in range(7)), *(f"joint_vel_{i}" for i in range(7))]}
    assert f["observation.environment_state"]["names"] == ["ee_pos_x", "ee_pos_y", "ee_pos_z", "target_pos_x",
                                                           "target_pos_y", "target_pos_z"]
    assert f["action"]["shape"] == [4] and f["next.done"]["dtype"] == "bool"
    assert list(f)[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    data = parquet(out, "data/chunk-000/file-000.parquet")
    assert data.column_names == [k for k, v in f.items() if v["dtype"] != "video"]
    assert str(data.schema.field("observation.state").type) == "fixed_size_list<element: float>[14]"
    assert {str(data.schema.field(k).type) for k in ("index", "episode_index", "frame_index", "task_index")} == {"int64"}
    assert str(data.schema.field("next.success").type) == "bool" and data.num_rows == total
    eps = parquet(out, "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert eps["episode_index"] == list(range(len(steps)))
    assert eps["dataset_from_index"] == [0, *eps["dataset_to_index"][:-1]] and eps["dataset_to_index"][-1] == total
    assert np.array_equal(np.diff([0, *eps["dataset_to_index"]]), eps["length"])
    assert eps["length"] == [len(a) for _, _, a, _ in steps]
    features = [k for k, v in f.items() if v["dtype"] != "video"]
    assert {f"stats/{k}/{s}" for k in features for s in export_stats.NAMES} <= set(eps)
    st = json.loads((out / "meta/stats.json").read_text())
    assert set(st) == set(features) and all(set(v) == set(export_stats.NAMES) for v in st.values())
    tasks = parquet(out, "meta/tasks.parquet")
    assert tasks.column("__index_level_0__").to_pylist() == [lerobot.TASKS["reach"]]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]


@pytest.mark.parametrize("which", ["reach", "pick_place"])
def test_lerobot_frames_equal_the_source(which, reach_file, pick_place_file, tmp_path):
    path = {"reach": reach_file, "pick_place": pick_place_file}[which]
    out = export(path, to="lerobot", output=tmp_path / "lr", progress=False).output
    data = parquet(out, "data/chunk-000/file-000.parquet").to_pydict()
    steps, keys = source_steps(path)
    state = ("joint_pos", "joint_vel") + (("gripper_pos",) if which == "pick_place" else ())
    env = tuple(k for k in keys if k not in state)
    row = 0
    for position, (_, obs, actions, rewards) in enumerate(steps):
        n = len(actions)
        rows = slice(row, row + n)
        for feature, group in (("observation.state", state), ("observation.environment_state", env)):
            want = np.concatenate([obs[k].reshape(n, -1) for k in group], axis=1).astype(np.float32)
            assert np.array_equal(np.array(data[feature][rows]), want), feature
        assert np.array_equal(np.array(data["action"][rows]), actions.astype(np.float32))
        assert np.array_equal(np.array(data["next.reward"][rows]), rewards.astype(np.float32))
        assert data["frame_index"][rows] == list(range(n)) and data["episode_index"][rows] == [position] * n
        assert data["index"][rows] == list(range(row, row + n))
        assert np.allclose(data["timestamp"][rows], np.arange(n) / 50)
        assert data["next.done"][rows] == [False] * (n - 1) + [True]
        assert data["next.success"][rows] == [False] * (n - 1) + [n < {"reach": 20, "pick_place": 30}[which]]
        row += n
    assert row == len(data["index"])


def test_lerobot_stats_agree_with_the_file(pick_place_file, tmp_path):
    """stats.json's min, max, mean and std are the frames' (every episode is valid here), and so agree with the
    file's own statistics attribute."""
    out = export(pick_place_file, to="lerobot", output=tmp_path / "lr", progress=False).output
    st = json.loads((out / "meta/stats.json").read_text())
    with TrajectoryDataset(pick_place_file) as ds:
        mine = ds.statistics
    want = {s: np.concatenate([np.atleast_1d(mine[f"observations/{k}"][s]) for k in ("joint_pos", "joint_vel",
                                                                                      "gripper_pos")])
            for s in ("min", "max", "mean", "std")}
    for s, v in want.items():
        assert np.allclose(st["observation.state"][s], v, rtol=1e-5, atol=1e-6), s
    assert st["observation.state"]["count"] == [int(mine["observations/joint_pos"]["count"][0])]


def test_lerobot_video_decodes_to_the_stored_frames(camera_file, tmp_path):
    out = export(camera_file, to="lerobot", output=tmp_path / "lr", images=True, progress=False).output
    info = json.loads((out / "meta/info.json").read_text())
    ft = info["features"]["observation.images.front"]
    assert ft["dtype"] == "video" and ft["shape"] == [*CAMERA, 3]
    assert ft["info"]["video.codec"] in ("av1", "h264") and ft["info"]["video.pix_fmt"] == "yuv420p"
    eps = parquet(out, "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    path = out / info["video_path"].format(video_key="observation.images.front", chunk_index=0, file_index=0)
    with av.open(str(path)) as f:
        decoded = [(fr.time, fr.to_ndarray(format="rgb24")) for fr in f.decode(video=0)]
    assert len(decoded) == info["total_frames"] and decoded[0][1].shape == (*CAMERA, 3)
    stored = np.concatenate([g["observations/image"][()] for _, g in iter_groups(camera_file)])
    for e, first in enumerate(eps["dataset_from_index"]):  # episode e's frame k sits at from_timestamp + k / fps
        assert decoded[first][0] == pytest.approx(eps["videos/observation.images.front/from_timestamp"][e])
    assert eps["videos/observation.images.front/to_timestamp"][-1] == pytest.approx(len(decoded) / 50)
    error = np.abs(np.array([d for _, d in decoded], np.float64) - stored).mean()
    assert error < 12, f"the video is not the stored frames (mean abs error {error:.1f})"


def test_pusht_lerobot_with_replayed_images(pusht_file, tmp_path):
    r = export(pusht_file, to="lerobot", output=tmp_path / "lr", images=True, progress=False)
    info = json.loads((r.output / "meta/info.json").read_text())
    assert info["fps"] == 10 and info["features"]["observation.image"]["shape"] == [96, 96, 3]
    assert info["features"]["action"]["shape"] == [2] and r.replay_s_per_sample > 0
    data = parquet(r.output, "data/chunk-000/file-000.parquet").to_pydict()
    with h5py.File(pusht_file) as f:
        names = sorted(f)
        obs = np.concatenate([f[n]["observations"][:-1] for n in names])
        actions = np.concatenate([f[n]["executed_actions_pixels"][()] for n in names])
    assert np.array_equal(np.array(data["observation.state"]), obs[:, :2])
    assert np.array_equal(np.array(data["observation.environment_state"]), obs[:, 2:])
    assert np.array_equal(np.array(data["action"]), actions)
    path = r.output / "videos/observation.image/chunk-000/file-000.mp4"
    with av.open(str(path)) as f:
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
    assert len(frames) == info["total_frames"] == len(actions) and frames[0].shape == (96, 96, 3)


def test_lerobot_many_files(pusht_file, tmp_path, monkeypatch):
    """With tiny file limits the data and the video span several files: each episode's data/ and videos/ columns
    point into the file that holds its rows and frames, and the rows are those of a one-file export."""
    whole = export(pusht_file, to="lerobot", output=tmp_path / "one", progress=False).output
    monkeypatch.setattr(lerobot, "DATA_FILE_MB", 1e-3)  # ~1 kB: about one 30-step episode (40 B a row)
    monkeypatch.setattr(lerobot, "VIDEO_FILE_MB", 1e-9)  # a new file as soon as the encoder has written a packet
    out = export(pusht_file, to="lerobot", output=tmp_path / "many", images=True, progress=False).output
    eps = parquet(out, "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    files = sorted((out / "data/chunk-000").glob("*.parquet"))
    assert len(files) > 1 and eps["data/file_index"][-1] == len(files) - 1
    rows = [pq.read_table(f).to_pydict() for f in files]
    for e, (fi, lo, hi) in enumerate(zip(eps["data/file_index"], eps["dataset_from_index"], eps["dataset_to_index"])):
        assert set(range(lo, hi)) <= set(rows[fi]["index"]) and set(rows[fi]["episode_index"]) >= {e}
    joined = {k: sum((r[k] for r in rows), []) for k in rows[0]}
    assert joined == parquet(whole, "data/chunk-000/file-000.parquet").to_pydict()
    video = {k: eps[f"videos/observation.image/{k}"] for k in ("file_index", "from_timestamp", "to_timestamp")}
    assert video["file_index"][-1] > 0 and video["from_timestamp"][0] == 0  # a new file once one holds the limit
    for e, n in enumerate(eps["length"]):
        path = out / f"videos/observation.image/chunk-000/file-{video['file_index'][e]:03d}.mp4"
        with av.open(str(path)) as f:
            times = [fr.time for fr in f.decode(video=0)]
        lo, hi = video["from_timestamp"][e], video["to_timestamp"][e]
        assert [t for t in times if lo - 1e-6 < t < hi - 1e-6] == pytest.approx(lo + np.arange(n) / 10)
        if e and video["file_index"][e] != video["file_index"][e - 1]:
            assert lo == 0 and times[0] == 0


# --- robomimic ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["reach", "pick_place"])
def test_robomimic_layout(which, reach_file, pick_place_file, tmp_path):
    path = {"reach": reach_file, "pick_place": pick_place_file}[which]
    out = export(path, to="robomimic", output=tmp_path / "rm.hdf5", progress=False).output
    steps, keys = source_steps(path)
    finals = _finals(path)
    with h5py.File(out) as f:
        data = f["data"]
        assert sorted(data, key=lambda n: int(n[5:])) == [f"demo_{i}" for i, *_ in steps]
        assert data.attrs["total"] == sum(len(a) for _, _, a, _ in steps)
        assert set(json.loads(data.attrs["env_args"])) == {"env_name", "type", "env_kwargs"}
        for i, obs, actions, rewards in steps:
            g = data[f"demo_{i}"]
            assert g.attrs["num_samples"] == len(actions) and set(g) == {"obs", "next_obs", "actions", "rewards",
                                                                         "dones"}
            assert np.array_equal(g["actions"][()], actions) and np.array_equal(g["rewards"][()], rewards)
            for k in keys:
                assert np.array_equal(g["obs"][k][()], obs[k])
                assert np.array_equal(g["next_obs"][k][:-1], g["obs"][k][1:])
                assert np.array_equal(g["next_obs"][k][-1], finals[i][k])
            assert g["dones"][()].tolist() == [0] * (len(actions) - 1) + [int(len(actions) < (20 if which == "reach"
                                                                                                else 30))]
        train, valid = (set(f[f"mask/{m}"][()].astype(str)) for m in ("train", "valid"))
        assert not train & valid and train | valid == set(data) and len(valid) == 1


def _finals(path):
    """{episode id: {key: final observation}} read straight from the file (either layout)."""
    with h5py.File(path) as f:
        if "meta" in f:
            ids = f["meta/episode_index"][()]
            return {int(i): {k: f[f"meta/final_observation/{k}"][j] for k in f["meta/final_observation"]}
                    for j, i in enumerate(ids)}
        return {int(g.attrs["episode_index"]): {k: g[f"final_observation/{k}"][()] for k in g["final_observation"]}
                for g in f.values()}


def test_robomimic_pusht_next_obs_ends_with_the_last_observation(pusht_file, tmp_path):
    out = export(pusht_file, to="robomimic", output=tmp_path / "rm.hdf5", progress=False).output
    with h5py.File(pusht_file) as src, h5py.File(out) as f:
        for name in src:
            obs, g = src[name]["observations"][()], f[f"data/demo_{int(name[7:])}"]
            assert np.array_equal(g["obs/agent_pos"][()], obs[:-1, :2])
            assert np.array_equal(g["next_obs/block_pose"][()], obs[1:, 2:])
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "gym_pusht/PushT-v0"


@pytest.mark.parametrize("fraction, valid", [(0.0, 0), (0.25, 3), (0.5, 6)])
def test_val_fraction(fraction, valid, reach_file, tmp_path):
    out = export(reach_file, to="robomimic", output=tmp_path / "rm.hdf5", val_fraction=fraction, progress=False).output
    again = export(reach_file, to="robomimic", output=tmp_path / "rm2.hdf5", val_fraction=fraction,
                   progress=False).output
    with h5py.File(out) as f, h5py.File(again) as g:
        assert len(f["mask/valid"]) == valid and len(f["mask/train"]) == 11 - valid
        assert f["mask/valid"][()].tolist() == g["mask/valid"][()].tolist()  # drawn from the file's seed
    names = [f"demo_{i}" for i in range(11)]
    assert valid == 0 or robomimic.split(names, fraction, 0) != robomimic.split(names, fraction, 1)


# --- Minari ------------------------------------------------------------------------------------------------------
def test_minari_reads_it_back(pick_place_file, tmp_path, monkeypatch):
    import minari

    r = export(pick_place_file, to="minari", output=tmp_path / "mn", progress=False)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(r.output))
    ds = minari.load_dataset(r.details["dataset_id"])
    steps, keys = source_steps(pick_place_file)
    finals = _finals(pick_place_file)
    assert ds.total_episodes == len(steps) and ds.total_steps == r.frames
    for e in (0, len(steps) - 1):
        i, obs, actions, rewards = steps[e]
        ep = ds[e]
        for k in keys:
            assert np.array_equal(ep.observations[k], np.concatenate([obs[k], finals[i][k][None]]))
        assert np.array_equal(ep.actions, actions) and np.array_equal(ep.rewards, rewards)
        won = len(actions) < 30
        assert ep.terminations.tolist() == [False] * (len(actions) - 1) + [won]
        assert ep.truncations.tolist() == [False] * (len(actions) - 1) + [not won]


def test_minari_pusht(pusht_file, tmp_path, monkeypatch):
    import minari

    r = export(pusht_file, to="minari", output=tmp_path / "mn", task="push it", progress=False)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(r.output))
    ds = minari.load_dataset("mjxgen/pusht/random-dmp-v0")
    assert ds.storage.metadata["description"] == "push it"
    with h5py.File(pusht_file) as f:
        g = f[sorted(f)[0]]
        ep = ds[0]
        assert np.array_equal(ep.observations, g["observations"][()].astype(np.float64))
        assert np.array_equal(ep.actions, g["executed_actions_pixels"][()].astype(np.float64))
        assert np.array_equal(ep.rewards, g["rewards"][()])
        assert ep.terminations[-1] == g.attrs["terminated"] and ep.truncations[-1] != g.attrs["terminated"]


# --- arguments ---------------------------------------------------------------------------------------------------
def test_task_text(reach_file, tmp_path):
    out = export(reach_file, to="lerobot", output=tmp_path / "lr", task="Touch the red dot.", progress=False).output
    assert parquet(out, "meta/tasks.parquet").column("__index_level_0__").to_pylist() == ["Touch the red dot."]
    assert set(map(tuple, parquet(out, "meta/episodes/chunk-000/file-000.parquet").column("tasks").to_pylist())) == \
        {("Touch the red dot.",)}
    with pytest.raises(ValueError, match="robomimic export holds no task text"):
        export(reach_file, to="robomimic", output=tmp_path / "rm.hdf5", task="x", progress=False)
    with pytest.raises(ValueError, match="task must be a non-empty string"):
        export(reach_file, to="lerobot", output=tmp_path / "lr2", task=" ", progress=False)


def test_images_need_frames_and_a_target_that_holds_them(reach_file, camera_file, tmp_path):
    with pytest.raises(ValueError, match="holds no camera frames .* --camera"):
        export(reach_file, to="lerobot", output=tmp_path / "a", images=True, progress=False)
    for to in ("robomimic", "minari"):
        with pytest.raises(ValueError, match=f"a {to} export holds no camera frames; --images works with lerobot"):
            export(camera_file, to=to, output=tmp_path / "b", images=True, progress=False)
    out = export(camera_file, to="lerobot", output=tmp_path / "c", progress=False).output  # no --images: no video
    assert not (out / "videos").exists()
    assert "observation.images.front" not in json.loads((out / "meta/info.json").read_text())["features"]
    assert not list(tmp_path.glob(".*export-tmp"))


def test_overwrite_and_to(reach_file, tmp_path):
    out = tmp_path / "lr"
    export(reach_file, to="lerobot", output=out, progress=False)
    with pytest.raises(FileExistsError, match="--overwrite"):
        export(reach_file, to="lerobot", output=out, progress=False)
    (out / "marker").write_text("old")
    export(reach_file, to="lerobot", output=out, overwrite=True, progress=False)
    assert not (out / "marker").exists() and (out / "meta/info.json").is_file()
    with pytest.raises(ValueError, match="is not a robomimic HDF5 file; not replacing it"):
        export(reach_file, to="robomimic", output=out, overwrite=True, progress=False)
    other = tmp_path / "mine"
    other.mkdir()
    with pytest.raises(ValueError, match="not replacing it"):
        export(reach_file, to="lerobot", output=other, overwrite=True, progress=False)
    with pytest.raises(ValueError, match="unknown export target 'rlds'; choose one of lerobot, robomimic, minari"):
        export(reach_file, to="rlds", output=tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="val_fraction must be a number in"):
        export(reach_file, to="robomimic", output=tmp_path / "x", val_fraction=1.0, progress=False)


@pytest.mark.parametrize("control_dt, message", [(None, "needs the frame rate"), (0.03, "integer frame rate")])
def test_lerobot_needs_an_integer_frame_rate(control_dt, message, tmp_path):
    path = synthetic(tmp_path / "odd.h5", "reach", REACH, 3, 10, "flat", control_dt=control_dt)
    with pytest.raises(ValueError, match=message):
        export(path, to="lerobot", output=tmp_path / "lr", progress=False)
    assert export(path, to="robomimic", output=tmp_path / "rm.hdf5", progress=False).episodes == 3
    assert not (tmp_path / "lr").exists()


@pytest.mark.parametrize("layout", ["episodes", "flat"])
def test_a_final_observation_of_the_wrong_shape_is_refused(layout, tmp_path):
    from mjxgen.data.formats import DatasetFormatError

    path = synthetic(tmp_path / "bad.h5", "reach", REACH, 3, 10, layout)
    with h5py.File(path, "a") as f:
        where = "meta/final_observation/ee_pos" if layout == "flat" else "episode_1/final_observation/ee_pos"
        rows = f[where].shape[:-1]
        del f[where]
        f.create_dataset(where, data=np.zeros((*rows, 4)))
    with pytest.raises(DatasetFormatError, match="final_observation/ee_pos"):
        export(path, to="robomimic", output=tmp_path / "rm.hdf5", progress=False)
    assert not (tmp_path / "rm.hdf5").exists()


def test_version_1_files(tmp_path):

    v1 = FIXTURES / "v1_flat.h5"
    r = export(v1, to="lerobot", output=tmp_path / "lr", progress=False)  # flags follow from length and success
    assert r.episodes == 4
    with pytest.raises(ValueError, match="needs the observation after each episode's last action"):
        export(v1, to="minari", output=tmp_path / "mn", progress=False)


# --- the command -------------------------------------------------------------------------------------------------
def test_cli(reach_file, tmp_path, capsys):
    out = tmp_path / "rm.hdf5"
    assert cli.main(["export", str(reach_file), "--to", "robomimic", "--output", str(out), "--no-progress",
                     "--val-fraction", "0.2"]) == 0
    assert "Episodes   11" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert len(f["mask/valid"]) == 2
    new = str(tmp_path / "new")
    for argv, message in [([str(tmp_path / "none.h5"), "--to", "lerobot", "--output", new], "no such file"),
                          ([str(reach_file), "--to", "robomimic", "--output", str(out)], "exists; pass --overwrite"),
                          ([str(reach_file), "--to", "lerobot", "--images", "--output", new], "holds no camera frames"),
                          ([str(reach_file), "--to", "lerobot", "--val-fraction", "1.5", "--output", new],
                           "must be a number in [0, 1)")]:
        try:
            status = cli.main(["export", *argv, "--no-progress"])
        except SystemExit as e:  # argparse's own errors
            status = e.code
        err = capsys.readouterr().err.strip()
        assert status == 2 and message in err and err.count("\n") == 0 and "error:" in err, (argv, err)
