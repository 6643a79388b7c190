"""generate_dataset and make_env keep their word: every argument reaches the written file, and bad input is
refused, naming the argument, before anything is simulated or written.

The module runs on shapes the suite compiles anyway: (API_N episodes, API_T steps) is tests/test_durable.py's
(8, 20) shape, for reach/scripted (camera included) and a reach config with another success threshold; reach/random
runs at seed 000's (100, 200) shape, which tests/test_docs.py compiles for seed 000's random-policy examples.
"""

import dataclasses
import json

import h5py
import numpy as np
import pytest

from support import DURABLE_BATCH, DURABLE_HORIZON, SEED_N, SEED_T
from mjxgen.kernels.randomize import RandomizationConfig
from mjxgen import generate_dataset, make_env
from mjxgen.data import shards
from mjxgen.pick_place import PickPlaceConfig
from mjxgen.reach import ReachConfig
from mjxgen.generate.config import GenerationConfig

# Issue 12's acceptance call, generate_dataset("reach", 24, "short.h5", "scripted", False, 30, 7), at the suite's
# small shape: generate_dataset("reach", 8, "short.h5", "scripted", False, 20, 7).
API_N, API_T, API_SEED = DURABLE_BATCH, DURABLE_HORIZON, 7


def _read(path, key):
    """{episode index: array} of one dataset path inside every episode."""
    with h5py.File(path) as f:
        return {int(n.split("_")[1]): f[n][key][()] for n in f}


def _config(path):
    with h5py.File(path) as f:
        return json.loads(f.attrs["config"])


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """The acceptance call, positionally, in seed 000's order."""
    d = tmp_path_factory.mktemp("api")
    path = d / "short.h5"
    stats = generate_dataset("reach", API_N, path, "scripted", False, API_T, API_SEED, progress=False)
    return path, stats


def _run(tmp_path, name="x.h5", **kw):
    """generate_dataset with the module's shape (reach/scripted, API_N x API_T, seed API_SEED), overridden by kw."""
    args = dict(env_name="reach", n_episodes=API_N, output_path=tmp_path / name, policy_type="scripted",
                domain_randomization=False, max_steps=API_T, seed=API_SEED, progress=False)
    args |= kw
    return args["output_path"], generate_dataset(**args)


def test_positional_call_follows_seed_000s_order(short):
    path, stats = short
    with h5py.File(path) as f:
        assert len(f.keys()) == API_N == stats["total_episodes"]  # n_episodes
        assert f.attrs["env_name"] == "reach" and f.attrs["policy"] == "scripted"  # env_name, policy_type
        assert f.attrs["seed"] == API_SEED  # seed
        config = json.loads(f.attrs["config"])
        assert config["max_steps"] == API_T and config["seed"] == API_SEED and config["domain_randomization"] is False
        for name in f:
            g = f[name]
            assert 1 <= g.attrs["length"] <= API_T  # max_steps bounds every episode
            assert g.attrs["seed"] == API_SEED
            assert "image" not in g["observations"]  # camera is off (it was camera=7 before the fix)
            assert "randomization" not in g  # domain_randomization=False
        assert max(f[name].attrs["length"] for name in f) == API_T  # T=20 binds: some episodes run out of time
    assert stats["output_path"] == str(path) and path.is_file()  # output_path


def test_seed_changes_the_data_and_is_reproducible(short, tmp_path):
    other, _ = _run(tmp_path, "seed8.h5", seed=8)
    again, _ = _run(tmp_path, "seed7.h5", seed=API_SEED)
    t7, t8, t7b = (_read(p, "observations/target_pos") for p in (short[0], other, again))
    assert all(not np.allclose(t7[i][0], t8[i][0]) for i in range(API_N))  # every target differs
    for i in range(API_N):
        np.testing.assert_array_equal(t7[i], t7b[i])
    assert h5py.File(other).attrs["seed"] == 8


def test_policy_type_changes_the_actions(short, tmp_path):
    path, _ = _run(tmp_path, "random.h5", policy_type="random", n_episodes=SEED_N, max_steps=SEED_T)
    scripted, random = _read(short[0], "actions"), _read(path, "actions")
    for a in scripted.values():  # seed 000's P-controller: |action[:3]| = 0.5, gripper 0
        np.testing.assert_allclose(np.linalg.norm(a[:, :3], axis=1), 0.5, atol=1e-5)
        assert (a[:, 3] == 0).all()
    r = np.concatenate(list(random.values()))
    assert r.min() >= -1 and r.max() <= 1 and r.std(axis=0).min() > 0.4  # uniform on [-1, 1]^4: std 0.577
    assert h5py.File(path).attrs["policy"] == "random"
    # A random episode never reaches the target by chance in 200 steps (here): the horizon sets the length.
    assert len(random) == SEED_N and all(len(a) == SEED_T for a in random.values())


