"""Time to first batch, cold vs warm compile cache: fresh processes, an empty then a filled cache directory.

    python -m bench.startup [--batch 256] [--max-steps 200]          (prints both times)
    python -m bench.startup --child --cache DIR --batch B --max-steps T   (one process: used by the parent)

The time runs from the parent's Popen to the child's first segment on the host: interpreter start, imports,
the env, the trace and compile (warm: loading the exported program and the compiled one) and the first K
steps of B slots.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

MARK = "first-batch"


def child(cache: str, batch: int, max_steps: int, env_name: str = "reach", policy: str = "scripted") -> None:
    import mjxgen

    mjxgen.configure(compile_cache=cache)
    from mjxgen import make_env
    from mjxgen.sim import stream
    from mjxgen.sim.rollout import SEGMENT_STEPS

    env = make_env(env_name)
    segments = stream.run_segments(env, policy, first=0, count=batch, slots=batch, seed=0, max_steps=max_steps,
                                   steps=SEGMENT_STEPS)
    next(segments)
    print(MARK, flush=True)


def time_to_first_batch(cache: str, batch: int, max_steps: int) -> float:
    """Seconds from starting a fresh process to its first segment on the host."""
    env = {k: v for k, v in os.environ.items() if k != "MJXGEN_COMPILE_CACHE"}
    cmd = [sys.executable, "-m", "bench.startup", "--child", "--cache", cache, "--batch", str(batch),
           "--max-steps", str(max_steps)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stdout:
        if line.strip() == MARK:
            elapsed = time.perf_counter() - t0
            proc.wait()
            return elapsed
    raise RuntimeError(f"{' '.join(cmd)} ended (status {proc.wait()}) without reaching its first batch")


def cold_and_warm(batch: int, max_steps: int) -> dict:
    """Cold: an empty cache directory; warm: the same directory, filled by the cold run."""
    with tempfile.TemporaryDirectory() as cache:
        cold = time_to_first_batch(cache, batch, max_steps)
        warm = time_to_first_batch(cache, batch, max_steps)
        files = [os.path.join(d, f) for d, _, names in os.walk(cache) for f in names]  # programs/ included
        entries = len(files)
        size_mb = sum(os.path.getsize(f) for f in files) / 1e6
    return {"batch": batch, "max_steps": max_steps, "cold_s": cold, "warm_s": warm, "warm_over_cold": warm / cold,
            "cache_entries": entries, "cache_mb": size_mb}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true")
    p.add_argument("--cache", default=None)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--max-steps", type=int, default=200)
    a = p.parse_args()
    if a.child:
        child(a.cache, a.batch, a.max_steps)
        return
    r = cold_and_warm(a.batch, a.max_steps)
    print(f"time to first batch, B={a.batch}, T={a.max_steps}: cold {r['cold_s']:.1f} s, warm {r['warm_s']:.1f} s "
          f"({r['warm_over_cold']:.2f}x); cache {r['cache_entries']} entries, {r['cache_mb']:.1f} MB")


if __name__ == "__main__":
    main()
