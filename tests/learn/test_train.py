"""Behaviour cloning: models, the Trainer, checkpoints, evaluation, `mjxgen train` and `mjxgen eval`.

Fast: the 64 scripted reach episodes of conftest's `scripted_file`, a few hundred steps, and two compiled
evaluation rollouts ((T, B) = (200, 32) for the metrics, (10, 4) for the flags).
"""

import json
import os
import shutil
import zipfile

import h5py
import jax
import numpy as np
import pytest

from support import BATCH, FIXTURES, image_file
from mjxgen.learn import checkpoints as ckpt
from mjxgen import cli
from mjxgen.learn import metrics, models, training
from mjxgen.sim import rollout
from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.learn.evaluate import NetworkPolicy, evaluate, load_policy
from mjxgen.learn.models import BCModel, ModelRegistry
from mjxgen.learn.training import BatchLoader, TrainConfig, Trainer, flat_batch

MODEL = ModelRegistry.create("bc", state_dim=20, action_dim=4)
LR = 1e-3  # learns reach in a few hundred steps (the CLI default, seed 000's 1e-4, needs thousands)
STEPS = 300
EVAL_N, EVAL_T = BATCH, 200  # the evaluation rollout's shape; the README and docs examples use it too


def _train(ds, out, *, steps=STEPS, lr=LR, seed=0, batch=64, every=100, model=MODEL, **kw):
    cfg = TrainConfig(max_steps=steps, lr=lr, seed=seed, output_dir=out, checkpoint_every=every, log_every=50,
                      progress=False, **kw)
    return Trainer(model, BatchLoader(ds, batch, seed=seed), cfg).train()


@pytest.fixture(scope="module")
def dataset(scripted_file):
    return TrajectoryDataset(scripted_file[0])


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    return _train(dataset, out), out


@pytest.fixture(scope="module")
def untrained(dataset, tmp_path_factory):
    """A checkpoint of the same architecture whose weights are still (within 1e-12) the initial ones."""
    out = tmp_path_factory.mktemp("untrained")
    _train(dataset, out, steps=1, lr=1e-12, every=0)
    return out / "final.npz"


@pytest.fixture(scope="module")
def trained_eval(trained):
    return evaluate(trained[1] / "final.npz", "reach", EVAL_N, max_steps=EVAL_T)


def _arrays(path):
    return ckpt.load(path).arrays


def _assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ------------------------------------------------------------------------------------------- model, loader


def test_model_registry():
    assert ModelRegistry.names() == ("bc",)
    assert MODEL == BCModel(state_dim=20, action_dim=4) and hash(MODEL) == hash(BCModel(state_dim=20, action_dim=4))
    with pytest.raises(ValueError, match="unknown model 'gpt'; choose one of bc"):
        ModelRegistry.create("gpt", state_dim=20, action_dim=4)
    with pytest.raises(ValueError, match="state_dim must be a positive integer"):
        ModelRegistry.create("bc", state_dim=0, action_dim=4)
    with pytest.raises(TypeError):
        BCModel(20, 4)  # keyword-only
    assert ModelRegistry.from_json(MODEL.to_json()) == MODEL
    small = ModelRegistry.create("bc", state_dim=5, action_dim=2, hidden=(8,))
    assert [layer["w"].shape for layer in small.init(jax.random.key(0))["layers"]] == [(5, 8), (8, 2)]
    ModelRegistry.register("bc_alias", BCModel)
    try:
        assert ModelRegistry.create("bc_alias", state_dim=5, action_dim=2) == BCModel(state_dim=5, action_dim=2)
    finally:
        ModelRegistry._models.pop("bc_alias")


