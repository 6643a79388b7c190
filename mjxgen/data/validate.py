"""Checking a dataset file (or an unfinished run) against what it claims, for `mjxgen info`, TrajectoryDataset and
`--resume`.

Quick: the format, version and attributes; every link a hard link into this file; the episode index (lengths in
range, ids unique and increasing, and with the dropped ones exactly the run's ids); the totals the file states;
every array's rows, shape and dtype as far as they are known without reading. Full (mjxgen info's default): also
every episode's arrays, read: finite where the episode is not flagged invalid, rewards summing to the stored
total, terminated and truncated where the length and success say. Camera frames are checked for shape and dtype,
not decoded. A large file's episodes are read in worker processes, one per core (PARALLEL_FROM)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

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
                _read_every_episode(source, reader, index, allow_incomplete)
    except DatasetFormatError:
        raise
    except READ_ERRORS as e:
        raise DatasetFormatError(f"{source}: unreadable or malformed ({first_line(e)})") from None
    what = ("structure, index and totals; every episode read (shapes, dtypes, finite values, reward totals, "
            "terminated/truncated)" if full else "structure, index and totals; episode arrays not read (quick)")
    return Report(source, complete, attrs, stats, full, what)


READ_ERRORS = (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError)
# A full check of this many episodes or more reads them in worker processes, SPAN episodes a task (HDF5 reads
# objects one at a time, at about 0.1 ms each: a 100,000-episode file holds over a million).
PARALLEL_FROM, SPAN = 4096, 1024


def _read_every_episode(source: Path, reader, index, allow_incomplete: bool) -> None:
    """Read and check every episode: in this process, or for a large file in one worker process per core (at
    most 8), each opening the file itself. The error raised is the first episode's, as one process would find."""
    n, workers = len(index.lengths), min(_cores(), 8)
    if n < PARALLEL_FROM or workers < 2:
        for e in range(n):
            _episode(source, reader, index, e)
        return
    spans = [(str(source), allow_incomplete, lo, min(lo + SPAN, n)) for lo in range(0, n, SPAN)]
    context = multiprocessing.get_context("spawn")  # not fork: this process holds HDF5 files open
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker) as pool:
        futures = [pool.submit(_read_span, *span) for span in spans]
        try:
            with tqdm(total=n, unit="episode", desc="reading", leave=False, disable=None) as bar:
                for span, future in zip(spans, futures):
                    if (failure := future.result()) is not None:
                        raise DatasetFormatError(failure)
                    bar.update(span[3] - span[2])
        finally:
            for future in futures:
                future.cancel()


def _cores() -> int:
    """The cores this process may run on (os.sched_getaffinity is Linux's; elsewhere every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _quiet_worker() -> None:
    """A worker leaves SIGINT to the process that started it (which stops the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read_span(path: str, allow_incomplete: bool, lo: int, hi: int) -> str | None:
    """A worker's task: check episodes lo..hi-1 of the file; the first problem's message, or None."""
    source, _, attrs, fmt = data_files.open_run(path, allow_incomplete)
    try:
        with ExitStack() as stack:
            opened = [stack.enter_context(h5py.File(p, "r")) for p in data_files.paths(source)]
            reader = fmt.reader(source, opened, attrs)
            index = reader.index()
            for e in range(lo, hi):
                _episode(source, reader, index, e)
    except DatasetFormatError as e:
        return str(e)
    except READ_ERRORS as e:
        return f"{source}: unreadable or malformed ({first_line(e)})"
    return None


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
