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

from mjxgen.writer import FORMAT, FORMAT_VERSION


class DatasetFormatError(ValueError):
    """The file is not a readable mjxgen dataset."""


class TrajectoryDataset:
    """Every timestep of every episode in an mjxgen dataset, loaded into memory.

    Item i is {"observations": {key: (...)}, "actions": (A,), "rewards": (), "episode": (), "timestep": ()}.
    `episode_lengths`, `episode_index` (the global episode ids) and `attrs` describe the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise DatasetFormatError(f"{self.path} is not an HDF5 file ({e})") from None
        with f:
            self.attrs = _check_header(self.path, f)
            names = sorted((k for k in f.keys() if k.startswith("episode_")), key=lambda k: int(k.split("_", 1)[1]))
            if not names:
                raise DatasetFormatError(f"{self.path} holds no episodes")
            self.obs_keys = tuple(f[names[0]]["observations"].keys())
            obs, actions, rewards, lengths = {k: [] for k in self.obs_keys}, [], [], []
            for name in names:
                g = f[name]
                for k in self.obs_keys:
                    obs[k].append(g["observations"][k][()])
                actions.append(g["actions"][()])
                rewards.append(g["rewards"][()])
                lengths.append(len(rewards[-1]))
        self.observations = {k: np.concatenate(v) for k, v in obs.items()}
        self.actions = np.concatenate(actions)
        self.rewards = np.concatenate(rewards)
        self.episode_lengths = np.asarray(lengths)
        self.episode_index = np.asarray([int(n.split("_", 1)[1]) for n in names])
        self._episode_of_step = np.repeat(np.arange(len(names)), self.episode_lengths)
        self._episode_start = np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]])

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


def _check_header(path: Path, f: h5py.File) -> dict:
    attrs = dict(f.attrs)
    if attrs.get("format") != FORMAT:
        raise DatasetFormatError(f"{path} is not an mjxgen dataset (no format='{FORMAT}' attribute)")
    version = int(attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise DatasetFormatError(f"{path} has format version {version}; this mjxgen reads version {FORMAT_VERSION}")
    return attrs
