"""generate_dataset(): batches of episodes -> rollout on the device -> background HDF5 writer -> stats."""

from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from mjxgen.envs import ENVS, make_env
from mjxgen.rollout import Rollout, rollout_batch
from mjxgen.writer import COMPRESSIONS, DatasetWriter


@dataclasses.dataclass(frozen=True)
class GenerationResult:
    """Seed 000's stats, plus how the run went."""

    stats: dict  # exactly seed 000's keys
    wall_s: float  # the whole run, compile included
    simulated_steps: int  # control steps simulated, padding past episode ends included
    physics_steps: int  # simulated_steps x substeps
    batch_size: int  # episodes per device call
    n_batches: int


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """Everything that decides a generated dataset. Validated on construction; stored in the file as JSON."""

    env_name: str = "reach"  # the task
    n_episodes: int = 100  # episodes to collect
    output_path: str = "data/dataset.h5"  # the HDF5 file
    policy_type: str = "random"  # "random" or "scripted"
    domain_randomization: bool = False  # not implemented yet: True is refused
    max_steps: int = 200  # horizon T in control steps; an episode ends at its first success
    seed: int = 42  # episode i's randomness is fold_in(key(seed), i)
    batch_size: int = 256  # most episodes per device call
    compression: str = "gzip"  # HDF5 codec: gzip, lzf or none
    overwrite: bool = False  # replace an existing output file
    progress: bool = True  # show a tqdm bar of episodes

    def __post_init__(self):
        if self.env_name not in ENVS:
            raise ValueError(f"unknown env {self.env_name!r}; choose one of: {', '.join(sorted(ENVS))}")
        for name in ("n_episodes", "max_steps", "batch_size"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        object.__setattr__(self, "seed", int(seed))
        object.__setattr__(self, "output_path", os.fspath(self.output_path))
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"unknown compression {self.compression!r}; choose one of {', '.join(COMPRESSIONS)}")
        if self.domain_randomization:
            raise NotImplementedError(
                "domain randomization is not implemented yet (it is planned: light direction and friction, "
                "seed 000); run without --randomize / domain_randomization=False"
            )


def writer_batch(host: Rollout, keep: np.ndarray) -> dict:
    """The episodes of a host-side Rollout selected by keep (B,), in DatasetWriter.write_batch's format."""
    tr = host.trajectory
    return {
        "episode_ids": host.episode_ids[keep],
        "lengths": host.lengths[keep],
        "success": host.success[keep],
        "rewards": tr.rewards[keep],
        "actions": tr.actions[keep],
        "observations": {key: v[keep] for key, v in tr.observations.items()},
        "episode_info": {key: v[keep] for key, v in host.episode_info.items()},
    }


def plan_batches(n_episodes: int, batch_size: int) -> tuple[int, int]:
    """(n_batches, episodes per batch): equal batches no larger than batch_size, so one compiled shape
    serves the whole run and the last batch wastes fewer than n_batches padding episodes."""
    n_batches = math.ceil(n_episodes / batch_size)
    return n_batches, math.ceil(n_episodes / n_batches)


def run_generation(cfg: GenerationConfig) -> GenerationResult:
    """Generate the dataset that cfg describes; return the stats together with timing."""
    env = make_env(cfg.env_name)
    env.policy(cfg.policy_type)  # a ValueError for an unknown name, before the output file is created
    n_batches, per_batch = plan_batches(cfg.n_episodes, cfg.batch_size)
    writer = DatasetWriter(
        cfg.output_path,
        env_name=cfg.env_name,
        policy=cfg.policy_type,
        seed=cfg.seed,
        config=dataclasses.asdict(cfg) | {"batch_size": per_batch, "env_config": env.config_dict()},
        model_xml=env.xml,
        obs_keys=tuple(env.obs_shapes),
        compression=cfg.compression,
        overwrite=cfg.overwrite,
    )

    def launch(k: int):
        ids = np.arange(k * per_batch, (k + 1) * per_batch)
        return rollout_batch(env, cfg.policy_type, ids, seed=cfg.seed, max_steps=cfg.max_steps)

    start = time.perf_counter()
    try:
        bar_label = f"{cfg.env_name}/{cfg.policy_type}"
        with tqdm(total=cfg.n_episodes, unit="ep", desc=bar_label, disable=not cfg.progress) as bar:
            pending = launch(0)
            for k in range(n_batches):
                # Dispatch batch k+1 before fetching batch k: the device simulates while the host writes.
                following = launch(k + 1) if k + 1 < n_batches else None
                host = jax.device_get(pending)
                keep = host.episode_ids < cfg.n_episodes  # the last batch may carry padding episodes
                writer.write_batch(writer_batch(host, keep))
                bar.update(int(keep.sum()))
                pending = following
        writer.close()
    except BaseException:
        writer.abort()
        raise
    wall = time.perf_counter() - start

    n = writer.episodes
    stats = {
        "total_episodes": n,
        "total_steps": writer.steps,
        "mean_episode_length": writer.steps / n,
        "mean_reward": writer.reward_sum / n,
        "success_rate": writer.successes / n,
        "output_path": str(writer.path),
        "file_size_mb": writer.path.stat().st_size / 1e6,
    }
    simulated = n_batches * per_batch * cfg.max_steps
    return GenerationResult(
        stats=stats,
        wall_s=wall,
        simulated_steps=simulated,
        physics_steps=simulated * env.arm.config.substeps,
        batch_size=per_batch,
        n_batches=n_batches,
    )


def generate_dataset(
    env_name: str = "reach",
    n_episodes: int = 100,
    output_path: str | os.PathLike = "data/dataset.h5",
    policy_type: str = "random",
    domain_randomization: bool = False,
    max_steps: int = 200,
    seed: int = 42,
    *,
    batch_size: int = 256,
    compression: str = "gzip",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Simulate n_episodes in batches and write them to an HDF5 file in seed 000's layout.

    Args:
      env_name: "reach" or "pick_place".
      n_episodes: number of episodes to collect.
      output_path: the HDF5 file to write; parent directories are created. An existing file is refused
        unless overwrite=True.
      policy_type: "random" (uniform actions) or "scripted" (the P-controller expert).
      domain_randomization: not implemented yet; True raises NotImplementedError.
      max_steps: the horizon T; an episode ends at its first success.
      seed: episode i's randomness is fold_in(key(seed), i), whatever the batch size.
      batch_size: episodes simulated per device call (the largest batch used; batches are made equal).
      compression: "gzip" (default, seed 000), "lzf" (faster) or "none".
      overwrite: replace an existing output file.
      progress: show a tqdm progress bar of episodes.

    Returns:
      Seed 000's stats: total_episodes, total_steps, mean_episode_length, mean_reward (mean total episode
      reward), success_rate, output_path, file_size_mb.
    """
    cfg = GenerationConfig(
        env_name, n_episodes, os.fspath(output_path), policy_type, domain_randomization, max_steps, seed,
        batch_size=batch_size, compression=compression, overwrite=overwrite, progress=progress,
    )
    return run_generation(cfg).stats