def test_train_config_is_keyword_only_and_checked():
    with pytest.raises(TypeError):
        TrainConfig(100)
    for bad in ({"lr": 0}, {"lr": -1.0}, {"max_steps": 0}, {"seed": -1}, {"checkpoint_every": -1},
                {"resume": True, "overwrite": True}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    assert TrainConfig().max_steps == 50_000 and TrainConfig().lr == 1e-4  # seed 000's defaults


def test_batch_loader_shuffles_whole_epochs_reproducibly(dataset):
    loader = BatchLoader(dataset, 64, seed=0)
    n = loader.steps_per_epoch
    assert n == len(dataset) // 64 == len(loader)
    epoch = [loader.batch(s) for s in range(n)]
    rows = np.concatenate([np.concatenate([b["observations"]["ee_pos"], b["actions"]], 1) for b in epoch])
    assert len(np.unique(rows, axis=0)) == n * 64  # no row twice within an epoch
    assert all(b["actions"].shape == (64, 4) and b["actions"].dtype == np.float32 for b in epoch)
    np.testing.assert_array_equal(BatchLoader(dataset, 64, seed=0).batch(7)["actions"], epoch[7]["actions"])
    assert not np.array_equal(BatchLoader(dataset, 64, seed=1).batch(7)["actions"], epoch[7]["actions"])
    assert not np.array_equal(loader.batch(n)["actions"], epoch[0]["actions"])  # epoch 1 is reshuffled
    first, second = list(loader), list(loader)  # iterating gives one epoch after another
    assert len(first) == len(second) == n
    np.testing.assert_array_equal(second[0]["actions"], loader.batch(n)["actions"])
    with pytest.raises(ValueError, match="batch_size 100000 exceeds"):
        BatchLoader(dataset, 100_000)


def test_horizon_windows_stay_inside_their_episode(scripted_file):
    flat = TrajectoryDataset(scripted_file[0])
    win = TrajectoryDataset(scripted_file[0], horizon=5)
    assert len(win) == len(flat)
    first = win[0]
    assert first["actions"].shape == (5, 4) and first["observations"]["joint_pos"].shape == (5, 7)
    assert first["mask"].all() and first["timestep"] == 0
    np.testing.assert_array_equal(first["actions"], np.stack([flat[t]["actions"] for t in range(5)]))
    length = int(flat.episode_lengths[0])
    end = win[length - 2]  # two real steps, then the last step repeated
    assert end["mask"].tolist() == [True, True, False, False, False]
    assert end["episode"] == flat.episode_index[0] and end["timestep"] == length - 2
    for t in range(2, 5):
        np.testing.assert_array_equal(end["actions"][t], flat[length - 1]["actions"])
        np.testing.assert_array_equal(end["observations"]["ee_pos"][t], flat[length - 1]["observations"]["ee_pos"])
    nxt = win[length]
    assert nxt["episode"] == flat.episode_index[1] and nxt["timestep"] == 0 and nxt["mask"].all()
    for bad in (0, -2, 1.5, True):
        with pytest.raises((TypeError, ValueError), match="horizon"):
            TrajectoryDataset(scripted_file[0], horizon=bad)


def test_horizon_windows_of_images_read_only_their_frames(tmp_path, monkeypatch):
    image_file(tmp_path / "img.h5", monkeypatch, 100, 6, (8, 10))  # frame t of episode e is filled with e + t
    ds = TrajectoryDataset(tmp_path / "img.h5", obs_keys=["ee_pos", "image"], horizon=4)
    item = ds[6 * 7 + 4]  # episode 7, step 4 of 6
    assert item["observations"]["image"].shape == (4, 8, 10, 3)
    assert [int(f[0, 0, 0]) for f in item["observations"]["image"]] == [11, 12, 12, 12]
    assert item["mask"].tolist() == [True, True, False, False]


# ------------------------------------------------------------------------------------------------ training


def test_loss_falls(trained):
    result, _ = trained
    (first_step, first), (last_step, last) = result.losses[0], result.losses[-1]
    assert [s for s, _ in result.losses] == [1, *range(50, STEPS + 1, 50)]  # log_every=50
    assert (first_step, last_step) == (1, STEPS) and result.step == STEPS
    assert last < 0.1 * first
    assert result.steps_per_s > 0


def test_normalization_is_the_datasets(trained, dataset):
    """Mean and std over every step of the file, in the flat observation's order. Nearly constant features get
    std 1: the gripper action (always 0 in scripted reach) and, without randomization, the 7th joint's position
    and velocity (float32 noise, std 5e-7 rad), which must not be blown up by 1/5e-7."""
    norm = trained[0].params["norm"]
    obs = np.concatenate([dataset.observations[k] for k in dataset.obs_keys], axis=1)
    np.testing.assert_allclose(norm["obs_mean"], obs.mean(0), rtol=1e-6, atol=1e-7)
    constant = obs.std(0) < models.MIN_STD
    assert np.flatnonzero(constant).tolist() == [6, 13]  # joint_pos[6] and joint_vel[6]: the file's order
    np.testing.assert_allclose(norm["obs_std"], np.where(constant, 1.0, obs.std(0)), rtol=1e-6)
    np.testing.assert_allclose(norm["act_mean"], dataset.actions.mean(0), rtol=1e-6, atol=1e-7)
    assert float(norm["act_std"][3]) == 1.0 and np.allclose(norm["act_std"][:3], dataset.actions[:, :3].std(0))


def _with_statistics(src, dst, edit):
    """A copy of the dataset file src whose root attribute `statistics` (JSON) edit(stats) changed."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        stats = json.loads(f.attrs["statistics"])
        edit(stats)
        f.attrs["statistics"] = json.dumps(stats)
    return dst


def test_normalization_comes_from_the_files_stored_statistics(trained, dataset, scripted_file, tmp_path):
    """A format v2 file stores per-array statistics: training takes them as they are (the same rule for nearly
    constant features), and a file whose stored statistics were altered trains with the altered ones."""
    result, out = trained
    stats = dataset.statistics
    assert result.normalization == "stored" and ckpt.read_config(out / "final.npz")["normalization"] == "stored"
    np.testing.assert_array_equal(result.params["norm"]["obs_mean"], np.concatenate(
        [stats[f"observations/{k}"]["mean"] for k in dataset.obs_keys]).astype(np.float32))

    def alter(s):
        s["observations/ee_pos"]["mean"] = [1.0, 2.0, 3.0]
        s["observations/ee_pos"]["std"] = [4.0, 5.0, 1e-6]  # the last: below MIN_STD, so 1
        s["actions"]["std"] = [0.5, 0.5, 0.5, 0.25]

    altered = _with_statistics(scripted_file[0], tmp_path / "altered.h5", alter)
    r = _train(TrajectoryDataset(altered), tmp_path / "run", steps=1, every=0)
    norm = r.params["norm"]
    keys = list(dataset.obs_keys)  # the flat observation: the keys in the file's order
    ee = sum(dataset.observations[k].shape[1] for k in keys[:keys.index("ee_pos")]) + np.arange(3)
    np.testing.assert_array_equal(norm["obs_mean"][ee], [1, 2, 3])
    np.testing.assert_array_equal(norm["obs_std"][ee], [4, 5, 1])
    np.testing.assert_array_equal(norm["act_std"], np.float32([0.5, 0.5, 0.5, 0.25]))
    rest = np.setdiff1d(np.arange(20), ee)
    np.testing.assert_array_equal(norm["obs_mean"][rest], result.params["norm"]["obs_mean"][rest])  # as stored
    np.testing.assert_array_equal(_arrays(r.checkpoint)["norm/obs_std"], norm["obs_std"])
    wrong = _with_statistics(scripted_file[0], tmp_path / "wrong.h5", lambda s: s["actions"].update(mean=[0.0] * 3))
    with pytest.raises(ValueError, match="wrong.h5: its stored statistics have 20 observation and 3 action columns"):
        _train(TrajectoryDataset(wrong), tmp_path / "wrong", steps=1, every=0)


def test_files_without_statistics_compute_the_normalization(trained, tmp_path):
    """A version 1 file stores no statistics: the normalization is computed from its steps, as the file's would be."""
    v1 = TrajectoryDataset(FIXTURES / "v1_episodes.h5")
    assert v1.statistics is None
    r = _train(v1, tmp_path, steps=1, every=0)
    obs = np.concatenate([v1.observations[k] for k in v1.obs_keys], axis=1)
    expected = models.normalization(obs, v1.actions)
    assert r.normalization == "dataset" and ckpt.read_config(r.checkpoint)["normalization"] == "dataset"
    for k, v in expected.items():
        np.testing.assert_array_equal(r.params["norm"][k], v, err_msg=k)


def test_lr_sets_the_update_size_without_recompiling(dataset, trained, tmp_path):
    """Adam's first step moves every weight by about lr: 10x the lr, 10x the step. The lr is an argument of the
    compiled step, so a new lr adds no trace."""
    key = (MODEL, 64)
    before = training.TRACE_COUNT[key]
    init = MODEL.init(jax.random.key(0))
    moved = {}
    for lr in (1e-4, 1e-3):
        r = _train(dataset, tmp_path / str(lr), steps=1, lr=lr, every=0)
        moved[lr] = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(r.params["net"]),
                                                                  jax.tree.leaves(init)))
    assert moved[1e-3] / moved[1e-4] == pytest.approx(10, rel=0.02)
    assert training.TRACE_COUNT[key] == before == 1


