"""PushT's format (seed 003): one `sample_<idx:05d>` group per trajectory, float32 arrays, UTF-8 JSON metadata.

    sample_<i>/<SAMPLE_ARRAYS>   float32 arrays (shapes: mjxgen.pusht.writer)
    sample_<i>/<SAMPLE_JSON>     UTF-8 JSON strings
    attributes: SAMPLE_ATTRS, and video_path where a video exists
File attributes: mjxgen.data.formats.FILE_ATTRS and PUSHT_FILE_ATTRS. What each field holds is
mjxgen.pusht.writer's; how it is stored, counted and merged is this module's.
"""

from __future__ import annotations

import h5py
import numpy as np

from mjxgen.data.formats import REWARDS, DatasetFormatError, Format, register

PREFIX, INDEX_WIDTH = "sample_", 5
SAMPLE_ARRAYS = (
    "weights", "start_pixels", "start_normalized", "goal_pixels", "goal_normalized", "timestamps",
    "dmp_waypoints_pixels", "dmp_waypoints_normalized", "dmp_velocity_normalized", "dmp_forcing_normalized",
    "dmp_canonical_phase_actions", "dmp_canonical_phase_observations",
    "executed_actions_pixels", "executed_action_timestamps", "observations", "observation_timestamps", REWARDS,
)
SAMPLE_DTYPE = np.float32  # seed 003
SAMPLE_JSON = (
    "reset_info", "env_info", "step_infos", "env_pos_agent", "env_vel_agent", "env_block_pose", "env_goal_pose",
    "env_n_contacts", "env_is_success", "env_coverage",
)
SAMPLE_ATTRS = (
    "seed", "duration", "stiffness", "damping", "executed_steps", "terminated", "truncated", "dmp_dt",
    "dmp_alpha_s", "dmp_n_basis", "sample_index", "planned_steps",  # and video_path where a video exists
)
PUSHT_FILE_ATTRS = ("num_samples", "scale_forcing", "scale_forcing_by_goal_delta", "dmp_dt_substeps", "video_limit")


def group_name(index: int) -> str:
    return f"{PREFIX}{int(index):0{INDEX_WIDTH}d}"


def write_sample(f: h5py.File, index: int, attrs: dict, arrays: dict, blobs: dict[str, str]) -> None:
    """One sample's group: its attributes, its SAMPLE_ARRAYS as float32 and its SAMPLE_JSON strings."""
    g = f.create_group(group_name(index))
    g.attrs.update(attrs)
    for name in SAMPLE_ARRAYS:
        g.create_dataset(name, data=np.asarray(arrays[name], SAMPLE_DTYPE))
    for name in SAMPLE_JSON:
        g.create_dataset(name, data=blobs[name], dtype=h5py.string_dtype("utf-8"))


class SamplesFormat(Format):
    # 2: nsf_rl's DMP semantics (waypoints from the start, 3 bases, dmp_dt 0.0125)
    attr, version = "mjxgen-pusht", 2

    def recount(self, f: h5py.File, stats) -> None:
        for name in sorted(f):
            if not name.startswith(PREFIX) or not name[len(PREFIX):].isdigit():
                raise DatasetFormatError(f"{f.filename}: unexpected top-level entry {name!r} (a PushT file holds "
                                         f"only {PREFIX}N groups)")
            g = f[name]
            stats.add(length=int(g.attrs["executed_steps"]), success=bool(g.attrs["terminated"]),
                      total_reward=float(np.sum(g[REWARDS][()], dtype=np.float64)))


SAMPLES = register(SamplesFormat())
