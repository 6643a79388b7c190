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

A full or failing disk is an OSError, never a crash: HDF5 (h5py 3.16, HDF5 2.0) segfaults in File.close once a
write of its own failed, so a shard is made in memory and written with a plain write, and the merged file's space
is reserved (fallocate) before HDF5 writes into it. SIGINT and SIGTERM stop a merge between shards and before the
rename (mjxgen.runtime.signals.check).

Both the arm-task writer (mjxgen.data.writer) and the PushT writer (mjxgen.pusht.writer) store data through this module.
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
from typing import Any, Callable, Iterator

import h5py

from mjxgen.runtime import signals

MANIFEST = "manifest.json"
_SHARD = re.compile(r"^part-(\d{9})-(\d{9})\.h5$")
LIBVER = ("v110", "latest")  # HDF5 >= 1.10 structures: far smaller for thousands of small datasets
# Disk space reserved for the merged file beyond the shards' and the manifest's total (the file attributes). The
# merged file has been smaller than the shards' total (reach, 160 episodes in 20 shards: 0.76 of it; the flat
# layout 0.45): one superblock and one set of file attributes instead of many.
MERGE_MARGIN = 2**18


def check_output_path(path: str | os.PathLike, overwrite: bool, resume: bool = False) -> Path:
    """Refuse an existing file (unless overwrite or resume), a directory, or a location that can't be
    written. With overwrite, an existing file and an unfinished run of it are removed."""
    path = Path(path)
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other")
    if path.is_dir():
        raise ValueError(f"output path {path} is a directory; give a file name such as {path / 'data.h5'}")
    if path.exists() and not (overwrite or resume):
        raise FileExistsError(f"output file {path} already exists; pass --overwrite (overwrite=True) to replace it")
    if overwrite:
        path.unlink(missing_ok=True)
        shutil.rmtree(partial_dir(path), ignore_errors=True)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"cannot create output directory {parent}: {e.strerror or e}") from None
    try:  # a real probe: os.access says yes to root even on a read-only filesystem
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".mjxgen-probe-"):
            pass
    except OSError as e:
        raise PermissionError(f"output directory {parent} is not writable: {e.strerror or e}") from None
    return path


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


class ShardStore:
    """One run's shards. `open` starts a run or resumes one; `write_shard` commits items [first, end);
    `finalize` produces the complete output file."""

    def __init__(self, output: Path, partial: Path, manifest: dict, shards: list[tuple[int, int, Path]]):
        self.output = output
        self.partial = partial
        self.manifest = manifest
        self.shards = shards
        # merge(out, shard paths) fills the output file at finalize; by default every shard's top-level groups
        # are copied (raw chunks, not recompressed). The flat layout sets its own (mjxgen.data.flat.merge).
        self.merge: Callable[[h5py.File, list[Path]], None] = copy_groups

    @classmethod
    def open(cls, output: str | os.PathLike, fmt: str, config: dict, attrs: dict, resume: bool) -> "ShardStore":
        """Start writing `output`, or continue its unfinished run when resume is True.

        A run with the same config must be resumed explicitly: without resume, an existing partial run is an
        error (the caller decides about overwriting before calling this). With resume, the stored config
        must equal `config`."""
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
                diff = sorted(k for k in set(config) | set(manifest.get("config", {}))
                              if config.get(k) != manifest.get("config", {}).get(k))
                raise ValueError(f"cannot resume {partial}: the settings differ in {', '.join(diff)}; "
                                 "resume with the original settings")
            return cls(output, partial, manifest, list_shards(partial))
        if resume and output.exists():
            raise FileExistsError(f"nothing to resume: {output} is already complete")
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

    def finalize(self, attrs: dict) -> Path:
        """Merge the shards into the output file (`self.merge`), mark it complete, and remove the partial
        directory. SIGINT/SIGTERM stop it until the file is in place (signals.check)."""

        paths = [shard for _, _, shard in self.shards]

        def write(tmp: Path) -> None:
            with h5py.File(tmp, "w", libver=LIBVER):
                pass
            _reserve(tmp, sum(p.stat().st_size for p in paths) + (self.partial / MANIFEST).stat().st_size
                     + MERGE_MARGIN, self.output)
            signals.check()
            with h5py.File(tmp, "r+", libver=LIBVER) as out:
                out.attrs.update(self.manifest["attrs"])
                out.attrs.update(attrs)
                self.merge(out, paths)
                signals.check()
                out.attrs["complete"] = True

        _write_atomically(self.output, write)
        shutil.rmtree(self.partial)
        return self.output


def copy_groups(out: h5py.File, shards: list[Path]) -> None:
    """Every shard's top-level groups, in order, into out (a stop may end it between shards)."""
    for shard in shards:
        signals.check()
        with h5py.File(shard, "r") as src:
            for name in src:
                src.copy(src[name], out, name)


def _natural(name: str):
    head, _, number = name.rpartition("_")
    return (head, int(number)) if number.isdigit() else (name, -1)


def iter_groups(path: str | os.PathLike) -> Iterator[tuple[str, h5py.Group]]:
    """(name, group) of every top-level group of a complete file or of an unfinished run's shards, in item
    order (episode_2 before episode_10). Each group is valid until the next one is requested."""
    path = Path(path)
    files = [shard for _, _, shard in list_shards(path)] if path.is_dir() else [path]
    for file in files:
        with h5py.File(file, "r") as f:
            for name in sorted(f, key=_natural):
                yield name, f[name]


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
