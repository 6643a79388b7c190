"""File formats, the data path's extension point: one object per stored format, looked up by name.

A format owns everything about its files: its layout (names, dtypes, attributes), its encoder (a HostBatch into
a shard), its merge (shards into the finished file), its recount (a shard's or file's episodes, for resume and
`mjxgen info`) and its reader (for TrajectoryDataset). The writer (mjxgen.data.writer), the shard store
(mjxgen.data.shards), `describe` (mjxgen.data.files) and TrajectoryDataset look formats up here: by the `layout`
option (`by_option`) or by a file's `format` attribute (`by_attr`). A new format is one new module that calls
`register`.

Built in: "episodes" (seed 000's group per episode, mjxgen.data.formats.episodes), "flat" (every step of every
episode per key, mjxgen.data.formats.flat) and PushT's samples (seed 003, mjxgen.data.formats.samples).

The conventions every format's files share (FILE_ATTRS): `format`, `format_version`, `complete`, `seed`,
`config` (JSON), `versions` (JSON), `total_steps`.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from mjxgen.runtime import signals

FILE_ATTRS = {
    "format": "which format wrote the file (Format.attr)",
    "format_version": "the format's version",
    "complete": "True: the run finished (an output file exists only complete; unfinished runs are .partial/)",
    "seed": "the dataset seed",
    "config": "JSON: every setting that shaped the data (compared on resume)",
    "versions": "JSON: the versions of the packages that shaped the data",
    "total_steps": "steps in all episodes, written when the file is completed",
}
DTYPES = ("float64", "float32")  # the `dtype` option of the arm formats' float arrays (seed 000: float64)
IMAGE_DTYPE = np.uint8
# Names the arm formats share: the keys of an item and of an episode's arrays.
OBSERVATIONS, ACTIONS, REWARDS, IMAGE, RANDOMIZATION = "observations", "actions", "rewards", "image", "randomization"
TERMINATED, TRUNCATED = "terminated", "truncated"  # (L,) bool: success ended the episode, or the horizon did
FINAL_OBSERVATION = "final_observation"  # <key> -> the observation after the episode's last action
# A per-episode index, one row per episode, in id order: a root attribute of an episodes file (seed 000's layout
# keeps every root link an episode group) and of each shard.
INDEX_DTYPE = np.dtype([("episode_index", "<i8"), ("length", "<i8"), ("success", "?"), ("invalid", "?"),
                        ("total_reward", "<f8")])


def step_flags(lengths: np.ndarray, success: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(terminated (N,), truncated (N,)) of episodes laid end to end: only each episode's last step is True in
    one of them, terminated where the episode succeeded, truncated where the horizon ended it."""
    n = int(np.sum(lengths))
    last = np.zeros(n, bool)
    last[np.cumsum(lengths) - 1] = True
    won = np.repeat(np.asarray(success, bool), lengths)
    return last & won, last & ~won


def index_rows(batch) -> np.ndarray:
    """The INDEX_DTYPE rows of a HostBatch's episodes (total_reward filled)."""
    rows = np.zeros(len(batch.episode_ids), INDEX_DTYPE)
    rows["episode_index"], rows["length"], rows["success"] = batch.episode_ids, batch.lengths, batch.success
    rows["invalid"], rows["total_reward"] = ~np.asarray(batch.valid, bool), batch.total_reward
    return rows


class DatasetFormatError(ValueError):
    """The file is not a readable mjxgen dataset, or is an unfinished run read without allow_incomplete. The
    message is one line that names the file and the problem."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class EncoderSettings:
    """What every arm encoder is built from (the same for every format)."""

    obs_keys: tuple[str, ...]  # the observations to store, in order
    policy: str  # the policy's name: its per-episode record is stored under <policy>/
    seed: int  # the dataset seed
    filters: dict  # h5py create_dataset keywords of the codec (mjxgen.data.writer.filter_kwargs)
    dtype: str = "float64"  # the stored float arrays
    frames: Any = None  # camera frames of each episode (mjxgen.render.opengl.BatchFrames), or None


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a batch lies in its dataset: the steps (rows) of every episode before it."""

    first_row: int


class Encoder(Protocol):
    """Writes HostBatches into shards of one format. Used in one thread (a GL context belongs to its thread)."""

    frames: Any

    def encode(self, f: h5py.File, batch, position: Position) -> None:
        """Write the batch's episodes (all of them: invalid ones were dropped or flagged before) into f."""

    def close(self) -> None:
        """Release what the encoder holds (the renderer)."""


@dataclasses.dataclass(frozen=True)
class Index:
    """What a reader knows about a file's episodes without reading their steps: (E,) arrays and the observation
    keys (in stored order)."""

    keys: tuple[str, ...]
    lengths: np.ndarray  # int64
    episode_index: np.ndarray  # int64
    success: np.ndarray  # bool
    invalid: np.ndarray  # bool


