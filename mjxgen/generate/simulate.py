"""The generator's simulation loops, each handing contiguous blocks of whole episodes to the writer.

- `simulate_stream` (the default): B slots with auto-reset (mjxgen.sim.stream), stitched into blocks of B ids
  (mjxgen.generate.stitch). No simulated step is padding.
- `simulate_batches`: the fixed-horizon form, equal batches of rollout_batch, each run for max_steps steps.

Both produce the same episodes (episode i depends only on (seed, i)); they differ in how many steps they
simulate. Each returns (simulated steps, useful steps): every slot's steps, and the steps inside episodes.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from tqdm.auto import tqdm

from mjxgen.render import camera as render_camera
from mjxgen.sim import per_episode, stream
from mjxgen.generate.config import GenerationConfig
from mjxgen.data.hostbatch import HostBatch
from mjxgen.sim.rollout import SEGMENT_STEPS, Rollout, rollout_batch
from mjxgen.generate import stitch
from mjxgen.generate.stitch import Block, Stitcher
from mjxgen.data.writer import DatasetWriter


def _bar(cfg: GenerationConfig, ids: range, first: int) -> tqdm:
    """A bar of this process's ids (all of them in a one-process run), ids [ids.start, first) already done."""
    return tqdm(total=len(ids), initial=first - ids.start, unit="ep", desc=f"{cfg.env_name}/{cfg.policy_type}",
                disable=not cfg.progress)


def slots(cfg: GenerationConfig) -> int:
    """Episodes simulated at once by the streaming form: plan_batches' batch (at most batch_size; for example
    5000 episodes at batch_size 4096 run through 2500 slots). The fixed-horizon form uses the same batch, so
    both run one compiled program, and an episode is bit for bit the same in both (XLA may round differently
    in a program of another batch size)."""
    return plan_batches(cfg.n_episodes, cfg.batch_size)[1]


def simulate_stream(cfg: GenerationConfig, env, writer: DatasetWriter, ids: range) -> tuple[int, int]:
    """Stream the ids of `ids` (this process's share, all of [0, n_episodes) in a one-process run) that are
    not on disk yet through B slots; hand each finished block of B ids to the writer.
    Per-episode values (each episode's start, policy record, draw, mocap bodies) are recomputed for each block
    on the device and fetched one segment later, so the fetch never waits for the simulation."""
    first, b = writer.store.done_from(ids.start, ids.stop), slots(cfg)
    host_render = cfg.camera and cfg.device_camera is None  # MuJoCo's renderer draws from the recorded qpos
    stitcher = Stitcher(first, ids.stop, b, keep_qpos=host_render)
    steps = render_camera.segment_steps(cfg.device_camera, b, SEGMENT_STEPS)
    pending: list[tuple[Block, dict]] = []
    with _bar(cfg, ids, first) as bar:
        segments = stream.run_segments(env, cfg.policy_type, first=first, count=ids.stop - first, slots=b,
                                       seed=cfg.seed, max_steps=cfg.max_steps, steps=steps,
                                       randomization=cfg.randomization,
                                       keep_qpos=host_render,
                                       camera=cfg.device_camera) if first < ids.stop else ()
        for seg in segments:
            stitcher.add(seg)
            _hand_over(cfg, writer, pending, bar)
            for block in stitcher.ready():
                pending.append((block, per_episode.episode_values(env, cfg.policy_type, np.arange(block.first, block.end),
                                                                  seed=cfg.seed, randomization=cfg.randomization,
                                                                  camera=cfg.device_camera)))
        _hand_over(cfg, writer, pending, bar)
    return stitcher.simulated_steps, stitcher.useful_steps


def _hand_over(cfg: GenerationConfig, writer: DatasetWriter, pending: list, bar: tqdm) -> None:
    """Complete the pending blocks with their per-episode values and queue them for writing."""
    for block, values in pending:
        writer.write_batch(stitch.host_batch(block, jax.device_get(values), cfg.randomization is not None))
        bar.update(block.end - block.first)
    pending.clear()


def host_batch(host: Rollout, keep: np.ndarray, randomized: bool) -> HostBatch:
    """The episodes of a host-side Rollout selected by keep (B,), as the writer takes them."""
    tr = host.trajectory
    batch = HostBatch.from_padded(first=0, end=0, episode_ids=host.episode_ids, lengths=host.lengths,
                                  success=host.success, valid=host.valid, observations=tr.observations,
                                  actions=tr.actions, rewards=tr.rewards, policy_record=host.policy_record,
                                  randomization=host.randomization._asdict() if randomized else None,
                                  mocap_pos=host.mocap_pos, qpos=tr.qpos, images=tr.images,
                                  final_observations=host.final_observations)
    return batch.select(keep)


def plan_batches(n_episodes: int, batch_size: int) -> tuple[int, int]:
    """(n_batches, episodes per batch): equal batches no larger than batch_size, so one compiled shape
    serves the whole run and the last batch wastes fewer than n_batches padding episodes."""
    n_batches = math.ceil(n_episodes / batch_size)
    return n_batches, math.ceil(n_episodes / n_batches)


def simulate_batches(cfg: GenerationConfig, env, writer: DatasetWriter, ids: range) -> tuple[int, int]:
    """The fixed-horizon form: batch k is episode ids [k * per_batch, (k + 1) * per_batch), each run for
    max_steps steps, for the batches of `ids` (this process's share) not on disk yet. Batch k+1 is dispatched
    before batch k is fetched."""
    per_batch = plan_batches(cfg.n_episodes, cfg.batch_size)[1]
    first = writer.store.done_from(ids.start, ids.stop)
    batches = range(first // per_batch, -(-ids.stop // per_batch))  # batches already on disk are skipped

    def launch(k: int):
        ids = np.arange(k * per_batch, (k + 1) * per_batch)
        return rollout_batch(env, cfg.policy_type, ids, seed=cfg.seed, max_steps=cfg.max_steps,
                             randomization=cfg.randomization, camera=cfg.device_camera)

    useful = 0
    with _bar(cfg, ids, first) as bar:
        pending = launch(batches[0]) if batches else None
        for k in batches:
            following = launch(k + 1) if k + 1 < batches.stop else None
            # The full qpos is needed on the host only for MuJoCo's renderer: don't transfer it otherwise.
            host_render = cfg.camera and cfg.device_camera is None
            host = jax.device_get(pending if host_render else pending._replace(
                trajectory=pending.trajectory._replace(qpos=None)))
            keep = host.episode_ids < cfg.n_episodes  # the last batch may carry padding episodes
            writer.write_batch(host_batch(host, keep, cfg.randomization is not None))
            useful += int(host.lengths[keep].sum())
            bar.update(int(keep.sum()))
            pending = following
    return len(batches) * per_batch * cfg.max_steps, useful
