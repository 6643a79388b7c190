"""Reach throughput on this machine: compile time, rollout-only steps/s, end-to-end episodes/s.

    python -m bench.throughput [--batches 64 256 1024 4096] [--max-steps 200]

Prints a table and writes JSON to bench/results/<date>-<device>.json. Rollout-only times the second call
of each shape (after compilation) up to `block_until_ready`. End-to-end runs `run_generation`: compile,
transfer to the host, and the default gzip HDF5 write. The native-MuJoCo baselines are not here yet.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import mjxgen  # noqa: F401  (first: the XLA flags)
import jax
import numpy as np

from mjxgen import make_env
from mjxgen.generate import GenerationConfig, run_generation
from mjxgen.rollout import rollout_batch
from mjxgen.writer import package_versions

RESULTS = Path(__file__).parent / "results"


def measure(batch: int, max_steps: int, policy: str) -> dict:
    env = make_env("reach")
    substeps = env.arm.config.substeps
    t0 = time.perf_counter()
    jax.block_until_ready(rollout_batch(env, policy, np.arange(batch), seed=0, max_steps=max_steps))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(rollout_batch(env, policy, np.arange(batch, 2 * batch), seed=0, max_steps=max_steps))
    run = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GenerationConfig("reach", batch, Path(tmp) / "b.h5", policy, max_steps=max_steps, seed=1,
                               batch_size=batch, progress=False)
        result = run_generation(cfg)
    env_steps = batch * max_steps
    return {
        "batch": batch,
        "compile_s": first - run,
        "rollout_s": run,
        "env_steps_per_s": env_steps / run,
        "physics_steps_per_s": env_steps * substeps / run,
        "end_to_end_s": result.wall_s,  # one fresh generate call of `batch` episodes; shape already compiled
        "end_to_end_episodes_per_s": batch / result.wall_s,
        "file_mb": result.stats["file_size_mb"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024, 4096])
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--policy", default="scripted", choices=("random", "scripted"))
    a = p.parse_args()

    device = jax.devices()[0]
    if device.platform == "cpu":
        device_name = f"cpu-{os.cpu_count()}core"
    else:
        device_name = f"{device.platform}-{device.device_kind}".replace(" ", "_")
    rows = [measure(b, a.max_steps, a.policy) for b in a.batches]

    print(f"reach / {a.policy}, T={a.max_steps}, device {device_name}, {platform.processor() or platform.machine()}")
    print(f"{'batch':>6} {'compile s':>10} {'rollout s':>10} {'env steps/s':>12} {'phys steps/s':>13} {'e2e ep/s':>9}")
    for r in rows:
        print(f"{r['batch']:>6} {r['compile_s']:>10.1f} {r['rollout_s']:>10.2f} {r['env_steps_per_s']:>12,.0f} "
              f"{r['physics_steps_per_s']:>13,.0f} {r['end_to_end_episodes_per_s']:>9.1f}")

    RESULTS.mkdir(exist_ok=True)
    date = datetime.date.today().isoformat()
    out = RESULTS / f"{date}-{device_name}.json"
    out.write_text(json.dumps({
        "date": date, "device": device_name, "cpu_count": os.cpu_count(),
        "versions": package_versions(), "policy": a.policy, "max_steps": a.max_steps, "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
