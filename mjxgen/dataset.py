"""Reading datasets back: TrajectoryDataset (the arm tasks' files, for training) and `describe` (any mjxgen
file, for `mjxgen info`). Names come from mjxgen.layout; nothing is unpickled (metadata is JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from mjxgen import shards
from mjxgen.layout import ACTIONS, EPISODES, IMAGE, LAYOUTS, OBSERVATIONS, REWARDS, Layout, observation
from mjxgen.stats import RunStats


class DatasetFormatError(ValueError):
    """The file is not a readable mjxgen dataset, or is an unfinished run read without allow_incomplete."""


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def open_run(path: str | os.PathLike, allow_incomplete: bool = False) -> tuple[Path, bool, dict, Layout]:
    """(the file or unfinished run's .partial directory, whether it is complete, its file attributes, its
    layout), checked: a DatasetFormatError with one line naming the file and the problem otherwise."""
    path = Path(path)
    partial = path if path.is_dir() and path.name.endswith(".partial") else shards.partial_dir(path)
    if path.is_dir() and path != partial:
        raise DatasetFormatError(f"{path} is a directory, not a dataset file")
    if not path.is_file() and not partial.is_dir():
        raise FileNotFoundError(f"{path}: no such file")
    source = path if path.is_file() else partial
    if source.is_dir() and not allow_incomplete:
        raise DatasetFormatError(shards.describe_incomplete(partial))
    try:
        attrs = shards.load_attrs(source)
    except OSError as e:
        kind = "not an HDF5 file" if "signature" in str(e) else "not a readable HDF5 file"
        raise DatasetFormatError(f"{source} is {kind} ({_first_line(e)})") from None
    except ValueError as e:  # an unfinished run whose manifest is missing or broken
        raise DatasetFormatError(_first_line(e)) from None
    layout = LAYOUTS.get(attrs.get("format"))
    if layout is None:
        raise DatasetFormatError(f"{source} is not an mjxgen dataset (no format attribute of "
                                 f"{', '.join(map(repr, LAYOUTS))})")
    version = int(attrs.get("format_version", -1))
    if version != layout.version:
        raise DatasetFormatError(f"{source} has format version {version}; this mjxgen reads version {layout.version}")
    try:
        json.loads(attrs["config"])
    except (KeyError, TypeError, ValueError):
        raise DatasetFormatError(f"{source} has no valid JSON config attribute") from None
    complete = source.is_file() and bool(attrs.get("complete", False))
    if source.is_file() and not complete and not allow_incomplete:
        raise DatasetFormatError(f"{source} is marked incomplete (its run did not finish); "
                                 "read it anyway with allow_incomplete=True (--allow-incomplete)")
    return source, complete, attrs, layout


def describe(path: str | os.PathLike, allow_incomplete: bool = False) -> tuple[Path, bool, dict, RunStats]:
    """(source, complete, file attributes, stats recounted from every group's attributes) of any mjxgen file."""
    source, complete, attrs, layout = open_run(path, allow_incomplete)
    name = "the file"
    try:
        stats = RunStats()
        for name, group in shards.iter_groups(source):
            layout.group_index(name)
            stats.add_group(layout, group)
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DatasetFormatError(f"{source}: {name} is unreadable or malformed ({_first_line(e)})") from None
    for index in np.atleast_1d(attrs.get("dropped_episodes", [])):
        stats.add_dropped(int(index))
    return source, complete, attrs, stats


class TrajectoryDataset:
    """Every timestep of every episode of an arm-task dataset, read lazily.

    Item i is {"observations": {key: (...)}, "actions": (A,), "rewards": (), "episode": (), "timestep": ()}:
    a plain sequence of dicts of NumPy arrays, so PyTorch's DataLoader batches it unchanged when torch is
    installed (torch is not a dependency).

    With `horizon=H` (diffusion-policy style), item i is the window of H steps of one episode that starts at
    step i: observations {key: (H, ...)}, actions (H, A), rewards (H,), and mask (H,) bool. Every step starts a
    window, so len() is unchanged. A window that runs past its episode's end is padded with the episode's last
    step repeated, and mask is False on those padded steps (True on the real ones); windows never cross into
    the next episode. "timestep" is the window's first step.

    Opening reads the attributes and dataset shapes of every episode and checks them; no array is read. An
    item reads the requested observation keys (`obs_keys`; default: every key but `image`) of its own episode
    only: the small arrays of one episode at a time (kept while consecutive items stay in it) and one frame of
    an image (when `image` is requested). So memory stays flat however large the file. The
    `observations`, `actions` and `rewards` attributes load every step of the requested keys into memory on
    first use. An unfinished run (`<file>.partial/`) is refused unless allow_incomplete=True; it then reads
    the finished batches. A malformed file raises DatasetFormatError with one line naming the problem.
    """

    def __init__(self, path: str | os.PathLike, obs_keys: tuple[str, ...] | list[str] | None = None,
                 allow_incomplete: bool = False, *, horizon: int | None = None):
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer))
                                    or horizon <= 0):
            raise ValueError(f"horizon must be None or a positive integer, got {horizon!r}")
        self.horizon = None if horizon is None else int(horizon)
        source, self.complete, self.attrs, layout = open_run(path, allow_incomplete)
        if layout is not EPISODES:
            raise DatasetFormatError(f"{source} is a {layout.format} file; TrajectoryDataset reads {EPISODES.format} "
                                     "files (the arm tasks)")
        self.path = source
        self._files: list[h5py.File] = []
        self._pid = None
        names = self._index()
        available = tuple(names)
        if obs_keys is None:
            obs_keys = tuple(k for k in available if k != IMAGE)
        missing = [k for k in obs_keys if k not in available]
        if missing:
            raise ValueError(f"{source} has no observation {', '.join(map(repr, missing))}; "
                             f"it has {', '.join(available)}")
        self.obs_keys = tuple(obs_keys)
        self.available_obs_keys = available
        self.dropped_episodes = [int(i) for i in np.atleast_1d(self.attrs.get("dropped_episodes", []))]
        self._starts = np.concatenate([[0], np.cumsum(self.episode_lengths)])
        self._cached: tuple[int, dict] | None = None
        self._loaded: dict | None = None

    # --- opening and checking ----------------------------------------------------------------------------
    def _open(self) -> list[h5py.File]:
        """The open files (one, or one per shard of an unfinished run); reopened in a new process (DataLoader
        workers), since HDF5 handles don't survive a fork."""
        if self._pid != os.getpid():
            paths = [p for _, _, p in shards.list_shards(self.path)] if self.path.is_dir() else [self.path]
            self._files = [h5py.File(p, "r") for p in paths]
            self._pid = os.getpid()
        return self._files

    def _index(self) -> tuple[str, ...]:
        """Read every episode's attributes and shapes; returns the observation keys."""
        where, attrs, keys, name = [], [], None, "the file"
        try:
            for fi, f in enumerate(self._open()):
                for name in sorted(f, key=lambda n: _episode_number(self.path, n)):
                    g = f[name]
                    keys = _check_episode(self.path, name, g, keys)
                    where.append((fi, name))
                    attrs.append(dict(g.attrs))
        except DatasetFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise DatasetFormatError(f"{self.path}: {name} is unreadable or malformed ({_first_line(e)})") from None
        if not where:
            raise DatasetFormatError(f"{self.path} holds no episodes")
        self._where = where
        self.episode_lengths = np.array([int(a["length"]) for a in attrs])
        self.episode_index = np.array([int(a["episode_index"]) for a in attrs])
        self.success = np.array([bool(a["success"]) for a in attrs])
        self.invalid = np.array([bool(a.get("invalid", False)) for a in attrs])
        return keys

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files, self._pid, self._cached = [], None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # picklable for DataLoader workers: they reopen the file
        return {k: v for k, v in self.__dict__.items() if k not in ("_files", "_cached", "_pid")}

    def __setstate__(self, state):
        self.__dict__.update(state, _files=[], _pid=None, _cached=None)

    # --- metadata ------------------------------------------------------------------------------------------
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
        return int(self._starts[-1])

    # --- reading -------------------------------------------------------------------------------------------
    def _group(self, e: int) -> h5py.Group:
        fi, name = self._where[e]
        return self._open()[fi][name]

    def episode(self, e: int) -> dict:
        """Episode e (0-based position in the file) whole: observations {key: (L, ...)} of the requested keys
        (images excluded), actions (L, A), rewards (L,)."""
        if self._cached is not None and self._cached[0] == e:
            return self._cached[1]
        g = self._group(e)
        arrays = {"observations": {k: g[observation(k)][()] for k in self.obs_keys if k != IMAGE},
                  "actions": g[ACTIONS][()], "rewards": g[REWARDS][()]}
        self._cached = (e, arrays)
        return arrays

    def __getitem__(self, i: int) -> dict:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} timesteps")
        i %= n
        e = int(np.searchsorted(self._starts, i, side="right") - 1)
        t = i - int(self._starts[e])
        if self.horizon is not None:
            return self._window(e, t)
        arrays = self.episode(e)
        obs = {k: v[t] for k, v in arrays["observations"].items()}
        if IMAGE in self.obs_keys:
            obs[IMAGE] = self._group(e)[observation(IMAGE)][t]
        return {"observations": obs, "actions": arrays["actions"][t], "rewards": arrays["rewards"][t],
                "episode": self.episode_index[e], "timestep": t}

    def _window(self, e: int, t: int) -> dict:
        """Steps t .. t+H-1 of episode e, padded past its end with its last step (mask False there)."""
        length = int(self.episode_lengths[e])
        steps = np.arange(t, t + self.horizon)
        idx = np.minimum(steps, length - 1)
        arrays = self.episode(e)
        obs = {k: v[idx] for k, v in arrays["observations"].items()}
        if IMAGE in self.obs_keys:
            frames = self._group(e)[observation(IMAGE)][t:min(t + self.horizon, length)]  # only these frames
            obs[IMAGE] = frames[idx - t]
        return {"observations": obs, "actions": arrays["actions"][idx], "rewards": arrays["rewards"][idx],
                "mask": steps < length, "episode": self.episode_index[e], "timestep": t}

    def _load(self) -> dict:
        if self._loaded is None:
            eps = [self.episode(e) for e in range(self.n_episodes)]
            self._loaded = {
                "observations": {k: np.concatenate([ep["observations"][k] for ep in eps])
                                 for k in self.obs_keys if k != IMAGE},
                "actions": np.concatenate([ep["actions"] for ep in eps]),
                "rewards": np.concatenate([ep["rewards"] for ep in eps]),
            }
        return self._loaded

    @property
    def observations(self) -> dict[str, np.ndarray]:
        """Every step of the requested observation keys, images excluded, in memory: key -> (N, ...)."""
        return self._load()["observations"]

    @property
    def actions(self) -> np.ndarray:
        return self._load()["actions"]

    @property
    def rewards(self) -> np.ndarray:
        return self._load()["rewards"]


def _episode_number(path: Path, name: str) -> int:
    try:
        return EPISODES.group_index(name)
    except ValueError as e:
        raise DatasetFormatError(f"{path}: {e}") from None


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