def test_trainer_takes_any_iterable_of_dict_batches(dataset, tmp_path):
    """A plain list of NumPy dict batches (as a torch DataLoader gives, but without torch): re-iterated for each
    epoch, normalization from its batches, no dataset recorded."""
    obs, actions = dataset.observations, dataset.actions
    batches = [{"observations": {k: v[i:i + 32] for k, v in obs.items()}, "actions": actions[i:i + 32]}
               for i in range(0, 320, 32)]
    r = Trainer(MODEL, batches, TrainConfig(max_steps=25, lr=LR, output_dir=tmp_path, progress=False)).train()
    config = ckpt.read_config(r.checkpoint)
    assert config["step"] == 25 and config["dataset"] is None and config["env_name"] is None
    assert config["normalization"] == r.normalization == "batches"
    assert config["obs_keys"] == list(dataset.obs_keys) and config["train"]["batch_size"] == 32
    flat = np.concatenate([flat_batch(b, dataset.obs_keys)[0] for b in batches])
    np.testing.assert_allclose(np.asarray(r.params["norm"]["obs_mean"]), flat.mean(0), rtol=1e-5, atol=1e-6)


def test_a_given_normalization_is_used(dataset, tmp_path):
    norm = {"obs_mean": np.full(20, 0.5, np.float32), "obs_std": np.full(20, 2.0, np.float32),
            "act_mean": np.zeros(4, np.float32), "act_std": np.full(4, 3.0, np.float32)}
    cfg = TrainConfig(max_steps=2, output_dir=tmp_path, progress=False)
    r = Trainer(MODEL, BatchLoader(dataset, 64), cfg, normalization=norm).train()
    assert r.normalization == "given"
    for k, v in norm.items():
        np.testing.assert_array_equal(r.params["norm"][k], v)
        np.testing.assert_array_equal(_arrays(r.checkpoint)[f"norm/{k}"], v)


