"""generate_dataset(): batches of episodes -> rollout on the device -> background HDF5 writer -> stats."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from kernels.randomize import RandomizationConfig
from mjxgen import distributed as dist, shards
from mjxgen.config import GenerationConfig
from mjxgen.envs import make_env
from mjxgen.layout import EPISODES, HostBatch
from mjxgen.rollout import Rollout, rollout_batch
from mjxgen.runtime import configure
from mjxgen.signals import saving_what_is_done
from mjxgen.stats import RunStats
from mjxgen.writer import DatasetWriter


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationResult:
    """Seed 000's stats, plus how the run went."""

    stats: dict  # seed 000's keys, plus invalid_episodes
    wall_s: float  # the whole run, compile included
    simulated_steps: int  # control steps simulated, padding past episode ends included
    physics_steps: int  # simulated_steps x substeps
    batch_size: int  # episodes per device call
    n_batches: int
    frames: int = 0  # camera frames rendered (by the writer thread, while the device simulates)
    render_s: float = 0.0  # seconds the writer thread spent rendering them


def host_batch(host: Rollout, keep: np.ndarray, randomized: bool) -> HostBatch:
    """The episodes of a host-side Rollout selected by keep (B,), as the writer takes them."""
    tr = host.trajectory
    batch = HostBatch(first=0, end=0, episode_ids=host.episode_ids, lengths=host.lengths, success=host.success,
                      valid=host.valid, observations=tr.observations, actions=tr.actions, rewards=tr.rewards,
                      policy_record=host.policy_record,
                      randomization=host.randomization._asdict() if randomized else None,
                      mocap_pos=host.mocap_pos, qpos=tr.qpos)
    return batch.select(keep)


def plan_batches(n_episodes: int, batch_size: int) -> tuple[int, int]:
    """(n_batches, episodes per batch): equal batches no larger than batch_size, so one compiled shape
    serves the whole run and the last batch wastes fewer than n_batches padding episodes."""
    n_batches = math.ceil(n_episodes / batch_size)
    return n_batches, math.ceil(n_episodes / n_batches)


def open_writer(cfg: GenerationConfig, env, per_batch: int, join: bool = False) -> DatasetWriter:
    """The writer of cfg's output, with cfg's settings as the file's config (what --resume must match); join:
    another process opened the run (mjxgen.distributed)."""
    return DatasetWriter(
        cfg.output_path,
        env_name=cfg.env_name,
        policy=cfg.policy_type,
        seed=cfg.seed,
        config=cfg.settings() | {"batch_size": per_batch, "env_config": env.config_dict()},
        model_xml=env.xml,
        obs_keys=tuple(env.obs_shapes),
        compression=cfg.compression,
        overwrite=cfg.overwrite,
        resume=cfg.resume,
        on_invalid=cfg.on_invalid,
        image_size=cfg.image_size if cfg.camera else None,
        join=join,
    )


def simulate_batches(cfg: GenerationConfig, env, writer: DatasetWriter, batches: list[int], per_batch: int,
                     done: int) -> None:
    """Roll out each batch k of `batches` (episode ids [k * per_batch, (k + 1) * per_batch)) and hand it to
    the writer. The next batch is dispatched before one is fetched, so the device simulates while the host
    writes. `done`: episodes of this process's share already on disk (for the progress bar)."""

    def launch(k: int):
        ids = np.arange(k * per_batch, (k + 1) * per_batch)
        out = rollout_batch(env, cfg.policy_type, ids, seed=cfg.seed, max_steps=cfg.max_steps,
                            randomization=cfg.randomization)
        # The full qpos is needed on the host only to render images: don't transfer it otherwise.
        return out if cfg.camera else out._replace(trajectory=out.trajectory._replace(qpos=None))

    total = done + sum(min(per_batch, cfg.n_episodes - k * per_batch) for k in batches)
    with tqdm(total=total, initial=done, unit="ep", desc=f"{cfg.env_name}/{cfg.policy_type}",
              disable=not cfg.progress) as bar:
        pending = launch(batches[0]) if batches else None
        for i, k in enumerate(batches):
            following = launch(batches[i + 1]) if i + 1 < len(batches) else None
            host = jax.device_get(pending)
            keep = host.episode_ids < cfg.n_episodes  # the last batch may carry padding episodes
            writer.write_batch(host_batch(host, keep, cfg.randomization is not None))
            bar.update(int(keep.sum()))
            pending = following


