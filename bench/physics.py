"""CPU physics fast path: MJX reach rollout-only against native mujoco.rollout, before and after, in one run.

    python -m bench.physics [--batches 256 1024 4096] [--max-steps 200] [--reps 2] [--no-levers]

- before: reach as on main (1d4091d): joint limits on, gravity on (cancelled by gravcomp on every arm body),
  one stock `mjx.step` per substep, then the kinematics refresh (`MainArm`).
- after: reach as in this tree, `make_env("reach")`.
- levers (at the largest batch, unless --no-levers): main's options with this tree's physics step, then
  joint limits off, then gravity off as well (= after). Each shows what one change adds.
- MJX: rollout-only physics steps/s of the scripted policy, T = --max-steps, 4 substeps, the second and later
  calls of a compiled shape (new episode ids each rep), up to `block_until_ready`.
- native: `mujoco.rollout` (bench.throughput.baseline_mujoco_rollout: open loop, one thread per core) on the
  MjModel of the same variant, so both sides run the same model options. It is run right after the
  variant's MJX call, and the ratio is taken within each (MJX, native) pair, then averaged over reps.
  The ratio is given per wall second (the target's unit) and per CPU-second of this process (less
  sensitive to other processes on a shared machine, but blind to how many cores each side keeps busy).
- agreement: before and after run the same episode ids in rep 0; the JSON records how many episodes end at
  the same step and the largest joint_pos difference within the episodes.

Writes JSON to bench/results/<date>-<device>-physics.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import mjxgen

mjxgen.configure()  # first: the XLA flags before any JAX computation, the GL backend

import jax
import mujoco
import numpy as np
from jax import lax
from mujoco import mjx

from bench.throughput import RESULTS, baseline_mujoco_rollout, device_name
from mjxgen import make_env
from mjxgen.envs.arm import Arm, refresh
from mjxgen.envs.reach import ReachEnv, ReachState
from mjxgen.runtime.versions import package_versions
from mjxgen.sim.rollout import rollout_batch

LIMIT = int(mujoco.mjtDisableBit.mjDSBL_LIMIT)
GRAVITY = int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)


class MainArm(Arm):
    """The arm with main's physics step: a stock mjx.step per substep, then refresh."""

    def physics_step(self, m, d, ctrl):
        d = d.replace(ctrl=ctrl)
        d = lax.fori_loop(0, self.config.substeps, lambda _, x: mjx.step(m, x), d)
        return refresh(m, d)


class ReachVariant(ReachEnv):
    """reach with chosen model options (joint limits, gravity) and physics step (main's or this tree's)."""

    def __init__(self, *, limits: bool, gravity: bool, main_step: bool):
        super().__init__()
        opt = self.mj_model.opt
        opt.disableflags = (opt.disableflags & ~(LIMIT | GRAVITY)) | (0 if limits else LIMIT) | (0 if gravity else GRAVITY)
        if main_step:
            self.arm = MainArm(self.mj_model, self.config.arm)
        self.main_step = main_step
        self.mjx_model = mjx.put_model(self.mj_model)
        self._data0 = self.arm.home_data()

    def reset(self, m, key):
        state = super().reset(m, key)
        if self.main_step:  # main's reset: no kinematics refresh after placing the target
            data = self._data0.replace(mocap_pos=state.data.mocap_pos)
            return ReachState(data, state.target_pos)
        return state


def options(env) -> dict:
    flags = env.mj_model.opt.disableflags
    return {"joint_limits": not flags & LIMIT, "gravity": not flags & GRAVITY,
            "physics_step": "main: mjx.step" if isinstance(env.arm, MainArm) else "mjxgen.envs.arm.step"}


def rollout_rate(env, ids, max_steps: int):
    """Physics steps per wall second and per CPU-second of this process (all its threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(rollout_batch(env, "scripted", ids, seed=0, max_steps=max_steps))
    steps = ids.size * max_steps * env.substeps
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0), out


def native_rate(env, batch: int, max_steps: int):
    """mujoco.rollout's physics steps per wall second, and per CPU-second (its small warm-up call included)."""
    c0 = time.process_time()
    wall = baseline_mujoco_rollout(env, batch, max_steps)["physics_steps_per_s"]
    return wall, batch * max_steps * env.substeps / (time.process_time() - c0)


