"""The arm tasks' per-episode format (seed 000's layout, `layout="episodes"`): one group per episode, each cut to
its length L, float64 by default.

    episode_<i>/observations/<key>       (L, *obs_shape)  each observation before the step's action
    episode_<i>/observations/image       (L, H, W, 3)     uint8 camera frames (camera on), a chunk per frame
    episode_<i>/actions                  (L, A)
    episode_<i>/rewards                  (L,)
    episode_<i>/terminated, truncated    (L,) bool        v2: True at the last step, as success or the horizon ended it
    episode_<i>/final_observation/<key>  (*obs_shape)     v2: the observation after the last action
    episode_<i>/randomization/<field>    (...)            the episode's draw (randomization on)
    episode_<i>/<policy>/<field>         (...)            what the policy records (the dmp policy: its DMP)
    attributes: EPISODE_ATTRS
Root attributes (v2): `index` (mjxgen.data.formats.INDEX_DTYPE, one row per episode in id order; each shard of an
unfinished run has its own), `shapes`, `statistics`; and mjxgen.data.formats.FILE_ATTRS and
mjxgen.data.writer.ARM_FILE_ATTRS. Every root link is an episode group, so seed 000's `len(f.keys())` counts
episodes. Version 1 files (no terminated, truncated, final observation or index) are read too.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mjxgen.data.formats import (ACTIONS, FINAL_OBSERVATION, IMAGE, IMAGE_DTYPE, INDEX_DTYPE, OBSERVATIONS,
                                 RANDOMIZATION, REWARDS, TERMINATED, TRUNCATED, DatasetFormatError, EncoderSettings,
                                 Format, Index, Position, image_chunks, index_rows, register, step_flags)
from mjxgen.data.formats import checking

PREFIX = "episode_"
EPISODE_ATTRS = {
    "episode_index": "the global episode index i; its randomness is fold_in(key(seed), i)",
    "seed": "the dataset seed",
    "length": "L: steps up to and including the first success, else the horizon",
    "success": "whether the episode succeeded",
    "total_reward": "the sum of rewards",
    "invalid": "present and True only on an episode with NaN/inf kept by on_invalid='flag'",
}


def group_name(index: int) -> str:
    return f"{PREFIX}{int(index)}"


def group_index(path, name: str) -> int:
    """The episode index in a group name; a DatasetFormatError for anything that is not an episode group."""
    number = name[len(PREFIX):]
    if not name.startswith(PREFIX) or not number.isdigit():
        raise DatasetFormatError(f"{path}: unexpected top-level entry {name!r} (an episodes file holds only "
                                 f"{PREFIX}N groups)")
    return int(number)


def observation(key: str) -> str:
    """The path of an observation inside an episode group."""
    return f"{OBSERVATIONS}/{key}"


class EpisodeEncoder:
    """Writes a HostBatch's episodes as one group each, compressed, with camera frames when settings.frames."""

    def __init__(self, settings: EncoderSettings):
        self.settings, self.frames = settings, settings.frames
        self._dtype = np.dtype(settings.dtype)

    def encode(self, f: h5py.File, batch, position: Position) -> None:
        o = batch.offsets
        terminated, truncated = step_flags(batch.lengths, batch.success)
        for b in range(len(batch.episode_ids)):
            rows = slice(o[b], o[b + 1])
            self._episode(f, batch, b, rows, terminated[rows], truncated[rows])
        f.attrs["index"] = index_rows(batch)

    def _episode(self, f: h5py.File, batch, b: int, rows: slice, terminated, truncated) -> None:
        s, dtype = self.settings, self._dtype
        g = f.create_group(group_name(batch.episode_ids[b]))
        g.create_group(OBSERVATIONS)
        for k in s.obs_keys:
            g.create_dataset(observation(k), data=np.asarray(batch.observations[k][rows], dtype), **s.filters)
        g.create_dataset(ACTIONS, data=np.asarray(batch.actions[rows], dtype), **s.filters)
        g.create_dataset(REWARDS, data=np.asarray(batch.rewards[rows], dtype), **s.filters)
        g.create_dataset(TERMINATED, data=terminated)
        g.create_dataset(TRUNCATED, data=truncated)
        for k, values in (batch.final_observations or {}).items():
            g.create_dataset(f"{FINAL_OBSERVATION}/{k}", data=np.asarray(values[b], dtype))
        # Per-episode values, small and uncompressed: the policy's record (dmp/goal, ...) and the draw.
        for name, values in batch.policy_record.items():
            g.create_dataset(f"{s.policy}/{name}", data=np.asarray(values[b]))
        for name, values in (batch.randomization or {}).items():
            g.create_dataset(f"{RANDOMIZATION}/{name}", data=np.asarray(values[b]))
        if self.frames is not None:
            g.create_dataset(observation(IMAGE), data=self.frames.episode(batch, b).astype(IMAGE_DTYPE, copy=False),
                             chunks=image_chunks(*self.frames.size), **s.filters)
        g.attrs.update(episode_attrs(batch, b, s.seed))

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()


def episode_attrs(batch, b: int, seed: int) -> dict:
    """An episode's attributes (EPISODE_ATTRS); batch.total_reward is the stored rewards' float64 sum."""
    attrs = {"episode_index": int(batch.episode_ids[b]), "seed": int(seed), "length": int(batch.lengths[b]),
             "success": bool(batch.success[b]), "total_reward": float(batch.total_reward[b])}
    if not batch.valid[b]:
        attrs["invalid"] = True
    return attrs


