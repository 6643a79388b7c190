"""The one place data goes to disk: seed 000's HDF5 layout, compression, a background flush thread.

Layout (seed 000), one group per episode, each cut to its length L:

    episode_N/observations/<key>   (L, ...) float64
    episode_N/actions              (L, 4)   float64
    episode_N/rewards              (L,)     float64

Per-episode values a policy records sit beside them, e.g. `episode_N/dmp/{start,goal,duration,stiffness,
damping,alpha_s,weights}` for the DMP policy. Attributes beside it: per episode `episode_index`, `seed`, `length`, `success`, `total_reward`; per file
`format`, `format_version`, `complete`, `env_name`, `policy`, `seed`, `config` (JSON), `versions` (JSON),
`model_xml`, and the totals. No other top-level keys, so len(f.keys()) is the episode count.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mjxgen import render, shards

FORMAT = "mjxgen"
FORMAT_VERSION = 1
COMPRESSIONS = ("gzip", "lzf", "none")
# What happens to an episode with NaN or inf in its observations, actions or rewards: "drop" leaves it out
# (its id is listed in the file's `dropped_episodes`), "flag" writes it with the attribute invalid = True.
ON_INVALID = ("drop", "flag")
GZIP_LEVEL = 4
_STORE_DTYPE = np.float64  # seed 000's dtype for every float array


def package_versions() -> dict[str, str]:
    """Versions of everything that shapes the data, for the file's metadata."""
    out = {"python": platform.python_version()}
    for name in ("mjxgen", "jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy", "h5py"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def check_output_path(path: str | os.PathLike, overwrite: bool, resume: bool = False) -> Path:
    """Refuse an existing file (unless overwrite or resume), a directory, or a location that can't be
    written. With overwrite, an existing file and an unfinished run of it are removed."""
    path = Path(path)
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other")
    if path.is_dir():
        raise ValueError(f"output path {path} is a directory; give a file name such as {path / 'data.h5'}")
    if path.exists() and not (overwrite or resume):
        raise FileExistsError(f"output file {path} already exists; pass --overwrite (overwrite=True) to replace it")
    if overwrite:
        path.unlink(missing_ok=True)
        shutil.rmtree(shards.partial_dir(path), ignore_errors=True)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"cannot create output directory {parent}: {e.strerror or e}") from None
    try:  # a real probe: os.access says yes to root even on a read-only filesystem
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".mjxgen-probe-"):
            pass
    except OSError as e:
        raise PermissionError(f"output directory {parent} is not writable: {e.strerror or e}") from None
    return path


def _filter_kwargs(compression: str) -> dict[str, Any]:
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if compression == "none":
        return {}
    raise ValueError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")


