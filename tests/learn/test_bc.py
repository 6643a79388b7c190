"""The BC model's history, chunks, temporal ensembling and gripper head; the validation split, metrics.jsonl,
evaluation while training and the lr schedule; the `mjxgen train` flags for them (TrainConfig's and BCConfig's).

Cheap: conftest's 64 scripted reach episodes, tens of steps, and one compiled evaluation rollout (reach, T = 200,
B = 32) shared by the Trainer's, the CLI's and evaluate()'s calls, and by tests/test_docs.py's scaled-down seed
000 pipeline: one model, CHUNKED, the one `mjxgen train --model bc` builds by default for reach.
"""

import json
import math
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from support import BATCH
from mjxgen import cli
from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.learn import checkpoints as ckpt
from mjxgen.learn import metrics
from mjxgen.learn.evaluate import evaluate
from mjxgen.learn.minibatches import BatchLoader, model_arrays, split_episodes
from mjxgen.learn.models import BCConfig, BCModel, binary_gripper, normalization, stored_normalization
from mjxgen.learn.training import TrainConfig, Trainer, learning_rate
from mjxgen.sim import rollout

# The recipe (8-action chunks, temporal ensembling, a gripper head), as the CLI builds it by default for reach.
CHUNKED = BCModel(state_dim=20, action_dim=4, **BCConfig(gripper_head="on").model_settings())
EVAL_N, EVAL_T = BATCH, 200
EVAL_KEY = ("reach", "bc", EVAL_T, EVAL_N, rollout.SEGMENT_STEPS)
STEPS, EVERY = 40, 20  # training steps; checkpoints, validation and evaluation every EVERY steps


@pytest.fixture(scope="module")
def dataset(scripted_file):
    return TrajectoryDataset(scripted_file[0])


def _config(out, **kw):
    settings = dict(max_steps=STEPS, lr=3e-3, output_dir=out, checkpoint_every=EVERY, log_every=10, val_fraction=0.25,
                    val_every=EVERY, eval_every=EVERY, eval_episodes=EVAL_N, eval_max_steps=EVAL_T, progress=False)
    return TrainConfig(**(settings | kw))


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    """An unbroken run of CHUNKED with a validation split and evaluation every EVERY steps."""
    out = tmp_path_factory.mktemp("chunked")
    trainer = Trainer(CHUNKED, BatchLoader(dataset, 32), _config(out))
    return trainer, trainer.train(), out


# ------------------------------------------------------------------------------------------- the model


def _constant_params(model, values):
    """A network without hidden layers whose output is `values` (chunk, A) whatever it sees."""
    net = {"layers": [{"w": jnp.zeros((model.n_obs * model.state_dim, model.chunk * model.action_dim)),
                       "b": jnp.asarray(values, jnp.float32).reshape(-1)}]}
    return {"net": net, "norm": model.identity_norm()}


def test_temporal_ensembling_averages_the_overlapping_chunks():
    """Chunk j predicts c_j for every step; the action at step t averages, over the chunks issued at t, t-1, ...,
    their predictions for t, each weighted by exp(-decay * its age)."""
    decay = 0.7
    model = BCModel(state_dim=2, action_dim=2, hidden=(), chunk=3, ensemble_decay=decay)
    c = np.array([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]])
    params = _constant_params(model, c)
    state = model.policy_init(jnp.zeros(2))
    w = np.exp(-decay * np.arange(3))
    expected = [c[0], (w[:2, None] * c[:2]).sum(0) / w[:2].sum(), (w[:, None] * c).sum(0) / w.sum()]
    for t in range(5):
        action, state = model.policy_step(params, state, jnp.zeros(2))
        np.testing.assert_allclose(action, expected[min(t, 2)], rtol=1e-6, err_msg=f"step {t}")


