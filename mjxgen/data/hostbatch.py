"""HostBatch: whole arm episodes on the host, as the simulation hands them over and the formats store them."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class HostBatch(NamedTuple):
    """Arm episodes on the host: E whole episodes in id order, their N = sum(lengths) steps concatenated (episode
    e's steps are rows offsets[e]:offsets[e + 1])."""

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
    qpos: np.ndarray | None  # (N, nq): the physics state of each step, to render it on the host; None: not kept
    # key -> (E, ...): the observation after each episode's last action (None: not known, not stored)
    final_observations: dict[str, np.ndarray] | None = None
    images: np.ndarray | None = None  # (N, H, W, 3) uint8: each step's camera image, made on the device
    total_reward: np.ndarray | None = None  # (E,) float64: each episode's reward sum as stored (with_totals)

    @property
    def offsets(self) -> np.ndarray:
        """(E + 1,) where each episode's rows start, and N last."""
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])

    def with_totals(self, dtype) -> HostBatch:
        """The batch with total_reward: each episode's rewards as stored (in `dtype`), summed in float64."""
        stored = np.asarray(self.rewards, dtype).astype(np.float64)
        o = self.offsets  # np.sum per episode: its pairwise summation, as every file has stored it
        return self._replace(total_reward=np.array([stored[a:b].sum() for a, b in zip(o[:-1], o[1:])], np.float64))

    def select(self, keep: np.ndarray) -> HostBatch:
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
                    qpos: np.ndarray | None, images: np.ndarray | None = None, **episode_fields) -> HostBatch:
        """From (E, T, ...) arrays whose steps at or past each episode's length are padding (rollout_batch's
        form); episode_fields are the per-episode fields, first and end included."""
        steps = np.arange(actions.shape[1]) < np.asarray(lengths)[:, None]  # (E, T); row-major: episode by episode

        def cut(x):
            return None if x is None else np.asarray(x)[steps]

        return cls(lengths=np.asarray(lengths), observations={k: cut(v) for k, v in observations.items()},
                   actions=cut(actions), rewards=cut(rewards), qpos=cut(qpos), images=cut(images), **episode_fields)


_STEP_FIELDS = ("observations", "actions", "rewards", "qpos", "images")