def run_generation(cfg: GenerationConfig) -> GenerationResult:
    """Generate the dataset that cfg describes; return the stats together with timing.

    Raises GenerationInterrupted on SIGINT/SIGTERM and OSError when writing fails; in both cases the
    finished batches stay in `<output_path>.partial/` and `resume=True` continues the run. With
    cfg.distributed, this process runs its share of the batches (mjxgen.distributed) and process 0 writes the
    file once every process has written its share."""
    configure()  # the XLA flags, before anything creates JAX's backend
    dist.initialize(cfg.distributed)  # before JAX's first computation
    env = make_env(cfg.env_name, cfg.env_config)
    n_batches, per_batch = plan_batches(cfg.n_episodes, cfg.batch_size)
    writer = dist.first_then_others(lambda join: open_writer(cfg, env, per_batch, join), "opening the run")
    mine = dist.share(n_batches)
    span = lambda k: (k * per_batch, min((k + 1) * per_batch, cfg.n_episodes))  # noqa: E731
    batches = [k for k in mine if not writer.store.has(*span(k))]  # batches on disk (a resumed run) are skipped
    done = sum(span(k)[1] - span(k)[0] for k in mine if k not in batches)
    start = time.perf_counter()

    def saving():
        return saving_what_is_done(lambda: writer.done, writer.store.partial, cfg.n_episodes, "episodes",
                                   stop=writer.abort)

    def simulate() -> None:
        with saving():
            simulate_batches(cfg, env, writer, batches, per_batch, done)
            writer.flush()

    def merge() -> None:
        with saving():
            if dist.is_main():  # the others' shards are on disk too: write the file
                writer.finalize()

    dist.together(simulate, "simulating")
    dist.together(merge, "writing the file")
    if not dist.is_main():  # process 0 counted every process's episodes
        writer.stats = RunStats.of_groups(EPISODES, (g for _, g in shards.iter_groups(writer.path)),
                                          shards.load_attrs(writer.path).get("dropped_episodes", []))
    simulated = len(batches) * per_batch * cfg.max_steps
    return GenerationResult(
        stats=writer.stats.summary(writer.path),
        wall_s=time.perf_counter() - start,
        simulated_steps=simulated,
        physics_steps=simulated * env.substeps,
        batch_size=per_batch,
        n_batches=n_batches,
        frames=writer.encoder.frames,
        render_s=writer.encoder.render_s,
    )


def generate_dataset(
    env_name: str = "reach",
    n_episodes: int = 100,
    output_path: str | os.PathLike = "data/dataset.h5",
    policy_type: str = "random",
    domain_randomization: bool | RandomizationConfig = False,
    max_steps: int = 200,
    seed: int = 42,
    *,
    batch_size: int = 256,
    camera: bool = False,
    image_size: tuple[int, int] = (64, 64),
    compression: str = "gzip",
    on_invalid: str = "drop",
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    env_config: Any = None,
    distributed: Any = None,
) -> dict:
    """Simulate n_episodes in batches and write them to an HDF5 file in seed 000's layout.

    Seed 000's seven parameters may be given by position, in seed 000's order; the rest are keyword-only.
    Every argument is checked before anything is simulated or written: a wrong type is a TypeError and a
    wrong value a ValueError, each naming the argument.

    Args:
      env_name: "reach" or "pick_place".
      n_episodes: number of episodes to collect.
      output_path: the HDF5 file to write; parent directories are created. An existing file is refused
        unless overwrite=True.
      policy_type: "random" (uniform actions), "scripted" (the task's expert) or "dmp" (a random DMP).
      domain_randomization: False; True for the default ranges (seed 000's light direction and friction,
        and more: see the README); or a `kernels.randomize.RandomizationConfig` with your ranges. Each
        episode's draw is stored under `episode_N/randomization/`.
      max_steps: the horizon T; an episode ends at its first success.
      seed: episode i's randomness is fold_in(key(seed), i), whatever the batch size.
      batch_size: episodes simulated per device call (the largest batch used; batches are made equal).
      camera: store `observations/image` (L, H, W, 3) uint8 frames from the scene's "front" camera.
      image_size: (H, W) of the camera frames, each in 1..480.
      compression: "gzip" (default, seed 000), "lzf" (faster) or "none".
      on_invalid: episodes with NaN or inf (detected on the device): "drop" leaves them out (their ids are in
        the file's `dropped_episodes`), "flag" writes them with the episode attribute invalid = True.
      overwrite: replace an existing output file and any unfinished run of it.
      resume: continue the unfinished run in `<output_path>.partial/` (after Ctrl-C, SIGTERM, SIGKILL or a
        write error). The settings must match; the result equals an uninterrupted run.
      progress: show a tqdm progress bar of episodes.
      env_config: the task's config (`mjxgen.reach.ReachConfig`, `mjxgen.pick_place.PickPlaceConfig`), e.g.
        another success threshold or target box; None for the task's defaults. Stored in the file.
      distributed: None (this process alone); True (one of many processes, as the cluster's environment says:
        SLURM, ...); or a `mjxgen.distributed.DistributedConfig(coordinator="HOST:PORT", num_processes=N,
        process_id=I)`. Each process runs its share of the batches; process 0 writes the file, which equals
        the file of a one-process run. Every process returns the stats of the whole file.

    Returns:
      Seed 000's stats: total_episodes, total_steps, mean_episode_length, mean_reward (mean total episode
      reward), success_rate, output_path, file_size_mb; and invalid_episodes (dropped or flagged).
      The output file exists only once the run is complete.
    """
    cfg = GenerationConfig(
        env_name=env_name, n_episodes=n_episodes, output_path=output_path, policy_type=policy_type,
        domain_randomization=domain_randomization, max_steps=max_steps, seed=seed, batch_size=batch_size,
        camera=camera, image_size=image_size, compression=compression, on_invalid=on_invalid,
        overwrite=overwrite, resume=resume, progress=progress, env_config=env_config, distributed=distributed,
    )
    return run_generation(cfg).stats