def measure(variants: dict, batch: int, max_steps: int, reps: int) -> tuple[dict, dict]:
    """Compile every variant at this batch, then alternate (MJX, native) pairs over variants, reps times."""
    rows, outs = {}, {}
    for name, env in variants.items():
        t0 = time.perf_counter()
        jax.block_until_ready(rollout_batch(env, "scripted", np.arange(batch), seed=0, max_steps=max_steps))
        rows[name] = {"variant": name, "batch": batch, **options(env), "first_call_s": time.perf_counter() - t0,
                      "mjx_physics_steps_per_s": [], "native_physics_steps_per_s": [],
                      "mjx_physics_steps_per_cpu_s": [], "native_physics_steps_per_cpu_s": []}
    for r in range(reps):
        ids = np.arange(batch * (r + 1), batch * (r + 2))  # the same new ids for every variant in a rep
        for name, env in variants.items():
            rate, rate_cpu, out = rollout_rate(env, ids, max_steps)
            if r == 0:
                outs[name] = jax.device_get((out.lengths, out.success, out.trajectory.observations["joint_pos"]))
            del out
            native, native_cpu = native_rate(env, batch, max_steps)
            row = rows[name]
            row["mjx_physics_steps_per_s"].append(rate)
            row["native_physics_steps_per_s"].append(native)
            row["mjx_physics_steps_per_cpu_s"].append(rate_cpu)
            row["native_physics_steps_per_cpu_s"].append(native_cpu)
            print(f"  B={batch} rep {r} {name:28s} MJX {rate:>9,.0f}  native {native:>9,.0f}  ratio {rate / native:.3f}"
                  f"  per CPU-s: {rate_cpu:>9,.0f} / {native_cpu:>9,.0f} = {rate_cpu / native_cpu:.3f}"
                  f"  load {os.getloadavg()[0]:.1f}", flush=True)
    for row in rows.values():
        ratios = np.array(row["mjx_physics_steps_per_s"]) / np.array(row["native_physics_steps_per_s"])
        row["ratio_per_rep"] = ratios.tolist()
        row["ratio"] = float(ratios.mean())
        cpu = np.array(row["mjx_physics_steps_per_cpu_s"]) / np.array(row["native_physics_steps_per_cpu_s"])
        row["ratio_per_cpu_s"] = float(cpu.mean())
        row["mjx_best"] = max(row["mjx_physics_steps_per_s"])
        row["native_best"] = max(row["native_physics_steps_per_s"])
    return rows, outs


def agreement(a, b) -> dict:
    """Same episode ids: success, lengths and the joint_pos difference within both episodes."""
    (la, sa, qa), (lb, sb, qb) = a, b
    t = np.arange(qa.shape[1])[None, :]
    inside = (t < np.minimum(la, lb)[:, None])[..., None]
    return {"episodes": int(la.size), "success_before": float(sa.mean()), "success_after": float(sb.mean()),
            "mean_length_before": float(la.mean()), "mean_length_after": float(lb.mean()),
            "same_length_fraction": float((la == lb).mean()),
            "max_joint_pos_diff_rad": float(np.abs(np.where(inside, qa - qb, 0.0)).max())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--no-levers", action="store_true", help="skip the per-lever variants at the largest batch")
    p.add_argument("--json", default=None, help="where to write the JSON (default bench/results/<date>-<device>-physics.json)")
    a = p.parse_args()

    load_start = os.getloadavg()
    before = ReachVariant(limits=True, gravity=True, main_step=True)
    after = make_env("reach")
    results, agree = [], {}
    for b in sorted(a.batches):
        variants = {"before (main)": before, "after": after}
        if b == max(a.batches) and not a.no_levers:
            variants = {"before (main)": before,
                        "+ physics step": ReachVariant(limits=True, gravity=True, main_step=False),
                        "+ joint limits off": ReachVariant(limits=False, gravity=True, main_step=False),
                        "after": after}
        rows, outs = measure(variants, b, a.max_steps, a.reps)
        results.extend(rows.values())
        agree[b] = agreement(outs["before (main)"], outs["after"])
    load_end = os.getloadavg()

    dev = device_name()
    print(f"\nreach / scripted, T={a.max_steps}, 4 physics steps per env step, device {dev}, {platform.machine()}, "
          f"{os.cpu_count()} cores; load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end")
    print(f"{'batch':>6} {'variant':28s} {'limits':>6} {'gravity':>7} {'MJX phys/s':>11} {'native phys/s':>13} "
          f"{'MJX/native':>10} {'per CPU-s':>9}  per rep")
    for r in results:
        print(f"{r['batch']:>6} {r['variant']:28s} {str(r['joint_limits']):>6} {str(r['gravity']):>7} "
              f"{r['mjx_best']:>11,.0f} {r['native_best']:>13,.0f} {r['ratio']:>10.2f} {r['ratio_per_cpu_s']:>9.2f}  "
              f"{' '.join(f'{x:.2f}' for x in r['ratio_per_rep'])}")
    for b, g in agree.items():
        print(f"B={b}: before vs after on the same {g['episodes']} episodes: success {g['success_before']:.3f} -> "
              f"{g['success_after']:.3f}, mean length {g['mean_length_before']:.2f} -> {g['mean_length_after']:.2f}, "
              f"same length {g['same_length_fraction']:.3f}, max joint_pos difference {g['max_joint_pos_diff_rad']:.2e} rad")

    date = datetime.date.today().isoformat()
    out = a.json or RESULTS / f"{date}-{dev}-physics.json"
    out = type(RESULTS)(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": date, "device": dev, "cpu_count": os.cpu_count(), "versions": package_versions(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),  # as mjxgen.configure() set them: what users get
        "load_average_start": load_start, "load_average_end": load_end,
        "policy": "scripted", "max_steps": a.max_steps, "substeps": after.substeps, "reps": a.reps,
        "native": "mujoco.rollout, open loop, one thread per core, the variant's own MjModel",
        "rollout": results, "agreement_before_after": {str(b): g for b, g in agree.items()},
    }, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
