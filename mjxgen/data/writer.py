"""The arm tasks' writer: HostBatch episodes -> a format (mjxgen.data.formats), compressed, in crash-safe shards
(mjxgen.data.shards), on a background thread (mjxgen.data.flusher), counted (mjxgen.data.stats).

The writer knows no format's layout: it drops or flags invalid episodes once, sums each episode's stored rewards
once (HostBatch.with_totals), hands the batch to the format's encoder inside a shard, and counts what the shard
committed."""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np

from mjxgen.data import formats, shards, statistics, validate
from mjxgen.data.flusher import BackgroundFlusher
from mjxgen.data.formats import EncoderSettings, Position
from mjxgen.data.hostbatch import HostBatch
from mjxgen.data.images import BatchImages
from mjxgen.data.stats import RunStats
from mjxgen.render import opengl
from mjxgen.runtime.versions import package_versions

COMPRESSIONS = ("gzip", "lzf", "none")
# What happens to an episode with NaN or inf in its observations, actions or rewards: "drop" leaves it out
# (its id is listed in the file's `dropped_episodes`), "flag" writes it with the attribute invalid = True.
ON_INVALID = ("drop", "flag")
GZIP_LEVEL = 4
ARM_FILE_ATTRS = {
    "env_name": "the task", "policy": "the policy", "compression": "the HDF5 codec", "dtype": "the float arrays'",
    "model_xml": "the self-contained MJCF of the simulated model",
    "total_episodes": "episodes written", "invalid_episodes": "episodes with NaN/inf, dropped or flagged",
    "dropped_episodes": "ids of the episodes with NaN/inf that were dropped",
}


def filter_kwargs(compression: str) -> dict[str, Any]:
    """h5py create_dataset keywords of a codec (shuffle helps floats and is almost free)."""
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if compression == "none":
        return {}
    raise ValueError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")


class DatasetWriter:
    """Writes batches of episodes, one crash-safe shard per batch, on a background thread.

    `write_batch` hands a HostBatch to the thread and returns at once (it blocks only while two batches are
    already queued), so the caller can simulate the next batch meanwhile. `close` waits for the queue and
    turns the shards into the complete output file. `abort` writes what is queued and stops, leaving the
    unfinished run in `<output>.partial/` for `resume=True`. `stats` counts what is safely on disk.
    `layout` names the format (mjxgen.data.formats.options(): "episodes", seed 000's group per episode, or
    "flat"); `dtype` is the float arrays' ("float64", seed 000's, or "float32"). With `image_size`, each episode
    stores its camera frames: made on the device and carried by the batches (renderer "jax"), or drawn here by
    MuJoCo's renderer from each step's recorded state (renderer "mujoco").
    """

    def __init__(self, path: str | os.PathLike, *, env_name: str, policy: str, seed: int, config: dict,
                 model_xml: str, obs_shapes: dict[str, tuple[int, ...]], action_size: int, compression: str = "gzip",
                 overwrite: bool = False, resume: bool = False, on_invalid: str = "drop",
                 image_size: tuple[int, int] | None = None, layout: str = "episodes", dtype: str = "float64",
                 join: bool = False, renderer: str = "mujoco"):
        if on_invalid not in ON_INVALID:
            raise ValueError(f"unknown on_invalid {on_invalid!r}; choose one of {', '.join(ON_INVALID)}")
        self.format, self.on_invalid, self.dtype = formats.by_option(layout), on_invalid, np.dtype(dtype)
        frames = None if image_size is None else (BatchImages(*image_size) if renderer == "jax" else
                                                   opengl.BatchFrames(model_xml, *image_size))
        self.encoder = self.format.encoder(EncoderSettings(obs_keys=tuple(obs_shapes), policy=policy, seed=int(seed),
                                                           filters=filter_kwargs(compression), dtype=dtype,
                                                           frames=frames))
        shapes = {"observations": {k: list(v) for k, v in obs_shapes.items()}, "actions": [int(action_size)]}
        if image_size is not None:
            shapes["image"] = [*image_size, 3]
        attrs = {"format": self.format.attr, "format_version": self.format.version, "complete": False,
                 "env_name": env_name, "policy": policy, "seed": int(seed), "compression": compression,
                 "dtype": dtype, "config": json.dumps(config, sort_keys=True),
                 "versions": json.dumps(package_versions(), sort_keys=True), "model_xml": model_xml,
                 "shapes": json.dumps(shapes)}
        # join: another process (mjxgen.runtime.distributed) opened this run, with overwrite/resume as asked, and
        # holds its lock (one writer per output: mjxgen.runtime.runlock)
        self.store = shards.open_run(path, self.format.attr, config, attrs, overwrite=overwrite, resume=resume,
                                     join=join)
        self.path = self.store.output
        try:
            if self.store.shards:  # a resumed run: its shards are checked as any reader checks them
                validate.check(self.store.partial, allow_incomplete=True, full=False)
            self.stats = RunStats.of_files(self.format, self.store.shard_paths())  # a resumed run's episodes too
        except BaseException:
            self.store.release()
            raise
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
            self.stats = RunStats.of_files(self.format, self.store.shard_paths())
        s = self.stats
        self.store.finalize({"total_episodes": s.episodes, "total_steps": s.steps, "invalid_episodes": s.invalid,
                             "dropped_episodes": np.asarray(sorted(s.dropped), np.int64),
                             "statistics": statistics.to_json(self._statistics())}, self.format.merge)

    def _statistics(self) -> dict:
        """The normalization statistics of every kept episode (mjxgen.data.statistics), from the shards'."""
        parts = []
        for path in self.store.shard_paths():
            with h5py.File(path, "r") as f:
                parts.append(statistics.from_attrs(f.attrs))
        return statistics.combine(parts)

    def abort(self) -> None:
        """Write what is queued and stop; the unfinished run stays in `<output>.partial/` (its lock released)."""
        self._flusher.stop()
        self.store.release()

    def _flush(self, batch: HostBatch) -> None:
        """Drop (or flag) the batch's invalid episodes, then write the rest as one shard and count it."""
        keep = batch.valid | (self.on_invalid == "flag")
        dropped = [int(i) for i in batch.episode_ids[~keep]]
        kept = (batch if keep.all() else batch.select(keep)).with_totals(self.dtype)
        position = Position(first_row=self.stats.steps)  # the rows of the episodes written so far

        def write(f) -> None:
            if dropped:
                f.attrs["dropped_episodes"] = np.asarray(dropped, np.int64)
            f.attrs.update(statistics.to_attrs(statistics.partial(
                {f"observations/{k}": kept.observations[k] for k in self.encoder.settings.obs_keys}
                | {"actions": kept.actions, "rewards": kept.rewards})))
            self.encoder.encode(f, kept, position)

        self.store.write_shard(batch.first, batch.end, write)
        self.stats.add_batch(kept)  # counted only once the shard is committed
        for index in dropped:
            self.stats.add_dropped(index)
