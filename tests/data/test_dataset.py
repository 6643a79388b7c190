"""generate_dataset -> HDF5 file -> TrajectoryDataset: layout, metadata, physics, stats."""

import json
import subprocess
import sys

import h5py
import mujoco
import numpy as np
import pytest

from support import BATCH, FAKE_OBS, HORIZON, fake_batch, image_file
from mjxgen.data.dataset import DatasetFormatError, TrajectoryDataset
from mjxgen.generate.pipeline import generate_dataset
from mjxgen.generate.simulate import plan_batches
from mjxgen.generate.config import GenerationConfig
from mjxgen.data.writer import DatasetWriter

SEED_STATS = {"total_episodes", "total_steps", "mean_episode_length", "mean_reward", "success_rate", "output_path", "file_size_mb"}
OBS = FAKE_OBS  # the synthetic batches' observation widths
FK_ATOL = 1e-4  # m: stored ee_pos vs native MuJoCo forward kinematics of stored joint_pos


def test_stats_are_seed_000s(scripted_file):
    path, result = scripted_file
    s = result.stats
    assert set(s) == SEED_STATS | {"invalid_episodes"}  # seed 000's keys, plus the NaN/inf count
    assert s["invalid_episodes"] == 0
    with h5py.File(path) as f:
        lengths = [f[k].attrs["length"] for k in f]
        rewards = [f[k]["rewards"][()].sum() for k in f]
        successes = [f[k].attrs["success"] for k in f]
    assert s["total_episodes"] == len(lengths) == 64
    assert s["total_steps"] == sum(lengths)
    assert s["mean_episode_length"] == pytest.approx(np.mean(lengths))
    assert s["mean_reward"] == pytest.approx(np.mean(rewards))
    assert s["success_rate"] == pytest.approx(np.mean(successes))
    assert s["output_path"] == str(path)
    assert s["file_size_mb"] == pytest.approx(path.stat().st_size / 1e6)


def test_scripted_succeeds_random_does_not(scripted_file, random_file):
    assert scripted_file[1].stats["success_rate"] >= 0.9
    assert random_file[1].stats["success_rate"] <= 0.1


def test_seed_000_layout(scripted_file):
    path, _ = scripted_file
    with h5py.File(path) as f:
        assert sorted(f.keys(), key=lambda k: int(k.split("_")[1])) == [f"episode_{i}" for i in range(64)]
        for name in f:
            g = f[name]
            n = g.attrs["length"]
            assert 1 <= n <= HORIZON
            assert set(g["observations"].keys()) == set(OBS)
            for k, dim in OBS.items():
                ds = g["observations"][k]
                assert ds.shape == (n, dim) and ds.dtype == np.float64, (name, k)
                assert ds.compression == "gzip"
            assert g["actions"].shape == (n, 4) and g["actions"].dtype == np.float64
            assert g["rewards"].shape == (n,) and g["rewards"].dtype == np.float64
            assert np.isfinite(g["actions"][()]).all() and np.isfinite(g["rewards"][()]).all()
            assert g.attrs["episode_index"] == int(name.split("_")[1])
            assert g.attrs["total_reward"] == pytest.approx(g["rewards"][()].sum())


def test_file_metadata(scripted_file):
    path, _ = scripted_file
    with h5py.File(path) as f:
        a = f.attrs
        assert a["format"] == "mjxgen" and a["format_version"] == 2 and a["complete"]
        assert a["env_name"] == "reach" and a["policy"] == "scripted" and a["seed"] == 7
        assert a["total_episodes"] == 64
        config = json.loads(a["config"])
        assert config["max_steps"] == HORIZON and config["batch_size"] == BATCH
        assert config["env_config"]["control_dt"] == pytest.approx(0.02)
        versions = json.loads(a["versions"])
        assert {"jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy", "h5py", "python"} <= set(versions)
        mujoco.MjModel.from_xml_string(a["model_xml"])  # self-contained


