"""Reading datasets back: TrajectoryDataset, every timestep of an arm-task dataset in either layout, for
training. Opening and checking a file, and `describe` for `mjxgen info`, are mjxgen.data.files'."""

from __future__ import annotations

import os

import h5py
import numpy as np

from mjxgen import checks
from mjxgen.data import validate
from mjxgen.data.files import open_run, paths
from mjxgen.data.stats import RunStats
from mjxgen.data.formats import IMAGE, DatasetFormatError, first_line


class TrajectoryDataset:
    """Every timestep of every episode of an arm-task dataset, read lazily, in either layout ("episodes" or
    "flat").

    Item i is {"observations": {key: (...)}, "actions": (A,), "rewards": (), "episode": (), "timestep": ()}:
    a plain sequence of dicts of NumPy arrays, so PyTorch's DataLoader batches it unchanged when torch is
    installed (torch is not a dependency).

    With `horizon=H` (diffusion-policy style), item i is the window of H steps of one episode that starts at
    step i: observations {key: (H, ...)}, actions (H, A), rewards (H,), and mask (H,) bool. Every step starts a
    window, so len() is unchanged. A window that runs past its episode's end is padded with the episode's last
    step repeated, and mask is False on those padded steps (True on the real ones); windows never cross into
    the next episode. "timestep" is the window's first step.

    Opening reads the per-episode metadata and dataset shapes and checks them; no step array is read. An
    item reads the requested observation keys (`obs_keys`; default: every key but `image`) of its own episode
    only: the small arrays of one episode at a time (kept while consecutive items stay in it) and one frame of
    an image (when `image` is requested). So memory stays flat however large the file. The
    `observations`, `actions` and `rewards` attributes load every step of the requested keys into memory on
    first use. An unfinished run (`<file>.partial/`) is refused unless allow_incomplete=True; it then reads
    the finished blocks. A malformed file raises DatasetFormatError with one line naming the problem.
    """

    def __init__(self, path: str | os.PathLike, obs_keys: tuple[str, ...] | list[str] | None = None,
                 allow_incomplete: bool = False, *, horizon: int | None = None):
        self.horizon = None if horizon is None else checks.positive_int("horizon", horizon)
        source, self.complete, self.attrs, self.format = open_run(path, allow_incomplete)
        self.path = source
        self._files: list[h5py.File] = []
        self._pid = None
        available = self._index()
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
    def _source(self):
        """The layout's reader over the open files (one, or one per shard of an unfinished run); reopened in a
        new process (DataLoader workers), since HDF5 handles don't survive a fork."""
        if self._pid != os.getpid():
            self._files = [h5py.File(p, "r") for p in paths(self.path)]
            self._pid = os.getpid()
            self._reader = self.format.reader(self.path, self._files, self.attrs)
            self._reader_index = self._reader.index()
        return self._reader

    def _index(self) -> tuple[str, ...]:
        """Read every episode's metadata and check the shapes; returns the observation keys."""
        try:
            self._source()
            index = self._reader_index
            validate.totals(self.path, self.attrs, index, RunStats.of_files(self.format, paths(self.path)),
                            self.complete)
        except DatasetFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise DatasetFormatError(f"{self.path}: unreadable or malformed ({first_line(e)})") from None
        if not len(index.lengths):
            raise DatasetFormatError(f"{self.path} holds no episodes")
        self.episode_lengths, self.episode_index = index.lengths, index.episode_index
        self.success, self.invalid = index.success, index.invalid
        return index.keys

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files, self._pid, self._cached = [], None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # picklable for DataLoader workers: they reopen the file
        drop = ("_files", "_cached", "_pid", "_reader", "_reader_index")
        return {k: v for k, v in self.__dict__.items() if k not in drop}

    def __setstate__(self, state):
        self.__dict__.update(state, _files=[], _pid=None, _cached=None)

    # --- metadata ------------------------------------------------------------------------------------------
    @property
    def n_invalid(self) -> int:
        return int(self.invalid.sum())

    @property
    def config(self) -> dict:
        return checks.json_text("config", self.attrs["config"])

    @property
    def n_episodes(self) -> int:
        return len(self.episode_lengths)

    def __len__(self) -> int:
        return int(self._starts[-1])

    # --- reading -------------------------------------------------------------------------------------------
    def episode(self, e: int) -> dict:
        """Episode e (0-based position in the file) whole: observations {key: (L, ...)} of the requested keys
        (images excluded), actions (L, A), rewards (L,)."""
        if self._cached is not None and self._cached[0] == e:
            return self._cached[1]
        keys = tuple(k for k in self.obs_keys if k != IMAGE)
        try:
            arrays = self._source().episode(e, keys, int(self.episode_lengths[e]))
        except (OSError, KeyError, ValueError, TypeError) as err:
            if isinstance(err, DatasetFormatError):
                raise
            raise DatasetFormatError(f"{self.path}: episode {int(self.episode_index[e])} is unreadable "
                                     f"({first_line(err)})") from None
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
            return _window(self, e, t)
        arrays = self.episode(e)
        obs = {k: v[t] for k, v in arrays["observations"].items()}
        if IMAGE in self.obs_keys:
            obs[IMAGE] = self._source().frames(e, t, t + 1)[0]
        return {"observations": obs, "actions": arrays["actions"][t], "rewards": arrays["rewards"][t],
                "episode": self.episode_index[e], "timestep": t}

    def _load(self) -> dict:
        if self._loaded is None:
            self._loaded = _concatenated(self)
        return self._loaded

    @property
    def statistics(self) -> dict | None:
        """The file's normalization statistics ({array: {min, max, mean, std, count, q01, q99}}), or None (a
        version 1 file or an unfinished run)."""
        return checks.json_text("statistics", self.attrs["statistics"]) if "statistics" in self.attrs else None

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


def _window(ds: TrajectoryDataset, e: int, t: int) -> dict:
    """Steps t .. t+H-1 of episode e, padded past its end with its last step (mask False there)."""
    length = int(ds.episode_lengths[e])
    steps = np.arange(t, t + ds.horizon)
    idx = np.minimum(steps, length - 1)
    arrays = ds.episode(e)
    obs = {k: v[idx] for k, v in arrays["observations"].items()}
    if IMAGE in ds.obs_keys:
        frames = ds._source().frames(e, t, min(t + ds.horizon, length))  # only these frames
        obs[IMAGE] = frames[idx - t]
    return {"observations": obs, "actions": arrays["actions"][idx], "rewards": arrays["rewards"][idx],
            "mask": steps < length, "episode": ds.episode_index[e], "timestep": t}


def _concatenated(ds: TrajectoryDataset) -> dict:
    """Every episode's requested arrays (images excluded), concatenated in file order."""
    eps = [ds.episode(e) for e in range(ds.n_episodes)]
    return {"observations": {k: np.concatenate([ep["observations"][k] for ep in eps])
                             for k in ds.obs_keys if k != IMAGE},
            "actions": np.concatenate([ep["actions"] for ep in eps]),
            "rewards": np.concatenate([ep["rewards"] for ep in eps])}
