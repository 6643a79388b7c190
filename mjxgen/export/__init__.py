"""Exports of mjxgen datasets to the formats robot-learning libraries read: `export(input, to=..., output=...)` and
`mjxgen export INPUT --to lerobot|robomimic|minari --output OUT` (mjxgen.cli.export).

Each export is a format, as in mjxgen.data.formats: one object per target, looked up by name, that says what it
accepts (`sources`: the tasks; whether it holds camera frames and task text; whether it needs the observation after
each episode's last action) and writes a source (mjxgen.export.sources) with `write(source, output, options)`.
Built in: "lerobot" (LeRobot dataset v3.0, mjxgen.export.lerobot), "robomimic" (robomimic's HDF5,
mjxgen.export.robomimic) and "minari" (through Minari's own API, mjxgen.export.minari). A new target is one new
module that calls `register`.

Every export writes next to OUT and moves the result into place at the end, so OUT is either absent or complete.
OUT is refused if it exists, unless overwrite=True, and even then only where it holds an earlier export of the
same kind (`Export.owns`), never anything else.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from mjxgen import checks

TASKS = ("reach", "pick_place", "pusht")


@dataclasses.dataclass(frozen=True)
class Options:
    """What the caller asked for besides the source and the output."""

    task: str | None = None  # the task text (LeRobot's tasks, Minari's description); None: the task's own
    images: bool = False  # export camera frames (arm files with a camera; PushT: replayed)
    val_fraction: float = 0.1  # robomimic: the share of demos in mask/valid
    progress: bool = True  # a tqdm progress bar


class Export:
    """An export target. Subclasses set the attributes and implement `write` and `owns`."""

    name: str
    output_kind: str  # what OUT becomes, in words
    sources: tuple[str, ...] = TASKS  # the tasks it accepts
    holds_images: bool = False
    holds_task: bool = False
    needs_final_observation: bool = False  # it stores N + 1 observations (robomimic's next_obs, Minari's)

    def check(self, source, options: Options) -> None:
        """A ValueError naming the problem where this export cannot hold the source as asked."""
        if source.kind not in self.sources:
            raise ValueError(f"{self.name} exports take {', '.join(self.sources)} files; {source.path} is {source.kind}")
        if options.images and not self.holds_images:
            raise ValueError(f"a {self.name} export holds no camera frames; --images works with "
                             f"{', '.join(e.name for e in _REGISTRY.values() if e.holds_images)}")
        if options.images and source.image_size is None:
            raise ValueError(f"{source.path} holds no camera frames (generate it with --camera) to export with --images")
        if options.task is not None and not self.holds_task:
            raise ValueError(f"a {self.name} export holds no task text; --task works with "
                             f"{', '.join(e.name for e in _REGISTRY.values() if e.holds_task)}")
        if self.needs_final_observation and not source.has_final:
            raise ValueError(f"a {self.name} export needs the observation after each episode's last action, which "
                             f"{source.path} (format version {source.attrs.get('format_version')}) does not store; "
                             "regenerate it with this mjxgen")

    def owns(self, path: Path) -> bool:
        """Whether path holds an earlier export of this kind (which overwrite may replace)."""
        raise NotImplementedError

    def write(self, source, output: Path, options: Options) -> dict:
        """Write the source into output (which does not exist); returns a summary ({"episodes", "frames", ...})."""
        raise NotImplementedError

    def progress(self, source, options: Options) -> Iterator:
        """The source's episodes (with frames where asked), behind a tqdm bar where asked."""
        from tqdm.auto import tqdm

        return tqdm(source.episodes(options.images), total=len(source.lengths), unit="episode",
                    desc=f"export to {self.name}", disable=not options.progress)


_REGISTRY: dict[str, Export] = {}
_BUILTIN = ("mjxgen.export.lerobot", "mjxgen.export.robomimic", "mjxgen.export.minari")


def register(export_: Export) -> Export:
    """Add an export target (an instance of an Export subclass); returns it. Its name must be new."""
    if export_.name in _REGISTRY:
        raise ValueError(f"an export {export_.name!r} is already registered")
    _REGISTRY[export_.name] = export_
    return export_


def _load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)


def names() -> tuple[str, ...]:
    """The registered targets' names."""
    _load_builtin()
    return tuple(_REGISTRY)


def by_name(name: str) -> Export:
    """The target called `name`; a ValueError names the choices."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown export target {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


@dataclasses.dataclass(frozen=True)
class Result:
    target: str
    output: Path
    episodes: int
    frames: int
    seconds: float
    details: dict  # the target's summary (fps, task, dataset id, ...)
    replay_s_per_sample: float | None  # PushT frames: replay time per sample


def export(input: str | os.PathLike, to: str, output: str | os.PathLike, task: str | None = None,
           images: bool = False, val_fraction: float = 0.1, overwrite: bool = False, progress: bool = True) -> Result:
    """Export the dataset file `input` (reach, pick_place in either layout, or PushT) to `to` ("lerobot",
    "robomimic" or "minari") at `output`. Bad input raises ValueError (DatasetFormatError for the file),
    FileExistsError for an existing output without overwrite."""
    target = by_name(to)
    options = Options(task=_task(task), images=checks.boolean("images", images),
                      val_fraction=_fraction(val_fraction), progress=checks.boolean("progress", progress))
    out = Path(output)
    if out.exists() or out.is_symlink():
        if not checks.boolean("overwrite", overwrite):
            raise FileExistsError(f"{out} exists; pass --overwrite (overwrite=True) to replace it")
        if out.is_symlink() or not target.owns(out):
            raise ValueError(f"{out} exists and is not {target.output_kind}; not replacing it")
    from mjxgen.export.sources import open_source

    start = time.perf_counter()
    source = open_source(input)
    try:
        target.check(source, options)
        tmp = out.with_name(f".{out.name}.export-tmp")
        _remove(tmp)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            details = target.write(source, tmp, options)
            _remove(out)
            os.replace(tmp, out)
        finally:
            _remove(tmp)
    finally:
        source.close()
    replay = source.replay_s / len(source.lengths) if options.images and source.kind == "pusht" else None
    return Result(target.name, out, details.pop("episodes"), details.pop("frames"), time.perf_counter() - start,
                  details, replay)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _task(task) -> str | None:
    if task is not None and (not isinstance(task, str) or not task.strip()):
        raise ValueError(f"task must be a non-empty string, got {task!r}")
    return task


def _fraction(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"val_fraction must be a number in [0, 1), got {value!r}")
    return float(value)
