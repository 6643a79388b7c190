"""Training a policy on a dataset: TrainConfig and the Trainer (seed 000's `Trainer(model, loader, config).train()`),
with a jitted optax step, an optional validation split by episode, evaluation in simulation while training,
metrics.jsonl (mjxgen.learn.metrics) and checkpoints (mjxgen.learn.checkpoints, mjxgen.learn.train_state).

The Trainer takes any iterable of batches {"observations": {key: (B, ...)}, "actions": (B, A)} of NumPy arrays
or torch tensors (seed 000's torch DataLoader over TrajectoryDataset works when torch is installed; windows of
`horizon` steps with a "mask" are flattened, masked steps weigh 0). Our BatchLoader (mjxgen.learn.minibatches) is
the fast path: it loads the dataset's non-image arrays once, gives the model the observation history and action
chunks it asks for, and draws batch s from (seed, s) alone, so --resume reproduces an uninterrupted run exactly.

The normalization comes from the statistics a format v2 file stores (mjxgen.data.statistics, over every episode
of the file), else it is computed from every step of the dataset, else from the loader's first 50 batches.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import math
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from mjxgen import checks
from mjxgen.checks import setting
from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.learn import checkpoints as ckpt
from mjxgen.learn import models
from mjxgen.learn.metrics import MetricsLog
from mjxgen.learn.minibatches import BatchLoader, flat_batch, model_arrays, split_episodes  # noqa: F401 (API)
from mjxgen.learn.train_state import Meta, dataset_info, meta_of, resume_differences, save_checkpoint

# Traces of the jitted training step, keyed by (model, batch rows): a second Trainer of the same model and
# batch shape reuses the compiled step (the learning rate is an argument of it, not a constant).
TRACE_COUNT: collections.Counter = collections.Counter()
LR_SCHEDULES = ("constant", "cosine")
VAL_BATCH = 1024  # rows per validation batch (one compiled shape)
VAL_ROWS = 16384  # at most this many validation rows (evenly spaced), so a validation pass stays short
# Where a run's normalization came from (TrainResult.normalization, the checkpoint's "normalization").
NORM_SOURCES = {"stored": "the file's stored statistics", "dataset": "computed from every step of the dataset",
                "batches": "computed from the loader's first 50 batches", "given": "given to the Trainer"}

__all__ = ["BatchLoader", "TrainConfig", "TrainResult", "Trainer", "dataset_info", "flat_batch", "learning_rate"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train (seed 000's TrainConfig(max_steps=50_000, lr=1e-4)). Keyword-only, validated. Its fields are
    the settings table of `mjxgen train` too (mjxgen.cli.learn): each flag's name, default, check and help."""

    max_steps: int = setting(50_000, "optimizer steps (one batch each)", check=checks.positive_int)
    lr: float = setting(1e-4, "Adam's (peak) learning rate", check=checks.positive_float)
    lr_schedule: str = setting("constant", "the learning rate over the steps: constant, or cosine (from lr down to 0 "
                                           "at max_steps)", choices=LR_SCHEDULES)
    warmup_steps: int = setting(0, "steps of a linear warm-up from lr / warmup_steps to lr",
                                flag_help="steps of a linear learning-rate warm-up", check=checks.non_negative_int)
    seed: int = setting(0, "the weights' init key and the validation split; the BatchLoader's shuffling takes its "
                           "own seed", flag_help="the weights' init, the batches' shuffling and the validation "
                                                 "split's seed", check=checks.seed)
    output_dir: str = setting("checkpoints", "where checkpoints go: final.npz at the end, step_<n>.npz every "
                                             "checkpoint_every steps, and metrics.jsonl",
                              flag_help="where checkpoints and metrics.jsonl go", check=checks.path)
    checkpoint_every: int = setting(10_000, "steps between periodic checkpoints step_<n>.npz (0: only final.npz)",
                                    check=checks.non_negative_int)
    log_every: int = setting(100, "steps between loss read-backs (the tqdm bar, TrainResult.losses, metrics.jsonl)",
                             flag=None, check=checks.positive_int)
    val_fraction: float = setting(0.0, "whole episodes held out for a validation loss, round(val_fraction x "
                                       "episodes) drawn from seed (a BatchLoader's dataset; 0: none)",
                                  flag_help="share of the episodes held out for a validation loss (0: none)",
                                  check=checks.fraction)
    val_every: int = setting(1000, "steps between validation losses (and the last step)", check=checks.positive_int)
    eval_every: int = setting(0, "steps between evaluations in simulation (rollout_batch on eval_episodes fresh "
                                 "episodes; 0: none)", flag_help="steps between evaluations in simulation (0: none)",
                              check=checks.non_negative_int)
    eval_episodes: int = setting(64, "episodes per evaluation (seed mjxgen.learn.evaluate.EVAL_SEED, not the data's)",
                                 flag_help="episodes per evaluation", check=checks.episode_count)
    eval_max_steps: int = setting(200, "the horizon of those evaluations", flag=None, check=checks.positive_int)
    resume: bool = setting(False, "continue from the newest checkpoint in output_dir",
                           flag_help="continue from the newest checkpoint in --output-dir", check=checks.boolean)
    overwrite: bool = setting(False, "remove the checkpoints already in output_dir and start over",
                              flag_help="delete the checkpoints in --output-dir and start over", check=checks.boolean)
    progress: bool = setting(True, "show a tqdm bar with the loss", flag_help="hide the progress bar",
                             check=checks.boolean)

    def __post_init__(self):
        checks.check_fields(self)
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of update `step` (0-based): the warm-up ramp, then constant or the cosine decay."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    decay = 0.5 * (1.0 + math.cos(math.pi * step / config.max_steps)) if config.lr_schedule == "cosine" else 1.0
    return config.lr * warm * decay