class Reader(Protocol):
    """Reads episodes of one format from a complete file or from the shards of an unfinished run."""

    def index(self) -> Index:
        """Every episode's metadata, checked against the stored shapes (no step array is read)."""

    def episode(self, e: int, keys: tuple[str, ...], length: int) -> dict:
        """Episode e (position in the file) of `length` steps (the index's), checked against the file's declared
        shapes: {"observations": {key: (L, ...)}, "actions": (L, A), "rewards": (L,)}."""

    def frames(self, e: int, lo: int, hi: int) -> np.ndarray:
        """Camera frames lo:hi of episode e, (hi - lo, H, W, 3) uint8."""

    def flags(self, e: int, length: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Episode e's (terminated (L,), truncated (L,)) bool, or None where the file does not store them (v1)."""

    def final_observation(self, e: int, keys: tuple[str, ...]) -> dict | None:
        """Episode e's observation after its last action, {key: (*obs_shape)}, or None where the file does not
        store it (v1)."""


class Format:
    """A stored format. Subclasses set the class attributes and implement what their files need; the base
    merges shards by copying their top-level groups (raw chunks, not recompressed)."""

    attr: str  # the file's `format` attribute
    version: int  # the `format_version` attribute it writes
    readable: tuple[int, ...] = ()  # the versions it reads (default: its own)
    option: str | None = None  # the `layout` option that selects it for the arm tasks (None: not an arm format)

    def reads(self, version: int) -> bool:
        return version in (self.readable or (self.version,))

    def encoder(self, settings: EncoderSettings) -> Encoder:
        raise NotImplementedError(f"the {self.attr} format has no arm encoder")

    def merge(self, out: h5py.File, shards: list[Path]) -> None:
        """Fill the finished file from the shards, in order."""
        copy_groups(out, shards)

    def recount(self, f: h5py.File, stats) -> None:
        """Count the episodes of a shard or a finished file into stats (mjxgen.data.stats.RunStats)."""
        raise NotImplementedError

    def reader(self, path: Path, files: list[h5py.File], attrs: dict) -> Reader:
        raise DatasetFormatError(f"{path} is a {self.attr} file; TrajectoryDataset reads the arm formats "
                                 f"({', '.join(options())})")


_REGISTRY: dict[str, Format] = {}
# The built-in formats' modules, imported on first lookup (each registers its format).
_BUILTIN = ("mjxgen.data.formats.episodes", "mjxgen.data.formats.flat", "mjxgen.data.formats.samples")


def register(fmt: Format) -> Format:
    """Add a format (an instance of a Format subclass); returns it. Its `attr` and `option` must be new."""
    _load_builtin()
    if fmt.attr in _REGISTRY:
        raise ValueError(f"a format {fmt.attr!r} is already registered")
    if fmt.option is not None and fmt.option in options():
        raise ValueError(f"a format with option {fmt.option!r} is already registered")
    _REGISTRY[fmt.attr] = fmt
    return fmt


def unregister(attr: str) -> None:
    """Remove a format added with `register` (tests)."""
    _REGISTRY.pop(attr, None)


def by_attr(attr) -> Format | None:
    """The format whose files carry `format` = attr, or None."""
    _load_builtin()
    return _REGISTRY.get(attr if isinstance(attr, str) else None)


def by_option(option: str) -> Format:
    """The arm format selected by the `layout` option; a ValueError names the choices."""
    _load_builtin()
    for fmt in _REGISTRY.values():
        if fmt.option == option:
            return fmt
    raise ValueError(f"unknown layout {option!r}; choose one of {', '.join(options())}")


def attrs() -> tuple[str, ...]:
    """Every registered format's `format` attribute."""
    _load_builtin()
    return tuple(_REGISTRY)


def options() -> tuple[str, ...]:
    """The `layout` options: the arm formats' names, the built-in ones first."""
    _load_builtin()
    return tuple(f.option for f in _REGISTRY.values() if f.option is not None)


def _load_builtin() -> None:
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED.append(True)
        for name in _BUILTIN:
            importlib.import_module(name)


_BUILTIN_LOADED: list = []


def copy_groups(out: h5py.File, shards: list[Path]) -> None:
    """Every shard's top-level groups, in order, into out (a stop may end it between shards)."""
    for shard in shards:
        signals.check()
        with h5py.File(shard, "r") as src:
            for name in src:
                src.copy(src[name], out, name)


def image_chunks(height: int, width: int) -> tuple[int, int, int, int]:
    """One frame per chunk, so a frame reads without decompressing its episode."""
    return (1, height, width, 3)


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
