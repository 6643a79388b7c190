"""Stopping a run cleanly: SIGINT and SIGTERM as exceptions, and one way to report what a stopped run saved."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Callable


class Signalled(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class GenerationInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run. Items [0, safe) are on disk in `partial`; resume=True continues."""

    def __init__(self, signum: int, safe: int, total: int, partial, unit: str = "episodes"):
        self.signum, self.safe, self.total, self.partial = signum, safe, total, partial
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}: {unit} 0 to {safe - 1} ({safe} of {total}) are safe in {partial}")


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM raise Signalled in the main thread (by default SIGTERM would
    kill the process at once). Elsewhere than the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Signalled(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


@contextlib.contextmanager
def saving_what_is_done(done: Callable[[], int], partial: Path, total: int, unit: str,
                        stop: Callable[[], None] = lambda: None):
    """Run a generation block so that a stop keeps its finished work and says so.

    On SIGINT/SIGTERM, `stop()` runs (it writes what was already handed over) and GenerationInterrupted is
    raised; on an OSError (a full disk, a failed write), `stop()` runs and the OSError is raised again naming
    the items [0, done()) that are safe in `partial` and how to continue; on any other error `stop()` runs and
    the error propagates."""
    try:
        with stop_on_signals():
            yield
    except Signalled as e:
        stop()
        raise GenerationInterrupted(e.signum, done(), total, partial, unit) from None
    except OSError as e:
        stop()
        raise OSError(f"{e}; {unit} 0 to {done() - 1} are safe in {partial}; "
                      "fix the cause and run again with --resume") from e
    except BaseException:
        stop()
        raise
