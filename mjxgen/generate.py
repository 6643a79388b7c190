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
from mjxgen.rollout import rollout_batch
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


def plan_batches(n_episodes: int, batch_size: int) -> tuple[int, int]:
    """(n_batches, episodes per batch): equal batches no larger than batch_size, so one compiled shape
    serves the whole run and the last batch wastes fewer than n_batches padding episodes."""
    n_batches = math.ceil(n_episodes / batch_size)
    return n_batches, math.ceil(n_episodes / n_batches)


def run_generation(
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
) -> GenerationResult:
    """generate_dataset, returning the stats together with timing. See `generate_dataset`."""
    if env_name not in ENVS:
        raise ValueError(f"unknown env {env_name!r}; choose one of: {', '.join(sorted(ENVS))}")
    n_episodes = _positive_int("n_episodes", n_episodes)
    max_steps = _positive_int("max_steps", max_steps)
    batch_size = _positive_int("batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    if domain_randomization:
        raise NotImplementedError(
            "domain randomization is not implemented yet (it is planned: light direction and friction, "
            "seed 000); run without --randomize / domain_randomization=False"
        )
    env = make_env(env_name)
    if policy_type not in env.policy_names:
        raise ValueError(f"unknown policy {policy_type!r} for {env_name}; choose one of {', '.join(env.policy_names)}")

    n_batches, per_batch = plan_batches(n_episodes, batch_size)
    config = {
        "env_name": env_name,
        "n_episodes": n_episodes,
        "policy_type": policy_type,
        "domain_randomization": bool(domain_randomization),
        "max_steps": max_steps,
        "seed": int(seed),
        "batch_size": per_batch,
        "compression": compression,
        "env_config": env.config_dict(),
    }
    writer = DatasetWriter(
        output_path,
        env_name=env_name,
        policy=policy_type,
        seed=int(seed),
        config=config,
        model_xml=env.xml,
        obs_keys=tuple(env.obs_shapes),
        compression=compression,
        overwrite=overwrite,
    )

    def launch(k: int):
        ids = np.arange(k * per_batch, (k + 1) * per_batch)
        return rollout_batch(env, policy_type, ids, seed=int(seed), max_steps=max_steps)

    start = time.perf_counter()
    try:
        with tqdm(total=n_episodes, unit="ep", desc=f"{env_name}/{policy_type}", disable=not progress) as bar:
            pending = launch(0)
            for k in range(n_batches):
                # Dispatch batch k+1 before fetching batch k: the device simulates while the host writes.
                following = launch(k + 1) if k + 1 < n_batches else None
                host = jax.device_get(pending)
                keep = host.episode_ids < n_episodes  # the last batch may carry padding episodes
                writer.write_batch(
                    {
                        "episode_ids": host.episode_ids[keep],
                        "lengths": host.lengths[keep],
                        "success": host.success[keep],
                        "rewards": host.trajectory.rewards[keep],
                        "actions": host.trajectory.actions[keep],
                        "observations": {key: v[keep] for key, v in host.trajectory.observations.items()},
                    }
                )
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
    simulated = n_batches * per_batch * max_steps
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
      env_name: "reach".
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
    return run_generation(
        env_name,
        n_episodes,
        output_path,
        policy_type,
        domain_randomization,
        max_steps,
        seed,
        batch_size=batch_size,
        compression=compression,
        overwrite=overwrite,
        progress=progress,
    ).stats
