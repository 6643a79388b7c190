"""What reach.xml's gravity="disable" and limit="disable" flags change in the data, measured on native MuJoCo.

    python -m bench.reach_flags [--episodes 256] [--max-steps 200]

Native MuJoCo in float64, so float32 noise does not hide (or fake) the effect of the flags:
- model: the same episodes (targets, and for the open-loop policies the same actions) on reach's model with
  the flags ("flags") and on the same model with them cleared ("original": joint-limit rows and gravity on, as
  on main). Policies: scripted (seed 000's P-controller, closed loop), random (uniform actions) and corners (a
  constant action in {-1, 1}^4 per episode: the arm runs to the edge of its workspace and the fingers to their
  ends, the worst case for dropping the limits). T steps each (not stopped at success), the IK and servo
  exactly as the env's (`mjxgen.envs.native.NativeReach`).
- per model: success rate and first-success step; how far any joint went past its range (arm joints in rad,
  fingers in m), and the arm joints' smallest margin to their ranges.
- between models: the largest qpos (arm rad, finger m) and TCP (m) differences over all T steps and inside the
  episodes (up to the first success, where a dataset episode ends), and the fraction of episodes whose first
  success falls on the same step.
- mjx: the MJX env (flags, this tree's step), scripted and dmp policies (dmp commands the gripper fully open,
  at the fingers' range end); its recorded actions replayed open loop on the original model natively: the
  largest joint_pos and ee_pos errors within the episodes. That is the stored data against main's physics,
  float32 rounding included.

Writes JSON to bench/results/<date>-<device>-reach-flags.json (the numbers in reach.xml's comment and in
docs/tasks.md come from it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os

import mjxgen

mjxgen.configure()

import jax
import mujoco
import numpy as np

from bench.throughput import RESULTS, device_name
from mjxgen.kernels import policies
from mjxgen import make_env
from mjxgen.envs.native import NativeReach
from mjxgen.sim.rollout import rollout_batch

LIMIT = int(mujoco.mjtDisableBit.mjDSBL_LIMIT)
GRAVITY = int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)


def original_model(env) -> mujoco.MjModel:
    """reach's model with the gravity and limit flags cleared: main's physics."""
    m = mujoco.MjModel.from_xml_string(env.xml)
    m.opt.disableflags &= ~(LIMIT | GRAVITY)
    return m


def run(native: NativeReach, targets, actions, max_steps: int):
    """Every episode for max_steps control steps: qpos (E, T+1, nq), tcp (E, T+1, 3), first success (E,) (0: none).
    actions None: the scripted P-controller, closed loop; else the given (E, T, 4), open loop."""
    arm = native.arm
    qpos, tcp, first = [], [], []
    for e, target in enumerate(targets):
        obs = native.reset(target)
        q, x, f = [native.data.qpos.copy()], [obs["ee_pos"]], 0
        for t in range(max_steps):
            a = policies.p_controller(obs["ee_pos"], obs["target_pos"], xp=np) if actions is None else actions[e, t]
            _, success = native.step(a)
            f = f or (t + 1 if success else 0)
            obs = native.observe()
            q.append(native.data.qpos.copy())
            x.append(native.data.site_xpos[arm.tcp_site].copy())
        qpos.append(q), tcp.append(x), first.append(f)
    return np.array(qpos), np.array(tcp), np.array(first)


def excursions(m: mujoco.MjModel, qpos: np.ndarray, arm) -> dict:
    """The smallest margin of the arm joints and of the fingers to their ranges (< 0: past the range)."""
    lo, hi = m.jnt_range[:, 0], m.jnt_range[:, 1]
    adr = m.jnt_qposadr
    q = qpos[..., adr]
    past = np.maximum(lo - q, q - hi).max(axis=(0, 1))  # per joint, >0: past the range
    is_arm = np.isin(adr, arm.arm_qpos_adr)
    return {"arm_min_margin_rad": float(-past[is_arm].max()),  # < 0: past the range
            "finger_min_margin_m": float(-past[~is_arm].max()),
            "finger_steps_past_range_fraction": float((np.maximum(lo - q, q - hi)[..., ~is_arm] > 0).mean())}


def compare_models(env, n: int, max_steps: int, rng) -> dict:
    arm = env.arm
    models = {"original": original_model(env), "flags": env.mj_model}
    out = {}
    for policy in ("scripted", "random", "corners"):
        targets = rng.uniform(env.config.target_low, env.config.target_high, (n, 3))
        actions = {"scripted": None, "random": rng.uniform(-1, 1, (n, max_steps, 4)),
                   "corners": np.repeat(rng.choice([-1.0, 1.0], (n, 1, 4)), max_steps, axis=1)}[policy]
        runs = {k: run(NativeReach(env, m), targets, actions, max_steps) for k, m in models.items()}
        (qa, xa, fa), (qb, xb, fb) = runs["original"], runs["flags"]
        arm_cols = arm.arm_qpos_adr
        finger_cols = np.setdiff1d(np.arange(qa.shape[-1]), arm_cols)
        # steps inside the episode: up to and including the first success (all T for none), in both runs
        end = np.where((fa > 0) & (fb > 0), np.maximum(fa, fb), max_steps)
        inside = np.arange(qa.shape[1])[None, :] <= end[:, None]
        out[policy] = {
            "episodes": n, "steps": max_steps,
            **{f"{k}_success": float((f > 0).mean()) for k, (_, _, f) in runs.items()},
            **{f"{k}_mean_first_success_step": float(f[f > 0].mean()) if (f > 0).any() else None
               for k, (_, _, f) in runs.items()},
            "same_first_success_fraction": float((fa == fb).mean()),
            "max_arm_qpos_diff_rad": float(np.abs(qa - qb)[..., arm_cols].max()),
            "max_finger_qpos_diff_m": float(np.abs(qa - qb)[..., finger_cols].max()),
            "max_tcp_diff_m": float(np.linalg.norm(xa - xb, axis=-1).max()),
            "inside_episode_max_arm_qpos_diff_rad": float(np.abs(qa - qb)[inside][:, arm_cols].max()),
            "inside_episode_max_tcp_diff_m": float(np.linalg.norm(xa - xb, axis=-1)[inside].max()),
            **{f"{k}_{name}": v for k, m in models.items() for name, v in excursions(m, runs[k][0], arm).items()},
        }
    return out


def mjx_vs_original(env, policy: str, n: int, max_steps: int) -> dict:
    """The MJX env's episodes replayed natively on the original model; for scripted, also whether the native
    scripted loop on the original model ends each episode at the same step."""
    out = jax.device_get(rollout_batch(env, policy, np.arange(n), seed=0, max_steps=max_steps))
    native = NativeReach(env, original_model(env))
    jerr = eerr = 0.0
    same = 0
    for i in range(n):
        length = int(out.lengths[i])
        obs = {k: v[i, :length] for k, v in out.trajectory.observations.items()}
        replayed = native.replay(obs["target_pos"][0], out.trajectory.actions[i, :length])
        jerr = max(jerr, float(np.abs(replayed["joint_pos"] - obs["joint_pos"]).max()))
        eerr = max(eerr, float(np.linalg.norm(replayed["ee_pos"] - obs["ee_pos"], axis=-1).max()))
        if policy == "scripted":
            same += native.run_scripted(obs["target_pos"][0], max_steps) == length
    return {"policy": policy, "episodes": n, "mjx_success": float(out.success.mean()),
            "mjx_mean_length": float(out.lengths.mean()),
            "replay_max_joint_pos_err_rad": jerr, "replay_max_ee_pos_err_m": eerr,
            **({"native_original_same_length_fraction": same / n} if policy == "scripted" else {})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    env = make_env("reach")
    flags = env.mj_model.opt.disableflags
    if not (flags & LIMIT and flags & GRAVITY):
        raise SystemExit("reach.xml has not got both flags: nothing to compare")
    models = compare_models(env, a.episodes, a.max_steps, np.random.default_rng(0))
    mjx = {p: mjx_vs_original(env, p, a.episodes, a.max_steps) for p in ("scripted", "dmp")}
    for policy, r in models.items():
        print(policy, json.dumps(r, indent=1))
    print("mjx", json.dumps(mjx, indent=1))
    dev, date = device_name(), datetime.date.today().isoformat()
    path = type(RESULTS)(a.json or RESULTS / f"{date}-{dev}-reach-flags.json")
    path.write_text(json.dumps({"date": date, "device": dev, "cpu_count": os.cpu_count(),
                                "native_original_vs_flags": models, "mjx_flags_vs_native_original": mjx},
                               indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
