"""The arm tasks' writer: HostBatch episodes -> the EPISODES layout (mjxgen.layout), compressed, in crash-safe
shards (mjxgen.shards), on a background thread (mjxgen.flusher), counted (mjxgen.stats)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import h5py
import numpy as np

from mjxgen import render, shards
from mjxgen.flusher import BackgroundFlusher
from mjxgen.layout import (ACTIONS, EPISODES, IMAGE, IMAGE_DTYPE, RANDOMIZATION, REWARDS, STORE_DTYPE, HostBatch,
                           image_chunks, observation, package_versions)
from mjxgen.stats import RunStats

COMPRESSIONS = ("gzip", "lzf", "none")
# What happens to an episode with NaN or inf in its observations, actions or rewards: "drop" leaves it out
# (its id is listed in the file's `dropped_episodes`), "flag" writes it with the attribute invalid = True.
ON_INVALID = ("drop", "flag")
GZIP_LEVEL = 4


def filter_kwargs(compression: str) -> dict[str, Any]:
    """h5py create_dataset keywords of a codec (shuffle helps floats and is almost free)."""
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if compression == "none":
        return {}
    raise ValueError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")


class EpisodeEncoder:
    """Writes a HostBatch's episodes into an open HDF5 file: each cut to its length, float64, compressed, with
    camera frames rendered from its recorded states when image_size is given. Use it in one thread (the
    renderer's GL context belongs to the thread that made it)."""

    def __init__(self, *, obs_keys: tuple[str, ...], policy: str, seed: int, compression: str, on_invalid: str,
                 image_size: tuple[int, int] | None = None, model_xml: str = ""):
        if on_invalid not in ON_INVALID:
            raise ValueError(f"unknown on_invalid {on_invalid!r}; choose one of {', '.join(ON_INVALID)}")
        self._filters = filter_kwargs(compression)
        self._obs_keys, self._policy, self._seed, self._on_invalid = obs_keys, policy, int(seed), on_invalid
        self._image_size, self._model_xml = image_size, model_xml
        if image_size is not None:  # fail now, with one clear line, not after simulating a batch
            render.EpisodeRenderer(model_xml, *image_size).close()
        self._renderer = None
        self.frames, self.render_s = 0, 0.0

    def encode(self, f: h5py.File, batch: HostBatch) -> tuple[list[dict], list[int]]:
        """Write the batch; returns (the attributes of each written episode, the ids of those dropped)."""
        written, dropped = [], []
        for b, (ep, valid) in enumerate(zip(batch.episode_ids, batch.valid)):
            if not valid and self._on_invalid == "drop":
                dropped.append(int(ep))
            else:
                written.append(self._episode(f, batch, b))
        if dropped:
            f.attrs["dropped_episodes"] = np.asarray(dropped, np.int64)
        return written, dropped

    def _episode(self, f: h5py.File, batch: HostBatch, b: int) -> dict:
        length = int(batch.lengths[b])
        rewards = np.asarray(batch.rewards[b, :length], STORE_DTYPE)
        g = f.create_group(EPISODES.group_name(batch.episode_ids[b]))
        g.create_group("observations")
        for k in self._obs_keys:
            g.create_dataset(observation(k), data=np.asarray(batch.observations[k][b, :length], STORE_DTYPE),
                             **self._filters)
        g.create_dataset(ACTIONS, data=np.asarray(batch.actions[b, :length], STORE_DTYPE), **self._filters)
        g.create_dataset(REWARDS, data=rewards, **self._filters)
        # Per-episode values, small and uncompressed: the policy's record (dmp/goal, ...) and the draw.
        for name, values in batch.policy_record.items():
            g.create_dataset(f"{self._policy}/{name}", data=np.asarray(values[b]))
        for name, values in (batch.randomization or {}).items():
            g.create_dataset(f"{RANDOMIZATION}/{name}", data=np.asarray(values[b]))
        if self._image_size is not None:
            g.create_dataset(observation(IMAGE), data=self._images(batch, b, length),
                             chunks=image_chunks(*self._image_size), **self._filters)
        attrs = {"episode_index": int(batch.episode_ids[b]), "seed": self._seed, "length": length,
                 "success": bool(batch.success[b]), "total_reward": float(rewards.sum())}
        if not batch.valid[b]:
            attrs["invalid"] = True
        g.attrs.update(attrs)
        return attrs

    def _images(self, batch: HostBatch, b: int, length: int) -> np.ndarray:
        """Episode b's frames (L, H, W, 3) uint8, from its recorded states, mocap bodies and draw."""
        if self._renderer is None:
            self._renderer = render.EpisodeRenderer(self._model_xml, *self._image_size)
        draw = batch.randomization
        start = time.perf_counter()
        frames = self._renderer.render(
            np.asarray(batch.qpos[b, :length], np.float64),
            np.asarray(batch.mocap_pos[b], np.float64),
            None if draw is None else np.asarray(draw["light_dir"][b]),
            None if draw is None else np.asarray(draw["camera_offset"][b]),
        )
        self.render_s += time.perf_counter() - start
        self.frames += length
        return frames.astype(IMAGE_DTYPE, copy=False)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class DatasetWriter:
    """Writes batches of episodes, one crash-safe shard per batch, on a background thread.

    `write_batch` hands a HostBatch to the thread and returns at once (it blocks only while two batches are
    already queued), so the caller can simulate the next batch meanwhile. `close` waits for the queue and
    turns the shards into the complete output file. `abort` writes what is queued and stops, leaving the
    unfinished run in `<output>.partial/` for `resume=True`. `stats` counts what is safely on disk.
    """

    def __init__(self, path: str | os.PathLike, *, env_name: str, policy: str, seed: int, config: dict,
                 model_xml: str, obs_keys: tuple[str, ...], compression: str = "gzip", overwrite: bool = False,
                 resume: bool = False, on_invalid: str = "drop", image_size: tuple[int, int] | None = None,
                 join: bool = False):
        self.encoder = EpisodeEncoder(obs_keys=obs_keys, policy=policy, seed=seed, compression=compression,
                                      on_invalid=on_invalid, image_size=image_size, model_xml=model_xml)
        if join:  # another process (mjxgen.distributed) opened this run, with overwrite/resume as asked
            overwrite, resume = False, True
        self.path = shards.check_output_path(path, overwrite, resume)
        attrs = {"format": EPISODES.format, "format_version": EPISODES.version, "complete": False,
                 "env_name": env_name, "policy": policy, "seed": int(seed), "compression": compression,
                 "config": json.dumps(config, sort_keys=True),
                 "versions": json.dumps(package_versions(), sort_keys=True), "model_xml": model_xml}
        self.store = shards.ShardStore.open(self.path, EPISODES.format, config, attrs, resume)
        self.stats = self._recount()  # a resumed run's episodes count too
        self._flusher = BackgroundFlusher(self._flush, on_exit=self.encoder.close,
                                          failure=lambda e: OSError(f"writing {self.store.partial} failed: {e}"))

    @property
    def done(self) -> int:
        """Episode ids [0, done) are safely on disk."""
        return self.store.done

    def write_batch(self, batch: HostBatch) -> None:
        """Queue a batch. Its invalid episodes are dropped or flagged (on_invalid)."""
        self._flusher.put(batch)

    def close(self) -> None:
        """Flush every queued batch, then merge the shards into the complete output file."""
        self.flush()
        self.finalize()

    def flush(self) -> None:
        """Write every queued batch and stop the writer thread."""
        self._flusher.close()

    def finalize(self) -> None:
        """Merge the shards into the complete output file: this writer's, and those other processes wrote into
        the same run (mjxgen.distributed), recounted."""
        if self.store.refresh():
            self.stats = self._recount()
        s = self.stats
        self.store.finalize({"total_episodes": s.episodes, "total_steps": s.steps, "invalid_episodes": s.invalid,
                             "dropped_episodes": np.asarray(sorted(s.dropped), np.int64)})

    def abort(self) -> None:
        """Write what is queued and stop; the unfinished run stays in `<output>.partial/`."""
        self._flusher.stop()

    def _flush(self, batch: HostBatch) -> None:
        out: list = []
        self.store.write_shard(batch.first, batch.end, lambda f: out.append(self.encoder.encode(f, batch)))
        written, dropped = out[0]
        for attrs in written:  # counted only once the shard is committed
            self.stats.add(length=attrs["length"], success=attrs["success"], total_reward=attrs["total_reward"],
                           invalid=attrs.get("invalid", False))
        for index in dropped:
            self.stats.add_dropped(index)

    def _recount(self) -> RunStats:
        stats = RunStats()
        for _, _, shard in self.store.shards:
            with h5py.File(shard, "r") as f:
                for group in f.values():
                    stats.add_group(EPISODES, group)
                for index in f.attrs.get("dropped_episodes", []):
                    stats.add_dropped(index)
        return stats
