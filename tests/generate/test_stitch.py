"""The streaming rollout's host side (mjxgen.generate.stitch): steps of many slots and segments become whole episodes, handed
out in contiguous blocks of ids however out of order the episodes end. Synthetic segments: no JAX program."""

import numpy as np
import pytest

from mjxgen.sim.episode import Step
from mjxgen.sim.stream import Segment
from mjxgen.generate.stitch import Stitcher, host_batch


def _segment(rows):
    """A Segment (K, B) from rows[k][b] = (episode id, t, done) or None (an inactive slot). Each step's values
    encode (id, t), so the stitched arrays show where every row went."""
    k, b = len(rows), len(rows[0])
    ids, t, active, done = (np.zeros((k, b), dt) for dt in (np.int32, np.int32, bool, bool))
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            if cell is not None:
                ids[i, j], t[i, j], done[i, j], active[i, j] = *cell, True
    code = (ids * 1000 + t).astype(np.float32)
    step = Step(next_observations={"x": np.stack([code, -code], -1)}, next_qpos=code[..., None],
                actions=code[..., None], rewards=code, successes=done & (t < 9))
    return Segment(step=step, episode_id=ids, t=t, active=active, done=done, finite=code != 2001)


def _episode(i, n, start_k=0):
    """Episode i's n steps as (k, cell) pairs from segment step start_k on."""
    return [(start_k + t, (i, t, t == n - 1)) for t in range(n)]


def _segments(slots, k_per_segment):
    """slots: per slot, the list of episodes (id, length) it runs back to back -> list of segments."""
    cells = {}
    for s, episodes in enumerate(slots):
        k = 0
        for i, n in episodes:
            for kk, cell in _episode(i, n, k):
                cells[(kk, s)] = cell
            k += n
    total = max(k for k, _ in cells) + 1
    n_seg = -(-total // k_per_segment)
    grid = [[cells.get((k, s)) for s in range(len(slots))] for k in range(n_seg * k_per_segment)]
    return [_segment(grid[i:i + k_per_segment]) for i in range(0, len(grid), k_per_segment)]


def test_out_of_order_episodes_leave_in_contiguous_blocks():
    # Slot 0 runs a long episode 0; slot 1 runs 1, 2, 3, 4, 5 (short): they end long before episode 0.
    segs = _segments([[(0, 12)], [(1, 2), (2, 3), (3, 2), (4, 2), (5, 1)]], k_per_segment=4)
    st = Stitcher(0, 6, block=2, keep_qpos=True)
    out = []
    for seg in segs:
        st.add(seg)
        out += list(st.ready())
    assert st.out_of_order > 0
    assert [(b.first, b.end) for b in out] == [(0, 2), (2, 4), (4, 6)]
    lengths = {0: 12, 1: 2, 2: 3, 3: 2, 4: 2, 5: 1}
    for b in out:
        ids = range(b.first, b.end)
        assert list(b.lengths) == [lengths[i] for i in ids]
        expected = np.concatenate([i * 1000 + np.arange(lengths[i]) for i in ids]).astype(np.float32)
        np.testing.assert_array_equal(b.rewards, expected)  # episode by episode, each in step order
        np.testing.assert_array_equal(b.next_observations["x"][:, 1], -expected)
        np.testing.assert_array_equal(b.next_qpos[:, 0], expected)
    first = out[0]
    assert list(first.finite) == [True, True] and list(first.success) == [False, True]  # ep 0: 12 steps > 9
    assert list(out[1].finite) == [False, True]  # step 1 of episode 2 is not finite (2001)
    assert st.useful_steps == sum(lengths.values())
    assert st.simulated_steps == 12 * 2  # 3 segments of 4 steps, both slots, while any slot was active


def test_a_block_waits_for_its_slowest_episode():
    segs = _segments([[(0, 9)], [(1, 1), (2, 1), (3, 1)]], k_per_segment=3)
    st = Stitcher(0, 4, block=2)
    st.add(segs[0])
    assert list(st.ready()) == []  # 1, 2, 3 ended; 0 runs on
    st.add(segs[1])
    st.add(segs[2])
    blocks = list(st.ready())
    assert [(b.first, b.end) for b in blocks] == [(0, 2), (2, 4)] and blocks[0].next_qpos is None


def test_a_resumed_range_and_a_short_last_block():
    segs = _segments([[(5, 2), (7, 1)], [(6, 3)]], k_per_segment=8)
    st = Stitcher(5, 8, block=2)
    st.add(segs[0])
    assert [(b.first, b.end, list(b.lengths)) for b in st.ready()] == [(5, 7, [2, 3]), (7, 8, [1])]


def test_an_episode_ended_twice_is_an_error():
    segs = _segments([[(0, 2)], [(1, 1)]], k_per_segment=2)
    st = Stitcher(0, 2, block=2)
    st.add(segs[0])
    with pytest.raises(RuntimeError, match="twice"):
        st.add(segs[0])


def test_a_row_past_its_episodes_end_is_an_error():
    # Episode 0 ends at t = 1, but its slot streams a third row (t = 2) with the same id.
    seg = _segment([[(0, 0, False), (1, 0, True)], [(0, 1, True), None], [(0, 2, False), None]])
    st = Stitcher(0, 2, block=2)
    st.add(seg)
    with pytest.raises(RuntimeError, match="past its episode's end"):
        list(st.ready())


def test_host_batch_puts_each_observation_before_its_action():
    """A block's rows hold what followed each action: the writer's batch has each episode's start, then the
    observation after each action but its last, and that last one as the final observation."""
    segs = _segments([[(0, 3)], [(1, 2)]], k_per_segment=4)
    st = Stitcher(0, 2, block=2, keep_qpos=True)
    st.add(segs[0])
    (block,) = st.ready()
    start = {"x": np.array([[-1.0, 1.0], [-2.0, 2.0]], np.float32)}
    values = {"initial_observations": start, "initial_qpos": np.array([[-1.0], [-2.0]], np.float32),
              "policy_record": {}, "randomization": {}, "mocap_pos": np.zeros((2, 1, 3))}
    b = host_batch(block, values, randomized=False)
    np.testing.assert_array_equal(b.observations["x"][:, 0], [-1, 0, 1, -2, 1000])
    np.testing.assert_array_equal(b.qpos[:, 0], [-1, 0, 1, -2, 1000])
    np.testing.assert_array_equal(b.final_observations["x"][:, 0], [2, 1001])
    np.testing.assert_array_equal(b.actions[:, 0], [0, 1, 2, 1000, 1001])
    assert list(b.valid) == [True, True] and b.randomization is None
    values["initial_observations"] = {"x": np.array([[np.nan, 1.0], [-2.0, 2.0]], np.float32)}
    assert list(host_batch(block, values, randomized=False).valid) == [False, True]  # a start that is not finite