def test_gripper_head_chooses_between_the_two_gripper_values():
    """The gripper column is a logit; acting averages the chunks' probabilities and picks closed or open."""
    model = BCModel(state_dim=2, action_dim=2, hidden=(), chunk=2, gripper_head=True)
    params = _constant_params(model, [[0.5, -3.0], [0.5, 5.0]])  # now: closed (p 0.05); next step: open (p 0.99)
    params["norm"]["grip"] = jnp.array([-0.8, 0.6])
    np.testing.assert_allclose(model.predict(params, jnp.zeros((1, 2))), [[0.5, -0.8], [0.5, 0.6]])
    state = model.policy_init(jnp.zeros(2))
    first, state = model.policy_step(params, state, jnp.zeros(2))
    second, _ = model.policy_step(params, state, jnp.zeros(2))  # mean of p(open) 0.99 and 0.05: 0.52, open
    assert float(first[1]) == pytest.approx(-0.8) and float(second[1]) == pytest.approx(0.6)
    actions = np.array([[0.0, -0.8], [0.0, 0.6]])
    norm = normalization(np.zeros((2, 2)), actions, gripper_head=True)
    np.testing.assert_array_equal(norm["grip"], np.float32([-0.8, 0.6]))
    one = BCModel(state_dim=2, action_dim=2, hidden=(), gripper_head=True)  # the loss: cross-entropy of "open"
    net = {"layers": [{"w": jnp.zeros((2, 2)), "b": jnp.array([0.0, -3.0])}]}  # gripper logit -3
    loss = one.loss(net, norm, jnp.zeros((1, 2)), jnp.array([[0.0, -0.8]]), jnp.ones(1))  # target: closed
    assert float(loss) == pytest.approx(math.log1p(math.exp(-3.0)) / 2, rel=1e-5)  # (0 error + its BCE) / A
    loss = one.loss(net, norm, jnp.zeros((1, 2)), jnp.array([[0.0, 0.6]]), jnp.ones(1))  # target: open
    assert float(loss) == pytest.approx(math.log1p(math.exp(3.0)) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="at most two values; the data have 3"):
        normalization(np.zeros((3, 2)), np.array([[0, -1.0], [0, 0.0], [0, 1.0]]), gripper_head=True)
    assert binary_gripper(actions) and not binary_gripper(np.random.default_rng(0).uniform(-1, 1, (50, 4)))


def test_the_policy_carries_its_observation_history():
    """n_obs = 2: the first observation fills the history, each step shifts the new one in; a network that reads
    only the older observation acts on the previous step's."""
    model = BCModel(state_dim=1, action_dim=1, hidden=(), n_obs=2)
    net = {"layers": [{"w": jnp.array([[1.0], [0.0]]), "b": jnp.zeros(1)}]}  # rows: older, newer observation
    params = {"net": net, "norm": model.identity_norm()}
    state = model.policy_init(jnp.array([5.0]))
    np.testing.assert_array_equal(state.history, [[5.0], [5.0]])
    acted = []
    for x in (5.0, 7.0, 9.0):
        action, state = model.policy_step(params, state, jnp.array([x]))
        acted.append(float(action[0]))
    assert acted == [5.0, 5.0, 7.0]
    np.testing.assert_array_equal(state.history, [[7.0], [9.0]])


# ------------------------------------------------------------------------------------------- batches


