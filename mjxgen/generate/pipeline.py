"""generate_dataset(): episodes streamed on the device (mjxgen.generate.simulate) -> background HDF5 writer -> stats."""

from __future__ import annotations

import dataclasses
import sys
import time

from mjxgen import checks
from mjxgen.runtime import distributed as dist
from mjxgen.data import files, shards
from mjxgen.generate import memory, simulate
from mjxgen.generate.config import SEED_000_PARAMETERS, GenerationConfig
from mjxgen.envs import make_env
from mjxgen.runtime.process import configure
from mjxgen.sim import programs
from mjxgen.runtime import signals
from mjxgen.runtime.signals import saving_what_is_done
from mjxgen.data.writer import DatasetWriter


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationResult:
    """Seed 000's stats, plus how the run went."""

    stats: dict  # seed 000's keys, plus invalid_episodes
    wall_s: float  # the whole run, compile included
    simulated_steps: int  # control steps simulated by every slot (fixed: padding past episode ends included)
    useful_steps: int  # control steps inside episodes (this run's; a resumed run's earlier episodes excluded)
    physics_steps: int  # simulated_steps x substeps
    batch_size: int  # episodes simulated at once (streaming: slots)
    n_batches: int  # blocks of episodes handed to the writer (its shards)
    rollout: str = "stream"  # "stream" or "fixed"
    frames: int = 0  # camera frames rendered (by the writer thread, while the device simulates)
    render_s: float = 0.0  # seconds the writer thread spent rendering them


def open_writer(cfg: GenerationConfig, env, batch_size: int, join: bool = False) -> DatasetWriter:
    """The writer of cfg's output, with cfg's settings as the file's config (what --resume must match); join:
    another process opened the run (mjxgen.runtime.distributed)."""
    return DatasetWriter(
        cfg.output_path,
        env_name=cfg.env_name,
        policy=cfg.policy_type,
        seed=cfg.seed,
        config=cfg.settings() | {"batch_size": batch_size, "env_config": env.config_dict()},
        model_xml=env.xml,
        obs_shapes=programs.obs_shapes(env),
        action_size=env.action_size,
        compression=cfg.compression,
        overwrite=cfg.overwrite,
        resume=cfg.resume,
        on_invalid=cfg.on_invalid,
        image_size=cfg.image_size if cfg.camera else None,
        renderer=cfg.renderer,
        layout=cfg.layout,
        dtype=cfg.dtype,
        join=join,
    )


def _already_complete(cfg: GenerationConfig, writer: DatasetWriter, batch_size: int, start: float) -> GenerationResult:
    """resume=True on a file that a run of the same settings finished: nothing to do but say so (a requeued job
    succeeds); its stats, recounted from the file."""
    writer.abort()  # stops the writer's thread, releases the lock
    print(f"{writer.path} is complete already (same settings): nothing to resume", file=sys.stderr)
    return GenerationResult(stats=files.describe(writer.path)[3].summary(writer.path),
                            wall_s=time.perf_counter() - start, simulated_steps=0, useful_steps=0, physics_steps=0,
                            batch_size=batch_size, n_batches=0, rollout=cfg.rollout)


def run_generation(cfg: GenerationConfig) -> GenerationResult:
    """Generate the dataset that cfg describes; return the stats together with timing.

    Raises GenerationInterrupted on SIGINT/SIGTERM and OSError when writing fails; in both cases the
    finished blocks stay in `<output_path>.partial/` and `resume=True` continues the run. One run writes an
    output at a time (mjxgen.runtime.runlock): a second one is refused (RunLocked, a FileExistsError). With
    cfg.resume on a file that is complete already with the same settings, nothing is simulated and the file's
    stats are returned. With cfg.distributed, this process runs its share of the blocks (mjxgen.runtime.distributed)
    and process 0 writes the file once every process has written its share."""
    stream = cfg.rollout == "stream"
    batch_size = simulate.slots(cfg)  # episodes at once, and per shard: the same in both forms
    opened: list[DatasetWriter] = []  # the writer, once the run is open

    def stop() -> None:  # a failure or a stop: what was handed over is written, and the lock is released
        if opened:
            opened[0].abort()

    def run() -> tuple[int, int]:
        steps = (simulate.simulate_stream if stream else simulate.simulate_batches)(cfg, env, writer, ids)
        writer.flush()
        return steps

    def merge() -> None:
        if dist.is_main():  # the others' shards are on disk too: write the file
            writer.finalize()

    # One block from the start to the finished file: SIGINT/SIGTERM end it at the next safe point, whenever they come.
    with saving_what_is_done(lambda: opened[0].done if opened else None, shards.partial_dir(cfg.output_path),
                             cfg.n_episodes, "episodes", stop=stop, output=cfg.output_path):
        configure()  # the XLA flags, before anything creates JAX's backend
        dist.initialize(cfg.distributed)  # before JAX's first computation
        env = make_env(cfg.env_name, cfg.env_config)
        signals.check()  # a safe point: building the env takes seconds
        memory.check_batch(cfg, env, batch_size)  # a ValueError naming the largest batch that fits, before any output
        writer = dist.first_then_others(lambda join: open_writer(cfg, env, batch_size, join), "opening the run")
        opened.append(writer)
        start = time.perf_counter()
        if writer.store.complete:
            return _already_complete(cfg, writer, batch_size, start)
        blocks = dist.share(-(-cfg.n_episodes // batch_size))
        ids = range(min(blocks.start * batch_size, cfg.n_episodes), min(blocks.stop * batch_size, cfg.n_episodes))
        shards_before = len(writer.store.shards)
        simulated, useful = dist.together(run, "simulating")
        n_blocks = len(writer.store.shards) - shards_before
        dist.together(merge, "writing the file")
    if not dist.is_main():  # process 0 counted every process's episodes; the others read the file's count
        writer.stats = files.describe(writer.path)[3]
    return GenerationResult(
        stats=writer.stats.summary(writer.path),
        wall_s=time.perf_counter() - start,
        simulated_steps=simulated,
        useful_steps=useful,
        physics_steps=simulated * env.substeps,
        batch_size=batch_size,
        n_batches=n_blocks,
        rollout=cfg.rollout,
        frames=writer.encoder.frames.frames if writer.encoder.frames else 0,
        render_s=writer.encoder.frames.render_s if writer.encoder.frames else 0.0,
    )


@checks.with_settings(GenerationConfig, positional=SEED_000_PARAMETERS)
def generate_dataset(cfg: GenerationConfig) -> dict:
    """Simulate n_episodes, batch_size at a time, and write them to an HDF5 file (seed 000's layout by default).

    The parameters are GenerationConfig's fields (mjxgen.generate.config), with its defaults: seed 000's seven
    may be given by position, in seed 000's order; the rest are keyword-only, and an unknown keyword is a
    TypeError naming it. Every argument is checked before anything is simulated or written: a wrong type is a
    TypeError and a wrong value a ValueError, each naming the argument; a batch that cannot fit in memory is a
    ValueError naming the largest one that fits.

    Args:
      {settings}

    Returns:
      Seed 000's stats: total_episodes, total_steps, mean_episode_length, mean_reward (mean total episode
      reward), success_rate, output_path, file_size_mb; and invalid_episodes (dropped or flagged).
      The output file exists only once the run is complete.
    """
    return run_generation(cfg).stats