def test_window_batches_train_and_masked_steps_weigh_nothing(scripted_file, tmp_path):
    ds = TrajectoryDataset(scripted_file[0], horizon=8)
    boundary = int(ds.episode_lengths[0])
    items = [ds[i] for i in range(boundary - 12, boundary + 4)]  # windows padded at episode 0's end, and episode 1's
    batch = {"observations": {k: np.stack([it["observations"][k] for it in items]) for k in ds.obs_keys},
             "actions": np.stack([it["actions"] for it in items]), "mask": np.stack([it["mask"] for it in items])}
    obs, actions, weights = flat_batch(batch, ds.obs_keys)
    assert obs.shape == (16 * 8, 20) and 0 < weights.sum() < 16 * 8
    net, norm = MODEL.init(jax.random.key(0)), MODEL.identity_norm()
    garbage = np.where(weights[:, None] > 0, actions, 1e3)
    assert float(MODEL.loss(net, norm, obs, garbage, weights)) == pytest.approx(
        float(MODEL.loss(net, norm, obs, actions, weights)))
    r = Trainer(MODEL, [batch], TrainConfig(max_steps=3, output_dir=tmp_path, progress=False)).train()
    assert np.isfinite(r.losses[-1][1])


def test_model_and_batches_must_agree(dataset, tmp_path):
    with pytest.raises(ValueError, match=r"joint_pos 7 \+ joint_vel 7 \+ ee_pos 3 \+ target_pos 3 = 20.*state_dim=19"):
        _train(dataset, tmp_path, model=ModelRegistry.create("bc", state_dim=19, action_dim=4))