def test_batch_loader_gives_history_and_chunks_inside_the_episode(dataset):
    loader = BatchLoader(dataset, 8, n_obs=3, chunk=5)
    length = int(dataset.episode_lengths[0])
    rows = np.array([0, 1, length - 2, length])  # episode 0's start, its second step, near its end; episode 1's start
    b = loader.take(rows)
    ee = dataset.observations["ee_pos"]
    np.testing.assert_array_equal(b["history"]["ee_pos"][0], ee[[0, 0]])  # before the start: the first step
    np.testing.assert_array_equal(b["history"]["ee_pos"][1], ee[[0, 0]])
    np.testing.assert_array_equal(b["history"]["ee_pos"][3], ee[[length, length]])  # not episode 0's last steps
    np.testing.assert_array_equal(b["history"]["ee_pos"][2], ee[[length - 4, length - 3]])
    assert b["mask"][2].tolist() == [True, True, False, False, False] and b["mask"][3].all()
    np.testing.assert_array_equal(b["actions"][2, 2:], np.repeat(dataset.actions[length - 1:length], 3, 0))
    obs, actions, weights = model_arrays(b, dataset.obs_keys, 20, n_obs=3, chunk=5)
    assert obs.shape == (4, 3, 20) and actions.shape == (4, 5, 4) and weights[2].tolist() == [1, 1, 0, 0, 0]
    keys = list(dataset.obs_keys)  # the flat observation: the keys in the file's order
    at = sum(dataset.observations[k].shape[1] for k in keys[:keys.index("ee_pos")])
    np.testing.assert_array_equal(obs[1, 2, at:at + 3], ee[1])  # the current step last
    np.testing.assert_array_equal(obs[1, 0, at:at + 3], ee[0])  # the oldest first
    windows = TrajectoryDataset(dataset.path, horizon=5)  # TrajectoryDataset windows train a chunk-5 model too
    items = [windows[int(r)] for r in rows]
    batch = {"observations": {k: np.stack([i["observations"][k] for i in items]) for k in dataset.obs_keys},
             "actions": np.stack([i["actions"] for i in items]), "mask": np.stack([i["mask"] for i in items])}
    w_obs, w_actions, w_weights = model_arrays(batch, dataset.obs_keys, 20, chunk=5)
    np.testing.assert_array_equal(w_obs[:, 0], obs[:, 2])
    np.testing.assert_array_equal(w_actions, actions)
    np.testing.assert_array_equal(w_weights, weights)
    with pytest.raises(ValueError, match="needs batches with a 'history'"):
        model_arrays({k: v for k, v in b.items() if k != "history"}, dataset.obs_keys, 20, n_obs=3, chunk=5)


def test_split_episodes_is_disjoint_complete_and_seeded():
    train, val = split_episodes(100, 0.2, seed=3)
    assert len(val) == 20 and not set(train) & set(val) and sorted([*train, *val]) == list(range(100))
    np.testing.assert_array_equal(split_episodes(100, 0.2, seed=3)[1], val)
    assert not np.array_equal(split_episodes(100, 0.2, seed=4)[1], val)
    assert len(split_episodes(10, 0.01)[1]) == 1 and len(split_episodes(10, 0.0)[1]) == 0
    for bad in (1.0, -0.1, True):
        with pytest.raises((TypeError, ValueError), match="val_fraction"):
            split_episodes(10, bad)


def test_learning_rate_schedules():
    cosine = TrainConfig(max_steps=100, lr=1.0, lr_schedule="cosine", warmup_steps=10)
    assert learning_rate(cosine, 0) == pytest.approx(0.1)  # warm-up: 1/10 of the peak
    assert learning_rate(cosine, 50) == pytest.approx(0.5)  # half way down the cosine
    assert learning_rate(cosine, 99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))
    assert learning_rate(TrainConfig(max_steps=100, lr=0.3), 99) == 0.3
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="warmup_steps must be a non-negative integer"):
        TrainConfig(warmup_steps=-1)


# ------------------------------------------------------------------------------------------- training


def _episode_of_rows(dataset, rows):
    return set(np.searchsorted(np.cumsum(dataset.episode_lengths), rows, side="right").tolist())


def test_validation_never_shares_an_episode_with_training(run, dataset):
    trainer, result, _ = run
    train_eps, val_eps = _episode_of_rows(dataset, trainer.loader.rows), _episode_of_rows(dataset, trainer.validation.rows)
    assert len(val_eps) == 16 and not train_eps & val_eps and len(train_eps | val_eps) == dataset.n_episodes
    assert set(trainer.validation.episodes) == val_eps
    np.testing.assert_array_equal(sorted(val_eps), split_episodes(64, 0.25, seed=0)[1])
    # The normalization is the file's stored statistics, over every episode (the held-out ones too, as LeRobot's);
    # the validation loss is the loss on the held-out episodes.
    stored = stored_normalization(dataset.statistics, dataset.obs_keys, gripper_head=True)
    for k, v in stored.items():
        np.testing.assert_array_equal(result.params["norm"][k], v, err_msg=k)
    train_obs = np.concatenate([dataset.observations[k][trainer.loader.rows] for k in dataset.obs_keys], axis=1)
    assert not np.allclose(stored["obs_mean"], train_obs.mean(0), rtol=1e-3)  # not the training episodes' alone
    assert result.normalization == "stored"
    dims = {"n_obs": CHUNKED.n_obs, "chunk": CHUNKED.chunk}
    held_out = BatchLoader(dataset, 32, episodes=sorted(val_eps), **dims)
    obs, actions, weights = model_arrays(held_out.take(held_out.rows), dataset.obs_keys, 20, **dims)
    val = float(CHUNKED.loss(result.params["net"], result.params["norm"], obs, actions, weights))
    assert result.val_losses[-1] == (STEPS, pytest.approx(val, rel=1e-4))
    assert [s for s, _ in result.val_losses] == [EVERY, STEPS]


