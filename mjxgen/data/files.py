"""Opening what a run left: a complete file or an unfinished run's `.partial/` shards, checked (format, version,
config, completeness), and `describe` for `mjxgen info` (any mjxgen file: counts recounted from every episode).
Nothing is unpickled (metadata is JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from mjxgen.data import shards
from mjxgen.data.layout import FLAT, LAYOUTS, META, Layout
from mjxgen.data.sources import FormatError
from mjxgen.data.stats import RunStats


class DatasetFormatError(FormatError):
    """The file is not a readable mjxgen dataset, or is an unfinished run read without allow_incomplete."""


def first_line(e: BaseException) -> str:
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
        raise DatasetFormatError(f"{source} is {kind} ({first_line(e)})") from None
    except ValueError as e:  # an unfinished run whose manifest is missing or broken
        raise DatasetFormatError(first_line(e)) from None
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
        if layout is FLAT:
            for name, f in files(source):
                m = f[META]
                for n, s, r, i in zip(m["length"][()], m["success"][()], m["total_reward"][()], m["invalid"][()]):
                    stats.add(length=int(n), success=bool(s), total_reward=float(r), invalid=bool(i))
        for name, group in shards.iter_groups(source) if layout is not FLAT else ():
            layout.group_index(name)
            stats.add_group(layout, group)
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DatasetFormatError(f"{source}: {name} is unreadable or malformed ({first_line(e)})") from None
    for index in np.atleast_1d(attrs.get("dropped_episodes", [])):
        stats.add_dropped(int(index))
    return source, complete, attrs, stats


def paths(source: Path) -> list[Path]:
    """The HDF5 files of a complete file (itself) or of an unfinished run (its shards, in order)."""
    return [p for _, _, p in shards.list_shards(source)] if source.is_dir() else [source]


def files(source: Path):
    """(name, open file) of each HDF5 file of a run, in order; each closed when the next is requested."""
    for p in paths(source):
        with h5py.File(p, "r") as f:
            yield p.name, f
