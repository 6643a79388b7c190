"""Throughput in the units a dataset is made of (episodes/s, useful env steps/s), with baselines in the same run.

    python -m bench.throughput [--env reach|pick_place] [--batches 256 4096] [--max-steps 200]
                               [--e2e flat:lzf ...] [--skip fixed seed_style native writer horizons startup]

Prints tables and writes JSON to bench/results/<date>-<device>-<env>.json, after every part (a run stopped
part-way keeps what it measured). On a GPU, `bench/device.sh` runs the sizes of docs/benchmarks.md's GPU tables.

- streaming (the generator's form): B slots with auto-reset over `--episodes-per-slot` x B episodes, the
  program compiled; rollout-only = the device work and the transfer of every segment to the host.
- fixed-horizon (rollout_batch): B episodes of T steps, second call of the shape.
- useful env steps: steps inside episodes (up to the first success). The useful fraction is useful steps over
  simulated steps (every slot's steps: padding, idle slots at the end).
- seed-style (reach only): one native MuJoCo env in a Python loop, seed 000's P-controller and IK in NumPy.
- mujoco.rollout: native multithreaded open-loop rollout of the same model (physics steps/s: the CPU ceiling).
- end-to-end: generate_dataset (streaming, compiled) of the same episodes, per layout and codec; its ratio to
  streaming rollout-only. One untimed generate_dataset of one episode per slot comes first at each batch, so
  the process's one-time work (the values program, the first file) is not in the timed run, as compile is not.
- writer alone (bench.writer), horizon 150 vs 600 (the same episodes), time to first batch cold vs warm
  (bench.startup).
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

import mjxgen

mjxgen.configure()  # first: the XLA flags before any JAX computation, the GL backend

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench import baselines, startup, writer  # noqa: E402
from mjxgen import make_env  # noqa: E402
from mjxgen.sim import stream
from mjxgen.generate.config import GenerationConfig  # noqa: E402
from mjxgen.generate.pipeline import run_generation  # noqa: E402
from mjxgen.runtime.versions import package_versions  # noqa: E402
from mjxgen.sim.rollout import SEGMENT_STEPS, rollout_batch  # noqa: E402

RESULTS = Path(__file__).parent / "results"
E2E = ("episodes:gzip", "flat:gzip", "flat:lzf")
PARTS = ("fixed", "seed_style", "native", "writer", "horizons", "startup")


def _rates(episodes: int, useful: int, simulated: int, seconds: float, substeps: int) -> dict:
    return {"seconds": seconds, "episodes": episodes, "episodes_per_s": episodes / seconds,
            "useful_env_steps_per_s": useful / seconds, "physics_steps_per_s": simulated * substeps / seconds,
            "useful_fraction": useful / simulated}


def run_stream(env, slots: int, n: int, max_steps: int, policy: str, first: int = 0) -> tuple[int, int]:
    """(useful, simulated) env steps of ids [first, first + n) streamed through `slots` slots, fetching what
    generate_dataset fetches without a camera (all but qpos)."""
    useful = simulated = 0
    for seg in stream.run_segments(env, policy, first=first, count=n, slots=slots, seed=0, max_steps=max_steps,
                                   steps=SEGMENT_STEPS, keep_qpos=False):
        useful += int(seg.active.sum())
        simulated += int(seg.active.any(axis=1).sum()) * slots
    return useful, simulated


def measure_stream(env, slots: int, n: int, max_steps: int, policy: str) -> dict:
    t0 = time.perf_counter()
    run_stream(env, slots, 1, max_steps, policy)  # compile (and one short episode)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    useful, simulated = run_stream(env, slots, n, max_steps, policy, first=10**6)
    return {"batch": slots, "compile_s": compile_s} | _rates(n, useful, simulated, time.perf_counter() - t0,
                                                             env.substeps)


def measure_fixed(env, batch: int, max_steps: int, policy: str) -> dict:
    run = lambda first: jax.block_until_ready(  # noqa: E731
        rollout_batch(env, policy, np.arange(first, first + batch), seed=0, max_steps=max_steps))
    t0 = time.perf_counter()
    run(0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = run(10**6)
    wall = time.perf_counter() - t0
    return {"batch": batch, "compile_s": first - wall} | _rates(batch, int(out.lengths.sum()), batch * max_steps,
                                                                wall, env.substeps)


def measure_end_to_end(env, slots: int, n: int, max_steps: int, policy: str, layout: str, codec: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GenerationConfig(env_name=env.name, n_episodes=n, output_path=Path(tmp) / "e2e.h5", policy_type=policy,
                               max_steps=max_steps, seed=1, batch_size=slots, compression=codec, layout=layout,
                               progress=False)
        result = run_generation(cfg)
    return {"layout": layout, "codec": codec, "episodes_per_s": n / result.wall_s, "wall_s": result.wall_s,
            "file_mb": result.stats["file_size_mb"]}


def measure_horizons(env, slots: int, n: int, policy: str, horizons=(150, 600)) -> dict:
    """The same n episodes at two horizons, each program compiled first: streaming and fixed-horizon seconds."""
    out = {}
    for t in horizons:
        run_stream(env, slots, 1, t, policy)  # compile
        t0 = time.perf_counter()
        run_stream(env, slots, n, t, policy)
        out[f"stream_{t}_s"] = time.perf_counter() - t0
        fixed = measure_fixed(env, n, t, policy)
        out[f"fixed_{t}_s"] = fixed["seconds"]
    a, b = horizons
    out["stream_ratio"] = out[f"stream_{b}_s"] / out[f"stream_{a}_s"]
    out["fixed_ratio"] = out[f"fixed_{b}_s"] / out[f"fixed_{a}_s"]
    return {"slots": slots, "episodes": n, "horizons": list(horizons)} | out


def device_name() -> str:
    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu-{os.cpu_count()}core"
    return f"{device.platform}-{device.device_kind}".replace(" ", "_")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="reach", choices=("reach", "pick_place"))
    p.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--policy", default="scripted", choices=("random", "scripted"))
    p.add_argument("--episodes-per-slot", type=int, default=4, help="streamed episodes = this x B (default 4)")
    p.add_argument("--baseline-seconds", type=float, default=20.0, help="run time of the seed-style loop")
    p.add_argument("--horizon-episodes", type=int, default=1024, help="episodes of the 150 vs 600 comparison")
    p.add_argument("--e2e", nargs="*", default=list(E2E), metavar="LAYOUT:CODEC",
                   help=f"end-to-end runs per batch (default: {' '.join(E2E)}; none: no end-to-end)")
    p.add_argument("--skip", nargs="*", default=[], choices=PARTS, help="parts not to measure")
    p.add_argument("--native-batch", type=int, default=None, help="mujoco.rollout's batch (default: the largest)")
    p.add_argument("--json", type=Path, default=None, help="where to write the JSON")
    a = p.parse_args()
    e2e = [tuple(spec.split(":")) for spec in a.e2e]
    if any(len(x) != 2 for x in e2e):
        p.error(f"--e2e takes LAYOUT:CODEC pairs, got {a.e2e}")
    wanted = lambda part: part not in a.skip  # noqa: E731

    env = make_env(a.env)
    big = max(a.batches)
    rows = []
    result = {"date": datetime.date.today().isoformat(), "device": device_name(), "env": a.env,
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "versions": package_versions(),
              "policy": a.policy, "max_steps": a.max_steps, "segment_steps": SEGMENT_STEPS,
              "episodes_per_slot": a.episodes_per_slot, "rows": rows, "skipped": sorted(a.skip),
              "baseline_seed_style": None, "baseline_mujoco_rollout": None, "writer": None, "horizons": None,
              "time_to_first_batch": None}
    out = a.json or RESULTS / f"{result['date']}-{result['device']}-{a.env}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    save = lambda: out.write_text(json.dumps(result, indent=2) + "\n")  # noqa: E731

    if wanted("seed_style") and a.env == "reach":
        result["baseline_seed_style"] = baselines.seed_style(env, a.max_steps, a.baseline_seconds)
        save()
    if wanted("native"):
        result["baseline_mujoco_rollout"] = baselines.mujoco_rollout(env, a.native_batch or big, a.max_steps)
        save()
    for b in a.batches:
        n = a.episodes_per_slot * b
        s = measure_stream(env, b, n, a.max_steps, a.policy)
        row = {"batch": b, "stream": s, "end_to_end": []}
        rows.append(row)
        save()
        print(f"batch {b}: stream {s['episodes_per_s']:.1f} ep/s", flush=True)
        if e2e:
            measure_end_to_end(env, b, b, a.max_steps, a.policy, *e2e[0])  # warm-up, untimed
        for lay, codec in e2e:
            e = measure_end_to_end(env, b, n, a.max_steps, a.policy, lay, codec)
            row["end_to_end"].append(e | {"ratio": e["episodes_per_s"] / s["episodes_per_s"]})
            save()
            print(f"batch {b}: end to end {lay}/{codec} {e['episodes_per_s']:.1f} ep/s", flush=True)
        if wanted("fixed"):
            row["fixed"] = measure_fixed(env, b, a.max_steps, a.policy)
        save()
    if wanted("writer"):
        result["writer"] = writer.measure_all(env, writer.real_block(env, big, a.max_steps, a.policy))
        save()
    if wanted("horizons"):
        result["horizons"] = measure_horizons(env, min(big, a.horizon_episodes), a.horizon_episodes, a.policy)
        save()
    if wanted("startup"):
        result["time_to_first_batch"] = startup.cold_and_warm(256, a.max_steps)
        save()
    baselines.print_tables(result)
    if result["writer"]:
        writer.print_rows(result["writer"])
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