def test_eval_every_records_success_at_the_steps_asked(run):
    _, result, out = run
    records = metrics.read(out / "metrics.jsonl")
    evals = [r for r in records if "success_rate" in r]
    assert [r["step"] for r in evals] == [EVERY, 2 * EVERY] and all(r["eval_episodes"] == EVAL_N for r in evals)
    assert [s for s, _ in result.evals] == [EVERY, 2 * EVERY]
    final = evaluate(out / "final.npz", "reach", EVAL_N, max_steps=EVAL_T)  # the same episodes, seed and weights
    assert evals[-1]["success_rate"] == final.success_rate and evals[-1]["mean_length"] == final.mean_length
    assert [r["step"] for r in records if "loss" in r] == [1, 10, 20, 30, 40]


def test_metrics_after_a_resume_equal_an_unbroken_runs(run, dataset, tmp_path):
    """A run broken off after step 30 (its last checkpoint at 20, a torn line at the end) and resumed writes the
    same metrics.jsonl as the unbroken run, and the same final weights."""
    _, _, out = run
    shutil.copy(out / "step_00000020.npz", tmp_path)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    broken = [line for line in lines if json.loads(line)["step"] <= 30]
    (tmp_path / "metrics.jsonl").write_text("\n".join(broken) + '\n{"step": 31, "lo')
    Trainer(CHUNKED, BatchLoader(dataset, 32), _config(tmp_path, resume=True)).train()
    assert (tmp_path / "metrics.jsonl").read_text() == (out / "metrics.jsonl").read_text()
    a, b = ckpt.load(out / "final.npz").arrays, ckpt.load(tmp_path / "final.npz").arrays
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with pytest.raises(ValueError, match="val_fraction differ"):
        Trainer(CHUNKED, BatchLoader(dataset, 32), _config(tmp_path, resume=True, val_fraction=0.5)).train()


def test_a_second_checkpoint_of_the_chunked_architecture_adds_no_trace(run):
    _, _, out = run
    before = rollout.TRACE_COUNT[EVAL_KEY]
    assert before >= 1  # the evaluations while training, and the one above, shared one trace
    a = evaluate(out / "step_00000020.npz", "reach", EVAL_N, max_steps=EVAL_T)
    b = evaluate(out / "final.npz", "reach", EVAL_N, max_steps=EVAL_T)
    assert rollout.TRACE_COUNT[EVAL_KEY] == before
    assert not np.array_equal(a.rollout.trajectory.actions, b.rollout.trajectory.actions)  # other weights


# ------------------------------------------------------------------------------------------- mjxgen train


def _cli(argv, capsys):
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def _table(out):
    return {k.strip(): v.strip() for k, v in (line.split("  ", 1) for line in out.splitlines() if "  " in line)}


