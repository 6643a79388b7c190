"""Training a policy on a dataset: TrainConfig, the in-memory shuffled BatchLoader, and the Trainer (seed 000's
`Trainer(model, loader, config).train()`), with a jitted optax step and checkpoints (mjxgen.learn.checkpoints).

The Trainer takes any iterable of batches {"observations": {key: (B, ...)}, "actions": (B, A)} of NumPy arrays
or torch tensors (seed 000's torch DataLoader over TrajectoryDataset works when torch is installed; windows of
`horizon` steps with a "mask" are flattened, masked steps weigh 0). Our BatchLoader is the fast path: it
loads the dataset's non-image arrays once and draws batch s from (seed, s) alone, so --resume reproduces an
uninterrupted run exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import itertools
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from mjxgen.learn import checkpoints as ckpt
from mjxgen.learn import models
from mjxgen.learn.minibatches import BatchLoader, flat_batch  # noqa: F401 (BatchLoader: part of this module's API)
from mjxgen import checks
from mjxgen.checks import setting
from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.data.formats import IMAGE
from mjxgen.runtime.versions import package_versions

# Traces of the jitted training step, keyed by (model, batch rows): a second Trainer of the same model and
# batch shape reuses the compiled step (the learning rate is an argument of it, not a constant).
TRACE_COUNT: collections.Counter = collections.Counter()
# Settings a resumed run must share with the checkpoint it continues.
RESUME_KEYS = ("model", "obs_keys", "dataset_sha256", "lr", "seed", "batch_size")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train (seed 000's TrainConfig(max_steps=50_000, lr=1e-4)). Keyword-only, validated. Its fields are
    the settings table of `mjxgen train` too (mjxgen.cli.learn): each flag's name, default, check and help."""

    max_steps: int = setting(50_000, "optimizer steps (one batch each)", check=checks.positive_int)
    lr: float = setting(1e-4, "Adam's learning rate (constant)", check=checks.positive_float)
    seed: int = setting(0, "the weights' init key; the BatchLoader's shuffling takes its own seed",
                        flag_help="the weights' init and the batches' shuffling seed", check=checks.seed)
    output_dir: str = setting("checkpoints", "where checkpoints go: final.npz at the end, step_<n>.npz every "
                                             "checkpoint_every steps", flag_help="where checkpoints go", check=checks.path)
    checkpoint_every: int = setting(10_000, "steps between periodic checkpoints step_<n>.npz (0: only final.npz)",
                                    check=checks.non_negative_int)
    log_every: int = setting(100, "steps between loss read-backs (the tqdm bar and TrainResult.losses)", flag=None,
                             check=checks.positive_int)
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


@functools.cache
def _train_step(model):
    optimizer = adam(1e-4)  # the learning rate lives in the optimizer state (inject_hyperparams)

    def step(net, opt_state, norm, obs, actions, weights):
        TRACE_COUNT[(model, obs.shape[0])] += 1
        loss, grads = jax.value_and_grad(model.loss)(net, norm, obs, actions, weights)
        updates, opt_state = optimizer.update(grads, opt_state, net)
        return optax.apply_updates(net, updates), opt_state, loss

    return jax.jit(step)


def adam(lr: float) -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainResult:
    params: dict  # {"net": ..., "norm": ...}: what evaluation needs
    step: int  # optimizer steps done (max_steps)
    losses: list[tuple[int, float]]  # (step, loss) at this call's first step, every log_every steps, the last
    wall_s: float  # this call's training loop, compile included
    steps_per_s: float  # steps done by this call / wall_s
    checkpoint: Path  # final.npz


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Meta:
    """What the first batch and the dataset say about the run (stored in every checkpoint)."""

    obs_keys: tuple[str, ...]
    obs_shapes: dict[str, list[int]]
    batch_size: int  # rows of a batch before windows are flattened
    env_name: str | None
    dataset: dict | None


