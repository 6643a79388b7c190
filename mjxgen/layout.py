"""What a dataset file holds: every stored array, its dtype and shape, and every attribute, in one place.

The writers (mjxgen.writer, pusht.writer), the reader (mjxgen.dataset) and `mjxgen info` take their names
from here. Two layouts share the file-level conventions (FILE_ATTRS) and differ in their groups:

The arm tasks (seed 000), EPISODES: one group per episode, each cut to its length L, float64 as seed 000.

    episode_<i>/observations/<key>     (L, *obs_shape)  float64  each observation before the step's action
    episode_<i>/observations/image     (L, H, W, 3)     uint8    camera frames (camera on), a chunk per frame
    episode_<i>/actions                (L, A)           float64
    episode_<i>/rewards                (L,)             float64
    episode_<i>/randomization/<field>  (...)            the episode's draw (randomization on)
    episode_<i>/<policy>/<field>       (...)            what the policy records (the dmp policy: its DMP)
    attributes: EPISODE_ATTRS

PushT (seed 003), SAMPLES: one `sample_<i:05d>` group per trajectory with SAMPLE_ARRAYS (float32),
SAMPLE_JSON (UTF-8 JSON strings) and SAMPLE_ATTRS; the shapes are in pusht/writer.py.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
from typing import NamedTuple

import numpy as np

# --- the file ------------------------------------------------------------------------------------------
FILE_ATTRS = {
    "format": "which layout: EPISODES.format or SAMPLES.format",
    "format_version": "the layout's version",
    "complete": "True: the run finished (an output file exists only complete; unfinished runs are .partial/)",
    "seed": "the dataset seed",
    "config": "JSON: every setting that shaped the data (compared on resume)",
    "versions": "JSON: the versions of the packages that shaped the data",
    "total_steps": "steps in all groups, written when the file is completed",
}
ARM_FILE_ATTRS = {
    "env_name": "the task", "policy": "the policy", "compression": "the HDF5 codec",
    "model_xml": "the self-contained MJCF of the simulated model",
    "total_episodes": "episodes written", "invalid_episodes": "episodes with NaN/inf, dropped or flagged",
    "dropped_episodes": "ids of the episodes with NaN/inf that were dropped",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Layout:
    """How one kind of file names its groups and where a group keeps its length, success and reward."""

    format: str  # the file's `format` attribute
    version: int  # the file's `format_version` attribute
    prefix: str  # group names are prefix + index
    index_width: int  # zero-padded width of the index in the group name (0: none)
    index_attr: str  # group attribute: the global index
    length_attr: str  # group attribute: the number of steps (actions)
    success_attr: str  # group attribute: whether the episode succeeded
    reward_attr: str | None  # group attribute: the total reward; None: the sum of the `rewards` dataset

    def group_name(self, index: int) -> str:
        return f"{self.prefix}{int(index):0{self.index_width}d}"

    def group_index(self, name: str) -> int:
        """The index in a group name; a ValueError for anything that is not one of this layout's groups."""
        number = name[len(self.prefix):]
        if not name.startswith(self.prefix) or not number.isdigit():
            raise ValueError(f"unexpected top-level entry {name!r} (a {self.format} file holds only "
                             f"{self.prefix}N groups)")
        return int(number)

    def total_reward(self, group) -> float:
        if self.reward_attr is not None:
            return float(group.attrs[self.reward_attr])
        return float(np.sum(group[REWARDS][()], dtype=np.float64))


EPISODES = Layout(format="mjxgen", version=1, prefix="episode_", index_width=0, index_attr="episode_index",
                  length_attr="length", success_attr="success", reward_attr="total_reward")
# 2: nsf_rl's DMP semantics (waypoints from the start, 3 bases, dmp_dt 0.0125)
SAMPLES = Layout(format="mjxgen-pusht", version=2, prefix="sample_", index_width=5, index_attr="sample_index",
                 length_attr="executed_steps", success_attr="terminated", reward_attr=None)
LAYOUTS = {layout.format: layout for layout in (EPISODES, SAMPLES)}

# --- an arm episode --------------------------------------------------------------------------------------
OBSERVATIONS = "observations"
ACTIONS = "actions"
REWARDS = "rewards"
IMAGE = "image"  # under observations/
RANDOMIZATION = "randomization"
STORE_DTYPE = np.float64  # seed 000's dtype for every float array
IMAGE_DTYPE = np.uint8
EPISODE_ATTRS = {
    "episode_index": "the global episode index i; its randomness is fold_in(key(seed), i)",
    "seed": "the dataset seed",
    "length": "L: steps up to and including the first success, else the horizon",
    "success": "whether the episode succeeded",
    "total_reward": "the sum of rewards",
    "invalid": "present and True only on an episode with NaN/inf kept by on_invalid='flag'",
}


def observation(key: str) -> str:
    """The path of an observation inside an episode group."""
    return f"{OBSERVATIONS}/{key}"


def image_chunks(height: int, width: int) -> tuple[int, int, int, int]:
    """One frame per chunk, so a frame reads without decompressing its episode."""
    return (1, height, width, 3)


# --- a PushT sample --------------------------------------------------------------------------------------
SAMPLE_ARRAYS = (
    "weights", "start_pixels", "start_normalized", "goal_pixels", "goal_normalized", "timestamps",
    "dmp_waypoints_pixels", "dmp_waypoints_normalized", "dmp_velocity_normalized", "dmp_forcing_normalized",
    "dmp_canonical_phase_actions", "dmp_canonical_phase_observations",
    "executed_actions_pixels", "executed_action_timestamps", "observations", "observation_timestamps", "rewards",
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


# --- the host batch --------------------------------------------------------------------------------------
class HostBatch(NamedTuple):
    """Arm episodes on the host, as the writer takes them: NumPy arrays padded to T steps. Steps at or past an
    episode's length are padding. E episodes, T steps."""

    first: int  # the batch covers episode ids [first, end): its crash-safe shard
    end: int
    episode_ids: np.ndarray  # (E,) int
    lengths: np.ndarray  # (E,) int
    success: np.ndarray  # (E,) bool
    valid: np.ndarray  # (E,) bool: no NaN or inf in observations, actions or rewards up to the length
    observations: dict[str, np.ndarray]  # key -> (E, T, *obs_shape)
    actions: np.ndarray  # (E, T, A)
    rewards: np.ndarray  # (E, T)
    policy_record: dict[str, np.ndarray]  # field -> (E, ...): stored under <policy>/
    randomization: dict[str, np.ndarray] | None  # field -> (E, ...): stored under randomization/; None: off
    mocap_pos: np.ndarray  # (E, nmocap, 3): the episode's mocap bodies, to render it
    qpos: np.ndarray | None  # (E, T, nq): the physics state of each step, to render it; None: no camera

    def select(self, keep: np.ndarray) -> "HostBatch":
        """The episodes where keep (E,) is True; first/end shrink to their ids."""
        ids = self.episode_ids[keep]

        def pick(x):
            return None if x is None else ({k: v[keep] for k, v in x.items()} if isinstance(x, dict) else x[keep])

        fields = {name: pick(getattr(self, name)) for name in self._fields if name not in ("first", "end")}
        return HostBatch(first=int(ids.min()), end=int(ids.max()) + 1, **fields)


def package_versions() -> dict[str, str]:
    """Versions of everything that shapes the arm tasks' data, for the file's `versions` attribute."""
    out = {"python": platform.python_version()}
    for name in ("mjxgen", "jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy", "h5py"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