def test_existing_checkpoints_need_resume_or_overwrite(dataset, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained[1], run)
    with pytest.raises(FileExistsError, match="already holds checkpoints.*--resume.*--overwrite"):
        _train(dataset, run, steps=5)
    _train(dataset, run, steps=5, every=0, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["final.npz", "metrics.jsonl"]  # the old checkpoints are gone
    assert [r["step"] for r in metrics.read(run / "metrics.jsonl")] == [1, 5]  # and so are the old run's metrics
    with pytest.raises(ValueError, match="nothing to resume"):
        _train(dataset, tmp_path / "empty", resume=True)
    with pytest.raises(ValueError, match="is at step 5, past max_steps=3"):
        _train(dataset, run, steps=3, resume=True)


def test_resume_after_an_interruption_equals_an_unbroken_run(dataset, trained, tmp_path):
    """A run killed after its step-200 checkpoint, resumed: the final checkpoint is bit-identical (weights,
    normalization, optimizer state) to the unbroken run's."""
    (tmp_path / "run").mkdir()
    shutil.copy(trained[1] / "step_00000200.npz", tmp_path / "run")
    r = _train(dataset, tmp_path / "run", resume=True)
    assert r.losses[0][0] == 201
    _assert_same_arrays(_arrays(trained[1] / "final.npz"), _arrays(r.checkpoint))
    with pytest.raises(ValueError, match="cannot resume from .*: lr, seed differ"):
        _train(dataset, tmp_path / "run", resume=True, lr=0.5, seed=3)


# ------------------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trips_bit_exactly(trained, tmp_path):
    result, out = trained
    loaded = ckpt.load(out / "final.npz")
    for name in ("net", "norm"):
        got = loaded.tree(name, result.params[name])
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(result.params[name])):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, np.asarray(b))
    config = {k: v for k, v in loaded.config.items() if k not in ("schema", "schema_version", "arrays", "path")}
    again = ckpt.save(tmp_path / "again.npz", config, loaded.arrays)
    _assert_same_arrays(loaded.arrays, _arrays(again))
    with zipfile.ZipFile(out / "final.npz") as z:  # readable without mjxgen
        meta = json.loads(z.read("config.json"))
    assert meta["schema"] == "mjxgen-checkpoint" and meta["model"] == MODEL.to_json()
    assert meta["env_name"] == "reach" and meta["obs_keys"] == ["joint_pos", "joint_vel", "ee_pos", "target_pos"]
    assert meta["dataset"]["episodes"] == 64 and len(meta["dataset"]["sha256"]) == 64
    assert meta["train"]["lr"] == LR and meta["train"]["batch_size"] == 64 and "optax" in meta["versions"]


def _rewrite(src, dst, edit_config=None, members=None, drop=()):
    """Copy checkpoint src to dst with its config edited and members replaced/added (name -> bytes) or dropped."""
    members = members or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop or name in members:
                continue
            data = zin.read(name)
            if name == "config.json" and edit_config is not None:
                config = json.loads(data)
                edit_config(config)
                data = json.dumps(config).encode()
            zout.writestr(name, data)
        for name, data in members.items():
            zout.writestr(name, data)
    return dst