def test_ee_pos_is_native_forward_kinematics(scripted_file, random_file):
    """Every stored ee_pos equals native MuJoCo FK of the stored joint_pos, with the file's own model."""
    for path, _ in (scripted_file, random_file):
        with h5py.File(path) as f:
            model = mujoco.MjModel.from_xml_string(f.attrs["model_xml"])
            data = mujoco.MjData(model)
            worst = 0.0
            for name in f:
                qpos = f[name]["observations/joint_pos"][()]
                ee = f[name]["observations/ee_pos"][()]
                for t in range(len(qpos)):
                    data.qpos[:7] = qpos[t]
                    mujoco.mj_kinematics(model, data)
                    worst = max(worst, np.abs(data.site("tcp").xpos - ee[t]).max())
        assert worst < FK_ATOL, (path.name, worst)


def test_trajectory_dataset(scripted_file):
    path, result = scripted_file
    ds = TrajectoryDataset(path)
    assert len(ds) == result.stats["total_steps"]
    assert ds.n_episodes == 64
    item = ds[0]
    assert set(item["observations"]) == set(OBS)
    assert item["observations"]["joint_pos"].shape == (7,) and item["actions"].shape == (4,)
    assert item["episode"] == 0 and item["timestep"] == 0
    last = ds[len(ds) - 1]
    assert last["timestep"] == ds.episode_lengths[-1] - 1
    with h5py.File(path) as f:
        g = f[f"episode_{last['episode']}"]
        np.testing.assert_array_equal(last["actions"], g["actions"][-1])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_torch_dataloader_works_unchanged(scripted_file):
    torch = pytest.importorskip("torch", reason="torch is optional; the DataLoader snippet needs it")
    from torch.utils.data import DataLoader

    loader = DataLoader(TrajectoryDataset(scripted_file[0]), batch_size=32, shuffle=True)
    batch = next(iter(loader))
    assert batch["observations"]["joint_pos"].shape == (32, 7)
    assert batch["actions"].shape == (32, 4)
    assert isinstance(batch["actions"], torch.Tensor)


def test_rejects_files_that_are_not_mjxgen_datasets(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    text = tmp_path / "notes.txt"
    text.write_text("not hdf5\n")
    for path, msg in ((other, "not an mjxgen dataset"), (text, "not an HDF5 file")):
        with pytest.raises(DatasetFormatError, match=msg) as e:
            TrajectoryDataset(path)
        assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError):
        TrajectoryDataset(tmp_path / "missing.h5")


def _writer(path, compression="gzip"):
    return DatasetWriter(path, env_name="reach", policy="random", seed=0, config={}, model_xml="<mujoco/>",
                         obs_shapes={k: (d,) for k, d in OBS.items()}, action_size=4, compression=compression)


@pytest.mark.parametrize("compression", ["lzf", "none"])
def test_other_codecs_round_trip(tmp_path, compression):
    path = tmp_path / f"{compression}.h5"
    w = _writer(path, compression)
    batch = fake_batch([0, 1, 2])
    w.write_batch(batch)
    w.close()
    with h5py.File(path) as f:
        assert f.attrs["complete"] and f.attrs["compression"] == compression
        ds = f["episode_1/observations/ee_pos"]
        assert ds.compression == (None if compression == "none" else compression)
        np.testing.assert_array_equal(ds[()], batch.observations["ee_pos"][5:10].astype(np.float64))  # episode 1


def test_writer_failure_is_reported_and_file_stays_incomplete(tmp_path):
    path = tmp_path / "broken.h5"
    w = _writer(path)
    w.write_batch(fake_batch([0, 1]))
    broken = fake_batch([2])._replace(rewards=None)  # the shard for this batch fails half-way
    w.write_batch(broken)
    with pytest.raises(OSError, match="writing .*broken.h5.partial failed"):
        w.close()
    assert not path.exists()  # never a file that looks complete
    with pytest.raises(DatasetFormatError, match="unfinished run"):
        TrajectoryDataset(path)
    ds = TrajectoryDataset(path, allow_incomplete=True)  # the finished batch is intact
    assert list(ds.episode_index) == [0, 1] and not ds.complete


