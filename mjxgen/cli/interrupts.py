"""SIGINT and SIGTERM end a command with one line and 128 + the signal (130, 143) at any moment, its imports
included. Standard library only: this module is imported before anything heavy, so the handlers are in place
before JAX, MuJoCo or NumPy start loading.

A process entry point goes through three phases:
- importing the command (JAX, MuJoCo, ...): a signal ends the process at once, one line and os._exit. Nothing is
  written yet, and an exception raised while a C extension initializes can abort the interpreter (seen once in
  38 tries: SIGABRT, the exception raised in an enum's creation), so none is raised.
- running it: a signal raises Interrupted, so that the command's cleanup runs (a generation run turns it into
  GenerationInterrupted, keeping what it finished); the entry point prints one line and returns 128 + signal.
- after it (the interpreter ending): one line and os._exit, as while importing.
A call inside a program (argv given: the tests, a notebook) raises Interrupted in all three and restores the
previous handlers afterwards.

A generation run (mjxgen.generate, PushT) installs its own handlers for its duration
(mjxgen.runtime.signals.stop_on_signals): there a signal is only noted and raised at the run's next safe point,
so that the run keeps what it finished; the resend of a dropped exception below serves the other commands.
"""

from __future__ import annotations

import _thread
import contextlib
import importlib
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived outside a generation run (which reports its own: GenerationInterrupted)."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def _raise(signum, frame):
    raise Interrupted(signum)


def _exit_now(signum, frame):
    """One line and the signal's status, at once (no exception: see the module's docstring)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.write(2, f"interrupted by {signal.Signals(signum).name}\n".encode())
    os._exit(128 + signum)


def _set(handler) -> dict:
    return {sig: signal.signal(sig, handler) for sig in SIGNALS}


@contextlib.contextmanager
def _handlers(process: bool) -> Iterator[Callable[[], None]]:
    """Install the handlers (process: _exit_now, else _raise); yields `running()`, which switches to _raise.
    After the block a process keeps _exit_now; a call inside a program gets its previous handlers back."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield lambda: None
        return
    previous = _set(_exit_now if process else _raise)
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: _unraisable(hook, unraisable)
    try:
        yield lambda: _set(_raise)
    finally:
        sys.unraisablehook = hook
        for sig in SIGNALS:
            signal.signal(sig, _exit_now if process else previous[sig])


def _unraisable(hook, unraisable) -> None:
    """A signal's exception raised where Python drops exceptions (a __del__ or a gc callback, such as JAX's: it
    prints "Exception ignored in ...") would be lost: send the signal again, from another thread a moment later,
    so that it is raised where the main thread goes on (this hook returns first)."""
    exc = unraisable.exc_value
    signum = getattr(exc, "signum", signal.SIGINT if isinstance(exc, KeyboardInterrupt) else None)
    if signum is None:
        hook(unraisable)
    else:
        _thread.start_new_thread(_send_again, (int(signum),))


def _send_again(signum: int) -> None:
    time.sleep(0.01)
    os.kill(os.getpid(), signum)


def _report(signum: int, message: str) -> int:
    """One stderr line; returns 128 + signum. Further signals are ignored meanwhile (the block's end sets the
    handlers again)."""
    if threading.current_thread() is threading.main_thread():
        _set(signal.SIG_IGN)
    print(message, file=sys.stderr)
    return 128 + signum


def run(module: str, function: str, *args, argv: list[str] | None = None) -> int:
    """`module.function(*args, argv)`: import the module (the heavy part) and run the command, SIGINT and SIGTERM
    ending it with one line and 128 + the signal. argv None: the process's own command line (a process entry
    point); otherwise a call inside a program, whose signal handlers are restored afterwards."""
    with _handlers(process=argv is None) as running:
        try:
            command: Callable[..., int] = getattr(importlib.import_module(module), function)
            if argv is None:  # a process of its own: a signal stuck behind a long C call may end it
                importlib.import_module("mjxgen.runtime.signals").exit_when_stuck()
            running()
            return command(*args, argv)
        except Interrupted as e:
            return _report(e.signum, str(e))
        except KeyboardInterrupt as e:  # the default SIGINT handler's, restored by code the command called
            signum = getattr(e, "signum", signal.SIGINT)
            return _report(signum, str(e) or f"interrupted by {signal.Signals(signum).name}")
