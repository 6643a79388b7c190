"""Batches for training: BatchLoader, shuffled minibatches of a TrajectoryDataset's steps from memory (with the
observation history and the action chunks a model asks for), split_episodes (the validation split, by episode),
and model_arrays, which turns any batch (NumPy or torch, steps or windows) into the arrays the training step
takes."""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import numpy as np

from mjxgen import checks
from mjxgen.data.dataset import TrajectoryDataset

# Split seeds: the validation split is drawn from default_rng([seed, SPLIT_STREAM]), apart from the shuffling.
SPLIT_STREAM = 0x5A11


def split_episodes(n_episodes: int, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) episode positions (sorted): round(val_fraction * n) episodes, at least one when
    val_fraction > 0, drawn at random from (seed), for validation; the rest for training. No episode is in both."""
    val_fraction = checks.fraction("val_fraction", val_fraction)
    n_episodes = checks.positive_int("n_episodes", n_episodes)
    n_val = 0 if val_fraction == 0 else max(1, int(round(val_fraction * n_episodes)))
    if n_val >= n_episodes:
        raise ValueError(f"val_fraction {val_fraction} leaves no training episode of {n_episodes}")
    perm = np.random.default_rng([int(seed), SPLIT_STREAM]).permutation(n_episodes)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class BatchLoader:
    """Shuffled minibatches of a TrajectoryDataset's steps, from memory.

    Batch s is rows perm(seed, epoch)[pos * B:(pos + 1) * B] with (epoch, pos) = divmod(s, steps_per_epoch): a
    full epoch is seen before any row repeats, the last incomplete batch of an epoch is dropped (one batch shape),
    and iterating gives one epoch after another. `episodes` (positions in the file) restricts the rows to those
    episodes (the training split).

    A batch is {"observations": {key: (B, ...)}, "actions": (B, A)}. With n_obs > 1 it also holds "history":
    {key: (B, n_obs - 1, ...)}, the steps before, oldest first, the episode's first step repeated before its start.
    With chunk > 1, "actions" is (B, chunk, A), the step's action and the next ones, and "mask" (B, chunk) is False
    past the episode's end (where the last action is repeated)."""

    def __init__(self, dataset: TrajectoryDataset, batch_size: int = 64, seed: int = 0, *, n_obs: int = 1,
                 chunk: int = 1, episodes: Sequence[int] | None = None):
        self.dataset, self.batch_size = dataset, checks.positive_int("batch_size", batch_size)
        self.seed = checks.seed("seed", seed)
        self.n_obs, self.chunk = checks.positive_int("n_obs", n_obs), checks.positive_int("chunk", chunk)
        self.obs = {k: np.asarray(v, np.float32) for k, v in dataset.observations.items()}
        self.actions = np.asarray(dataset.actions, np.float32)
        lengths = np.asarray(dataset.episode_lengths, np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.episodes = np.arange(len(lengths)) if episodes is None else np.asarray(episodes, np.int64)
        if self.episodes.ndim != 1 or not np.isin(self.episodes, np.arange(len(lengths))).all():
            raise ValueError(f"episodes must be positions of the dataset's {len(lengths)} episodes")
        self.rows = np.concatenate([np.arange(starts[e], starts[e] + lengths[e]) for e in self.episodes]
                                   or [np.zeros(0, np.int64)])
        episode_of = np.repeat(np.arange(len(lengths)), lengths)
        self._first, self._end = starts[episode_of], (starts + lengths)[episode_of]  # per row of the file
        self.steps_per_epoch = len(self.rows) // self.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {self.batch_size} exceeds the dataset's {len(self.rows)} steps")
        self._epoch = (-1, None)
        self._iterated = 0

    def take(self, rows: np.ndarray) -> dict:
        """The batch of these rows of the file (their windows, as every batch)."""
        batch = {"observations": {k: v[rows] for k, v in self.obs.items()}}
        if self.n_obs > 1:
            past = np.maximum(rows[:, None] - np.arange(self.n_obs - 1, 0, -1), self._first[rows, None])
            batch["history"] = {k: v[past] for k, v in self.obs.items()}
        if self.chunk == 1:
            return batch | {"actions": self.actions[rows]}
        ahead = rows[:, None] + np.arange(self.chunk)
        mask = ahead < self._end[rows, None]
        return batch | {"actions": self.actions[np.where(mask, ahead, self._end[rows, None] - 1)], "mask": mask}

    def batch(self, step: int) -> dict:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if self._epoch[0] != epoch:
            self._epoch = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.rows)))
        return self.take(self.rows[self._epoch[1][pos * self.batch_size:(pos + 1) * self.batch_size]])

    def batches(self, start: int = 0) -> Iterator[dict]:
        """Batches start, start + 1, ... without end."""
        return (self.batch(s) for s in itertools.count(start))

    def __iter__(self) -> Iterator[dict]:
        first = self._iterated * self.steps_per_epoch
        self._iterated += 1
        return (self.batch(s) for s in range(first, first + self.steps_per_epoch))

    def __len__(self) -> int:
        return self.steps_per_epoch

    def in_order(self, size: int, limit: int | None = None) -> list[dict]:
        """The loader's rows in file order (at most `limit`, evenly spaced) as batches of `size` rows, the last
        one padded with weight-0 rows ("weight" (B,)): the validation set, in one compiled shape."""
        rows = self.rows
        if limit is not None and len(rows) > limit:
            rows = rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]
        out = []
        for i in range(0, len(rows), size):
            part = rows[i:i + size]
            padded = np.concatenate([part, np.repeat(part[-1:], size - len(part))])
            out.append(self.take(padded) | {"weight": np.arange(size) < len(part)})
        return out


