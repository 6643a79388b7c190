"""What a training checkpoint records besides the weights: the run's Meta (observation keys and shapes, the
dataset), the settings a resumed run must share with it, and save_checkpoint, which writes one
(mjxgen.learn.checkpoints).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import optax

from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.data.formats import IMAGE
from mjxgen.learn import checkpoints as ckpt
from mjxgen.learn.models import ModelRegistry
from mjxgen.runtime.versions import package_versions

# Settings a resumed run must share with the checkpoint it continues (the lr schedule's horizon, max_steps, too
# when the schedule decays).
RESUME_KEYS = ("model", "obs_keys", "dataset_sha256", "lr", "seed", "batch_size", "lr_schedule", "warmup_steps",
               "val_fraction")
# TrainConfig fields that do not go into a checkpoint's "train" settings (how this call runs, not what it trains).
_CALL_ONLY = ("resume", "overwrite", "progress")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Meta:
    """What the first batch and the dataset say about the run (stored in every checkpoint)."""

    obs_keys: tuple[str, ...]
    obs_shapes: dict[str, list[int]]
    batch_size: int  # rows of a batch before windows are flattened
    env_name: str | None
    dataset: dict | None


def meta_of(model: Any, loader: Any, batch: dict, config) -> Meta:
    """Observation keys (the batch's order, images left out) and shapes, checked against the model."""
    if not isinstance(batch, dict) or not isinstance(batch.get("observations"), dict) or "actions" not in batch:
        raise TypeError('a batch must be a dict {"observations": {key: (B, ...)}, "actions": (B, A)}')
    keys = tuple(k for k in batch["observations"] if k != IMAGE)
    if isinstance(getattr(loader, "obs", None), dict):  # BatchLoader: the dataset's own shapes
        shapes = {k: list(loader.obs[k].shape[1:]) for k in keys}
    else:
        lead = np.ndim(batch["actions"]) - 1
        shapes = {k: list(np.shape(batch["observations"][k])[lead:]) for k in keys}
    sizes = {k: int(np.prod(s)) for k, s in shapes.items()}
    if sum(sizes.values()) != model.state_dim or np.shape(batch["actions"])[-1] != model.action_dim:
        parts = " + ".join(f"{k} {n}" for k, n in sizes.items())
        raise ValueError(f"the batches have observations {parts} = {sum(sizes.values())} and actions "
                         f"{np.shape(batch['actions'])[-1]}, but the model has state_dim={model.state_dim}, "
                         f"action_dim={model.action_dim}")
    ds = getattr(loader, "dataset", None)
    ds = ds if isinstance(ds, TrajectoryDataset) else None
    return Meta(obs_keys=keys, obs_shapes=shapes, batch_size=int(np.shape(batch["actions"])[0]),
                env_name=None if ds is None else str(ds.attrs["env_name"]),
                dataset=None if ds is None else dataset_info(ds))


def _resume_values(model: Any, meta: Meta, config) -> dict:
    values = {"model": model.to_json(), "obs_keys": list(meta.obs_keys),
              "dataset_sha256": (meta.dataset or {}).get("sha256"), "lr": float(config.lr), "seed": int(config.seed),
              "batch_size": meta.batch_size, "lr_schedule": config.lr_schedule,
              "warmup_steps": int(config.warmup_steps), "val_fraction": float(config.val_fraction)}
    return values | ({"max_steps": int(config.max_steps)} if config.lr_schedule != "constant" else {})


def _resume_view(config: dict) -> dict:
    """A checkpoint config's values of the resume keys (older checkpoints: the defaults they were trained with)."""
    train = config.get("train") or {}
    view = {"model": config.get("model"), "obs_keys": config.get("obs_keys"),
            "dataset_sha256": (config.get("dataset") or {}).get("sha256"), "lr": train.get("lr"),
            "seed": train.get("seed"), "batch_size": train.get("batch_size"),
            "lr_schedule": train.get("lr_schedule", "constant"), "warmup_steps": train.get("warmup_steps", 0),
            "val_fraction": float(train.get("val_fraction", 0.0))}
    return view | ({"max_steps": train.get("max_steps")} if view["lr_schedule"] != "constant" else {})


def resume_differences(checkpoint_config: dict, model: Any, meta: Meta, config) -> list[str]:
    """The settings in which this run differs from the checkpoint it would continue (none: it may resume)."""
    mine, theirs = _resume_values(model, meta, config), _resume_view(checkpoint_config)
    try:  # a checkpoint from before a model field existed holds that field's default
        theirs["model"] = ModelRegistry.from_json(theirs["model"]).to_json()
    except (TypeError, ValueError):
        pass
    return [k for k in mine if mine[k] != theirs.get(k)]


def save_checkpoint(trainer: Any, name: str, meta: Meta, step: int, state: tuple, loss: float | None) -> Path:
    """Write checkpoint `name` in the trainer's output directory: (net, optimizer state, normalization) and the
    run's config."""
    net, opt_state, norm = state
    train = {k: v for k, v in dataclasses.asdict(trainer.config).items() if k not in _CALL_ONLY}
    config = {"model": trainer.model.to_json(), "obs_keys": list(meta.obs_keys), "obs_shapes": meta.obs_shapes,
              "env_name": meta.env_name, "dataset": meta.dataset, "normalization": trainer.norm_source,
              "step": int(step), "loss": loss,
              "train": train | {"lr": float(trainer.config.lr), "batch_size": meta.batch_size},
              "versions": package_versions() | {"optax": optax.__version__}}
    arrays = ckpt.flatten(net, "net") | ckpt.flatten(norm, "norm") | ckpt.flatten(opt_state, "opt")
    return ckpt.save(trainer.out / name, config, arrays)


def dataset_info(ds: TrajectoryDataset) -> dict:
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
