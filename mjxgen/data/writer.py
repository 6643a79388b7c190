"""The arm tasks' writer: HostBatch episodes -> the EPISODES or FLAT layout (mjxgen.data.layout), compressed, in crash-safe
shards (mjxgen.data.shards), on a background thread (mjxgen.data.flusher), counted (mjxgen.data.stats)."""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np

from mjxgen.data import flat, shards
from mjxgen.render import opengl
from mjxgen.data.flusher import BackgroundFlusher
from mjxgen.data.layout import (ACTIONS, ARM_LAYOUTS, EPISODES, FLAT, IMAGE, IMAGE_DTYPE, RANDOMIZATION, REWARDS,
                           HostBatch, image_chunks, observation)
from mjxgen.runtime.versions import package_versions
from mjxgen.data.stats import RunStats

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
    """Writes a HostBatch's episodes into an open HDF5 file in the per-episode layout (EPISODES): one group per
    episode, compressed, with camera frames when `frames` is given. Use it in one thread (the renderer's GL
    context belongs to the thread that made it)."""

    layout = EPISODES

    def __init__(self, *, obs_keys: tuple[str, ...], policy: str, seed: int, compression: str, on_invalid: str,
                 dtype: str = "float64", frames: opengl.BatchFrames | None = None):
        if on_invalid not in ON_INVALID:
            raise ValueError(f"unknown on_invalid {on_invalid!r}; choose one of {', '.join(ON_INVALID)}")
        self._filters = filter_kwargs(compression)
        self._obs_keys, self._policy, self._seed, self._on_invalid = obs_keys, policy, int(seed), on_invalid
        self._dtype, self.frames = np.dtype(dtype), frames

    def encode(self, f: h5py.File, batch: HostBatch, first_row: int = 0) -> tuple[list[dict], list[int]]:
        """Write the batch (first_row: unused here); returns (the attributes of each written episode, the ids of those dropped)."""
        written, dropped = [], []
        o = batch.offsets
        for b, (ep, valid) in enumerate(zip(batch.episode_ids, batch.valid)):
            if not valid and self._on_invalid == "drop":
                dropped.append(int(ep))
            else:
                written.append(self._episode(f, batch, b, slice(o[b], o[b + 1])))
        if dropped:
            f.attrs["dropped_episodes"] = np.asarray(dropped, np.int64)
        return written, dropped

    def _episode(self, f: h5py.File, batch: HostBatch, b: int, rows: slice) -> dict:
        rewards = np.asarray(batch.rewards[rows], self._dtype)
        g = f.create_group(EPISODES.group_name(batch.episode_ids[b]))
        g.create_group("observations")
        for k in self._obs_keys:
            g.create_dataset(observation(k), data=np.asarray(batch.observations[k][rows], self._dtype), **self._filters)
        g.create_dataset(ACTIONS, data=np.asarray(batch.actions[rows], self._dtype), **self._filters)
        g.create_dataset(REWARDS, data=rewards, **self._filters)
        # Per-episode values, small and uncompressed: the policy's record (dmp/goal, ...) and the draw.
        for name, values in batch.policy_record.items():
            g.create_dataset(f"{self._policy}/{name}", data=np.asarray(values[b]))
        for name, values in (batch.randomization or {}).items():
            g.create_dataset(f"{RANDOMIZATION}/{name}", data=np.asarray(values[b]))
        if self.frames is not None:
            g.create_dataset(observation(IMAGE), data=self.frames.episode(batch, b).astype(IMAGE_DTYPE, copy=False),
                             chunks=image_chunks(*self.frames.size), **self._filters)
        attrs = episode_attrs(batch, b, self._seed, rewards)
        g.attrs.update(attrs)
        return attrs

    def recount(self, f: h5py.File, stats: RunStats) -> None:
        """Count a committed shard's episodes (a resumed run)."""
        for group in f.values():
            stats.add_group(EPISODES, group)

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()


