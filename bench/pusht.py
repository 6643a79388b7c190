"""PushT throughput: samples/s with one worker process against every core, and DMP integrations/s of the JAX
kernel, in one run.

    python -m bench.pusht [--num-samples 400] [--dmp-batch 4096]

- pusht one worker / all cores: `mjxgen.pusht.generate.generate` end to end (planning, gym-pusht execution in
  worker processes, HDF5 write, starting the worker processes), no videos, same seed, so the same samples.
  The planner is compiled by a warm-up run first.
- DMP kernel: the planner's integration (`mjxgen.pusht.plan.integrate_batch`: seed 003's planar DMP, 320 points of
  12.5 ms = 4 s, the longest duration, with clipping and the step limiter) over --dmp-batch DMPs drawn as the
  reference draws them, second call of the jitted shape; compile time reported separately.
Writes JSON to bench/results/<date>-<device>-pusht.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import mjxgen

mjxgen.configure()  # first: the XLA flags before any JAX computation, the GL backend

import jax
import jax.numpy as jnp

from bench.throughput import RESULTS, device_name
from mjxgen.kernels import dmp
from mjxgen.runtime.versions import package_versions
from mjxgen.pusht import execute, generate, plan


def measure_generate(n: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        stats = generate.generate(n, 0, Path(d) / "p.h5", workers=workers, progress=False)
        dt = time.perf_counter() - t0
    return {"workers": workers, "samples": n, "seconds": dt, "samples_per_s": n / dt,
            "env_steps_per_s": stats["total_steps"] / dt}


def measure_dmp(batch: int) -> dict:
    cfg = dataclasses.replace(dmp.PUSHT_REFERENCE, scale_forcing=True)
    d = plan.draw(0, batch, cfg)
    length = plan.n_points(cfg.duration_range[1], cfg)
    n_steps = length - 1
    params = dmp.DMPParams(
        start=jnp.zeros((batch, 2)),
        goal=jnp.asarray(plan.to_normalized(d.goal_pixels)),
        duration=jnp.asarray(d.duration, jnp.float32),
        stiffness=jnp.asarray(d.stiffness, jnp.float32),
        alpha_s=jnp.full((batch,), cfg.alpha_s, jnp.float32),
        weights=jnp.asarray(d.weights),
    )
    n = jnp.asarray([plan.n_points(t, cfg) for t in d.duration], jnp.int32)
    t0 = time.perf_counter()
    jax.block_until_ready(plan.integrate_batch(cfg, length, params, n))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(plan.integrate_batch(cfg, length, params, n))
    run = time.perf_counter() - t0
    return {"batch": batch, "substeps": n_steps, "compile_s": first - run, "seconds": run,
            "dmps_per_s": batch / run, "substeps_per_s": batch * n_steps / run}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-samples", type=int, default=400)
    p.add_argument("--dmp-batch", type=int, default=4096)
    a = p.parse_args()
    cores = os.cpu_count() or 1
    measure_generate(2, 1)  # compile the planner first, so neither measured run pays for it
    rows = [measure_generate(a.num_samples, 1), measure_generate(a.num_samples, cores)]
    kernel = measure_dmp(a.dmp_batch)
    dev = device_name()
    print(f"\nPushT random DMPs, {a.num_samples} samples, seed 0, device {dev}")
    print(f"{'workers':>8} {'seconds':>8} {'samples/s':>10} {'env steps/s':>12}")
    for r in rows:
        print(f"{r['workers']:>8} {r['seconds']:>8.1f} {r['samples_per_s']:>10.1f} {r['env_steps_per_s']:>12,.0f}")
    print(f"speed-up with {cores} workers: {rows[1]['samples_per_s'] / rows[0]['samples_per_s']:.2f}x")
    print(f"\nDMP kernel: {kernel['batch']} planar DMPs x {kernel['substeps']} substeps in {kernel['seconds'] * 1e3:.1f} ms "
          f"= {kernel['dmps_per_s']:,.0f} DMP integrations/s ({kernel['substeps_per_s']:,.0f} substeps/s); "
          f"compile {kernel['compile_s']:.1f} s")
    date = datetime.date.today().isoformat()
    out = RESULTS / f"{date}-{dev}-pusht.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": date, "device": dev, "cpu_count": cores,
                               "versions": package_versions() | execute.versions(),
                               "generate": rows, "dmp_kernel": kernel}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
