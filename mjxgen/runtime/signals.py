"""Stopping a run cleanly: SIGINT and SIGTERM noted by a handler and raised at safe points, and one way to report
what a stopped run saved.

The handler only notes the signal. Raising from the handler itself could raise inside whatever the main thread
runs at that instant, a finalizer included (h5py's object registry, a WeakValueDictionary callback), where Python
prints "Exception ignored" and drops the exception: the signal was swallowed and the run went on. Instead the
main loop, the writer's queue and the merge call `check()` between steps, and every wait of the main thread is
a short poll that calls it.

Python runs a handler only between bytecodes of the main thread, so a signal that arrives during one long call
into C (a compile, a collective of a multi-process run) would wait for it to return. In a command-line process
(exit_when_stuck) a watchdog thread learns of every signal at once (signal.set_wakeup_fd) and, when no safe point
has taken it within GRACE_S, says what is safe and ends the process with 128 + the signal: finished shards are
atomic, so nothing is lost that --resume does not redo. Inside a program (a notebook) nothing ends the process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

GRACE_S = 5.0  # s a signal waits for a safe point before the watchdog ends the process
_pending: list[int] = []  # signals noted by the handler and not raised yet
_taken = [0]  # how many noted signals check() has taken (raised as one Signalled)
_depth = 0  # how many stop_on_signals blocks the main thread is in
_watch_process = [False]  # exit_when_stuck(): a command-line process, which the watchdog may end


def exit_when_stuck(on: bool = True) -> None:
    """Let the watchdog end this process when a signal meets no safe point within GRACE_S. A command-line entry
    point turns it on; a program that calls mjxgen (a notebook, a test) keeps it off, and a signal during a long
    call into C is raised when the call returns, as Python does."""
    _watch_process[0] = on


class Signalled(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def what_is_safe(safe: int, total: int, partial, unit: str = "episodes", output=None, counts: bool = True) -> str:
    """Where a stopped run's finished items are, naming only a path that exists: items [0, safe) in the unfinished
    run `partial`, the complete `output` (the run finished before it stopped), or nothing yet."""
    partial = Path(partial)
    if output is not None and Path(output).is_file() and not partial.exists():
        return f"all {total} {unit} are in {output}, which is complete"
    if safe > 0 and partial.is_dir():
        return f"{unit} 0 to {safe - 1}{f' ({safe} of {total})' if counts else ''} are safe in {partial}"
    return f"no {unit} are safe yet (0 of {total})"


class GenerationInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run. Items [0, safe) are on disk in `partial`; resume=True continues."""

    def __init__(self, signum: int, safe: int, total: int, partial, unit: str = "episodes", output=None):
        self.signum, self.safe, self.total, self.partial = signum, safe, total, partial
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}: {what_is_safe(safe, total, partial, unit, output)}")


def _note(signum, frame) -> None:
    _pending.append(signum)


def check() -> None:
    """A safe point: raise Signalled if SIGINT or SIGTERM arrived inside stop_on_signals. Only the main thread
    raises (signals are the main thread's); elsewhere this does nothing."""
    if _pending and threading.current_thread() is threading.main_thread():
        signum = _pending[0]
        _taken[0] += len(_pending)
        _pending.clear()
        raise Signalled(signum)


@contextlib.contextmanager
def stop_on_signals(describe: Callable[[], str] = lambda: "nothing is reported"):
    """Within the block SIGINT and SIGTERM are noted (by default SIGTERM would kill the process at once) and
    raised as Signalled by the next `check()`, at the latest when the block ends normally; one that no check takes
    within GRACE_S ends the process (see the module docstring), after one line: `describe()` (what is safe). Blocks
    may nest (the outermost installs the handler). Elsewhere than the main thread this does nothing."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous, watchdog = None, None
    if _depth == 0:
        _pending.clear()
        previous = {sig: signal.signal(sig, _note) for sig in (signal.SIGINT, signal.SIGTERM)}
        watchdog = _Watchdog(describe) if _watch_process[0] else None
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if watchdog is not None:
            watchdog.close()
        if previous is not None:
            for sig, h in previous.items():
                signal.signal(sig, h)
    check()  # a signal noted until the handler was removed ends the run too; later ones meet the previous handler


class _Watchdog:
    """A thread that hears of every signal as it arrives (the C-level handler writes its number to a pipe, even
    while the main thread is inside a long C call) and ends the process if it is still pending GRACE_S later."""

    def __init__(self, describe: Callable[[], str]):
        self._describe, self._closed, self._taken = describe, threading.Event(), _taken[0]
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="mjxgen-signal-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        heard = 0  # signals heard here; check() counts those it took
        while (data := os.read(self._read, 1)) and not self._closed.is_set():
            signum = data[0]
            if signum not in (signal.SIGINT, signal.SIGTERM):
                continue
            heard += 1
            if not self._closed.wait(GRACE_S) and heard > _taken[0] - self._taken:
                print(f"interrupted by {signal.Signals(signum).name}: {self._describe()}; stopped at once, as no safe "
                      f"point came within {GRACE_S:.0f} s; resume with --resume", file=sys.stderr, flush=True)
                os._exit(128 + signum)

    def close(self) -> None:
        self._closed.set()
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write)  # the thread's read ends
        self._thread.join(1.0)
        os.close(self._read)


@contextlib.contextmanager
def saving_what_is_done(done: Callable[[], int | None], partial: Path, total: int, unit: str,
                        stop: Callable[[], None] = lambda: None, output=None):
    """Run a generation block so that a stop keeps its finished work and says so.

    On SIGINT/SIGTERM, `stop()` runs (it writes what was already handed over) and GenerationInterrupted is
    raised; on an OSError (a full disk, a failed write), `stop()` runs and the OSError is raised again naming
    the items [0, done()) that are safe in `partial` and how to continue; on any other error `stop()` runs and
    the error propagates. `done()` is None while the run is not open yet: an OSError then propagates as it is.
    `output`: the run's file, named instead of `partial` when the run finished before the stop."""
    try:
        with stop_on_signals(lambda: what_is_safe(done() or 0, total, partial, unit, output)):
            check()
            yield
    except Signalled as e:
        stop()
        raise GenerationInterrupted(e.signum, done() or 0, total, partial, unit, output) from None
    except OSError as e:
        stop()
        safe = done()
        if safe is None:
            raise
        where = what_is_safe(safe, total, partial, unit, output, counts=False)
        raise OSError(f"{e}; {where}; fix the cause and run again with --resume") from e
    except BaseException:
        stop()
        raise
