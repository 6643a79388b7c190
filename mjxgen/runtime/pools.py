"""Thread pools for host-side array work that runs outside Python's GIL (deflate, NumPy copies): one pool per
job, so a slow job never queues in front of another. Created on first use, one thread per core."""

from __future__ import annotations

import concurrent.futures
import functools
import os


@functools.cache
def pool(job: str) -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool for `job` (its threads are named mjxgen-<job>_<n>)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix=f"mjxgen-{job}")