def test_n_episodes_and_batch_size(short, tmp_path):
    path, stats = _run(tmp_path, "two_batches.h5", n_episodes=2 * API_N, batch_size=API_N + 6)
    assert stats["total_episodes"] == 2 * API_N
    assert _config(path)["batch_size"] == API_N  # 16 episodes at most 14 at once: 8 slots (2 x 8 episodes)
    first, two = _read(short[0], "observations/joint_pos"), _read(path, "observations/joint_pos")
    assert sorted(two) == list(range(2 * API_N))
    for i in range(API_N):  # the batching does not change an episode
        np.testing.assert_array_equal(first[i], two[i])


def test_domain_randomization_true_and_config(short, tmp_path):
    path, _ = _run(tmp_path, "dr.h5", domain_randomization=True)
    custom, _ = _run(tmp_path, "dr_custom.h5",
                     domain_randomization=RandomizationConfig(light=False, friction=0.5, joint_noise=0.0))
    model_light = make_env("reach").mj_model.light_dir[0]
    friction = np.array(list(_read(path, "randomization/friction_scale").values()))
    assert friction.min() >= 0.8 and friction.max() <= 1.2 and friction.std() > 0.05  # seed 000: +-20%
    light = np.array(list(_read(path, "randomization/light_dir").values()))
    np.testing.assert_allclose(np.linalg.norm(light, axis=1), 1, atol=1e-5)
    assert light.std(axis=0).min() > 0.2  # spread over the sphere
    wide = np.array(list(_read(custom, "randomization/friction_scale").values()))
    assert wide.min() >= 0.5 and wide.max() <= 1.5 and (np.abs(wide - 1) > 0.2).any()  # the given +-50%
    np.testing.assert_allclose(np.array(list(_read(custom, "randomization/light_dir").values())),
                               np.broadcast_to(model_light, (API_N, 3)), atol=1e-6)  # light off: the model's
    np.testing.assert_array_equal(np.array(list(_read(custom, "randomization/joint_offset").values())), 0)
    assert _config(custom)["domain_randomization"]["friction"] == 0.5  # the ranges are stored
    assert _config(path)["domain_randomization"] == dataclasses.asdict(RandomizationConfig())  # True: the defaults
    # Randomization changes the physics: the same episodes follow other joint trajectories.
    plain, dr = _read(short[0], "observations/joint_pos"), _read(path, "observations/joint_pos")
    n = {i: min(len(plain[i]), len(dr[i])) for i in plain}
    assert all(not np.allclose(plain[i][:n[i]], dr[i][:n[i]], atol=1e-4) for i in range(API_N))


def test_camera_and_image_size(short, tmp_path):
    """(The module's (8, 20) shape: few frames to render.)"""
    path, _ = _run(tmp_path, "camera.h5", camera=True, image_size=(24, 40))
    plain = short[0]
    with h5py.File(path) as f, h5py.File(plain) as g:
        for name in f:
            image = f[name]["observations/image"]
            assert image.shape == (f[name].attrs["length"], 24, 40, 3) and image.dtype == np.uint8
            assert image[()].std() > 10  # a rendered scene, not a blank buffer
            assert "image" not in g[name]["observations"]


@pytest.mark.parametrize("codec", ["lzf", "none"])
def test_compression_is_the_codec_of_every_dataset(short, tmp_path, codec):
    path, _ = _run(tmp_path, f"{codec}.h5", compression=codec)
    for p, expected in ((short[0], "gzip"), (path, None if codec == "none" else codec)):
        with h5py.File(p) as f:
            codecs = set()
            f.visititems(lambda k, v: codecs.add(v.compression) if isinstance(v, h5py.Dataset) else None)
            assert codecs == {expected}, (p.name, codecs)
    for i, a in _read(short[0], "actions").items():  # the codec changes only the encoding
        np.testing.assert_array_equal(a, _read(path, "actions")[i])


def test_layout_flat_and_dtype_float32(short, tmp_path):
    path, stats = _run(tmp_path, "flat.h5", layout="flat", dtype="float32")
    assert stats == {**short[1], "output_path": str(path), "file_size_mb": stats["file_size_mb"]}
    with h5py.File(path) as f:
        assert f.attrs["format"] == "mjxgen-flat" and _config(path)["layout"] == "flat"
        assert {f[f"data/{k}"].dtype for k in ("joint_pos", "ee_pos", "actions", "rewards")} == {np.dtype(np.float32)}
        ends = f["meta/episode_ends"][()]
        starts = np.concatenate([[0], ends[:-1]])
        for j, i in enumerate(f["meta/episode_index"][()]):  # the same episodes, at float32
            np.testing.assert_array_equal(f["data/ee_pos"][starts[j]:ends[j]],
                                          _read(short[0], "observations/ee_pos")[i].astype(np.float32))
    assert stats["file_size_mb"] < short[1]["file_size_mb"]
    ep32, _ = _run(tmp_path, "ep32.h5", dtype="float32")  # dtype applies to the per-episode layout too
    with h5py.File(ep32) as f:
        assert f.attrs["format"] == "mjxgen" and f.attrs["dtype"] == "float32"
        assert {f[f"episode_3/{k}"].dtype for k in ("observations/joint_vel", "actions", "rewards")} == {np.dtype(np.float32)}
        np.testing.assert_array_equal(f["episode_3/actions"][()], _read(short[0], "actions")[3].astype(np.float32))
    with pytest.raises(ValueError, match="layout"):
        _run(tmp_path, "bad.h5", layout="columns")
    with pytest.raises(ValueError, match="dtype"):
        _run(tmp_path, "bad.h5", dtype="float16")


