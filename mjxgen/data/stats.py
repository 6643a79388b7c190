"""Run statistics, the same for the arm tasks and PushT: seed 000's stats, counted as groups are written or
recounted from a file's stored attributes, and printed as one table."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np



@dataclasses.dataclass(kw_only=True)
class RunStats:
    """Totals over the episodes (PushT: samples) of a run or a file."""

    episodes: int = 0
    steps: int = 0
    successes: int = 0
    reward_sum: float = 0.0
    invalid: int = 0  # episodes with NaN/inf: flagged ones are counted in `episodes` too, dropped ones are not
    min_length: int | None = None
    max_length: int | None = None
    dropped: list[int] = dataclasses.field(default_factory=list)  # ids of the dropped episodes

    def add(self, *, length: int, success: bool, total_reward: float, invalid: bool = False) -> None:
        """Count one written episode."""
        self.episodes += 1
        self.steps += int(length)
        self.successes += bool(success)
        self.reward_sum += float(total_reward)
        self.invalid += bool(invalid)
        self.min_length = int(length) if self.min_length is None else min(self.min_length, int(length))
        self.max_length = int(length) if self.max_length is None else max(self.max_length, int(length))

    def add_dropped(self, index: int) -> None:
        """Count one episode left out because of NaN/inf."""
        self.dropped.append(int(index))
        self.invalid += 1

    def add_batch(self, batch) -> None:
        """Count a HostBatch's episodes (its total_reward filled: HostBatch.with_totals)."""
        for n, ok, r, valid in zip(batch.lengths, batch.success, batch.total_reward, batch.valid):
            self.add(length=int(n), success=bool(ok), total_reward=float(r), invalid=not bool(valid))

    def add_index(self, rows: np.ndarray) -> None:
        """Count the episodes of an index (mjxgen.data.formats.INDEX_DTYPE rows)."""
        for r in rows:
            self.add(length=int(r["length"]), success=bool(r["success"]), total_reward=float(r["total_reward"]),
                     invalid=bool(r["invalid"]))

    @classmethod
    def of_files(cls, fmt, paths: Iterable) -> "RunStats":
        """Recount the episodes of a format's files (a finished file, or an unfinished run's shards), dropped
        ones included (each file's `dropped_episodes` attribute)."""
        stats = cls()
        for path in paths:
            with h5py.File(path, "r") as f:
                fmt.recount(f, stats)
                for index in np.atleast_1d(f.attrs.get("dropped_episodes", [])):
                    stats.add_dropped(int(index))
        return stats

    def summary(self, output_path: str | os.PathLike) -> dict:
        """Seed 000's stats (and invalid_episodes) of the file at output_path."""
        n = max(self.episodes, 1)
        return {
            "total_episodes": self.episodes,
            "total_steps": self.steps,
            "mean_episode_length": self.steps / n,
            "mean_reward": self.reward_sum / n,
            "success_rate": self.successes / n,
            "output_path": str(output_path),
            "file_size_mb": Path(output_path).stat().st_size / 1e6,
            "invalid_episodes": self.invalid,
        }


def stats_rows(stats: dict) -> list[tuple[str, str]]:
    """The rows of seed 000's stats, as the CLIs print them."""
    return [
        ("Episodes", f"{stats['total_episodes']}"),
        ("Total steps", f"{stats['total_steps']}"),
        ("Mean length", f"{stats['mean_episode_length']:.1f}"),
        ("Mean reward", f"{stats['mean_reward']:.2f}"),
        ("Success rate", f"{stats['success_rate']:.1%}"),
        ("Invalid (NaN/inf)", f"{stats['invalid_episodes']}"),
        ("File size", f"{stats['file_size_mb']:.1f} MB"),
        ("Output path", stats["output_path"]),
    ]


def print_table(rows: list[tuple[str, str]]) -> None:
    """Two aligned columns on stdout."""
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
