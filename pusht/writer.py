"""Seed 003's HDF5 layout: one `sample_<idx>` group per trajectory, float32 arrays, JSON metadata blobs.

    sample_00042/                      attrs: seed, duration, stiffness, damping, executed_steps, terminated,
                                              truncated, dmp_dt, dmp_alpha_s, dmp_n_basis, [video_path],
                                              sample_index, planned_steps
      weights                    (2, n_basis)   RBF weights (normalized units)
      start_pixels, start_normalized, goal_pixels, goal_normalized   (2,)
      timestamps                 (W,)      the waypoints' DMP times, index * dmp_dt
      dmp_waypoints_pixels       (W, 2)    the waypoints (the planned actions), clipped to [0, 512]
      dmp_waypoints_normalized   (W, 2)
      dmp_velocity_normalized    (W, 2)    z = tau dy/dt
      dmp_forcing_normalized     (W, 2)    forcing term of the step that reached the waypoint (0 at the start)
      dmp_canonical_phase_actions       (W,)      s at the waypoints (1 at the start)
      dmp_canonical_phase_observations  (n + 1,)  exp(-alpha_s t / tau) at the observation times
      executed_actions_pixels    (n, 2)    actions sent: waypoints 0..n-1
      executed_action_timestamps (n,)      0.1 k
      observations               (n + 1, 5) reset observation, then one per step
      observation_timestamps     (n + 1,)  0.1 k
      rewards                    (n,)
      reset_info, env_info (the last step's info), step_infos (n), env_pos_agent, env_vel_agent,
      env_block_pose, env_goal_pose, env_n_contacts, env_is_success, env_coverage (n + 1: the reset's value,
      None for coverage, then one per step)                        UTF-8 JSON strings

W = planned_steps, n = executed_steps <= W: the episode ends early when the T is placed (terminated).
File attributes: seed 003's num_samples, seed, scale_forcing_by_goal_delta, dmp_dt_substeps, video_limit,
[video_directory]; ours: format, format_version, complete, scale_forcing, config (JSON), versions (JSON, with
gym-pusht and pymunk), total_steps. The storage is mjxgen.data.formats.samples'.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from mjxgen.data.formats import samples
from mjxgen.pusht.execute import CONTROL_DT, INFO_KEYS, Executed, json_dumps
from mjxgen.pusht.plan import Plan


def video_name(index: int) -> str:
    return f"sample_{index:03d}.mp4"


def write_sample(f: h5py.File, plan: Plan, ex: Executed, dmp_dt: float, alpha_s: float) -> None:
    """Write one sample's group (seed 003's fields) into an open file (mjxgen.data.formats.samples)."""
    assert plan.index == ex.index
    blobs = {name: json_dumps(value) for name, value in _json(ex).items()}
    samples.write_sample(f, plan.index, _attrs(plan, ex, dmp_dt, alpha_s), _arrays(plan, ex, alpha_s), blobs)


def _attrs(plan: Plan, ex: Executed, dmp_dt: float, alpha_s: float) -> dict:
    attrs = {
        "seed": plan.reset_seed,
        "duration": plan.duration,
        "stiffness": plan.stiffness,
        "damping": float(2.0 * np.sqrt(plan.stiffness)),
        "executed_steps": len(ex.actions),
        "terminated": ex.terminated,
        "truncated": ex.truncated,
        "dmp_dt": dmp_dt,
        "dmp_alpha_s": alpha_s,
        "dmp_n_basis": int(plan.weights.shape[-1]),
        "sample_index": plan.index,
        "planned_steps": plan.n_actions,
    }
    return attrs | ({"video_path": ex.video_path} if ex.video_path else {})


def _arrays(plan: Plan, ex: Executed, alpha_s: float) -> dict:
    n = len(ex.actions)
    t_obs = CONTROL_DT * np.arange(n + 1, dtype=np.float32)
    return {
        "weights": plan.weights,
        "start_pixels": plan.start_pixels,
        "start_normalized": plan.start_normalized,
        "goal_pixels": plan.goal_pixels,
        "goal_normalized": plan.goal_normalized,
        "timestamps": plan.timestamps,
        "dmp_waypoints_pixels": plan.actions_pixels(),
        "dmp_waypoints_normalized": plan.waypoints_normalized,
        "dmp_velocity_normalized": plan.velocity_normalized,
        "dmp_forcing_normalized": plan.forcing_normalized,
        "dmp_canonical_phase_actions": plan.phase,
        "dmp_canonical_phase_observations": np.exp(-alpha_s * t_obs / plan.duration),
        "executed_actions_pixels": ex.actions,
        "executed_action_timestamps": t_obs[:n],
        "observations": ex.observations,
        "observation_timestamps": t_obs,
        "rewards": ex.rewards,
    }


def _json(ex: Executed) -> dict:
    infos = [ex.reset_info, *ex.step_infos]
    return {
        "reset_info": ex.reset_info,
        "env_info": ex.step_infos[-1] if ex.step_infos else {},
        "step_infos": ex.step_infos,
        **{f"env_{key}": [info.get(key) for info in infos] for key in INFO_KEYS},
    }


def read_json(group: h5py.Group, name: str):
    """Decode one of a sample's JSON blobs (seed 003's `json.loads(traj[name][()])`)."""
    return json.loads(group[name][()])
