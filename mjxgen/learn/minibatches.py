"""Batches for training: BatchLoader, shuffled minibatches of a TrajectoryDataset's steps from memory, and
flat_batch, which turns any batch (NumPy or torch, steps or windows) into the arrays the training step takes."""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from mjxgen import checks
from mjxgen.data.dataset import TrajectoryDataset


class BatchLoader:
    """Shuffled minibatches of a TrajectoryDataset's steps, from memory. Batch s is rows
    perm(seed, epoch)[pos * B:(pos + 1) * B] with (epoch, pos) = divmod(s, steps_per_epoch): a full epoch is
    seen before any row repeats, the last incomplete batch of an epoch is dropped (one batch shape), and
    iterating gives one epoch after another."""

    def __init__(self, dataset: TrajectoryDataset, batch_size: int = 64, seed: int = 0):
        self.dataset, self.batch_size, self.seed = dataset, checks.positive_int("batch_size", batch_size), checks.seed("seed", seed)
        self.obs = {k: np.asarray(v, np.float32) for k, v in dataset.observations.items()}
        self.actions = np.asarray(dataset.actions, np.float32)
        self.steps_per_epoch = len(self.actions) // self.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {self.batch_size} exceeds the dataset's {len(self.actions)} steps")
        self._epoch = (-1, None)
        self._iterated = 0

    def batch(self, step: int) -> dict:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if self._epoch[0] != epoch:
            self._epoch = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.actions)))
        rows = self._epoch[1][pos * self.batch_size:(pos + 1) * self.batch_size]
        return {"observations": {k: v[rows] for k, v in self.obs.items()}, "actions": self.actions[rows]}

    def batches(self, start: int = 0) -> Iterator[dict]:
        """Batches start, start + 1, ... without end."""
        return (self.batch(s) for s in itertools.count(start))

    def __iter__(self) -> Iterator[dict]:
        first = self._iterated * self.steps_per_epoch
        self._iterated += 1
        return (self.batch(s) for s in range(first, first + self.steps_per_epoch))

    def __len__(self) -> int:
        return self.steps_per_epoch


def flat_batch(batch: dict, obs_keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch (NumPy or torch) as float32 (obs (N, D), actions (N, A), weights (N,)); windows (B, H, ...) become
    B * H rows, weighted by their mask."""
    actions = np.asarray(batch["actions"], np.float32)
    lead = actions.shape[:-1]
    obs = np.concatenate([np.asarray(batch["observations"][k], np.float32).reshape(*lead, -1) for k in obs_keys],
                         axis=-1)
    weights = np.asarray(batch["mask"], np.float32) if "mask" in batch else np.ones(lead, np.float32)
    n = int(np.prod(lead))
    return obs.reshape(n, -1), actions.reshape(n, -1), weights.reshape(n)