def episode_attrs(batch: HostBatch, b: int, seed: int, rewards: np.ndarray) -> dict:
    """An episode's attributes (EPISODE_ATTRS), total_reward summed in float64 as seed 000 stores it."""
    attrs = {"episode_index": int(batch.episode_ids[b]), "seed": int(seed), "length": int(batch.lengths[b]),
             "success": bool(batch.success[b]), "total_reward": float(np.asarray(rewards, np.float64).sum())}
    if not batch.valid[b]:
        attrs["invalid"] = True
    return attrs


class DatasetWriter:
    """Writes batches of episodes, one crash-safe shard per batch, on a background thread.

    `write_batch` hands a HostBatch to the thread and returns at once (it blocks only while two batches are
    already queued), so the caller can simulate the next batch meanwhile. `close` waits for the queue and
    turns the shards into the complete output file. `abort` writes what is queued and stops, leaving the
    unfinished run in `<output>.partial/` for `resume=True`. `stats` counts what is safely on disk.
    `layout` is "episodes" (seed 000's, one group per episode) or "flat" (mjxgen.data.flat); `dtype` is the float
    arrays' ("float64", seed 000's, or "float32").
    """

    def __init__(self, path: str | os.PathLike, *, env_name: str, policy: str, seed: int, config: dict,
                 model_xml: str, obs_keys: tuple[str, ...], compression: str = "gzip", overwrite: bool = False,
                 resume: bool = False, on_invalid: str = "drop", image_size: tuple[int, int] | None = None,
                 layout: str = "episodes", dtype: str = "float64", join: bool = False):
        self.layout = ARM_LAYOUTS[layout]
        self.encoder = _encoder(layout, obs_keys=obs_keys, policy=policy, seed=seed, compression=compression,
                                on_invalid=on_invalid, dtype=dtype,
                                frames=None if image_size is None else opengl.BatchFrames(model_xml, *image_size))
        attrs = {"format": self.layout.format, "format_version": self.layout.version, "complete": False,
                 "env_name": env_name, "policy": policy, "seed": int(seed), "compression": compression,
                 "dtype": dtype, "config": json.dumps(config, sort_keys=True),
                 "versions": json.dumps(package_versions(), sort_keys=True), "model_xml": model_xml}
        # join: another process (mjxgen.runtime.distributed) opened this run, with overwrite/resume as asked, and
        # holds its lock (one writer per output: mjxgen.runtime.runlock)
        self.store = shards.open_run(path, self.layout.format, config, attrs, overwrite=overwrite, resume=resume,
                                     join=join)
        self.path = self.store.output
        if self.layout is FLAT:
            self.store.merge = flat.merge
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

    def flush(self) -> None:
        """Wait until every queued batch is written (and raise the writer's failure, if any)."""
        self._flusher.close()

    def close(self) -> None:
        """Flush every queued batch, then merge the shards into the complete output file."""
        self.flush()
        self.finalize()

    def finalize(self) -> None:
        """Merge the shards into the complete output file: this writer's, and those other processes wrote into
        the same run (mjxgen.runtime.distributed), recounted."""
        if self.store.refresh():
            self.stats = self._recount()
        s = self.stats
        self.store.finalize({"total_episodes": s.episodes, "total_steps": s.steps, "invalid_episodes": s.invalid,
                             "dropped_episodes": np.asarray(sorted(s.dropped), np.int64)})

    def abort(self) -> None:
        """Write what is queued and stop; the unfinished run stays in `<output>.partial/` (its lock released)."""
        self._flusher.stop()
        self.store.release()

    def _flush(self, batch: HostBatch) -> None:
        out: list = []
        first_row = self.stats.steps  # the rows of the episodes written so far (the flat layout's offset)
        self.store.write_shard(batch.first, batch.end, lambda f: out.append(self.encoder.encode(f, batch, first_row)))
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
                self.encoder.recount(f, stats)
                for index in f.attrs.get("dropped_episodes", []):
                    stats.add_dropped(index)
        return stats


def _encoder(layout: str, *, compression: str, seed: int, **kw):
    if layout == "flat":
        return flat.FlatEncoder(filters=filter_kwargs(compression), **kw)
    return EpisodeEncoder(compression=compression, seed=seed, **kw)
