"""Baselines measured in the same run as mjxgen, and the throughput tables (bench.throughput)."""

from __future__ import annotations

import os
import time

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from mjxgen.envs.native import NativeReach


def seed_style(env, max_steps: int, seconds: float) -> dict:
    """One native env in a Python loop, P-controller and IK in NumPy, episodes until the first success."""
    native = NativeReach(env)
    rng = np.random.default_rng(0)
    low, high = env.config.target_low, env.config.target_high
    steps = episodes = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        steps += native.run_scripted(rng.uniform(low, high), max_steps)
        episodes += 1
    wall = time.perf_counter() - t0
    return {"episodes_per_s": episodes / wall, "env_steps_per_s": steps / wall,
            "physics_steps_per_s": steps * env.substeps / wall, "episodes": episodes, "mean_length": steps / episodes}


def mujoco_rollout(env, batch: int, max_steps: int) -> dict:
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
    return {"batch": batch, "threads": nthread, "physics_steps_per_s": batch * nstep / wall}


def print_tables(r: dict) -> None:
    """The headline tables of a bench.throughput result (parts not measured are left out)."""
    seed, native = r["baseline_seed_style"], r["baseline_mujoco_rollout"]
    print(f"\n{r['env']} / {r['policy']}, T={r['max_steps']}, segments of {r['segment_steps']} steps, device "
          f"{r['device']}, {r['machine']}, {r['cpu_count']} cores")
    print(f"{'form':>7} {'batch':>6} {'compile s':>9} {'ep/s':>8} {'useful env st/s':>15} {'useful':>7} "
          f"{'phys st/s':>10} {'x seed ep/s':>11} {'x mj.rollout':>12}")
    for row in r["rows"]:
        for form in ("stream", "fixed"):
            if form not in row:
                continue
            m = row[form]
            vs_seed = f"{m['episodes_per_s'] / seed['episodes_per_s']:>11.2f}" if seed else f"{'-':>11}"
            vs_native = f"{m['physics_steps_per_s'] / native['physics_steps_per_s']:>12.2f}" if native else f"{'-':>12}"
            print(f"{form:>7} {row['batch']:>6} {m['compile_s']:>9.1f} {m['episodes_per_s']:>8.1f} "
                  f"{m['useful_env_steps_per_s']:>15,.0f} {m['useful_fraction']:>7.1%} {m['physics_steps_per_s']:>10,.0f} "
                  f"{vs_seed} {vs_native}")
    if any(row["end_to_end"] for row in r["rows"]):
        print("\nend to end (generate_dataset, streaming, compiled), ratio to streaming rollout-only:")
        for row in r["rows"]:
            cells = [f"{e['layout']}/{e['codec']} {e['episodes_per_s']:.1f} ep/s ({e['ratio']:.2f})"
                     for e in row["end_to_end"]]
            print(f"  batch {row['batch']:>5}: " + ", ".join(cells))
    if seed:
        print(f"\nseed-style single native env, Python loop: {seed['episodes_per_s']:.1f} episodes/s, "
              f"{seed['env_steps_per_s']:,.0f} env steps/s (mean length {seed['mean_length']:.1f})")
    if native:
        print(f"mujoco.rollout, B={native['batch']}, {native['threads']} threads, open loop: "
              f"{native['physics_steps_per_s']:,.0f} physics steps/s")
    if h := r["horizons"]:
        print(f"\nthe same {h['episodes']} episodes, B={h['slots']}: T=150 vs 600 streaming {h['stream_150_s']:.1f} vs "
              f"{h['stream_600_s']:.1f} s ({h['stream_ratio']:.2f}x); fixed horizon {h['fixed_150_s']:.1f} vs "
              f"{h['fixed_600_s']:.1f} s ({h['fixed_ratio']:.2f}x)")
    if f := r["time_to_first_batch"]:
        print(f"time to first batch (fresh process, B={f['batch']}): cold cache {f['cold_s']:.1f} s, warm "
              f"{f['warm_s']:.1f} s ({f['warm_over_cold']:.2f}x)")
