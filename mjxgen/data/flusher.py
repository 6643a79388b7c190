"""A background thread that does the host-side work of each batch (encode, compress, write) in order, while
the caller simulates the next batch."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable

from mjxgen.runtime import signals

_STOP = object()
POLL_S = 0.1  # how often a waiting caller looks for SIGINT/SIGTERM (mjxgen.runtime.signals.check)


class BackgroundFlusher:
    """Runs `work(item)` for each item handed to `put`, in order, on one thread.

    `put` returns at once unless `maxsize` items are already waiting, so at most that many batches are held
    in memory. After a failure the thread skips the remaining items; `failure(error)` is raised in the
    caller's thread by the next `put` or by `close`. `on_exit` runs in the thread as it ends (for state that
    belongs to the thread, such as a GL context). `put` and `close` are safe points for SIGINT/SIGTERM
    (mjxgen.runtime.signals): they raise Signalled instead of waiting on; `stop` writes what is queued regardless.
    """

    def __init__(self, work: Callable[[Any], None], *, on_exit: Callable[[], None] | None = None,
                 failure: Callable[[BaseException], BaseException] = lambda e: OSError(str(e)),
                 maxsize: int = 2, name: str = "mjxgen-writer"):
        self._work = work
        self._on_exit = on_exit
        self._failure = failure
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = False  # _STOP is queued
        self._thread.start()

    def put(self, item: Any) -> None:
        self.raise_if_failed()
        self._offer(item)

    def close(self) -> None:
        """Finish every queued item, stop the thread, and raise its failure if there was one."""
        if self._thread is not None:
            if not self._stopping:
                self._offer(_STOP)
                self._stopping = True
            while self._thread.is_alive():
                self._thread.join(POLL_S)
                signals.check()
        self.stop()
        self.raise_if_failed()

    def stop(self) -> None:
        """Finish every queued item and stop the thread (its failure, if any, stays in `error`)."""
        if self._thread is not None:
            if not self._stopping:
                self._queue.put(_STOP)
                self._stopping = True
            self._thread.join()
            self._thread = None

    def _offer(self, item: Any) -> None:
        """Queue item, waiting while the queue is full: a safe point for signals."""
        signals.check()
        while True:
            try:
                return self._queue.put(item, timeout=POLL_S)
            except queue.Full:
                signals.check()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self._failure(self.error) from self.error

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not _STOP:
                if self.error is None:
                    try:
                        self._work(item)
                    except BaseException as e:  # noqa: BLE001 - reported to the caller's thread
                        self.error = e
        finally:
            if self._on_exit is not None:
                self._on_exit()
