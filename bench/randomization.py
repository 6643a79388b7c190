"""What domain randomization and camera images cost, measured in one run.

    python -m bench.randomization [--batch 1024] [--max-steps 200] [--repeats 3] [--image-size 64 64]

- rollout-only reach/scripted at one batch size, randomization off and on, alternating --repeats times
  (the same compiled program serves both: the ranges are an argument). Reports the best of each.
- rendering: MuJoCo's renderer on the host (mjxgen.render.opengl) over recorded states of that batch, frames/s.
Writes JSON to bench/results/<date>-<device>-randomization.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import mjxgen

mjxgen.configure()  # first: the XLA flags before any JAX computation, the GL backend

import jax
import numpy as np

from bench.throughput import RESULTS, device_name
from mjxgen.kernels.randomize import RandomizationConfig
from mjxgen import make_env
from mjxgen.render.opengl import EpisodeRenderer
from mjxgen.sim.rollout import rollout_batch
from mjxgen.runtime.versions import package_versions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--image-size", type=int, nargs=2, default=(64, 64))
    a = p.parse_args()
    env = make_env("reach")
    ids = np.arange(a.batch)
    settings = {"off": None, "on": RandomizationConfig()}
    jax.block_until_ready(rollout_batch(env, "scripted", ids, max_steps=a.max_steps))  # compile
    times = {k: [] for k in settings}
    out = None
    for r in range(a.repeats):
        for name, dr in settings.items():
            t0 = time.perf_counter()
            out = jax.block_until_ready(rollout_batch(env, "scripted", ids + (r + 1) * a.batch, max_steps=a.max_steps,
                                                      randomization=dr))
            times[name].append(time.perf_counter() - t0)
    steps = a.batch * a.max_steps
    rate = {k: steps / min(v) for k, v in times.items()}
    host = jax.device_get(out)
    renderer = EpisodeRenderer(env.xml, *a.image_size)
    frames = 0
    t0 = time.perf_counter()
    for b in range(min(8, a.batch)):
        draw = host.randomization
        renderer.render(host.trajectory.qpos[b], host.mocap_pos[b], draw.light_dir[b], draw.camera_offset[b])
        frames += a.max_steps
    render_fps = frames / (time.perf_counter() - t0)
    renderer.close()
    dev = device_name()
    print(f"\nreach/scripted, B={a.batch}, T={a.max_steps}, device {dev}, best of {a.repeats}")
    for k in settings:
        print(f"  randomization {k:>3}: {rate[k]:>10,.0f} env steps/s  ({min(times[k]):.2f} s)")
    print(f"  cost of randomization: {100 * (1 - rate['on'] / rate['off']):+.1f}% of throughput")
    print(f"  rendering {a.image_size[0]}x{a.image_size[1]} (MUJOCO_GL={os.environ.get('MUJOCO_GL', 'default')}): "
          f"{render_fps:,.0f} frames/s on one thread")
    date = datetime.date.today().isoformat()
    path = RESULTS / f"{date}-{dev}-randomization.json"
    path.write_text(json.dumps({
        "date": date, "device": dev, "cpu_count": os.cpu_count(), "versions": package_versions(), "batch": a.batch,
        "max_steps": a.max_steps, "seconds": times, "env_steps_per_s": rate,
        "randomization_cost": 1 - rate["on"] / rate["off"], "render": {"size": a.image_size, "frames_per_s": render_fps,
                                                                       "gl": os.environ.get("MUJOCO_GL")},
    }, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
