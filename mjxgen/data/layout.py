"""What a dataset file holds: every stored array, its dtype and shape, and every attribute, in one place.

The writers (mjxgen.data.writer, mjxgen.pusht.writer), the reader (mjxgen.data.dataset) and `mjxgen info` take their names
from here. Two layouts share the file-level conventions (FILE_ATTRS) and differ in their groups:

The arm tasks (seed 000), EPISODES: one group per episode, each cut to its length L, float64 as seed 000.

    episode_<i>/observations/<key>     (L, *obs_shape)  float64  each observation before the step's action
    episode_<i>/observations/image     (L, H, W, 3)     uint8    camera frames (camera on), a chunk per frame
    episode_<i>/actions                (L, A)           float64
    episode_<i>/rewards                (L,)             float64
    episode_<i>/randomization/<field>  (...)            the episode's draw (randomization on)
    episode_<i>/<policy>/<field>       (...)            what the policy records (the dmp policy: its DMP)
    attributes: EPISODE_ATTRS

The arm tasks, fast, FLAT (`layout="flat"`): every episode's steps concatenated per key, with an
`episode_ends` index (the diffusion_policy / LeRobot convention), in large chunks (mjxgen.data.flat).

    data/<key>                 (N, *obs_shape)  float64 or float32   observations; data.attrs["obs_keys"] (JSON)
    data/actions, data/rewards (N, A), (N,)
    data/image                 (N, H, W, 3)     uint8    camera frames (camera on), a chunk per frame
    meta/episode_ends          (E,) int64       episode e is rows [episode_ends[e - 1], episode_ends[e]) (0 first)
    meta/<EPISODE_ATTRS>       (E,)             episode_index, length, success, total_reward, invalid
    meta/randomization/<field> (E, ...)         meta/<policy>/<field> (E, ...)

PushT (seed 003), SAMPLES: one `sample_<i:05d>` group per trajectory with SAMPLE_ARRAYS (float32),
SAMPLE_JSON (UTF-8 JSON strings) and SAMPLE_ATTRS; the shapes are in pusht/writer.py.
"""

from __future__ import annotations

import dataclasses
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
# The flat layout keeps no groups per episode: only `format` and `version` apply (mjxgen.data.flat reads it).
FLAT = Layout(format="mjxgen-flat", version=1, prefix="", index_width=0, index_attr="episode_index",
              length_attr="length", success_attr="success", reward_attr="total_reward")
LAYOUTS = {layout.format: layout for layout in (EPISODES, FLAT, SAMPLES)}
ARM_LAYOUTS = {"episodes": EPISODES, "flat": FLAT}  # the `layout` option: seed 000's per-episode one, or flat
DTYPES = ("float64", "float32")  # the `dtype` option of the arm tasks' float arrays (seed 000: float64)

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


# --- the flat layout -------------------------------------------------------------------------------------
DATA = "data"
META = "meta"
EPISODE_ENDS = "episode_ends"
OBS_KEYS_ATTR = "obs_keys"  # on data/: JSON list of the observation keys, in stored order
FLAT_CHUNK_BYTES = 256 * 1024  # target chunk size of data/ arrays (images: one frame per chunk)
META_FIELDS = ("episode_index", "length", "success", "total_reward", "invalid")


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
    """Arm episodes on the host, as the writers take them: E whole episodes in id order, their N = sum(lengths)
    steps concatenated (episode e's steps are rows offsets[e]:offsets[e + 1])."""

    first: int  # the batch covers episode ids [first, end): its crash-safe shard
    end: int
    episode_ids: np.ndarray  # (E,) int
    lengths: np.ndarray  # (E,) int, each >= 1
    success: np.ndarray  # (E,) bool
    valid: np.ndarray  # (E,) bool: no NaN or inf in observations, actions or rewards
    observations: dict[str, np.ndarray]  # key -> (N, *obs_shape)
    actions: np.ndarray  # (N, A)
    rewards: np.ndarray  # (N,)
    policy_record: dict[str, np.ndarray]  # field -> (E, ...): stored under <policy>/
    randomization: dict[str, np.ndarray] | None  # field -> (E, ...): stored under randomization/; None: off
    mocap_pos: np.ndarray  # (E, nmocap, 3): the episode's mocap bodies, to render it
    qpos: np.ndarray | None  # (N, nq): the physics state of each step, to render it; None: no camera

    @property
    def offsets(self) -> np.ndarray:
        """(E + 1,) where each episode's rows start, and N last."""
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])

    def select(self, keep: np.ndarray) -> "HostBatch":
        """The episodes where keep (E,) is True; first/end shrink to their ids."""
        ids = self.episode_ids[keep]
        rows = np.repeat(keep, self.lengths)

        def pick(x, mask):
            return None if x is None else ({k: v[mask] for k, v in x.items()} if isinstance(x, dict) else x[mask])

        fields = {name: pick(getattr(self, name), rows if name in _STEP_FIELDS else keep)
                  for name in self._fields if name not in ("first", "end")}
        if not ids.size:  # nothing kept: an empty batch of the same range
            return HostBatch(first=self.first, end=self.first, **fields)
        return HostBatch(first=int(ids.min()), end=int(ids.max()) + 1, **fields)

    @classmethod
    def from_padded(cls, *, lengths: np.ndarray, observations: dict, actions: np.ndarray, rewards: np.ndarray,
                    qpos: np.ndarray | None, **episode_fields) -> "HostBatch":
        """From (E, T, ...) arrays whose steps at or past each episode's length are padding (rollout_batch's
        form); episode_fields are the per-episode fields, first and end included."""
        steps = np.arange(actions.shape[1]) < np.asarray(lengths)[:, None]  # (E, T); row-major: episode by episode

        def cut(x):
            return None if x is None else np.asarray(x)[steps]

        return cls(lengths=np.asarray(lengths), observations={k: cut(v) for k, v in observations.items()},
                   actions=cut(actions), rewards=cut(rewards), qpos=cut(qpos), **episode_fields)


_STEP_FIELDS = ("observations", "actions", "rewards", "qpos")
