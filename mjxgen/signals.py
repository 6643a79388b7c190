"""SIGINT and SIGTERM as exceptions, so a generator can save what it finished before it exits."""

from __future__ import annotations

import contextlib
import signal
import threading


class Signalled(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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
