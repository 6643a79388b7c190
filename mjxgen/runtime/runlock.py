"""One writer per output: an exclusive `flock` on `<output>.lock`, taken before the output is checked and held
until the finished file is in place.

The operating system releases the lock when its holder dies (SIGKILL included), so a killed run never blocks the
next one. The file holds who holds the lock (pid, host, start time) for the message a second run gets. The holder
removes the file as it releases the lock; a run that opened the old file just before that sees that the path
no longer names the file it locked, and tries again.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
import warnings
from pathlib import Path


class RunLocked(FileExistsError):
    """Another run is writing the same output (a FileExistsError: the CLIs' bad-input exit status, 2)."""


def lock_path(output: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(output)}.lock")


class RunLock:
    """The exclusive lock on one output's run. `acquire` takes it or raises RunLocked naming the holder; `release`
    (idempotent) gives it back."""

    def __init__(self, path: Path, fd: int | None):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, output: str | os.PathLike) -> "RunLock":
        path = lock_path(output)
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise PermissionError(f"output directory {path.parent} is not writable (the lock file {path.name}: "
                                      f"{e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise RunLocked(f"{output} is being written by another run ({holder}; lock file {path}); wait for it "
                                "to finish, or write to another path") from None
            except OSError as e:  # a filesystem without flock (some network filesystems)
                if e.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    os.close(fd)
                    raise
                warnings.warn(f"{path.parent} does not support file locks ({e.strerror}): nothing stops a second run "
                              f"from writing {output} at the same time", stacklevel=2)
                os.close(fd)
                return cls(path, None)
            if _same_file(path, fd):
                break
            os.close(fd)  # the previous holder removed the file we locked: lock the current one
        info = f"pid {os.getpid()} on host {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only its description is missing
            pass
        return cls(path, fd)

    def __del__(self):  # a lock nobody can release any more (its store was dropped after an error) is released
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and release the lock (while still holding it, so no one locks the removed file)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(self.path, fd):
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    try:
        a, b = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _holder(fd: int) -> str:
    """The holder's description from the lock file (it may not have written it yet)."""
    for _ in range(20):
        try:
            text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        if text:
            return f"held by {text}"
        time.sleep(0.01)
    return "its holder has not described itself yet"
