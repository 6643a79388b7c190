"""The generator's host path alone: can this machine's CPU keep up with a GPU?

    python -m bench.host [--slots 4096] [--episodes 16384] [--max-steps 200] [--reps 2]

Streams reach/scripted episodes once (not timed) and keeps every segment on the host. Then it runs
generate_dataset's streaming loop (mjxgen.generate.simulate.simulate_stream: stitching, the per-episode values, the
background writer, the final merge) with the device replaced by those recorded segments, per layout and codec.
Its episodes/s is the most a run can reach end to end on this CPU however fast the device is: on a GPU,
the generator keeps up when this number is above the rollout-only rate of bench.throughput.
Writes JSON to bench/results/<date>-<device>-host.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import mjxgen

mjxgen.configure()  # first: the XLA flags before any JAX computation

from mjxgen import make_env  # noqa: E402
from mjxgen.sim import stream
from mjxgen.generate.config import GenerationConfig  # noqa: E402
from mjxgen.generate.pipeline import run_generation  # noqa: E402
from mjxgen.runtime.versions import package_versions  # noqa: E402
from mjxgen.sim.rollout import SEGMENT_STEPS  # noqa: E402

from bench.throughput import RESULTS, device_name  # noqa: E402

CASES = (("flat", "gzip"), ("flat", "lzf"), ("flat", "none"), ("episodes", "gzip"))


def record(env, slots: int, n: int, max_steps: int, seed: int) -> list:
    """Every host segment of episodes [0, n) streamed through `slots` slots (without qpos, as generate_dataset
    fetches them without a camera)."""
    return list(stream.run_segments(env, "scripted", first=0, count=n, slots=slots, seed=seed, max_steps=max_steps,
                                    steps=SEGMENT_STEPS, keep_qpos=False))


@contextlib.contextmanager
def replaying(segments: list):
    """stream.run_segments yields the recorded segments instead of simulating."""
    real = stream.run_segments
    stream.run_segments = lambda *args, **kwargs: iter(segments)
    try:
        yield
    finally:
        stream.run_segments = real


def measure(segments: list, slots: int, n: int, max_steps: int, seed: int, layout: str, codec: str,
            reps: int) -> dict:
    """generate_dataset over the recorded segments, `reps` times (the first also traces and compiles the
    per-episode values program): episodes/s of each."""
    walls = []
    with replaying(segments), tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            cfg = GenerationConfig(env_name="reach", n_episodes=n, output_path=Path(tmp) / f"h{rep}.h5",
                                   policy_type="scripted", max_steps=max_steps, seed=seed, batch_size=slots,
                                   compression=codec, layout=layout, progress=False)
            t0 = time.perf_counter()
            run_generation(cfg)
            walls.append(time.perf_counter() - t0)
    return {"layout": layout, "codec": codec, "walls_s": walls, "episodes_per_s": [n / w for w in walls]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slots", type=int, default=4096)
    p.add_argument("--episodes", type=int, default=16384)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    if a.reps < 1:
        p.error("--reps must be at least 1")
    env = make_env("reach")
    seed = 1
    t0 = time.perf_counter()
    segments = record(env, a.slots, a.episodes, a.max_steps, seed)
    print(f"recorded {len(segments)} segments of {a.slots} slots in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for layout, codec in CASES:
        rows.append(measure(segments, a.slots, a.episodes, a.max_steps, seed, layout, codec, a.reps))
        rates = ", ".join(f"{r:,.0f}" for r in rows[-1]["episodes_per_s"])
        print(f"  {layout:>8} {codec:>5}: {rates} episodes/s (call 1 first)", flush=True)
    result = {"date": datetime.date.today().isoformat(), "device": device_name(), "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "versions": package_versions(), "env": "reach", "policy": "scripted",
              "slots": a.slots, "episodes": a.episodes, "max_steps": a.max_steps, "segments": len(segments),
              "rows": rows}
    out = a.json or RESULTS / f"{result['date']}-{result['device']}-host.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