def test_overwrite_replaces_the_file(short, tmp_path):
    path = tmp_path / "x.h5"
    _run(tmp_path, seed=1)
    with pytest.raises(FileExistsError, match="overwrite"):
        _run(tmp_path, seed=2)
    assert h5py.File(path).attrs["seed"] == 1
    _run(tmp_path, seed=2, overwrite=True)
    assert h5py.File(path).attrs["seed"] == 2


def test_resume_completes_an_unfinished_run(short, tmp_path, monkeypatch):
    def fail(self, *args):
        raise OSError("merge failed")

    monkeypatch.setattr(shards.ShardStore, "finalize", fail)  # the run stops unfinished
    with pytest.raises(OSError, match=f"episodes 0 to {API_N - 1} are safe"):
        _run(tmp_path)
    monkeypatch.undo()
    with pytest.raises(FileExistsError, match="resume"):
        _run(tmp_path)
    path, stats = _run(tmp_path, resume=True)
    assert stats["total_episodes"] == API_N
    for i, a in _read(short[0], "observations/ee_pos").items():
        np.testing.assert_array_equal(a, _read(path, "observations/ee_pos")[i])


def test_progress_shows_a_bar_only_when_asked(short, tmp_path, capsys):
    _run(tmp_path, "quiet.h5")
    assert capsys.readouterr().err == ""
    _run(tmp_path, "bar.h5", progress=True)
    err = capsys.readouterr().err
    assert "reach/scripted" in err and f"{API_N}/{API_N}" in err


def test_env_config_reaches_the_env_and_the_file(short, tmp_path):
    loose = ReachConfig(success_threshold=0.2)
    path, stats = _run(tmp_path, "loose.h5", env_config=loose)
    assert _config(path)["env_config"]["success_threshold"] == 0.2
    assert _config(short[0])["env_config"]["success_threshold"] == 0.02
    with h5py.File(path) as f:
        for name in f:  # a successful episode ends on its first step inside the looser threshold
            distance = -f[name]["rewards"][()]
            if f[name].attrs["success"]:
                assert distance[-1] < 0.2 and (distance[:-1] >= 0.2).all()
    lengths = {i: len(r) for i, r in _read(path, "rewards").items()}
    default_lengths = {i: len(r) for i, r in _read(short[0], "rewards").items()}
    assert all(lengths[i] <= default_lengths[i] for i in lengths) and sum(lengths.values()) < sum(default_lengths.values())
    assert stats["success_rate"] > short[1]["success_rate"]


def test_make_env_is_keyed_by_name_and_config():
    a, b = make_env("reach", ReachConfig(success_threshold=0.2)), make_env("reach", ReachConfig(success_threshold=0.2))
    assert a is b and a.config.success_threshold == 0.2
    assert make_env("reach") is make_env("reach", ReachConfig()) and make_env("reach") is not a
    with pytest.raises(TypeError, match="ReachConfig"):
        make_env("reach", PickPlaceConfig())
    with pytest.raises(TypeError):
        ReachConfig(ReachConfig().arm)  # keyword-only


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"max_steps": "50"}, TypeError, "max_steps"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"domain_randomization": "yes"}, TypeError, "domain_randomization"),
        ({"domain_randomization": 1}, TypeError, "domain_randomization"),
        ({"camera": 7}, TypeError, "camera"),
        ({"n_episodes": True}, TypeError, "n_episodes"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"image_size": (64,)}, TypeError, "image_size"),
        ({"image_size": (0, 64)}, ValueError, "image_size"),
        ({"compression": 4}, TypeError, "compression"),
        ({"compression": "zip"}, ValueError, "compression"),
        ({"on_invalid": "ignore"}, ValueError, "on_invalid"),
        ({"overwrite": "yes"}, TypeError, "overwrite"),
        ({"progress": None}, TypeError, "progress"),
        ({"env_config": PickPlaceConfig()}, TypeError, "env_config"),
        ({"env_config": {"success_threshold": 0.1}}, TypeError, "env_config"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**32}, ValueError, "seed"),
        ({"n_episodes": 0}, ValueError, "n_episodes"),
        ({"max_steps": -5}, ValueError, "max_steps"),
        ({"env_name": "juggle"}, ValueError, "env"),
        ({"env_name": 3}, TypeError, "env_name"),
        ({"policy_type": "teleop"}, ValueError, "policy"),
        ({"output_path": 5}, TypeError, "output_path"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(tmp_path, kwargs, error, name):
    with pytest.raises(error, match=name):
        _run(tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []  # no file, no .partial directory


def test_configs_are_keyword_only():
    with pytest.raises(TypeError):
        GenerationConfig("reach", 4)
    with pytest.raises(TypeError):
        RandomizationConfig(True, 0.2)
    with pytest.raises(TypeError):
        generate_dataset("reach", 4, "x.h5", "scripted", False, 30, 7, 64)  # batch_size is keyword-only
