"""Host side of the streaming rollout: steps of many slots and segments -> whole episodes -> contiguous blocks.

Episodes end out of order (a short one started late ends before a long one started early). The shard store
commits contiguous id ranges, so finished episodes wait here until every id of a block [first, end) has ended;
then the block leaves as one Block, and `host_batch` completes it with its per-episode values
(mjxgen.sim.per_episode.episode_values: the episodes' starts, draws, records) into the HostBatch the writer takes.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from mjxgen.data.hostbatch import HostBatch
from mjxgen.runtime import pools


class Block(NamedTuple):
    """Whole episodes [first, end) of a stream, their N = sum(lengths) rows concatenated in id order: what followed
    each action (mjxgen.sim.episode.Step)."""

    first: int
    end: int
    lengths: np.ndarray  # (E,) int64
    success: np.ndarray  # (E,) bool
    finite: np.ndarray  # (E,) bool: every row of the episode finite
    next_observations: dict[str, np.ndarray]  # key -> (N, ...): the observation after each action
    next_qpos: np.ndarray | None  # (N, nq), or None (not kept)
    next_image: np.ndarray | None  # (N, H, W, 3) uint8, or None (no image made on the device)
    actions: np.ndarray  # (N, A)
    rewards: np.ndarray  # (N,)


def host_batch(block: Block, values: dict, randomized: bool) -> HostBatch:
    """The block as the writer takes it: each episode's observations before its actions (its start, then the
    observation after each action but the last) and its final observation (after the last action)."""
    starts = np.concatenate([[0], np.cumsum(block.lengths)[:-1]]).astype(np.int64)
    last = starts + block.lengths - 1

    def before(initial, after):  # row r: after[r - 1] within an episode, its start at the episode's first row
        out = np.empty_like(after)
        out[1:] = after[:-1]
        out[starts] = initial
        return out

    initial = values["initial_observations"]
    finite_start = np.stack([np.isfinite(v).reshape(len(v), -1).all(axis=1) for v in initial.values()]).all(axis=0)
    return HostBatch(
        first=block.first, end=block.end, episode_ids=np.arange(block.first, block.end), lengths=block.lengths,
        success=block.success, valid=block.finite & finite_start,
        observations={k: before(initial[k], v) for k, v in block.next_observations.items()},
        actions=block.actions, rewards=block.rewards, policy_record=values["policy_record"],
        randomization=values["randomization"] if randomized else None, mocap_pos=values["mocap_pos"],
        qpos=None if block.next_qpos is None else before(values["initial_qpos"], block.next_qpos),
        final_observations={k: v[last] for k, v in block.next_observations.items()},
        images=None if block.next_image is None else before(values["initial_image"], block.next_image))


class _Chunk:
    """One segment's rows that are still waiting: its arrays flattened to (K * B, ...) (views, not copies) and
    the flat indices of its active rows not handed out yet, with their episode ids and steps."""

    __slots__ = ("arrays", "live", "ids", "t")

    def __init__(self, arrays: dict, live: np.ndarray, ids: np.ndarray, t: np.ndarray):
        self.arrays, self.live, self.ids, self.t = arrays, live, ids, t


class Stitcher:
    """Collects the active rows of streamed segments and hands out blocks of `block` consecutive ids, in order,
    once all their episodes have ended. Ids run over [first, end).

    Each row is copied once, straight to its place in the block it leaves in: episode e's step t goes to row
    offsets[e] + t. A segment's arrays are held until all of its rows have left."""

    def __init__(self, first: int, end: int, block: int, *, keep_qpos: bool = False):
        self.first, self.end, self.block, self.keep_qpos = first, end, block, keep_qpos
        self.cursor = first  # ids [first, cursor) have been handed out
        self._ended = np.zeros(end - first, bool)
        self._length = np.zeros(end - first, np.int64)
        self._success = np.zeros(end - first, bool)
        self._chunks: list[_Chunk] = []  # segments with rows of episodes not handed out yet
        self.useful_steps = 0  # steps inside episodes
        self.simulated_steps = 0  # steps of every slot while any slot was active
        self.out_of_order = 0  # episodes that ended while a lower id was still running

    def add(self, seg) -> None:
        """Take one host Segment (K, B, ...)."""
        active = seg.active
        self.simulated_steps += int(active.any(axis=1).sum()) * active.shape[1]
        step = seg.step
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731 - (K, B, ...) -> (K * B, ...), time-major
        arrays = {"finite": flat(seg.finite), "actions": flat(step.actions), "rewards": flat(step.rewards),
                  **{f"next_observations/{k}": flat(v) for k, v in step.next_observations.items()}}
        if self.keep_qpos:
            arrays["next_qpos"] = flat(step.next_qpos)
        if step.next_image is not None:
            arrays["next_image"] = flat(step.next_image)
        live = np.flatnonzero(active.reshape(-1))
        if live.size:
            self._chunks.append(_Chunk(arrays, live, seg.episode_id.reshape(-1)[live].astype(np.int64),
                                       seg.t.reshape(-1)[live].astype(np.int64)))
        self.useful_steps += live.size
        done = seg.done & active  # (K, B), time-major: ids end in the order of their rows
        ids = seg.episode_id[done] - self.first
        if ids.size and (ids.max() >= len(self._ended) or ids.min() < 0 or np.any(self._ended[ids])):
            raise RuntimeError("the stream ended an episode twice, or one outside its ids")
        running_below = np.flatnonzero(~self._ended)[:1]
        self._ended[ids] = True
        self._length[ids] = seg.t[done] + 1
        self._success[ids] = step.successes[done]
        if running_below.size:
            self.out_of_order += int((ids > running_below[0]).sum())

    def ready(self) -> Iterator[Block]:
        """Every block whose episodes have all ended, in id order (the last block may be shorter)."""
        while self.cursor < self.end:
            stop = min(self.cursor + self.block, self.end)
            if not self._ended[self.cursor - self.first:stop - self.first].all():
                return
            yield self._take(self.cursor, stop)
            self.cursor = stop

    def _take(self, a: int, b: int) -> Block:
        """Remove the rows of ids [a, b) (all ended) and return them as one Block, episode by episode."""
        sl = slice(a - self.first, b - self.first)
        lengths = self._length[sl]
        starts = np.concatenate([[0], np.cumsum(lengths)])
        total = int(starts[-1])
        out = {k: np.empty((total, *v.shape[1:]), v.dtype) for k, v in self._chunks[0].arrays.items()}
        moves, dests = [], []  # (source, its rows, their places in the block)
        for c in self._chunks:
            sel = c.ids < b  # ids below a have left already
            if not sel.any():
                continue
            e, t = c.ids[sel] - a, c.t[sel]
            if np.any(t >= lengths[e]):
                raise RuntimeError(f"episodes {a} to {b - 1}: a streamed row lies past its episode's end")
            dest = starts[e] + t
            dests.append(dest)
            moves += [(k, v, c.live[sel], dest) for k, v in c.arrays.items()]
            keep = ~sel
            c.live, c.ids, c.t = c.live[keep], c.ids[keep], c.t[keep]

        def move(job):  # NumPy's indexing runs outside the GIL: the moves of a block run on every core
            k, v, rows, dest = job
            out[k][dest] = v[rows]

        for _ in pools.pool("stitch").map(move, moves):
            pass
        self._chunks = [c for c in self._chunks if c.live.size]
        if not np.all(np.bincount(np.concatenate(dests), minlength=total) == 1):
            raise RuntimeError(f"episodes {a} to {b - 1}: the streamed rows do not match the episodes' lengths")
        obs = {k.split("/", 1)[1]: v for k, v in out.items() if k.startswith("next_observations/")}
        return Block(first=a, end=b, lengths=lengths, success=self._success[sl].copy(),
                     finite=np.logical_and.reduceat(out["finite"], starts[:-1]), next_observations=obs,
                     next_qpos=out.get("next_qpos"), next_image=out.get("next_image"), actions=out["actions"],
                     rewards=out["rewards"])
