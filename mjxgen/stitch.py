"""Host side of the streaming rollout: steps of many slots and segments -> whole episodes -> contiguous blocks.

Episodes end out of order (a short one started late ends before a long one started early). The shard store
commits contiguous id ranges, so finished episodes wait here until every id of a block [first, end) has ended;
then the block leaves as one HostBatch (its per-episode values still empty: see mjxgen.values.episode_values).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from mjxgen.layout import HostBatch

class Stitcher:
    """Collects the active rows of streamed segments and hands out blocks of `block` consecutive ids, in order,
    once all their episodes have ended. Ids run over [first, end)."""

    def __init__(self, first: int, end: int, block: int, *, keep_qpos: bool = False):
        self.first, self.end, self.block, self.keep_qpos = first, end, block, keep_qpos
        self.cursor = first  # ids [first, cursor) have been handed out
        self._ended = np.zeros(end - first, bool)
        self._length = np.zeros(end - first, np.int64)
        self._success = np.zeros(end - first, bool)
        self._chunks: list[dict] = []  # rows of episodes not handed out yet, each chunk in step order
        self.useful_steps = 0  # steps inside episodes
        self.simulated_steps = 0  # steps of every slot while any slot was active
        self.out_of_order = 0  # episodes that ended while a lower id was still running

    def add(self, seg) -> None:
        """Take one host Segment (K, B, ...)."""
        active = seg.active
        self.simulated_steps += int(active.any(axis=1).sum()) * active.shape[1]
        tr = seg.transition
        rows = {"episode_id": seg.episode_id[active], "finite": seg.finite[active], "actions": tr.actions[active],
                "rewards": tr.rewards[active], "observations": {k: v[active] for k, v in tr.observations.items()}}
        rows["qpos"] = tr.qpos[active] if self.keep_qpos else None
        self._chunks.append(rows)
        self.useful_steps += int(active.sum())
        done = seg.done & active  # (K, B), time-major: ids end in the order of their rows
        ids = seg.episode_id[done] - self.first
        if ids.size and (np.any(self._ended[ids]) or ids.max() >= len(self._ended) or ids.min() < 0):
            raise RuntimeError("the stream ended an episode twice, or one outside its ids")
        running_below = np.flatnonzero(~self._ended)[:1]
        self._ended[ids] = True
        self._length[ids] = seg.t[done] + 1
        self._success[ids] = tr.successes[done]
        if running_below.size:
            self.out_of_order += int((ids > running_below[0]).sum())

    def ready(self) -> Iterator[HostBatch]:
        """Every block whose episodes have all ended, in id order (the last block may be shorter)."""
        while self.cursor < self.end:
            stop = min(self.cursor + self.block, self.end)
            if not self._ended[self.cursor - self.first:stop - self.first].all():
                return
            yield self._take(self.cursor, stop)
            self.cursor = stop

    def _take(self, a: int, b: int) -> HostBatch:
        """Remove the rows of ids [a, b) (all ended) and return them as one HostBatch, episode by episode."""
        taken, kept = [], []
        for c in self._chunks:
            sel = c["episode_id"] < b
            taken.append(_rows(c, sel))
            kept.append(_rows(c, ~sel))
        self._chunks = [c for c in kept if len(c["episode_id"])]
        rows = _concat(taken)
        order = np.argsort(rows["episode_id"], kind="stable")  # by id; within an id, steps stay in order
        rows = _rows(rows, order)
        sl = slice(a - self.first, b - self.first)
        lengths = self._length[sl]
        ids = np.arange(a, b)
        if not np.array_equal(np.repeat(ids, lengths), rows["episode_id"]):
            raise RuntimeError(f"episodes {a} to {b - 1}: the streamed rows do not match the episodes' lengths")
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return HostBatch(first=a, end=b, episode_ids=ids, lengths=lengths, success=self._success[sl].copy(),
                         valid=np.logical_and.reduceat(rows["finite"], starts), observations=rows["observations"],
                         actions=rows["actions"], rewards=rows["rewards"], policy_record={}, randomization=None,
                         mocap_pos=None, qpos=rows["qpos"])


def _rows(c: dict, index) -> dict:
    return {k: (None if v is None else {kk: vv[index] for kk, vv in v.items()} if isinstance(v, dict) else v[index])
            for k, v in c.items()}


def _concat(chunks: list[dict]) -> dict:
    first = chunks[0]
    out = {}
    for k, v in first.items():
        if v is None:
            out[k] = None
        elif isinstance(v, dict):
            out[k] = {kk: np.concatenate([c[k][kk] for c in chunks]) for kk in v}
        else:
            out[k] = np.concatenate([c[k] for c in chunks])
    return out
