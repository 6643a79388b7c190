"""TrajectoryDataset: reads an mjxgen HDF5 file back for training, one timestep per item.

It is a plain sequence (len, getitem) of dicts of NumPy arrays, so PyTorch's DataLoader batches it
unchanged when torch is installed; torch is not a dependency.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from mjxgen import shards
from mjxgen.writer import FORMAT, FORMAT_VERSION


class DatasetFormatError(ValueError):
    """The file is not a readable mjxgen dataset, or is an unfinished run read without allow_incomplete."""


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


class TrajectoryDataset:
    """Every timestep of every episode in an mjxgen dataset, loaded into memory.

    Item i is {"observations": {key: (...)}, "actions": (A,), "rewards": (), "episode": (), "timestep": ()}.
    `episode_lengths`, `episode_index` (the global episode ids), `success`, `invalid` and `attrs` describe
    the file. An unfinished run (`<file>.partial/`) is refused unless allow_incomplete=True; it then reads
    the finished batches. Nothing is unpickled: metadata is JSON, and a malformed file raises
    DatasetFormatError with one line that names what is wrong.
    """

    def __init__(self, path: str | os.PathLike, allow_incomplete: bool = False):
        path = Path(path)
        partial = path if path.is_dir() and path.name.endswith(".partial") else shards.partial_dir(path)
        if path.is_dir() and path != partial:
            raise DatasetFormatError(f"{path} is a directory, not a dataset file")
        if not path.is_file() and not partial.is_dir():
            raise FileNotFoundError(f"{path}: no such file")
        source = path if path.is_file() else partial
        self.path = source
        self.complete = source.is_file()
        if not self.complete and not allow_incomplete:
            raise DatasetFormatError(shards.describe_incomplete(partial))
        try:
            attrs = shards.load_attrs(source)
        except OSError as e:
            kind = "not an HDF5 file" if "signature" in str(e) else "not a readable HDF5 file"
            raise DatasetFormatError(f"{source} is {kind} ({_first_line(e)})") from None
        except ValueError as e:  # an unfinished run whose manifest is missing or broken
            raise DatasetFormatError(_first_line(e)) from None
        self.attrs = _check_header(source, attrs)
        if self.complete and not bool(self.attrs.get("complete", False)):
            self.complete = False  # a file from before shards, never finished
            if not allow_incomplete:
                raise DatasetFormatError(f"{source} is marked incomplete (its run did not finish); "
                                         "read it anyway with allow_incomplete=True (--allow-incomplete)")
        obs, actions, rewards, lengths, ids, success, invalid = None, [], [], [], [], [], []
        name = "the file"
        try:
            for name, g in shards.iter_groups(source):
                _episode_number(source, name)
                o = {k: g["observations"][k][()] for k in g["observations"]}
                a, r = g["actions"][()], g["rewards"][()]
                if obs is None:
                    obs = {k: [] for k in o}
                _check_episode(source, name, g, o, a, r, tuple(obs))
                for k in obs:
                    obs[k].append(o[k])
                actions.append(a)
                rewards.append(r)
                lengths.append(len(r))
                ids.append(int(g.attrs["episode_index"]))
                success.append(bool(g.attrs["success"]))
                invalid.append(bool(g.attrs.get("invalid", False)))
        except DatasetFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise DatasetFormatError(f"{source}: {name} is unreadable or malformed ({_first_line(e)})") from None
        if obs is None:
            raise DatasetFormatError(f"{source} holds no episodes")
        self.obs_keys = tuple(obs)
        self.observations = {k: np.concatenate(v) for k, v in obs.items()}
        self.actions = np.concatenate(actions)
        self.rewards = np.concatenate(rewards)
        self.episode_lengths = np.asarray(lengths)
        self.episode_index = np.asarray(ids)
        self.success = np.asarray(success)
        self.invalid = np.asarray(invalid)
        self.dropped_episodes = [int(i) for i in np.atleast_1d(self.attrs.get("dropped_episodes", []))]
        self._episode_of_step = np.repeat(np.arange(len(ids)), self.episode_lengths)
        self._episode_start = np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]])

    @property
    def n_invalid(self) -> int:
        return int(self.invalid.sum())

    @property
    def config(self) -> dict:
        return json.loads(self.attrs["config"])

    @property
    def n_episodes(self) -> int:
        return len(self.episode_lengths)

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, i: int) -> dict:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} timesteps")
        i %= n
        e = self._episode_of_step[i]
        return {
            "observations": {k: v[i] for k, v in self.observations.items()},
            "actions": self.actions[i],
            "rewards": self.rewards[i],
            "episode": self.episode_index[e],
            "timestep": i - self._episode_start[e],
        }


def _episode_number(path: Path, name: str) -> int:
    prefix, _, number = name.partition("_")
    if prefix != "episode" or not number.isdigit():
        raise DatasetFormatError(f"{path}: unexpected top-level entry {name!r} (an mjxgen file holds only episode_N groups)")
    return int(number)


def _check_episode(path: Path, name: str, g, obs: dict, actions, rewards, keys: tuple) -> None:
    def bad(what: str):
        raise DatasetFormatError(f"{path}: {name} {what}")

    if tuple(obs) != keys:
        bad(f"has observations {sorted(obs)}, but earlier episodes have {sorted(keys)}")
    if rewards.ndim != 1 or actions.ndim != 2 or len(actions) != len(rewards):
        bad(f"has actions {actions.shape} and rewards {rewards.shape}; expected (L, A) and (L,)")
    for k, v in obs.items():
        if len(v) != len(rewards):
            bad(f"has observations/{k} of length {len(v)}, but {len(rewards)} rewards")
    if int(g.attrs["length"]) != len(rewards):
        bad(f"says length {int(g.attrs['length'])} but holds {len(rewards)} steps")


def _check_header(path: Path, attrs: dict) -> dict:
    if attrs.get("format") != FORMAT:
        raise DatasetFormatError(f"{path} is not an mjxgen dataset (no format='{FORMAT}' attribute)")
    version = int(attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise DatasetFormatError(f"{path} has format version {version}; this mjxgen reads version {FORMAT_VERSION}")
    try:
        json.loads(attrs["config"])
    except (KeyError, TypeError, ValueError):
        raise DatasetFormatError(f"{path} has no valid JSON config attribute") from None
    return attrs