@pytest.fixture(scope="module")
def cli_run(scripted_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-bc") / "run"
    argv = ["train", "--dataset", scripted_file[0], "--max-steps", 30, "--batch-size", 16, "--lr", 0.01,
            "--lr-schedule", "cosine", "--warmup-steps", 10, "--val-fraction", 0.125, "--val-every", 15,
            "--eval-every", 20, "--eval-episodes", EVAL_N, "--checkpoint-every", 0, "--no-progress",
            "--output-dir", out]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main([str(a) for a in argv]) == 0
    return out, _table(buf.getvalue())


def test_train_cli_model_flags_shape_the_network(cli_run, scripted_file, tmp_path, capsys):
    out, table = cli_run
    assert ckpt.read_config(out / "final.npz")["model"] == CHUNKED.to_json()  # the defaults: the recipe, a head
    assert table["Normalization"] == "the file's stored statistics"
    assert table["Model"] == "bc 1 x 20 -> 256 -> 256 -> 8 x 4; ensemble decay 0.1; gripper head"
    argv = ["train", "--dataset", scripted_file[0], "--max-steps", 2, "--checkpoint-every", 0, "--no-progress",
            "--hidden", 32, 16, "--n-obs", 2, "--chunk", 4, "--ensemble-decay", 0.5, "--output-dir", tmp_path]
    status, printed, _ = _cli(argv, capsys)
    loaded = ckpt.load(tmp_path / "final.npz")
    model = loaded.config["model"]
    assert status == 0 and model["hidden"] == [32, 16] and model["n_obs"] == 2 and model["chunk"] == 4
    assert model["ensemble_decay"] == 0.5 and model["gripper_head"] is True  # --gripper-head auto: reach's 0
    shapes = [loaded.arrays[f"net/layers/{i}/w"].shape for i in range(3)]
    assert shapes == [(2 * 20, 32), (32, 16), (16, 4 * 4)]  # 2 observations in, 4 actions out
    np.testing.assert_array_equal(loaded.arrays["norm/grip"], [0.0, 0.0])  # scripted reach: the gripper stays 0
    assert _table(printed)["Model"] == "bc 2 x 20 -> 32 -> 16 -> 4 x 4; ensemble decay 0.5; gripper head"


def test_train_cli_schedule_validation_and_evaluation_flags(cli_run):
    out, table = cli_run
    records = metrics.read(out / "metrics.jsonl")
    lrs = {r["step"]: r["lr"] for r in records if "lr" in r}
    assert lrs[1] == pytest.approx(0.001)  # --warmup-steps 10: a tenth of --lr 0.01 at the first step
    assert lrs[30] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 29 / 30)))  # --lr-schedule cosine
    assert [r["step"] for r in records if "val_loss" in r] == [15, 30]  # --val-every 15 (and the last step)
    evals = [r for r in records if "success_rate" in r]
    assert [(r["step"], r["eval_episodes"]) for r in evals] == [(20, EVAL_N)]  # --eval-every 20, --eval-episodes
    config = ckpt.read_config(out / "final.npz")
    assert config["train"]["val_fraction"] == 0.125 and config["train"]["lr_schedule"] == "cosine"
    assert table["Validation loss"].endswith("(8 held-out episodes)")  # --val-fraction 0.125 of 64
    assert table["Success (eval)"].endswith(f"at step 20 ({EVAL_N} episodes)")
    assert table["Steps"] == "30 (batch 16, lr 0.01, cosine)" and table["Metrics"] == str(out / "metrics.jsonl")


def test_train_cli_gripper_head_defaults_and_bad_values(scripted_file, tmp_path, capsys):
    base = ["train", "--dataset", scripted_file[0], "--max-steps", 2, "--checkpoint-every", 0, "--no-progress",
            "--hidden", 8]
    assert _cli([*base, "--gripper-head", "off", "--output-dir", tmp_path / "off"], capsys)[0] == 0
    config = ckpt.read_config(tmp_path / "off" / "final.npz")
    assert config["model"]["gripper_head"] is False and "norm/grip" not in config["arrays"]
    assert _cli([*base, "--gripper-head", "on", "--output-dir", tmp_path / "on"], capsys)[0] == 0
    assert ckpt.read_config(tmp_path / "on" / "final.npz")["model"]["gripper_head"] is True
    recipe = BCConfig(hidden=(8,)).model_settings()
    assert {k: config["model"][k] for k in recipe} == recipe | {"hidden": [8]}  # the recipe: an 8-chunk, ensembled
    for flags, message in [(["--val-fraction", "1"], "--val-fraction: must be a number in [0, 1)"),
                           (["--ensemble-decay", "nan"], "--ensemble-decay: must be a finite number"),
                           (["--lr-schedule", "step"], "invalid choice: 'step'"),
                           (["--gripper-head", "maybe"], "invalid choice: 'maybe'"),
                           (["--chunk", "0"], "--chunk: must be a positive integer")]:
        status, _, err = _cli([*base, *flags, "--output-dir", tmp_path / "bad"], capsys)
        assert status == 2 and message in err and err.strip().count("\n") == 0, (flags, err)
