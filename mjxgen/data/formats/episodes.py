"""The arm tasks' per-episode format (seed 000's layout, `layout="episodes"`): one group per episode, each cut to
its length L, float64 by default.

    episode_<i>/observations/<key>     (L, *obs_shape)  float64  each observation before the step's action
    episode_<i>/observations/image     (L, H, W, 3)     uint8    camera frames (camera on), a chunk per frame
    episode_<i>/actions                (L, A)           float64
    episode_<i>/rewards                (L,)             float64
    episode_<i>/randomization/<field>  (...)            the episode's draw (randomization on)
    episode_<i>/<policy>/<field>       (...)            what the policy records (the dmp policy: its DMP)
    attributes: EPISODE_ATTRS
File attributes: mjxgen.data.formats.FILE_ATTRS and mjxgen.data.writer.ARM_FILE_ATTRS.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mjxgen.data.formats import (ACTIONS, IMAGE, IMAGE_DTYPE, OBSERVATIONS, RANDOMIZATION, REWARDS,
                                 DatasetFormatError, EncoderSettings, Format, Index, Position, first_line,
                                 image_chunks, register)

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
        for b in range(len(batch.episode_ids)):
            self._episode(f, batch, b, slice(o[b], o[b + 1]))

    def _episode(self, f: h5py.File, batch, b: int, rows: slice) -> None:
        s, dtype = self.settings, self._dtype
        g = f.create_group(group_name(batch.episode_ids[b]))
        g.create_group(OBSERVATIONS)
        for k in s.obs_keys:
            g.create_dataset(observation(k), data=np.asarray(batch.observations[k][rows], dtype), **s.filters)
        g.create_dataset(ACTIONS, data=np.asarray(batch.actions[rows], dtype), **s.filters)
        g.create_dataset(REWARDS, data=np.asarray(batch.rewards[rows], dtype), **s.filters)
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


def _natural(name: str):
    head, _, number = name.rpartition("_")
    return (head, int(number)) if number.isdigit() else (name, -1)


class EpisodeReader:
    """Reads episode_<i>/ groups from a complete file or from an unfinished run's shards."""

    def __init__(self, path: Path, files: list[h5py.File]):
        self.path, self.files = path, files
        self._where: list[tuple[int, str]] = []

    def index(self) -> Index:
        attrs, keys = [], None
        for fi, f in enumerate(self.files):
            for name in sorted(f, key=lambda n: group_index(self.path, n)):
                try:
                    g = f[name]
                    keys = _check_episode(self.path, name, g, keys)
                    attrs.append(dict(g.attrs))
                except DatasetFormatError:
                    raise
                except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
                    raise DatasetFormatError(f"{self.path}: {name} is unreadable or malformed ({first_line(e)})") \
                        from None
                self._where.append((fi, name))
        return Index(keys or (), np.array([int(a["length"]) for a in attrs], np.int64),
                     np.array([int(a["episode_index"]) for a in attrs], np.int64),
                     np.array([bool(a["success"]) for a in attrs], bool),
                     np.array([bool(a.get("invalid", False)) for a in attrs], bool))

    def _group(self, e: int) -> h5py.Group:
        fi, name = self._where[e]
        return self.files[fi][name]

    def episode(self, e: int, keys: tuple[str, ...]) -> dict:
        g = self._group(e)
        return {"observations": {k: g[observation(k)][()] for k in keys}, "actions": g[ACTIONS][()],
                "rewards": g[REWARDS][()]}

    def frames(self, e: int, lo: int, hi: int) -> np.ndarray:
        return self._group(e)[observation(IMAGE)][lo:hi]


def _check_episode(path: Path, name: str, g: h5py.Group, keys: tuple[str, ...] | None) -> tuple[str, ...]:
    """Check one episode's datasets against its length (shapes only: nothing is read); returns its keys."""

    def bad(what: str):
        raise DatasetFormatError(f"{path}: {name} {what}")

    obs = g[OBSERVATIONS]
    own = tuple(obs)
    if keys is not None and own != keys:
        bad(f"has observations {sorted(own)}, but earlier episodes have {sorted(keys)}")
    actions, rewards = g[ACTIONS], g[REWARDS]
    if len(rewards.shape) != 1 or len(actions.shape) != 2 or actions.shape[0] != rewards.shape[0]:
        bad(f"has actions {actions.shape} and rewards {rewards.shape}; expected (L, A) and (L,)")
    for k in own:
        if obs[k].shape[0] != rewards.shape[0]:
            bad(f"has observations/{k} of length {obs[k].shape[0]}, but {rewards.shape[0]} rewards")
    if int(g.attrs["length"]) != rewards.shape[0]:
        bad(f"says length {int(g.attrs['length'])} but holds {rewards.shape[0]} steps")
    return own


class EpisodesFormat(Format):
    attr, version, option = "mjxgen", 1, "episodes"

    def encoder(self, settings: EncoderSettings) -> EpisodeEncoder:
        return EpisodeEncoder(settings)

    def recount(self, f: h5py.File, stats) -> None:
        for name in sorted(f, key=_natural):
            group_index(f.filename, name)
            a = f[name].attrs
            stats.add(length=int(a["length"]), success=bool(a["success"]), total_reward=float(a["total_reward"]),
                      invalid=bool(a.get("invalid", False)))

    def reader(self, path: Path, files: list[h5py.File]) -> EpisodeReader:
        return EpisodeReader(path, files)


EPISODES = register(EpisodesFormat())
