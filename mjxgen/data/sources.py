"""Where TrajectoryDataset's arrays come from, one class per arm layout (mjxgen.data.layout): EPISODES (a group per
episode) and FLAT (arrays of all steps with an episode index). Each reads a complete file or the shards of an
unfinished run, checks shapes without reading arrays, and reads one episode or one frame on request."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from mjxgen.data.layout import (ACTIONS, DATA, EPISODES, IMAGE, META, OBS_KEYS_ATTR, OBSERVATIONS, REWARDS,
                           observation)


class FormatError(ValueError):
    """A malformed file: the message names the file and the problem (one line)."""


class Index:
    """Per-episode metadata, (E,) arrays, and the observation keys."""

    def __init__(self, keys, lengths, episode_index, success, invalid):
        self.keys = tuple(keys)
        self.lengths, self.episode_index = np.asarray(lengths, np.int64), np.asarray(episode_index, np.int64)
        self.success, self.invalid = np.asarray(success, bool), np.asarray(invalid, bool)


class EpisodeSource:
    """The per-episode layout: episode_<i>/ groups."""

    def __init__(self, path: Path, files: list[h5py.File]):
        self.path, self.files = path, files

    def index(self) -> Index:
        where, attrs, keys = [], [], None
        for fi, f in enumerate(self.files):
            for name in sorted(f, key=lambda n: _episode_number(self.path, n)):
                try:
                    g = f[name]
                    keys = _check_episode(self.path, name, g, keys)
                    attrs.append(dict(g.attrs))
                except FormatError:
                    raise
                except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                    raise FormatError(f"{self.path}: {name} is unreadable or malformed ({first})") from None
                where.append((fi, name))
        self._where = where
        return Index(keys or (), [int(a["length"]) for a in attrs], [int(a["episode_index"]) for a in attrs],
                     [bool(a["success"]) for a in attrs], [bool(a.get("invalid", False)) for a in attrs])

    def _group(self, e: int) -> h5py.Group:
        fi, name = self._where[e]
        return self.files[fi][name]

    def episode(self, e: int, keys: tuple[str, ...], length: int) -> dict:
        g = self._group(e)
        return {"observations": {k: g[observation(k)][()] for k in keys}, "actions": g[ACTIONS][()],
                "rewards": g[REWARDS][()]}

    def frames(self, e: int, lo: int, hi: int) -> np.ndarray:
        return self._group(e)[observation(IMAGE)][lo:hi]


class FlatSource:
    """The flat layout: data/<key> rows and meta/ per-episode arrays, in one file or in shards (each shard's
    rows start after its `first_row % chunk rows` empty rows, see mjxgen.data.flat)."""

    def __init__(self, path: Path, files: list[h5py.File]):
        self.path, self.files = path, files

    def index(self) -> Index:
        keys, metas, parts = None, [], {"file": [], "first_row": [], "start": []}
        for fi, f in enumerate(self.files):
            data, meta = f[DATA], f[META]
            own = tuple(json.loads(data.attrs[OBS_KEYS_ATTR])) + ((IMAGE,) if IMAGE in data else ())
            if keys is not None and own != keys:
                raise FormatError(f"{self.path}: {f.filename} has observations {sorted(own)}, not {sorted(keys)}")
            keys = own
            lengths = meta["length"][()]
            first_row = int(f.attrs.get("first_row", 0))
            n = int(lengths.sum())
            for name in (*own, ACTIONS, REWARDS):
                ds = data[name]
                pad = first_row % ds.chunks[0] if ds.chunks else 0
                if ds.shape[0] != pad + n:
                    raise FormatError(f"{self.path}: data/{name} has {ds.shape[0] - pad} rows, but the episodes "
                                      f"have {n} steps")
            parts["start"].append(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
            parts["file"].append(np.full(len(lengths), fi))
            parts["first_row"].append(np.full(len(lengths), first_row))
            metas.append({k: meta[k][()] for k in ("length", "episode_index", "success", "invalid")})
        self._parts = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
        cat = {k: np.concatenate([m[k] for m in metas]) if metas else np.zeros(0) for k in
               ("length", "episode_index", "success", "invalid")}
        return Index(keys or (), cat["length"], cat["episode_index"], cat["success"], cat["invalid"])

    def _rows(self, name: str, e: int, lo: int, hi: int):
        """Rows lo:hi (steps of episode e) of data/<name>."""
        fi, first_row, start = (int(self._parts[k][e]) for k in ("file", "first_row", "start"))
        ds = self.files[fi][DATA][name]
        base = (first_row % ds.chunks[0] if ds.chunks else 0) + start
        return ds[base + lo:base + hi]

    def episode(self, e: int, keys: tuple[str, ...], length: int) -> dict:
        return {"observations": {k: self._rows(k, e, 0, length) for k in keys},
                "actions": self._rows(ACTIONS, e, 0, length), "rewards": self._rows(REWARDS, e, 0, length)}

    def frames(self, e: int, lo: int, hi: int) -> np.ndarray:
        return self._rows(IMAGE, e, lo, hi)


def _episode_number(path: Path, name: str) -> int:
    try:
        return EPISODES.group_index(name)
    except ValueError as e:
        raise FormatError(f"{path}: {e}") from None


def _check_episode(path: Path, name: str, g: h5py.Group, keys: tuple[str, ...] | None) -> tuple[str, ...]:
    """Check one episode's datasets against its length (shapes only: nothing is read); returns its keys."""

    def bad(what: str):
        raise FormatError(f"{path}: {name} {what}")

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