def test_bad_input_is_refused(tmp_path, scripted_file):
    with pytest.raises(ValueError, match="unknown env"):
        generate_dataset("juggle", 1, tmp_path / "a.h5")
    with pytest.raises(ValueError, match="n_episodes must be a positive integer"):
        generate_dataset("reach", 0, tmp_path / "a.h5")
    with pytest.raises(TypeError, match="batch_size must be a positive integer"):
        generate_dataset("reach", 4, tmp_path / "a.h5", batch_size=2.5)
    with pytest.raises(ValueError, match="unknown policy"):
        generate_dataset("reach", 4, tmp_path / "a.h5", policy_type="teleop")
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_dataset("reach", 4, scripted_file[0])
    with pytest.raises(ValueError, match="is a directory"):
        generate_dataset("reach", 4, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="cannot create output directory"):
        generate_dataset("reach", 4, blocker / "sub" / "a.h5")
    with pytest.raises(ValueError, match="image_size"):
        GenerationConfig(env_name="reach", n_episodes=4, output_path=tmp_path / "a.h5", camera=True, image_size=(0, 64))
    assert not (tmp_path / "a.h5").exists()


@pytest.mark.parametrize("n, batch, expected", [(64, 32, (2, 32)), (5000, 4096, (2, 2500)), (100, 4096, (1, 100)), (7, 3, (3, 3))])
def test_plan_batches(n, batch, expected):
    n_batches, per = plan_batches(n, batch)
    assert (n_batches, per) == expected
    assert per <= batch and 0 <= n_batches * per - n < n_batches


def test_obs_keys_selects_what_is_read(scripted_file):
    ds = TrajectoryDataset(scripted_file[0], obs_keys=["ee_pos", "target_pos"])
    item = ds[5]
    assert set(item["observations"]) == {"ee_pos", "target_pos"} and set(ds.observations) == {"ee_pos", "target_pos"}
    full = TrajectoryDataset(scripted_file[0])
    np.testing.assert_array_equal(item["observations"]["ee_pos"], full[5]["observations"]["ee_pos"])
    with pytest.raises(ValueError, match="no observation 'joint_angles'.*joint_pos"):
        TrajectoryDataset(scripted_file[0], obs_keys=["joint_angles"])


def test_images_are_read_one_frame_at_a_time(tmp_path, monkeypatch):
    path = tmp_path / "images.h5"
    image_file(path, monkeypatch, 100, 6, (8, 10))
    ds = TrajectoryDataset(path, obs_keys=["ee_pos", "image"])
    item = ds[6 * 7 + 4]  # episode 7, step 4
    assert item["observations"]["image"].shape == (8, 10, 3) and (item["observations"]["image"] == 7 + 4).all()
    assert "image" not in TrajectoryDataset(path)[0]["observations"]  # not read unless asked
    assert "image" not in ds.observations  # the in-memory arrays never hold images


def test_memory_stays_flat_on_a_largeimage_file(tmp_path, monkeypatch):
    """1000 episodes x 20 frames of 64x64x3 = 246 MB of images: opening the file and reading 200 random items
    must not load them (measured in a fresh process, ru_maxrss before and after)."""
    path = tmp_path / "big.h5"
    image_file(path, monkeypatch, 1000, 20, (64, 64))
    code = f"""
import resource, numpy as np
from mjxgen.data.dataset import TrajectoryDataset
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = rss()
ds = TrajectoryDataset({str(path)!r}, obs_keys=["ee_pos", "image"])
for i in np.random.default_rng(0).integers(0, len(ds), 200):
    assert ds[int(i)]["observations"]["image"].shape == (64, 64, 3)
print(len(ds), rss() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    steps, grown_mb = out.stdout.split()
    assert int(steps) == 20_000
    assert float(grown_mb) < 40, f"RSS grew by {grown_mb} MB reading 200 items of a 246 MB image file"
