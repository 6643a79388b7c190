"""The writer alone, on real episodes: episodes/s per layout and codec, and the flat layout's finalize time.

    python -m bench.writer [--episodes 4096] [--max-steps 200]

The episodes come from one streamed block of scripted reach (simulated first, not timed). Each measurement
writes them as `--shards` shards (the generator writes a shard per block) and finalizes the file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mjxgen

mjxgen.configure()  # first: the XLA flags before any JAX computation

import numpy as np  # noqa: E402

from mjxgen import make_env  # noqa: E402
from mjxgen.sim import stream
from mjxgen.data.hostbatch import HostBatch  # noqa: E402
from mjxgen.sim.rollout import SEGMENT_STEPS  # noqa: E402
from mjxgen.generate.stitch import Stitcher  # noqa: E402
from mjxgen.data.writer import COMPRESSIONS, DatasetWriter  # noqa: E402

LAYOUTS = ("episodes", "flat")


def real_block(env, n: int, max_steps: int, policy: str = "scripted", slots: int | None = None) -> HostBatch:
    """Episodes [0, n) of `policy`, streamed through min(n, slots) slots and stitched into one HostBatch."""
    b = min(n, slots or n)
    st = Stitcher(0, n, n)
    for seg in stream.run_segments(env, policy, first=0, count=n, slots=b, seed=0, max_steps=max_steps,
                                   steps=SEGMENT_STEPS, keep_qpos=False):
        st.add(seg)
    (batch,) = st.ready()
    return batch._replace(mocap_pos=np.zeros((n, 1, 3), np.float32))


def _split(batch: HostBatch, shards: int) -> list[HostBatch]:
    bounds = np.linspace(0, len(batch.lengths), shards + 1).astype(int)
    return [batch.select((np.arange(len(batch.lengths)) >= a) & (np.arange(len(batch.lengths)) < b))
            for a, b in zip(bounds[:-1], bounds[1:])]


def measure(env, batch: HostBatch, layout: str, codec: str, dtype: str = "float64", shards: int = 4) -> dict:
    """Write the batch as `shards` shards through DatasetWriter and finalize: episodes/s over the whole."""
    parts = _split(batch, shards)
    n, steps = len(batch.lengths), int(batch.lengths.sum())
    width = 1 + batch.actions.shape[-1] + sum(int(np.prod(v.shape[1:])) for v in batch.observations.values())
    payload_mb = steps * width * np.dtype(dtype).itemsize / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"w-{layout}-{codec}.h5"
        t0 = time.perf_counter()
        w = DatasetWriter(path, env_name=env.name, policy="scripted", seed=0, config={}, model_xml=env.xml,
                          obs_shapes=env.obs_shapes, action_size=env.action_size, compression=codec, layout=layout, dtype=dtype)
        for part in parts:
            w.write_batch(part)
        w.flush()  # every shard written
        t1 = time.perf_counter()
        w.close()  # the merge into the output file
        wall = time.perf_counter() - t0
        finalize = time.perf_counter() - t1
        size = path.stat().st_size / 1e6
    return {"layout": layout, "codec": codec, "dtype": dtype, "episodes": n, "steps": steps, "shards": shards,
            "episodes_per_s": n / wall, "payload_mb_per_s": payload_mb / wall, "payload_mb": payload_mb,
            "file_mb": size, "wall_s": wall, "finalize_s": finalize}


def measure_all(env, batch: HostBatch) -> list[dict]:
    return [measure(env, batch, layout, codec) for layout in LAYOUTS for codec in COMPRESSIONS]


def print_rows(rows: list[dict]) -> None:
    w = rows[0]
    print(f"\nwriter alone, {w['episodes']} episodes ({w['steps']} steps, {w['payload_mb']:.1f} MB payload float64), "
          f"{w['shards']} shards + finalize:")
    for r in rows:
        print(f"  {r['layout']:>8} {r['codec']:>5}: {r['episodes_per_s']:>9,.0f} episodes/s {r['payload_mb_per_s']:>7.1f} "
              f"MB/s  file {r['file_mb']:6.1f} MB  finalize {r['finalize_s']:.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=4096)
    p.add_argument("--max-steps", type=int, default=200)
    a = p.parse_args()
    env = make_env("reach")
    print_rows(measure_all(env, real_block(env, a.episodes, a.max_steps)))


if __name__ == "__main__":
    main()