class Trainer:
    """Seed 000's `Trainer(model, loader, config).train()`: Adam on the model's loss, one jitted step per batch.

    `loader` is any iterable of batches (re-iterated for each epoch), e.g. our BatchLoader or torch's
    DataLoader over a TrajectoryDataset. When it has a TrajectoryDataset as `.dataset` (both do), the
    normalization comes from all of its steps and the checkpoint records the file, its hash and its env;
    otherwise from the first 50 batches. `normalization` ({"obs_mean", "obs_std", "act_mean", "act_std"})
    overrides both."""

    def __init__(self, model: Any, loader: Iterable[dict], config: TrainConfig | None = None, *,
                 normalization: dict | None = None):
        self.model, self.loader = model, loader
        self.config = TrainConfig() if config is None else config
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(self.config).__name__}")
        self.normalization = normalization
        self.dataset = getattr(loader, "dataset", None)
        self.out = Path(self.config.output_dir)

    def train(self) -> TrainResult:
        """Train to config.max_steps (from the newest checkpoint with resume=True); write final.npz."""
        cfg = self.config
        resumed = self._prepare_output()
        start = resumed.config["step"] if resumed else 0
        if start > cfg.max_steps:
            raise ValueError(f"{resumed.config['path']} is at step {start}, past max_steps={cfg.max_steps}")
        batches = self._batches(start)
        first = next(batches)
        meta = self._meta(first)
        net, opt_state, norm = self._initial_state(resumed, meta)
        step_fn, losses, loss = _train_step(self.model), [], None
        bar = tqdm(total=cfg.max_steps, initial=start, unit="step", desc=f"train {self.model.kind}",
                   disable=not cfg.progress)
        t0 = time.perf_counter()
        with bar:
            for done, batch in zip(range(start + 1, cfg.max_steps + 1), itertools.chain([first], batches)):
                net, opt_state, loss = step_fn(net, opt_state, norm, *flat_batch(batch, meta.obs_keys))
                if done % cfg.log_every == 0 or done in (start + 1, cfg.max_steps):
                    losses.append((done, float(loss)))
                    bar.set_postfix(loss=f"{losses[-1][1]:.4g}")
                    bar.update(done - bar.n)
                if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                    self._save(f"step_{done:08d}.npz", meta, done, net, opt_state, norm, float(loss))
        wall = time.perf_counter() - t0
        last = float(loss) if loss is not None else resumed.config.get("loss")
        path = self._save("final.npz", meta, cfg.max_steps, net, opt_state, norm, last)
        n = cfg.max_steps - start
        return TrainResult(params={"net": net, "norm": norm}, step=cfg.max_steps, losses=losses, wall_s=wall,
                           steps_per_s=n / wall if wall > 0 else 0.0, checkpoint=path)

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

    def _meta(self, batch: dict) -> _Meta:
        """Observation keys (the batch's order, images left out) and shapes, checked against the model."""
        if not isinstance(batch, dict) or not isinstance(batch.get("observations"), dict) or "actions" not in batch:
            raise TypeError('a batch must be a dict {"observations": {key: (B, ...)}, "actions": (B, A)}')
        keys = tuple(k for k in batch["observations"] if k != IMAGE)
        lead = np.ndim(batch["actions"]) - 1
        shapes = {k: list(np.shape(batch["observations"][k])[lead:]) for k in keys}
        sizes = {k: int(np.prod(s)) for k, s in shapes.items()}
        if sum(sizes.values()) != self.model.state_dim or np.shape(batch["actions"])[-1] != self.model.action_dim:
            parts = " + ".join(f"{k} {n}" for k, n in sizes.items())
            raise ValueError(f"the batches have observations {parts} = {sum(sizes.values())} and actions "
                             f"{np.shape(batch['actions'])[-1]}, but the model has state_dim={self.model.state_dim}, "
                             f"action_dim={self.model.action_dim}")
        ds = self.dataset if isinstance(self.dataset, TrajectoryDataset) else None
        return _Meta(obs_keys=keys, obs_shapes=shapes, batch_size=int(np.shape(batch["actions"])[0]),
                     env_name=None if ds is None else str(ds.attrs["env_name"]),
                     dataset=None if ds is None else _dataset_info(ds))

    def _initial_state(self, resumed: ckpt.Checkpoint | None, meta: _Meta):
        """(net, optimizer state, normalization): fresh from config.seed, or the resumed checkpoint's."""
        net = self.model.init(jax.random.key(self.config.seed))
        opt_state = adam(self.config.lr).init(net)
        if resumed is None:
            norm = self.normalization if self.normalization is not None else self._statistics(meta)
            return net, opt_state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), dict(norm))
        differ = [k for k in RESUME_KEYS if _resume_view(resumed.config).get(k) != self._resume_values(meta)[k]]
        if differ:
            raise ValueError(f"cannot resume from {resumed.config['path']}: {', '.join(differ)} differ")
        return (resumed.tree("net", net), resumed.tree("opt", opt_state),
                jax.tree.map(jnp.asarray, resumed.tree("norm", self.model.identity_norm())))

    def _statistics(self, meta: _Meta) -> dict:
        """The normalization: from every step of the dataset, else from the loader's first 50 batches."""
        if isinstance(self.dataset, TrajectoryDataset):
            obs = np.concatenate([self.dataset.observations[k].reshape(len(self.dataset.actions), -1)
                                  for k in meta.obs_keys], axis=1)
            return models.normalization(obs, self.dataset.actions)
        rows = [flat_batch(b, meta.obs_keys) for b in itertools.islice(self.loader, 50)]
        return models.normalization(np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]))

    def _resume_values(self, meta: _Meta) -> dict:
        return {"model": self.model.to_json(), "obs_keys": list(meta.obs_keys),
                "dataset_sha256": (meta.dataset or {}).get("sha256"), "lr": float(self.config.lr),
                "seed": int(self.config.seed), "batch_size": meta.batch_size}

    def _save(self, name: str, meta: _Meta, step: int, net, opt_state, norm, loss: float | None) -> Path:
        train = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in ("resume", "overwrite",
                                                                                         "progress")}
        config = {"model": self.model.to_json(), "obs_keys": list(meta.obs_keys), "obs_shapes": meta.obs_shapes,
                  "env_name": meta.env_name, "dataset": meta.dataset, "step": int(step), "loss": loss,
                  "train": train | {"lr": float(self.config.lr), "batch_size": meta.batch_size},
                  "versions": _versions()}
        arrays = ckpt.flatten(net, "net") | ckpt.flatten(norm, "norm") | ckpt.flatten(opt_state, "opt")
        return ckpt.save(self.out / name, config, arrays)


def _resume_view(config: dict) -> dict:
    """A checkpoint config's values of RESUME_KEYS."""
    train = config.get("train") or {}
    return {"model": config.get("model"), "obs_keys": config.get("obs_keys"),
            "dataset_sha256": (config.get("dataset") or {}).get("sha256"), "lr": train.get("lr"),
            "seed": train.get("seed"), "batch_size": train.get("batch_size")}


def _dataset_info(ds: TrajectoryDataset) -> dict:
    """Where the training data came from: the file, its SHA-256, its env, seed, policy and episodes."""
    sha = None
    if ds.path.is_file():
        h = hashlib.sha256()
        with open(ds.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        sha = h.hexdigest()
    return {"path": str(ds.path), "sha256": sha, "env_name": str(ds.attrs["env_name"]),
            "policy": str(ds.attrs["policy"]), "seed": int(ds.attrs["seed"]), "episodes": ds.n_episodes,
            "steps": len(ds), "episode_index": [int(ds.episode_index.min()), int(ds.episode_index.max())]}


def _versions() -> dict:
    return package_versions() | {"optax": optax.__version__}
