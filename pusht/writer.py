"""Seed 003's HDF5 layout: one `sample_<idx>` group per trajectory, float32 arrays, JSON metadata blobs.

    sample_00042/                      attrs: seed, duration, stiffness, damping, executed_steps, terminated,
                                              truncated, dmp_dt, dmp_alpha_s, dmp_n_basis, [video_path],
                                              sample_index, planned_steps
      weights                    (n_basis, 2)   RBF weights (normalized units)
      start_pixels, start_normalized, goal_pixels, goal_normalized   (2,)
      timestamps                 (N + 1,)       control instants t_k = k * 0.1 s of the down-sampled DMP
      dmp_waypoints_pixels       (N + 1, 2)     DMP position at t_k (not clipped)
      dmp_waypoints_normalized   (N + 1, 2)
      dmp_velocity_normalized    (N + 1, 2)
      dmp_forcing_normalized     (N + 1, 2)
      dmp_canonical_phase_actions       (N,)    s at t_1..t_N, the instants the planned actions aim at
      dmp_canonical_phase_observations  (n + 1,) s at the observation instants t_0..t_n
      executed_actions_pixels    (n, 2)         actions sent (the planned ones, clipped to [0, 512])
      executed_action_timestamps (n,)           t_0..t_{n-1}: when each action was sent
      observations               (n + 1, 5)     reset observation, then one per step
      observation_timestamps     (n + 1,)       t_0..t_n
      rewards                    (n,)
      reset_info, env_info, step_infos, env_pos_agent, env_vel_agent, env_block_pose, env_goal_pose,
      env_n_contacts, env_is_success, env_coverage          UTF-8 JSON strings

n = executed_steps <= N: the episode ends early when the T is placed (terminated). The env_* series hold one
entry per step (from the step infos; `coverage` exists only there); the reset values are in reset_info.
File attributes: format, format_version, complete, seed, num_samples, scale_forcing, config (JSON),
versions (JSON, with gym-pusht and pymunk).
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from pusht.execute import INFO_KEYS, Executed, json_dumps
from pusht.plan import DMP_DT, Plan, to_pixels

FORMAT = "mjxgen-pusht"
FORMAT_VERSION = 1


def group_name(index: int) -> str:
    return f"sample_{index:05d}"


def _f32(x) -> np.ndarray:
    return np.asarray(x, np.float32)


def write_sample(f: h5py.File, plan: Plan, ex: Executed, env_info: dict) -> None:
    """Write one sample's group (seed 003's fields) into an open file."""
    assert plan.index == ex.index
    n = len(ex.actions)
    g = f.create_group(group_name(plan.index))
    p = plan.params
    attrs = {
        "seed": plan.reset_seed,
        "duration": float(p.duration),
        "stiffness": float(p.stiffness),
        "damping": float(p.damping),
        "executed_steps": n,
        "terminated": ex.terminated,
        "truncated": ex.truncated,
        "dmp_dt": DMP_DT,
        "dmp_alpha_s": float(p.alpha_s),
        "dmp_n_basis": int(p.weights.shape[0]),
        "sample_index": plan.index,
        "planned_steps": plan.n_actions,
    }
    if ex.video_path:
        attrs["video_path"] = ex.video_path
    g.attrs.update(attrs)
    t = plan.timestamps
    arrays = {
        "weights": p.weights,
        "start_pixels": to_pixels(p.start),
        "start_normalized": p.start,
        "goal_pixels": to_pixels(p.goal),
        "goal_normalized": p.goal,
        "timestamps": t,
        "dmp_waypoints_pixels": to_pixels(plan.waypoints_normalized),
        "dmp_waypoints_normalized": plan.waypoints_normalized,
        "dmp_velocity_normalized": plan.velocity_normalized,
        "dmp_forcing_normalized": plan.forcing_normalized,
        "dmp_canonical_phase_actions": plan.phase[1:],
        "dmp_canonical_phase_observations": plan.phase[: n + 1],
        "executed_actions_pixels": ex.actions,
        "executed_action_timestamps": t[:n],
        "observations": ex.observations,
        "observation_timestamps": t[: n + 1],
        "rewards": ex.rewards,
    }
    for name, value in arrays.items():
        g.create_dataset(name, data=_f32(value))
    series = {key: [info.get(key) for info in ex.step_infos] for key in INFO_KEYS}
    blobs = {
        "reset_info": ex.reset_info,
        "env_info": env_info,
        "step_infos": ex.step_infos,
        **{f"env_{key}": values for key, values in series.items()},
    }
    for name, value in blobs.items():
        g.create_dataset(name, data=json_dumps(value), dtype=h5py.string_dtype("utf-8"))


def read_json(group: h5py.Group, name: str):
    """Decode one of a sample's JSON blobs (seed 003's `json.loads(traj[name][()])`)."""
    return json.loads(group[name][()])
