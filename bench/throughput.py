"""Task throughput on this machine, with native-MuJoCo baselines measured in the same run.

    python -m bench.throughput [--env reach|pick_place] [--batches 64 256 1024 4096] [--max-steps 200]

Prints tables and writes JSON to bench/results/<date>-<device>-<env>.json.

- compile: the first call of a shape minus the second.
- rollout-only: the second call of a shape (new episode ids), up to `block_until_ready`.
- end-to-end: `generate_dataset` of --e2e-batches batches with the shape already compiled. It includes
  the device-to-host transfer and the HDF5 write, which overlaps the next batch's simulation. It is
  measured with gzip (the default) and lzf (the fastest compressing codec offered).
- baseline "seed-style" (reach only: seed 000 defines its P-controller): one native MuJoCo env stepped in
  a Python loop with the same P-controller and IK in NumPy, the same 5 ms physics step and 4 substeps
  (mjxgen.native), run until the first success.
- baseline "mujoco.rollout": native MuJoCo's multithreaded open-loop rollout, one thread per core, the
  same model and number of physics steps as one batch. This is the CPU ceiling.
- writer alone: one real batch (the largest measured) written with each codec.
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

import jax
import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from mjxgen import make_env
from mjxgen.config import GenerationConfig
from mjxgen.generate import host_batch, run_generation
from mjxgen.native import NativeReach
from mjxgen.rollout import rollout_batch
from mjxgen.layout import package_versions
from mjxgen.writer import COMPRESSIONS, DatasetWriter

RESULTS = Path(__file__).parent / "results"
E2E_CODECS = ("gzip", "lzf")


def measure_rollout(env, batch: int, max_steps: int, policy: str):
    """Compile time and rollout-only rate for one batch shape; also returns the host batch."""
    t0 = time.perf_counter()
    jax.block_until_ready(rollout_batch(env, policy, np.arange(batch), seed=0, max_steps=max_steps))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(rollout_batch(env, policy, np.arange(batch, 2 * batch), seed=0, max_steps=max_steps))
    run = time.perf_counter() - t0
    steps = batch * max_steps
    row = {
        "batch": batch,
        "compile_s": first - run,
        "rollout_s": run,
        "env_steps_per_s": steps / run,
        "physics_steps_per_s": steps * env.substeps / run,
        "episodes_per_s": batch / run,
    }
    return row, jax.device_get(out)


def measure_end_to_end(env, batch: int, n_batches: int, max_steps: int, policy: str, codec: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GenerationConfig(env_name=env.name, n_episodes=batch * n_batches, output_path=Path(tmp) / "e2e.h5",
                               policy_type=policy, max_steps=max_steps,
                               seed=1, batch_size=batch, compression=codec, progress=False)
        result = run_generation(cfg)
    return {"episodes_per_s": cfg.n_episodes / result.wall_s, "wall_s": result.wall_s,
            "file_mb": result.stats["file_size_mb"]}


def baseline_seed_style(env, max_steps: int, seconds: float) -> dict:
    """One native env in a Python loop, P-controller and IK in NumPy: env steps/s over whole episodes."""
    native = NativeReach(env)
    rng = np.random.default_rng(0)
    low, high = env.config.target_low, env.config.target_high
    steps = episodes = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        steps += native.run_scripted(rng.uniform(low, high), max_steps)
        episodes += 1
    wall = time.perf_counter() - t0
    return {"env_steps_per_s": steps / wall, "physics_steps_per_s": steps * env.substeps / wall,
            "episodes": episodes, "mean_length": steps / episodes}


def baseline_mujoco_rollout(env, batch: int, max_steps: int) -> dict:
    """mujoco.rollout: open-loop controls near the home posture, one thread per core."""
    m = env.mj_model
    nthread = os.cpu_count() or 1
    datas = [mujoco.MjData(m) for _ in range(nthread)]
    d = datas[0]
    mujoco.mj_resetDataKeyframe(m, d, env.arm.home_key)
    mujoco.mj_forward(m, d)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, d, state, spec)
    nstep = max_steps * env.substeps
    rng = np.random.default_rng(0)
    control = m.key_ctrl[env.arm.home_key] + rng.uniform(-0.05, 0.05, (batch, 1, m.nu))
    control = np.clip(control, m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1])
    initial = np.tile(state, (batch, 1))
    mj_rollout.rollout(m, datas, initial[:8], control[:8], nstep=8)  # warm the thread pool
    t0 = time.perf_counter()
    mj_rollout.rollout(m, datas, initial, control, nstep=nstep)
    wall = time.perf_counter() - t0
    physics = batch * nstep
    return {"batch": batch, "threads": nthread, "physics_steps_per_s": physics / wall,
            "env_steps_per_s": physics / env.substeps / wall}


def measure_writer(env, host, codec: str) -> dict:
    """DatasetWriter alone on one real host batch: episodes/s and payload MB/s (float64 as stored)."""
    batch = host_batch(host, np.ones(host.episode_ids.shape[0], bool), randomized=False)
    lengths = batch.lengths
    width = 1 + batch.actions.shape[-1] + sum(v.shape[-1] for v in batch.observations.values())
    payload_mb = int(lengths.sum()) * width * 8 / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"w-{codec}.h5"
        t0 = time.perf_counter()
        w = DatasetWriter(path, env_name=env.name, policy="scripted", seed=0, config={}, model_xml=env.xml,
                          obs_keys=tuple(env.obs_shapes), compression=codec)
        w.write_batch(batch)
        w.close()
        wall = time.perf_counter() - t0
        size = path.stat().st_size / 1e6
    n = len(lengths)
    return {"codec": codec, "episodes": n, "episodes_per_s": n / wall, "payload_mb_per_s": payload_mb / wall,
            "payload_mb": payload_mb, "file_mb": size}


def device_name() -> str:
    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu-{os.cpu_count()}core"
    return f"{device.platform}-{device.device_kind}".replace(" ", "_")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="reach", choices=("reach", "pick_place"))
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024, 4096])
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--policy", default="scripted", choices=("random", "scripted"))
    p.add_argument("--e2e-batches", type=int, default=2, help="batches per end-to-end run (default 2)")
    p.add_argument("--baseline-seconds", type=float, default=20.0, help="run time of the seed-style loop")
    p.add_argument("--json", type=Path, default=None, help="where to write the JSON (default bench/results/<date>-<device>.json)")
    a = p.parse_args()

    env = make_env(a.env)
    rows, host = [], None
    for b in a.batches:
        row, host = measure_rollout(env, b, a.max_steps, a.policy)
        for codec in E2E_CODECS:
            e2e = measure_end_to_end(env, b, a.e2e_batches, a.max_steps, a.policy, codec)
            row[f"e2e_{codec}_episodes_per_s"] = e2e["episodes_per_s"]
            row[f"e2e_{codec}_ratio"] = e2e["episodes_per_s"] / row["episodes_per_s"]
        rows.append(row)
        print(f"batch {b}: done", flush=True)
    seed_style = baseline_seed_style(env, a.max_steps, a.baseline_seconds) if a.env == "reach" else None
    native_rollout = baseline_mujoco_rollout(env, max(a.batches), a.max_steps)
    writer = [measure_writer(env, host, codec) for codec in COMPRESSIONS]

    dev = device_name()
    print(f"\n{a.env} / {a.policy}, T={a.max_steps}, 4 physics steps per env step, device {dev}, "
          f"{platform.machine()}, {os.cpu_count()} cores")
    print(f"{'batch':>6} {'compile s':>9} {'env steps/s':>11} {'phys steps/s':>12} {'ep/s':>7} "
          f"{'e2e gzip ep/s':>13} {'(ratio)':>7} {'e2e lzf ep/s':>12} {'(ratio)':>7} {'x seed-style':>12} {'x mj.rollout':>12}")
    for r in rows:
        vs_seed = f"{r['env_steps_per_s'] / seed_style['env_steps_per_s']:>12.2f}" if seed_style else f"{'-':>12}"
        print(f"{r['batch']:>6} {r['compile_s']:>9.1f} {r['env_steps_per_s']:>11,.0f} {r['physics_steps_per_s']:>12,.0f} "
              f"{r['episodes_per_s']:>7.1f} {r['e2e_gzip_episodes_per_s']:>13.1f} {r['e2e_gzip_ratio']:>7.2f} "
              f"{r['e2e_lzf_episodes_per_s']:>12.1f} {r['e2e_lzf_ratio']:>7.2f} {vs_seed} "
              f"{r['physics_steps_per_s'] / native_rollout['physics_steps_per_s']:>12.2f}")
    if seed_style:
        print(f"\nseed-style single native env, Python loop: {seed_style['env_steps_per_s']:,.0f} env steps/s "
              f"({seed_style['physics_steps_per_s']:,.0f} physics steps/s, {seed_style['episodes']} episodes)")
    print(f"mujoco.rollout, B={native_rollout['batch']}, {native_rollout['threads']} threads, open loop: "
          f"{native_rollout['physics_steps_per_s']:,.0f} physics steps/s ({native_rollout['env_steps_per_s']:,.0f} env steps/s)")
    print(f"\nwriter alone, {writer[0]['episodes']} episodes, {writer[0]['payload_mb']:.1f} MB payload (float64):")
    for w in writer:
        print(f"  {w['codec']:>5}: {w['episodes_per_s']:>8,.0f} episodes/s {w['payload_mb_per_s']:>7.1f} MB/s  file {w['file_mb']:.1f} MB")

    date = datetime.date.today().isoformat()
    out = a.json or RESULTS / f"{date}-{dev}-{a.env}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": date, "device": dev, "env": a.env, "cpu_count": os.cpu_count(), "versions": package_versions(),
        "policy": a.policy, "max_steps": a.max_steps, "e2e_batches": a.e2e_batches, "rollout": rows,
        "baseline_seed_style": seed_style, "baseline_mujoco_rollout": native_rollout, "writer": writer,
    }, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