class DatasetWriter:
    """Writes batches of episodes, one crash-safe shard per batch (mjxgen.shards), on a background thread.

    `write_batch` hands a host batch to the thread and returns at once (it blocks only while two batches
    are already queued), so the caller can simulate the next batch meanwhile. `close` waits for the
    queue and turns the shards into the complete output file. `abort` writes what is queued and stops,
    leaving the unfinished run in `<output>.partial/` for `resume=True`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        env_name: str,
        policy: str,
        seed: int,
        config: dict,
        model_xml: str,
        obs_keys: tuple[str, ...],
        compression: str = "gzip",
        overwrite: bool = False,
        resume: bool = False,
        on_invalid: str = "drop",
        randomized: bool = False,
        image_size: tuple[int, int] | None = None,
    ):
        self._randomized = randomized
        self._policy = policy
        self._image_size = image_size
        self._model_xml = model_xml
        self._renderer = None  # made in the writer thread, which owns its GL context
        self.render_s = 0.0
        self.frames = 0
        if image_size is not None:  # fail now, with one clear line, not after simulating a batch
            render.EpisodeRenderer(model_xml, *image_size).close()
        if on_invalid not in ON_INVALID:
            raise ValueError(f"unknown on_invalid {on_invalid!r}; choose one of {', '.join(ON_INVALID)}")
        self._on_invalid = on_invalid
        self._filters = _filter_kwargs(compression)
        self.path = check_output_path(path, overwrite, resume)
        self._obs_keys = obs_keys
        self._seed = int(seed)
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "complete": False,
            "env_name": env_name,
            "policy": policy,
            "seed": self._seed,
            "compression": compression,
            "config": json.dumps(config, sort_keys=True),
            "versions": json.dumps(package_versions(), sort_keys=True),
            "model_xml": model_xml,
        }
        self.store = shards.ShardStore.open(self.path, FORMAT, config, attrs, resume)
        self.episodes = self.steps = self.successes = self.invalid = 0
        self.reward_sum = 0.0
        self.dropped: list[int] = []  # ids of episodes with NaN/inf that were not written
        for _, _, shard in self.store.shards:  # a resumed run's episodes count too
            with h5py.File(shard, "r") as f:
                self.dropped += [int(i) for i in f.attrs.get("dropped_episodes", [])]
                for g in f.values():
                    self._count(g.attrs)
        self.invalid += len(self.dropped)
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mjxgen-writer", daemon=True)
        self._thread.start()

    @property
    def done(self) -> int:
        """Episode ids [0, done) are safely on disk."""
        return self.store.done

    def write_batch(self, batch: dict[str, Any]) -> None:
        """Queue a host batch: `first, end` (the episode ids it covers), `episode_ids, lengths, success,
        valid (B,)`, `rewards (B, T)`, `actions (B, T, A)`, `observations {key: (B, T, ...)}`, all NumPy.
        Episodes whose `valid` is False are written with the attribute invalid = True."""
        self._raise_if_failed()
        self._queue.put(batch)

    def close(self) -> None:
        """Flush every queued batch, then merge the shards into the complete output file."""
        if self._thread is None:
            return
        self._stop()
        self._raise_if_failed()
        self.store.finalize({"total_episodes": self.episodes, "total_steps": self.steps,
                             "invalid_episodes": self.invalid, "dropped_episodes": np.asarray(sorted(self.dropped), np.int64)})

    def abort(self) -> None:
        """Write what is queued and stop; the unfinished run stays in `<output>.partial/`."""
        if self._thread is not None:
            self._stop()

    def _stop(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            err = self._error
            raise OSError(f"writing {self.store.partial} failed: {err}") from err

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self._renderer is not None:
                self._renderer.close()

    def _loop(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is not None:
                continue  # drain the queue after a failure; the caller is told on its next call
            written: list[dict] = []
            try:
                self.store.write_shard(int(batch["first"]), int(batch["end"]), lambda f: written.extend(self._write(f, batch)))
            except BaseException as e:  # noqa: BLE001 - reported to the caller's thread
                self._error = e
                continue
            for attrs in written:  # counted only once the shard is committed
                if attrs.get("dropped"):
                    self.dropped.append(attrs["episode_index"])
                    self.invalid += 1
                else:
                    self._count(attrs)

    def _render(self, batch: dict[str, Any], b: int, length: int) -> np.ndarray:
        """Episode b's camera frames (L, H, W, 3) uint8, from its recorded states and randomization draw."""
        if self._renderer is None:
            self._renderer = render.EpisodeRenderer(self._model_xml, *self._image_size)
        draw = batch["randomization"]
        start = time.perf_counter()
        frames = self._renderer.render(
            np.asarray(batch["qpos"][b, :length], np.float64),
            np.asarray(batch["mocap_pos"][b], np.float64),
            np.asarray(draw["light_dir"][b]) if self._randomized else None,
            np.asarray(draw["camera_offset"][b]) if self._randomized else None,
        )
        self.render_s += time.perf_counter() - start
        self.frames += length
        return frames

    def _count(self, attrs) -> None:
        self.episodes += 1
        self.steps += int(attrs["length"])
        self.successes += bool(attrs["success"])
        self.reward_sum += float(attrs["total_reward"])
        self.invalid += bool(attrs.get("invalid", False))

    def _write(self, f: h5py.File, batch: dict[str, Any]) -> list[dict]:
        rewards = np.asarray(batch["rewards"], _STORE_DTYPE)
        actions = np.asarray(batch["actions"], _STORE_DTYPE)
        obs = {k: np.asarray(batch["observations"][k], _STORE_DTYPE) for k in self._obs_keys}
        written = []
        for b, (ep, length, success, valid) in enumerate(
            zip(batch["episode_ids"], batch["lengths"], batch["success"], batch["valid"])
        ):
            length = int(length)
            if not valid and self._on_invalid == "drop":
                written.append({"episode_index": int(ep), "dropped": True})
                continue
            g = f.create_group(f"episode_{int(ep)}")
            og = g.create_group("observations")
            for k in self._obs_keys:
                og.create_dataset(k, data=obs[k][b, :length], **self._filters)
            g.create_dataset("actions", data=actions[b, :length], **self._filters)
            g.create_dataset("rewards", data=rewards[b, :length], **self._filters)
            # Per-episode values, small and uncompressed: the policy's record (dmp/goal, ...) and the draw.
            for name, values in batch.get("policy_record", {}).items():
                g.create_dataset(f"{self._policy}/{name}", data=np.asarray(values[b]))
            if self._randomized:
                for name, values in batch["randomization"].items():
                    g.create_dataset(f"randomization/{name}", data=np.asarray(values[b]))
            if self._image_size is not None:
                og.create_dataset("image", data=self._render(batch, b, length), chunks=(1, *self._image_size, 3),
                                  **self._filters)
            attrs = {"episode_index": int(ep), "seed": self._seed, "length": length, "success": bool(success),
                     "total_reward": float(rewards[b, :length].sum())}
            if not valid:
                attrs["invalid"] = True
            g.attrs.update(attrs)
            written.append(attrs)
        dropped = [a["episode_index"] for a in written if a.get("dropped")]
        if dropped:
            f.attrs["dropped_episodes"] = np.asarray(dropped, np.int64)
        return written