def merge(out: h5py.File, shards: list[Path]) -> None:
    """Every shard's episode groups, in order (raw chunks, not recompressed), and the root index (v2)."""
    rows = []
    for shard in shards:
        with h5py.File(shard, "r") as src:
            for name in src:
                src.copy(src[name], out, name)
            rows.append(np.asarray(src.attrs["index"], INDEX_DTYPE))
    out.attrs["index"] = np.concatenate(rows) if rows else np.zeros(0, INDEX_DTYPE)


class EpisodeReader:
    """Reads episode_<i>/ groups from a complete file or an unfinished run's shards. Opening reads the index (a
    version 1 file's is rebuilt from every group's attributes); each episode is checked when it is read."""

    def __init__(self, path: Path, files: list[h5py.File], attrs: dict):
        self.path, self.files, self.attrs = path, files, attrs
        self.expect = checking.Expected.of(path, attrs)
        self._where: list[tuple[int, str]] = []

    def index(self) -> Index:
        if all("index" in f.attrs for f in self.files):
            rows = [checking.index_attr(self.path, f) for f in self.files]
            for fi, (f, r) in enumerate(zip(self.files, rows)):
                names = [group_name(i) for i in r["episode_index"]]
                checking.same_members(self.path, f, names, f"{PREFIX}N groups of its index")
                self._where += [(fi, n) for n in names]
            cat = np.concatenate(rows) if rows else np.zeros(0, INDEX_DTYPE)
            keys = self.expect.keys if self.expect.keys is not None else self._keys_of_first()
            if self._where and IMAGE not in keys and IMAGE in self._group(0)[OBSERVATIONS]:
                keys += (IMAGE,)  # camera frames: declared beside the observations' shapes, not among them
        else:
            cat, keys = self._scan()
        self._totals = cat["total_reward"]
        for n in (cat["length"].min(), cat["length"].max()) if len(cat) else ():
            self.expect.check_length("an episode", int(n))
        return Index(keys, cat["length"].astype(np.int64), cat["episode_index"].astype(np.int64),
                     cat["success"].astype(bool), cat["invalid"].astype(bool))

    def _keys_of_first(self) -> tuple[str, ...]:
        return tuple(self._group(0)[OBSERVATIONS]) if self._where else ()

    def _scan(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """A version 1 file: every group's attributes and shapes (nothing is read)."""
        rows, keys = [], None
        for fi, f in enumerate(self.files):
            for name in sorted(f, key=lambda n: group_index(self.path, n)):
                g = checking.group(self.path, f, name)
                keys = checking.episode_keys(self.path, name, g, keys)
                a = g.attrs
                rows.append((int(a["episode_index"]), int(a["length"]), bool(a["success"]),
                             bool(a.get("invalid", False)), float(a["total_reward"])))
                self._where.append((fi, name))
        return np.array(rows, INDEX_DTYPE), keys or ()

    def _group(self, e: int) -> h5py.Group:
        fi, name = self._where[e]
        return checking.group(self.path, self.files[fi], name)

    def episode(self, e: int, keys: tuple[str, ...], length: int) -> dict:
        g, name, x = self._group(e), self._where[e][1], self.expect
        x.check_length(name, length)
        obs = {k: checking.read(self.path, name, g, observation(k), length, x.obs_shapes.get(k)) for k in keys}
        actions = checking.read(self.path, name, g, ACTIONS, length, None if x.action_size is None else (x.action_size,))
        if actions.ndim != 2:
            raise DatasetFormatError(f"{self.path}: {name}/actions is {actions.shape}, expected ({length}, A)")
        return {"observations": obs, "actions": actions, "rewards": checking.read(self.path, name, g, REWARDS, length, ())}

    def total_reward(self, e: int) -> float:
        """Episode e's stored reward total (its index row)."""
        return float(self._totals[e])

    def flags(self, e: int, length: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Episode e's (terminated, truncated), or None in a version 1 file."""
        g, name = self._group(e), self._where[e][1]
        if TERMINATED not in g:
            return None
        return tuple(checking.read(self.path, name, g, k, length, (), kinds="b") for k in (TERMINATED, TRUNCATED))

    def frames(self, e: int, lo: int, hi: int) -> np.ndarray:
        g = self._group(e)
        return checking.dataset(self.path, self._where[e][1], g, observation(IMAGE))[lo:hi]


class EpisodesFormat(Format):
    attr, version, option = "mjxgen", 2, "episodes"
    readable = (1, 2)

    def encoder(self, settings: EncoderSettings) -> EpisodeEncoder:
        return EpisodeEncoder(settings)

    def merge(self, out: h5py.File, shards: list[Path]) -> None:
        merge(out, shards)

    def recount(self, f: h5py.File, stats) -> None:
        if "index" in f.attrs:
            stats.add_index(checking.index_attr(f.filename, f))
            return
        for name in f:
            group_index(f.filename, name)
            a = f[name].attrs
            stats.add(length=int(a["length"]), success=bool(a["success"]), total_reward=float(a["total_reward"]),
                      invalid=bool(a.get("invalid", False)))

    def reader(self, path: Path, files: list[h5py.File], attrs: dict) -> EpisodeReader:
        return EpisodeReader(path, files, attrs)


EPISODES = register(EpisodesFormat())