def adam(lr: float) -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)


@functools.cache
def _train_step(model):
    optimizer = adam(1e-4)  # the learning rate lives in the optimizer state (inject_hyperparams)

    def step(net, opt_state, norm, lr, obs, actions, weights):
        TRACE_COUNT[(model, obs.shape[0])] += 1
        loss, grads = jax.value_and_grad(model.loss)(net, norm, obs, actions, weights)
        opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
        updates, opt_state = optimizer.update(grads, opt_state, net)
        return optax.apply_updates(net, updates), opt_state, loss

    return jax.jit(step)


@functools.cache
def _weighted_loss(model):
    def loss(net, norm, obs, actions, weights):
        return model.loss(net, norm, obs, actions, weights) * jnp.maximum(jnp.sum(weights), 1.0), jnp.sum(weights)

    return jax.jit(loss)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainResult:
    params: dict  # {"net": ..., "norm": ...}: what evaluation needs
    step: int  # optimizer steps done (max_steps)
    losses: list[tuple[int, float]]  # (step, loss) at this call's first step, every log_every steps, the last
    val_losses: list[tuple[int, float]]  # (step, validation loss) of this call, [] without a validation split
    evals: list[tuple[int, dict]]  # (step, metrics in simulation) of this call, [] without eval_every
    wall_s: float  # this call's training loop, compile included
    steps_per_s: float  # steps done by this call / wall_s
    checkpoint: Path  # final.npz
    metrics: Path  # metrics.jsonl
    normalization: str  # where the normalization came from: a key of NORM_SOURCES


def _model_dims(model) -> tuple[int, int]:
    return getattr(model, "n_obs", 1), getattr(model, "chunk", 1)


