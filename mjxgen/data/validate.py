"""Checking a dataset file (or an unfinished run) against what it claims, for `mjxgen info`, TrajectoryDataset and
`--resume`.

Quick: the format, version and attributes; every link a hard link into this file; the episode index (lengths in
range, ids unique and increasing, and with the dropped ones exactly the run's ids); the totals the file states;
every array's rows, shape and dtype as far as they are known without reading. Full (mjxgen info's default): also
every episode's arrays, read: finite where the episode is not flagged invalid, rewards summing to the stored
total, terminated and truncated where the length and success say. Camera frames are checked for shape and dtype,
not decoded."""

from __future__ import annotations

import dataclasses
import os
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np

from mjxgen import checks
from mjxgen.data import files as data_files
from mjxgen.data.formats import IMAGE, TERMINATED, TRUNCATED, DatasetFormatError, first_line, step_flags
from mjxgen.data.stats import RunStats


@dataclasses.dataclass(frozen=True)
class Report:
    source: Path
    complete: bool
    attrs: dict
    stats: RunStats
    read_every_episode: bool  # full: every episode's arrays were read and checked
    checked: str  # what was checked, in words


def check(path: str | os.PathLike, allow_incomplete: bool = False, full: bool = True) -> Report:
    """Check a file; a DatasetFormatError (one line, naming the file and the problem) at the first problem."""
    source, complete, attrs, fmt = data_files.open_run(path, allow_incomplete)
    try:
        stats = RunStats.of_files(fmt, data_files.paths(source))
        if fmt.option is None:  # PushT: its groups are counted above; their arrays are seed 003's
            return Report(source, complete, attrs, stats, False, "format, version and every sample's attributes")
        with ExitStack() as stack:
            opened = [stack.enter_context(h5py.File(p, "r")) for p in data_files.paths(source)]
            reader = fmt.reader(source, opened, attrs)
            index = reader.index()
            totals(source, attrs, index, stats, complete)
            if full:
                for e in range(len(index.lengths)):
                    _episode(source, reader, index, e)
    except DatasetFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DatasetFormatError(f"{source}: unreadable or malformed ({first_line(e)})") from None
    what = ("structure, index and totals; every episode read (shapes, dtypes, finite values, reward totals, "
            "terminated/truncated)" if full else "structure, index and totals; episode arrays not read (quick)")
    return Report(source, complete, attrs, stats, full, what)


def totals(source: Path, attrs: dict, index, stats: RunStats, complete: bool) -> None:
    """The index against the totals the file states, and (a finished run) against the ids it was to hold."""
    dropped = np.atleast_1d(np.asarray(attrs.get("dropped_episodes", []), np.int64)) if complete else \
        np.asarray(stats.dropped, np.int64)
    ids = index.episode_index
    if len(np.intersect1d(ids, dropped)) or len(np.unique(dropped)) != len(dropped):
        raise DatasetFormatError(f"{source}: an episode id is both stored and dropped, or dropped twice")
    if not complete:
        return
    stated = {"total_episodes": len(ids), "total_steps": int(index.lengths.sum()),
              "invalid_episodes": int(index.invalid.sum()) + len(dropped)}
    for name, value in stated.items():
        if name in attrs and int(attrs[name]) != value:
            raise DatasetFormatError(f"{source}: its {name} attribute says {int(attrs[name])}, but it holds {value}")
    config = checks.json_text("config", attrs["config"])
    n = config.get("n_episodes") if isinstance(config, dict) else None
    if checks.is_int(n) and not np.array_equal(np.sort(np.concatenate([ids, dropped])), np.arange(n)):
        raise DatasetFormatError(f"{source}: its episodes (with the dropped ones) are not ids 0 to {n - 1} of the "
                                 f"run ({len(ids)} stored, {len(dropped)} dropped)")


def _episode(source: Path, reader, index, e: int) -> None:
    """Read episode e and check its values."""
    length, name = int(index.lengths[e]), f"episode {int(index.episode_index[e])}"
    arrays = reader.episode(e, tuple(k for k in index.keys if k != IMAGE), length)
    if not index.invalid[e]:
        for label, x in [("actions", arrays["actions"]), ("rewards", arrays["rewards"]),
                         *[(f"observations/{k}", v) for k, v in arrays["observations"].items()]]:
            if not np.isfinite(x).all():
                raise DatasetFormatError(f"{source}: {name} has NaN or inf in {label} but is not flagged invalid")
    total = float(np.asarray(arrays["rewards"]).astype(np.float64).sum())
    stored = reader.total_reward(e) if hasattr(reader, "total_reward") else None
    if stored is not None and total != stored:
        raise DatasetFormatError(f"{source}: {name}'s rewards sum to {total}, but its total_reward says {stored}")
    flags = reader.flags(e, length) if hasattr(reader, "flags") else None
    if flags is not None:
        want = step_flags(np.array([length]), np.array([bool(index.success[e])]))
        for label, got, expected in zip((TERMINATED, TRUNCATED), flags, want):
            if got.shape != (length,) or not np.array_equal(got, expected):
                raise DatasetFormatError(f"{source}: {name}'s {label} disagrees with its length and success")
    if IMAGE in index.keys:
        frames = reader.frames(e, 0, 0)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise DatasetFormatError(f"{source}: {name}'s camera frames are {frames.dtype} {frames.shape[1:]}")