class _Payload:
    """Unpickling this runs a shell command: it must never happen."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_payload_is_refused_unexecuted(trained, tmp_path):
    import io

    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([_Payload(marker)], dtype=object), allow_pickle=True)

    def manifest(config):
        config["arrays"]["norm/obs_mean"] = {"shape": [1], "dtype": "|O"}

    bad = _rewrite(trained[1] / "final.npz", tmp_path / "bad.npz", manifest,
                   members={"norm/obs_mean.npy": buf.getvalue()})
    with pytest.raises(ckpt.CheckpointError, match="norm/obs_mean is a pickled object array; refused"):
        ckpt.load(bad)
    assert cli.main(["eval", str(bad), "--n-episodes", "2"]) == 2
    assert not marker.exists()


def _set(key, value):
    return lambda config: config.__setitem__(key, value)


def _del(key):
    return lambda config: config.pop(key)


@pytest.mark.parametrize("edit, message", [
    (_set("schema", "torch"), "not an mjxgen checkpoint \\(schema is not 'mjxgen-checkpoint'\\)"),
    (_set("schema_version", 2), "has checkpoint schema version 2; this mjxgen reads version 1"),
    (_del("obs_keys"), "config field 'obs_keys' is missing"),
    (_set("step", "ten"), "config field 'step' is missing or not a int"),
    (lambda c: c["arrays"]["net/layers/0/w"].update(shape=[3, 3]),
     "net/layers/0/w is <f4\\[20, 256\\], but the manifest"),
    (lambda c: c["arrays"].pop("norm/obs_std"), "members do not match the manifest \\(unexpected \\['norm/obs_std'\\]"),
])
def test_wrong_schemas_are_refused(trained, tmp_path, edit, message):
    bad = _rewrite(trained[1] / "final.npz", tmp_path / "bad.npz", edit)
    with pytest.raises(ckpt.CheckpointError, match=message):
        ckpt.load(bad)


def test_files_that_are_not_checkpoints_are_refused(trained, tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    np.savez(tmp_path / "plain.npz", w=np.ones(3))
    src = trained[1] / "final.npz"
    cases = {
        tmp_path / "missing.npz": "no such checkpoint file",
        tmp_path / "text.npz": "not an .npz archive",
        tmp_path / "plain.npz": "no config.json",
        _rewrite(src, tmp_path / "json.npz", members={"config.json": b"{not json"}): "unreadable config.json",
        _rewrite(src, tmp_path / "short.npz", drop=("net/layers/0/b.npy",)): "missing \\['net/layers/0/b'\\]",
    }
    for path, message in cases.items():
        with pytest.raises(ckpt.CheckpointError, match=message):
            ckpt.load(path)


# ------------------------------------------------------------------------------------------------ evaluation


def test_trained_policy_beats_the_untrained_one(trained_eval, untrained):
    before = evaluate(untrained, "reach", EVAL_N, max_steps=EVAL_T)
    assert before.success_rate <= 0.1 and trained_eval.success_rate >= 0.3  # 300 steps on 64 episodes: ~47%
    assert trained_eval.mean_reward > before.mean_reward
    assert trained_eval.fresh is True and trained_eval.n_calls == 1  # seed 1 vs the data's seed 7


def test_a_second_checkpoint_of_the_same_architecture_adds_no_trace(trained, trained_eval):
    key = ("reach", "bc", EVAL_T, EVAL_N, rollout.SEGMENT_STEPS)
    before = rollout.TRACE_COUNT[key]
    assert before >= 1
    earlier = evaluate(trained[1] / "step_00000100.npz", "reach", EVAL_N, max_steps=EVAL_T)
    assert rollout.TRACE_COUNT[key] == before
    assert earlier.mean_reward != trained_eval.mean_reward  # other weights, same compiled rollout
    env = rollout.make_env("reach")
    a, pa, _ = load_policy(trained[1] / "final.npz", env)
    b, pb, _ = load_policy(trained[1] / "step_00000100.npz", env)
    assert a == b and hash(a) == hash(b) and isinstance(a, NetworkPolicy)
    assert not np.array_equal(pa["net"]["layers"][0]["w"], pb["net"]["layers"][0]["w"])


def test_evaluate_checks_its_arguments(trained):
    final = trained[1] / "final.npz"
    for kwargs, message in [({"n_episodes": 0}, "n_episodes"), ({"batch": 0}, "batch"),
                            ({"seed": -1}, "seed"), ({"max_steps": 0}, "max_steps")]:
        with pytest.raises(ValueError, match=message):
            evaluate(final, "reach", **kwargs)


def _run_cli(argv, capsys):
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own errors
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def _table(out):
    return {k.strip(): v.strip() for k, v in (line.split("  ", 1) for line in out.splitlines() if "  " in line)}


def test_eval_cli_flags_show_in_the_table_and_the_file(trained, tmp_path, capsys):
    final = trained[1] / "final.npz"
    flags = ["--n-episodes", 6, "--batch", 4, "--max-steps", 10]
    status, out, _ = _run_cli(["eval", final, "--env-name", "reach", *flags, "--seed", 5, "--randomize",
                               "--output", tmp_path / "a.h5"], capsys)
    assert status == 0
    table = _table(out)
    assert table["Episodes"].startswith("6 (seed 5, max steps 10;") and table["Batch"] == "4 x 2"
    assert table["Env"] == "reach (randomized)" and table["Output path"] == str(tmp_path / "a.h5")
    assert rollout.TRACE_COUNT[("reach", "bc", 10, 4, rollout.SEGMENT_STEPS)] == 1  # --max-steps and --batch shape the compiled call
    status, out, _ = _run_cli(["eval", trained[1], *flags, "--output", tmp_path / "b.h5"], capsys)  # a directory
    assert status == 0 and _table(out)["Env"] == "reach"  # the checkpoint's env
    a, b = TrajectoryDataset(tmp_path / "a.h5"), TrajectoryDataset(tmp_path / "b.h5")
    assert a.n_episodes == b.n_episodes == 6 and a.attrs["policy"] == "bc"
    assert a.attrs["seed"] == 5 and b.attrs["seed"] == 1
    home = TrajectoryDataset(tmp_path / "b.h5").episode(0)["observations"]["joint_pos"][0]
    assert not np.allclose(a.episode(0)["observations"]["joint_pos"][0], home)  # --randomize: start noise
    assert a.episode_lengths.max() <= 10 and json.loads(a.attrs["config"])["max_steps"] == 10
    assert not np.array_equal(a.observations["target_pos"], b.observations["target_pos"])  # --seed
    with h5py.File(tmp_path / "a.h5", "r") as f, h5py.File(tmp_path / "b.h5", "r") as f_b:
        assert "randomization" in f["episode_0"] and "randomization" not in f_b["episode_0"]  # --randomize
        friction = np.array([f[f"episode_{e}/randomization/friction_scale"][()] for e in range(6)])
        assert friction.std() > 0.01 and friction.min() >= 0.8 and friction.max() <= 1.2
    status, _, err = _run_cli(["eval", final, *flags, "--output", tmp_path / "a.h5"], capsys)
    assert status == 2 and "already exists" in err
    assert _run_cli(["eval", final, *flags, "--output", tmp_path / "a.h5", "--overwrite"], capsys)[0] == 0


def test_eval_max_steps_is_the_horizon_of_the_evaluations_while_training(dataset, tmp_path):
    """TrainConfig.eval_max_steps: 10 steps, far too few for reach (its episodes take ~66), so every evaluated
    episode runs to the horizon and none succeeds. The (T, B) = (10, 4) rollout of MODEL is the one the eval flags'
    test above compiles (a chunk is the same program as a batch of its size)."""
    r = _train(dataset, tmp_path, steps=2, every=0, eval_every=2, eval_episodes=4, eval_max_steps=10)
    [(step, ev)] = r.evals
    assert step == 2 and ev["mean_length"] == 10 and ev["success_rate"] == 0
    assert metrics.read(tmp_path / "metrics.jsonl")[-1] | {"loss": 0, "lr": 0} == {
        "step": 2, "loss": 0, "lr": 0, "success_rate": 0.0, "mean_length": 10.0, "eval_episodes": 4}


def test_eval_cli_bad_input_is_one_line(trained, tmp_path, capsys):
    final = trained[1] / "final.npz"
    keys = ["ee_pos", "joint_pos", "joint_vel", "object_pos"]
    other_keys = _rewrite(final, tmp_path / "keys.npz", _set("obs_keys", keys))
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for argv, message in [
        (["eval", tmp_path / "nope.npz"], "no such checkpoint file"),
        (["eval", final, "--env-name", "pick_place"], "was trained on reach, not pick_place"),
        (["eval", other_keys], "uses observations object_pos that reach does not have"),
        (["eval", tmp_path / "notes.txt"], "not an mjxgen checkpoint"),
        (["eval", final, "--env-name", "juggle"], "unknown env 'juggle'"),
        (["eval", final, "--n-episodes", "0"], "must be a positive integer"),
    ]:
        status, out, err = _run_cli(argv, capsys)
        assert status == 2 and message in err and err.strip().count("\n") == 0, (argv, err)


# ------------------------------------------------------------------------------------------------ mjxgen train

TRAIN_FLAGS = ["--model", "bc", "--max-steps", 20, "--batch-size", 16, "--lr", 0.003, "--seed", 3,
               "--checkpoint-every", 10, "--obs-keys", "target_pos", "ee_pos", "--no-progress"]


@pytest.fixture(scope="module")
def cli_run(scripted_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main([str(a) for a in ["train", "--dataset", scripted_file[0], *TRAIN_FLAGS, "--output-dir", out]]) == 0
    return out


def test_train_cli_flags_show_in_the_checkpoint(cli_run, scripted_file, capsys):
    assert sorted(p.name for p in cli_run.iterdir()) == ["final.npz", "metrics.jsonl", "step_00000010.npz",
                                                         "step_00000020.npz"]
    loaded = ckpt.load(cli_run / "final.npz")
    config = loaded.config
    assert config["step"] == 20  # --max-steps
    assert config["obs_keys"] == ["target_pos", "ee_pos"] and config["model"]["state_dim"] == 6  # --obs-keys
    assert config["train"]["batch_size"] == 16 and config["train"]["seed"] == 3
    assert training.TRACE_COUNT[(ModelRegistry.from_json(config["model"]), 16)] == 1  # --batch-size: 16-row steps
    assert float(loaded.arrays["opt/hyperparams/learning_rate"]) == pytest.approx(0.003)  # --lr, as Adam used it
    assert config["dataset"]["path"] == str(scripted_file[0])  # --dataset


def test_train_cli_seed_sets_the_init(scripted_file, tmp_path, capsys):
    """--seed 3 with a negligible lr leaves the weights at BCModel.init(key(3)); another seed, others."""
    base = ["train", "--dataset", scripted_file[0], "--max-steps", 1, "--lr", 1e-12, "--checkpoint-every", 0,
            "--no-progress"]
    for seed in (3, 4):
        assert _run_cli([*base, "--seed", seed, "--output-dir", tmp_path / str(seed)], capsys)[0] == 0
    w = {s: _arrays(tmp_path / str(s) / "final.npz")["net/layers/0/w"] for s in (3, 4)}
    np.testing.assert_allclose(w[3], MODEL.init(jax.random.key(3))["layers"][0]["w"], atol=1e-9)
    assert not np.allclose(w[3], w[4])


def test_train_cli_resume_continues_to_the_same_result(cli_run, scripted_file, tmp_path, capsys):
    base = ["train", "--dataset", scripted_file[0], *TRAIN_FLAGS, "--output-dir", tmp_path]
    assert _run_cli([*base, "--max-steps", 10], capsys)[0] == 0  # a run stopped at step 10
    status, out, err = _run_cli([*base, "--resume"], capsys)  # ... continued to 20
    assert status == 0 and _table(out)["Steps"].startswith("20 (batch 16, lr 0.003)")
    _assert_same_arrays(_arrays(cli_run / "final.npz"), _arrays(tmp_path / "final.npz"))
    status, _, err = _run_cli([*base, "--resume", "--lr", "0.01"], capsys)
    assert status == 2 and "lr differ" in err and err.strip().count("\n") == 0


def test_train_cli_progress_output_dir_and_overwrite(scripted_file, tmp_path, capsys):
    base = ["train", "--dataset", scripted_file[0], "--max-steps", 5, "--checkpoint-every", 0]
    status, out, err = _run_cli([*base, "--output-dir", tmp_path / "here"], capsys)
    assert status == 0 and "train bc" in err and "loss=" in err  # the tqdm bar, with the loss
    assert _table(out)["Checkpoint"] == str(tmp_path / "here" / "final.npz")
    assert (tmp_path / "here" / "final.npz").is_file()
    status, _, err = _run_cli([*base, "--output-dir", tmp_path / "here", "--no-progress"], capsys)
    assert status == 2 and "already holds checkpoints" in err and "train bc" not in err
    assert _run_cli([*base, "--output-dir", tmp_path / "here", "--overwrite"], capsys)[0] == 0


def test_train_cli_bad_input_is_one_line(scripted_file, tmp_path, capsys):
    (tmp_path / "notes.h5").write_text("not a dataset")
    for argv, message in [
        (["--dataset", tmp_path / "missing.h5"], "missing.h5: no such file"),
        (["--dataset", tmp_path / "notes.h5"], "not an HDF5 file"),
        (["--dataset", scripted_file[0], "--model", "gpt"], "invalid choice: 'gpt'"),
        (["--dataset", scripted_file[0], "--obs-keys", "joint_angles"], "no observation 'joint_angles'"),
        (["--dataset", scripted_file[0], "--lr", "0"], "--lr: must be a positive number"),
        (["--dataset", scripted_file[0], "--batch-size", "100000"], "batch_size 100000 exceeds"),
        (["--max-steps", "5"], "the following arguments are required: --dataset"),
    ]:
        status, _, err = _run_cli(["train", *argv, "--output-dir", tmp_path / "ck", "--no-progress"], capsys)
        assert status == 2 and message in err and err.strip().count("\n") == 0, (argv, err)
    assert not (tmp_path / "ck").exists()