def _flat_obs(observations: dict, obs_keys: tuple[str, ...], lead: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([np.asarray(observations[k], np.float32).reshape(*lead, -1) for k in obs_keys], axis=-1)


def model_arrays(batch: dict, obs_keys: tuple[str, ...], state_dim: int, n_obs: int = 1,
                 chunk: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch as float32 (obs (N, n_obs, D), actions (N, chunk, A), weights (N, chunk)).

    It takes BatchLoader's batches (current observations, "history" and action chunks) and windows of H steps
    (TrajectoryDataset(horizon=H): observations (B, H, ...), actions (B, H, A), "mask" (B, H)): for a model of
    n_obs = chunk = 1 a window's steps become B * H rows weighted by the mask; for chunk = H, each window is its
    first observation and its action chunk. "weight" (B,) scales whole rows."""
    actions = np.asarray(batch["actions"], np.float32)
    b, a = actions.shape[0], actions.shape[-1]
    steps = actions.reshape(b, -1, a)
    h = steps.shape[1]
    mask = np.asarray(batch["mask"], np.float32).reshape(b, h) if "mask" in batch else np.ones((b, h), np.float32)
    if "weight" in batch:
        mask = mask * np.asarray(batch["weight"], np.float32)[:, None]
    obs = _flat_obs(batch["observations"], obs_keys, (b,))
    if h > 1 and obs.shape[1] == h * state_dim:  # a window: an observation per step
        obs = _flat_obs(batch["observations"], obs_keys, (b, h))
        if n_obs == 1 and chunk == 1:
            return obs.reshape(b * h, 1, state_dim), steps.reshape(b * h, 1, a), mask.reshape(b * h, 1)
        if n_obs == 1 and chunk == h:
            return obs[:, :1], steps, mask
        raise ValueError(f"windows of {h} steps train models of n_obs 1 and chunk 1 or {h}, not n_obs {n_obs} and "
                         f"chunk {chunk}; use BatchLoader")
    if h != chunk:
        raise ValueError(f"the batches have action chunks of {h} steps, but the model predicts {chunk}")
    if n_obs > 1:
        if "history" not in batch:
            raise ValueError(f"a model of n_obs {n_obs} needs batches with a 'history' (BatchLoader's)")
        past = _flat_obs(batch["history"], obs_keys, (b, n_obs - 1))
        obs = np.concatenate([past, obs[:, None]], axis=1)
    else:
        obs = obs[:, None]
    return obs, steps, mask


def flat_batch(batch: dict, obs_keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch (NumPy or torch) as float32 (obs (N, D), actions (N, A), weights (N,)); windows (B, H, ...) become
    B * H rows, weighted by their mask."""
    actions = np.asarray(batch["actions"], np.float32)
    lead = actions.shape[:-1]
    obs = _flat_obs(batch["observations"], obs_keys, lead)
    weights = np.asarray(batch["mask"], np.float32) if "mask" in batch else np.ones(lead, np.float32)
    n = int(np.prod(lead))
    return obs.reshape(n, -1), actions.reshape(n, -1), weights.reshape(n)