class Trainer:
    """Seed 000's `Trainer(model, loader, config).train()`: Adam on the model's loss, one jitted step per batch.

    `loader` is any iterable of batches (re-iterated for each epoch), e.g. our BatchLoader or torch's DataLoader
    over a TrajectoryDataset. A BatchLoader is re-cut for the model (its n_obs and chunk) and, with
    config.val_fraction, split by episode into training and validation. When the loader has a TrajectoryDataset
    as `.dataset`, the checkpoint records the file, its hash and its env, and the normalization is the file's
    stored statistics (format v2), else computed from every step of it: either way over every episode of the
    file, the validation episodes included (as LeRobot's dataset statistics). Otherwise the normalization comes
    from the first 50 batches. `normalization` ({"obs_mean", "obs_std", "act_mean", "act_std"}, and "grip" for a
    gripper head) overrides all of them."""

    def __init__(self, model: Any, loader: Iterable[dict], config: TrainConfig | None = None, *,
                 normalization: dict | None = None):
        self.model = model
        self.config = TrainConfig() if config is None else config
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(self.config).__name__}")
        self.normalization = normalization
        self.norm_source = "given" if normalization is not None else None
        self.dataset = getattr(loader, "dataset", None)
        self.out = Path(self.config.output_dir)
        self.loader, self.validation = self._split(loader)

    def _split(self, loader):
        """(training loader, validation loader or None)."""
        n_obs, chunk = _model_dims(self.model)
        if not isinstance(loader, BatchLoader):
            if self.config.val_fraction:
                raise ValueError("val_fraction needs a BatchLoader (it splits the dataset by episode)")
            return loader, None
        train, val = split_episodes(len(loader.dataset.episode_lengths), self.config.val_fraction, self.config.seed)
        train = np.intersect1d(loader.episodes, train)
        val = np.intersect1d(loader.episodes, val)
        cut = functools.partial(BatchLoader, loader.dataset, seed=loader.seed, n_obs=n_obs, chunk=chunk)
        # (the validation loader is read in order, VAL_BATCH rows at a time: its own batch size does not matter)
        return cut(loader.batch_size, episodes=train), (cut(1, episodes=val) if len(val) else None)

    def train(self) -> TrainResult:
        """Train to config.max_steps (from the newest checkpoint with resume=True); write final.npz."""
        cfg = self.config
        resumed = self._prepare_output()
        start = resumed.config["step"] if resumed else 0
        if start > cfg.max_steps:
            raise ValueError(f"{resumed.config['path']} is at step {start}, past max_steps={cfg.max_steps}")
        batches = self._batches(start)
        first = next(batches)
        meta = meta_of(self.model, self.loader, first, cfg)
        if cfg.eval_every and meta.env_name is None:
            raise ValueError("eval_every needs a loader over a TrajectoryDataset (its env is evaluated)")
        state = self._initial_state(resumed, meta)
        log = MetricsLog(self.out, start if resumed else None)
        run = _Run(self, meta, log, start)
        t0 = time.perf_counter()
        with run.bar:
            for done, batch in zip(range(start + 1, cfg.max_steps + 1), itertools.chain([first], batches)):
                state = run.step(done, state, batch)
        wall = time.perf_counter() - t0
        net, opt_state, norm = state
        last = run.loss if run.loss is not None else resumed.config.get("loss")
        path = save_checkpoint(self, "final.npz", meta, cfg.max_steps, state, last)
        n = cfg.max_steps - start
        return TrainResult(params={"net": net, "norm": norm}, step=cfg.max_steps, losses=run.losses,
                           val_losses=run.val_losses, evals=run.evals, wall_s=wall,
                           steps_per_s=n / wall if wall > 0 else 0.0, checkpoint=path, metrics=log.path,
                           normalization=self.norm_source)

    # --- set-up ----------------------------------------------------------------------------------------------
    def _prepare_output(self) -> ckpt.Checkpoint | None:
        """The checkpoint to resume from (resume=True), after checking that output_dir may be written."""
        existing = sorted([*self.out.glob("step_*.npz"), *self.out.glob("final.npz")])
        if self.config.resume:
            if not existing:
                raise ValueError(f"nothing to resume: {self.out} holds no checkpoint")
            return ckpt.load(max(existing, key=lambda p: ckpt.read_config(p)["step"]))
        if existing and not self.config.overwrite:
            raise FileExistsError(f"{self.out} already holds checkpoints ({', '.join(p.name for p in existing)}); "
                                  "continue with --resume or start over with --overwrite")
        for p in existing:
            p.unlink()
        return None

    def _batches(self, start: int) -> Iterator[dict]:
        if hasattr(self.loader, "batches"):  # BatchLoader: batch s from (seed, s), exactly as an unbroken run
            return self.loader.batches(start)

        def epochs():
            while True:
                empty = True
                for batch in self.loader:
                    empty = False
                    yield batch
                if empty:
                    raise ValueError("the loader yielded no batches")

        return epochs()

    def _initial_state(self, resumed: ckpt.Checkpoint | None, meta: Meta):
        """(net, optimizer state, normalization): fresh from config.seed, or the resumed checkpoint's."""
        net = self.model.init(jax.random.key(self.config.seed))
        opt_state = adam(self.config.lr).init(net)
        if resumed is None:
            norm = self.normalization if self.normalization is not None else self._statistics(meta)
            return net, opt_state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), dict(norm))
        differ = resume_differences(resumed.config, self.model, meta, self.config)
        if differ:
            raise ValueError(f"cannot resume from {resumed.config['path']}: {', '.join(differ)} differ")
        self.norm_source = resumed.config.get("normalization")
        return (resumed.tree("net", net), resumed.tree("opt", opt_state),
                jax.tree.map(jnp.asarray, resumed.tree("norm", self.model.identity_norm())))

    def _statistics(self, meta: Meta) -> dict:
        """The normalization (NORM_SOURCES says where from, in that order) and sets self.norm_source."""
        head = getattr(self.model, "gripper_head", False)
        ds = self.dataset if isinstance(self.dataset, TrajectoryDataset) else None
        if ds is None:
            rows = [self.arrays(b, meta) for b in itertools.islice(self.loader, 50)]
            obs, actions = [np.concatenate([r[i].reshape(-1, r[i].shape[-1]) for r in rows]) for i in (0, 1)]
            self.norm_source = "batches"
            return models.normalization(obs, actions, head)
        norm = models.stored_normalization(ds.statistics, meta.obs_keys, head)
        if norm is None:
            obs = np.concatenate([ds.observations[k].reshape(len(ds.actions), -1) for k in meta.obs_keys], axis=1)
            self.norm_source = "dataset"
            return models.normalization(obs, ds.actions, head)
        if head:
            models.check_binary_gripper(ds.actions)
        _check_stored(norm, self.model, ds.path)
        self.norm_source = "stored"
        return norm

    def arrays(self, batch: dict, meta: Meta):
        """A batch as the model's (obs, actions, weights)."""
        return model_arrays(batch, meta.obs_keys, self.model.state_dim, *_model_dims(self.model))


