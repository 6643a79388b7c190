"""Where a run's files live: the output path's checks, crash-safe shards in `<output>.partial/`, and the
finished `<output>`, which only a finished run becomes.

    data.h5.partial/
      manifest.json                 format, the run's config (what --resume must match), file attributes
      part-000000000-000000256.h5   a complete HDF5 file holding items [0, 256): written as *.tmp, fsynced,
      part-000000256-000000512.h5   then renamed, so a shard either exists whole or not at all

Killing the process at any moment (SIGKILL included) leaves every renamed shard readable. `finalize` copies
the shards' groups in order into `<output>.tmp` (raw chunks are copied, not recompressed), sets
`complete = True`, fsyncs and renames it to `<output>`, then removes the partial directory. So `<output>`
exists only complete, and an unfinished run is a `.partial` directory that `--resume` continues.

One run writes an output at a time: `open_run` takes the run's lock (mjxgen.runtime.runlock, `<output>.lock`)
before it checks the output, and the store holds it until the file is in place. A full or failing disk is an
OSError, never a crash: HDF5 (h5py 3.16, HDF5 2.0) segfaults in File.close once a write of its own failed, so a
shard is made in memory and written with a plain write, and the merged file's space is reserved (fallocate)
before HDF5 writes into it. SIGINT and SIGTERM stop a merge between shards and before the rename
(mjxgen.runtime.signals.check).

Both the arm-task writer (mjxgen.data.writer) and the PushT generator (mjxgen.pusht.generate) store data through
this module; each file's format (mjxgen.data.formats) writes, merges and counts its contents.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import h5py

from mjxgen import checks
from mjxgen.data import formats
from mjxgen.runtime import signals
from mjxgen.runtime.runlock import RunLock

MANIFEST = "manifest.json"
_SHARD = re.compile(r"^part-(\d{9})-(\d{9})\.h5$")
_RUN_FILE = re.compile(r"^(manifest\.json|part-\d{9}-\d{9}\.h5)(\.tmp)?$")  # what an unfinished run holds
LIBVER = ("v110", "latest")  # HDF5 >= 1.10 structures: far smaller for thousands of small datasets
# Disk space reserved for the merged file beyond the shards' and the manifest's total (the file attributes). The
# merged file is smaller than the shards' total: one superblock and one set of file attributes instead of many, and
# since format v2 one set of statistics instead of each shard's (reach, 160 episodes of 20 steps in 20 shards: 0.11
# of it; before v2, 0.76, and the flat layout 0.45).
MERGE_MARGIN = 2**18


def check_output_path(path: str | os.PathLike, overwrite: bool, resume: bool = False) -> Path:
    """Refuse an existing file (unless overwrite or resume), a directory, or a location that can't be
    written. With overwrite, an existing mjxgen dataset and an unfinished run of it are removed (anything else
    there is refused: a typo must not destroy a user's file)."""
    path = _checked_parent(path, overwrite, resume)
    if path.exists() and not (overwrite or resume):
        raise FileExistsError(f"output file {path} already exists; pass --overwrite (overwrite=True) to replace it")
    if overwrite:
        _check_replaceable(path)
        path.unlink(missing_ok=True)
        shutil.rmtree(partial_dir(path), ignore_errors=True)
    parent = path.parent
    try:  # a real probe: os.access says yes to root even on a read-only filesystem
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".mjxgen-probe-"):
            pass
    except OSError as e:
        raise PermissionError(f"output directory {parent} is not writable: {e.strerror or e}") from None
    return path


