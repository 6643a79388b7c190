"""Opening what a run left: a complete file or an unfinished run's `.partial/` shards, checked (format, version,
config, completeness), and `describe` for `mjxgen info` (any mjxgen file: counts recounted from every episode).
Nothing is unpickled (metadata is JSON)."""

from __future__ import annotations

import os
from pathlib import Path


from mjxgen import checks
from mjxgen.data import formats, shards
from mjxgen.data.formats import DatasetFormatError, Format, first_line
from mjxgen.data.stats import RunStats


def open_run(path: str | os.PathLike, allow_incomplete: bool = False) -> tuple[Path, bool, dict, Format]:
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
    fmt = formats.by_attr(attrs.get("format"))
    if fmt is None:
        raise DatasetFormatError(f"{source} is not an mjxgen dataset (no format attribute of "
                                 f"{', '.join(map(repr, formats.attrs()))})")
    version = attrs.get("format_version", -1)
    if not checks.is_int(version) or not fmt.reads(int(version)):
        raise DatasetFormatError(f"{source} has format version {version}; this mjxgen reads version "
                                 f"{', '.join(map(str, fmt.readable or (fmt.version,)))} of {fmt.attr}")
    try:
        checks.json_text("config", attrs["config"])
    except (KeyError, ValueError) as e:
        raise DatasetFormatError(f"{source} has no valid JSON config attribute ({first_line(e)})") from None
    complete = source.is_file() and bool(attrs.get("complete", False))
    if source.is_file() and not complete and not allow_incomplete:
        raise DatasetFormatError(f"{source} is marked incomplete (its run did not finish); "
                                 "read it anyway with allow_incomplete=True (--allow-incomplete)")
    return source, complete, attrs, fmt


def describe(path: str | os.PathLike, allow_incomplete: bool = False) -> tuple[Path, bool, dict, RunStats]:
    """(source, complete, file attributes, stats recounted from every episode's stored metadata) of any mjxgen
    file or unfinished run."""
    source, complete, attrs, fmt = open_run(path, allow_incomplete)
    try:
        stats = RunStats.of_files(fmt, paths(source))
    except DatasetFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DatasetFormatError(f"{source}: unreadable or malformed ({first_line(e)})") from None
    return source, complete, attrs, stats


def paths(source: Path) -> list[Path]:
    """The HDF5 files of a complete file (itself) or of an unfinished run (its shards, in order)."""
    return [p for _, _, p in shards.list_shards(source)] if source.is_dir() else [source]