def _check_stored(norm: dict, model: Any, path) -> None:
    """A ValueError naming the file when its stored statistics do not fit the model or are not finite."""
    sizes = (len(norm["obs_mean"]), len(norm["act_mean"]))
    if sizes != (model.state_dim, model.action_dim):
        raise ValueError(f"{path}: its stored statistics have {sizes[0]} observation and {sizes[1]} action columns, "
                         f"but the model has state_dim={model.state_dim}, action_dim={model.action_dim}")
    if not all(np.isfinite(v).all() for v in norm.values()):
        raise ValueError(f"{path}: its stored statistics are not finite")


class _Run:
    """One call's loop state: the compiled functions, the bar, and what was measured."""

    def __init__(self, trainer: Trainer, meta: Meta, log: MetricsLog, start: int):
        self.trainer, self.meta, self.log, self.cfg = trainer, meta, log, trainer.config
        self.step_fn, self.start = _train_step(trainer.model), start
        self.losses, self.val_losses, self.evals, self.loss = [], [], [], None
        self.val_batches = None if trainer.validation is None else [
            trainer.arrays(b, meta) for b in trainer.validation.in_order(VAL_BATCH, VAL_ROWS)]
        self.bar = tqdm(total=self.cfg.max_steps, initial=start, unit="step", desc=f"train {trainer.model.kind}",
                        disable=not self.cfg.progress)
        self.postfix: dict[str, str] = {}

    def step(self, done: int, state, batch):
        """Update `done` (1-based), then whatever is due at it: the loss, validation, evaluation, a checkpoint."""
        cfg, trainer = self.cfg, self.trainer
        net, opt_state, norm = state
        lr = learning_rate(cfg, done - 1)
        net, opt_state, loss = self.step_fn(net, opt_state, norm, lr, *trainer.arrays(batch, self.meta))
        record = {}
        if done % cfg.log_every == 0 or done in (1, self.start + 1, cfg.max_steps):
            self.loss = float(loss)
            self.losses.append((done, self.loss))
            self.postfix["loss"] = f"{self.loss:.4g}"
            if done % cfg.log_every == 0 or done in (1, cfg.max_steps):
                record |= {"loss": self.loss, "lr": lr}
        if self.val_batches and (done % cfg.val_every == 0 or done == cfg.max_steps):
            record["val_loss"] = self._validate(net, norm)
            self.val_losses.append((done, record["val_loss"]))
            self.postfix["val"] = f"{record['val_loss']:.4g}"
        if cfg.eval_every and done % cfg.eval_every == 0:
            record |= self._evaluate(done, net, norm)
        if record:
            self.log.write({"step": done} | record)
            self.bar.set_postfix(self.postfix)
            self.bar.update(done - self.bar.n)
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
            save_checkpoint(trainer, f"step_{done:08d}.npz", self.meta, done, (net, opt_state, norm), float(loss))
        return net, opt_state, norm

    def _validate(self, net, norm) -> float:
        fn = _weighted_loss(self.trainer.model)
        parts = [fn(net, norm, *arrays) for arrays in self.val_batches]
        return float(sum(p[0] for p in parts) / max(float(sum(p[1] for p in parts)), 1.0))

    def _evaluate(self, done: int, net, norm) -> dict:
        from mjxgen.learn.evaluate import evaluate_params  # the rollout's modules load only when asked for

        cfg = self.cfg
        result = evaluate_params(self.meta.env_name, self.trainer.model, self.meta.obs_keys,
                                 {"net": net, "norm": norm}, cfg.eval_episodes, max_steps=cfg.eval_max_steps)
        self.evals.append((done, result))
        self.postfix["success"] = f"{result['success_rate']:.0%}"
        return {"success_rate": result["success_rate"], "mean_length": result["mean_length"],
                "eval_episodes": cfg.eval_episodes}