def _checked_parent(path: str | os.PathLike, overwrite: bool, resume: bool) -> Path:
    """The output path, its flags and its directory checked; the directory created."""
    path = Path(path)
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other")
    if path.is_dir():
        raise ValueError(f"output path {path} is a directory; give a file name such as {path / 'data.h5'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"cannot create output directory {path.parent}: {e.strerror or e}") from None
    return path


def _check_replaceable(path: Path) -> None:
    """What --overwrite may remove: an mjxgen dataset file and an unfinished run's directory, nothing else."""
    if path.exists() and _format_of(path) is None:
        raise FileExistsError(f"{path} is not an mjxgen dataset; --overwrite replaces only mjxgen datasets and "
                              "unfinished runs: move or delete it yourself, or choose another output path")
    partial = partial_dir(path)
    if partial.exists() and not (partial.is_dir() and all(_RUN_FILE.match(p.name) for p in partial.iterdir())):
        raise FileExistsError(f"{partial} is not an unfinished mjxgen run; --overwrite replaces only mjxgen datasets "
                              "and unfinished runs: move or delete it yourself, or choose another output path")


def _format_of(path: Path) -> str | None:
    """The mjxgen format of an HDF5 file (its `format` attribute), None for any other file."""
    try:
        if not path.is_file() or not h5py.is_hdf5(path):
            return None
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except (OSError, ValueError):
        return None
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    return fmt if formats.by_attr(fmt) is not None else None


def open_run(output: str | os.PathLike, fmt: str, config: dict, attrs: dict, *, overwrite: bool, resume: bool,
             join: bool = False) -> "ShardStore":
    """Take the run's lock (mjxgen.runtime.runlock), check the output path and open its ShardStore (see
    ShardStore.open). With join (another process of a multi-process run opened it, and holds the lock), no
    lock is taken and the run is resumed. The store holds the lock until `finalize` or `release`."""
    signals.check()  # a stop that came while the run was set up ends it before the output is touched
    if join:
        overwrite, resume = False, True
    path = _checked_parent(output, overwrite, resume)
    lock = None if join else RunLock.acquire(path)
    try:
        path = check_output_path(path, overwrite, resume)
        store = ShardStore.open(path, fmt, config, attrs, resume)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    store.lock = lock
    return store


def partial_dir(output: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(output)}.partial")


def shard_name(first: int, end: int) -> str:
    return f"part-{first:09d}-{end:09d}.h5"


def list_shards(partial: Path) -> list[tuple[int, int, Path]]:
    """Finished shards, sorted: (first, end, path). Leftover *.tmp files (a shard being written when the
    process died) are ignored."""
    out = []
    for p in partial.iterdir():
        m = _SHARD.match(p.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(out)


def read_manifest(partial: Path) -> dict:
    try:
        return json.loads((partial / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{partial} is not a readable unfinished run: its {MANIFEST} is missing or broken ({e})") from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        signals.check()  # the last moment a stop leaves no trace: the file is not in place yet
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_hdf5_image(tmp: Path, write: Callable[[h5py.File], None]) -> None:
    """write(file) into an HDF5 file in memory, then its bytes to tmp. HDF5 itself never writes to the disk: on
    a full disk (or a failing one) its error paths crash the process (h5py 3.16, HDF5 2.0: a segmentation
    fault in File.close); a plain write fails with a clean OSError."""
    image = io.BytesIO()
    with h5py.File(image, "w", libver=LIBVER) as f:
        write(f)
    with open(tmp, "wb") as fh:
        fh.write(image.getbuffer())


def _reserve(tmp: Path, size: int, output: Path) -> None:
    """Allocate `size` bytes of disk for tmp (a new, nearly empty HDF5 file) before HDF5 writes into it, so a full
    disk is a clean OSError here rather than a crash inside HDF5 (see _write_hdf5_image). HDF5 cuts the file
    back to what it used when it closes it."""
    fd = os.open(tmp, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return  # a filesystem without fallocate: write without the reservation
        raise OSError(e.errno, f"not enough disk space to write {output} (the merge needs up to "
                               f"{size / 1e6:,.1f} MB beside the shards): {e.strerror}") from None
    finally:
        os.close(fd)


def _config_diff(stored: Any, config: dict) -> list[str]:
    stored = stored if isinstance(stored, dict) else {}
    return sorted(k for k in set(config) | set(stored) if config.get(k) != stored.get(k))


class ShardStore:
    """One run's shards. `open` starts a run or resumes one; `write_shard` commits items [first, end);
    `finalize` produces the complete output file. `complete`: the output was complete already (resume=True on a
    finished run of the same settings): there is nothing to write."""

    def __init__(self, output: Path, partial: Path, manifest: dict, shards: list[tuple[int, int, Path]],
                 complete: bool = False):
        self.output = output
        self.partial = partial
        self.manifest = manifest
        self.shards = shards
        self.complete = complete
        self.lock: RunLock | None = None  # the run's lock (open_run), released by finalize or release

    @classmethod
    def open(cls, output: str | os.PathLike, fmt: str, config: dict, attrs: dict, resume: bool) -> "ShardStore":
        """Start writing `output`, or continue its unfinished run when resume is True.

        A run with the same config must be resumed explicitly: without resume, an existing partial run is an
        error (the caller decides about overwriting before calling this). With resume, the stored config
        must equal `config`; resuming a complete file of the same config gives a store with complete = True."""
        output = Path(output)
        partial = partial_dir(output)
        config = json.loads(json.dumps(config, sort_keys=True))  # what it will look like when read back
        if partial.exists() and not resume:
            raise FileExistsError(
                f"an unfinished run of {output} is in {partial}; pass --resume (resume=True) to continue it, "
                "or --overwrite (overwrite=True) to start over"
            )
        if resume and partial.exists():
            manifest = read_manifest(partial)
            if manifest.get("format") != fmt:
                raise ValueError(f"{partial} holds a {manifest.get('format')!r} run, not {fmt!r}")
            if manifest.get("config") != config:
                raise ValueError(f"cannot resume {partial}: the settings differ in "
                                 f"{', '.join(_config_diff(manifest.get('config'), config))}; "
                                 "resume with the original settings")
            return cls(output, partial, manifest, list_shards(partial))
        if resume and output.exists():
            return cls(output, partial, _finished(output, fmt, config), [], complete=True)
        partial.mkdir(parents=True)
        manifest = {"format": fmt, "config": config, "attrs": attrs}
        try:
            _write_atomically(partial / MANIFEST, lambda p: p.write_text(json.dumps(manifest, sort_keys=True)))
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)  # no run without its manifest
            raise
        return cls(output, partial, manifest, [])

    @property
    def done(self) -> int:
        """Items [0, done) are safely on disk (shards are written in order)."""
        return self.done_from(0)

    def done_from(self, start: int, stop: int | None = None) -> int:
        """The end of the consecutive shards from item `start`, up to `stop`: items [start, end) are on disk (end
        = start if none). A process of a multi-process run writes its share [start, stop) in order, and the
        next share's shards may follow it on disk."""
        end = start
        for first, last, _ in sorted(self.shards):
            if stop is not None and first >= stop:
                break
            if first == end:
                end = last
            elif first > end:
                break
        return end

    def has(self, first: int, end: int) -> bool:
        """Whether items [first, end) are on disk as one shard (a resumed run skips them)."""
        return any(a == first and b == end for a, b, _ in self.shards)

    def refresh(self) -> bool:
        """Re-list the shards on disk (other processes of the run write some); whether the list changed."""
        before, self.shards = self.shards, list_shards(self.partial)
        return self.shards != before

    def write_shard(self, first: int, end: int, write: Callable[[h5py.File], None]) -> None:
        """Write items [first, end) into a new shard with `write(file)`, and commit it atomically."""
        path = self.partial / shard_name(first, end)
        _write_atomically(path, lambda tmp: _write_hdf5_image(tmp, write))
        self.shards.append((first, end, path))

    def shard_paths(self) -> list[Path]:
        """The finished shards' files, in item order."""
        return [shard for _, _, shard in sorted(self.shards)]

    def finalize(self, attrs: dict, merge: Callable[[h5py.File, list[Path]], None]) -> Path:
        """Merge the shards into the output file with `merge(out, shard paths)` (the format's), mark it complete,
        remove the partial directory and release the run's lock. SIGINT/SIGTERM stop it until the file is in
        place (signals.check; the formats' merges check between shards)."""
        paths = self.shard_paths()

        def write(tmp: Path) -> None:
            with h5py.File(tmp, "w", libver=LIBVER):
                pass
            _reserve(tmp, sum(p.stat().st_size for p in paths) + (self.partial / MANIFEST).stat().st_size
                     + MERGE_MARGIN, self.output)
            signals.check()
            with h5py.File(tmp, "r+", libver=LIBVER) as out:
                out.attrs.update(self.manifest["attrs"])
                out.attrs.update(attrs)
                merge(out, paths)
                signals.check()
                out.attrs["complete"] = True

        _write_atomically(self.output, write)
        shutil.rmtree(self.partial)
        self.release()
        return self.output

    def release(self) -> None:
        """Release the run's lock (idempotent): the run stopped, or it is finished."""
        if self.lock is not None:
            self.lock.release()


def _finished(output: Path, fmt: str, config: dict) -> dict:
    """The manifest of a complete file that resume=True found: refused unless it is a complete mjxgen file of
    this format and config."""
    try:
        with h5py.File(output, "r") as f:
            attrs = dict(f.attrs)
        stored = checks.json_text(f"{output}: the config attribute", attrs["config"])
    except (OSError, KeyError, TypeError, ValueError):
        raise ValueError(f"nothing to resume: {output} exists and is not a complete mjxgen dataset") from None
    if attrs.get("format") != fmt or not attrs.get("complete", False):
        raise ValueError(f"nothing to resume: {output} exists and is not a complete {fmt!r} dataset")
    if stored != config:
        raise ValueError(f"{output} is complete, with other settings (they differ in "
                         f"{', '.join(_config_diff(stored, config))}); choose another output path, or --overwrite")
    return {"format": fmt, "config": config, "attrs": attrs}


def describe_incomplete(partial: Path) -> str:
    """Why an unfinished run (its `.partial` directory) can't be read as a finished dataset."""
    shards = list_shards(partial)
    n = sum(end - first for first, end, _ in shards)
    return (f"{partial} is an unfinished run ({n} items in {len(shards)} finished shards); resume it with "
            "--resume, or read what it holds with allow_incomplete=True (--allow-incomplete)")


def load_attrs(path: Path) -> dict[str, Any]:
    """File attributes of a complete file, or the manifest's attributes (complete = False) of a partial run."""
    if path.is_dir():
        return dict(read_manifest(path)["attrs"]) | {"complete": False}
    with h5py.File(path, "r") as f:
        return dict(f.attrs)
