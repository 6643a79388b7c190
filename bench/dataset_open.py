"""Opening and checking a large dataset: TrajectoryDataset's open, `mjxgen info --quick` and the full `mjxgen info`
on a file of many episodes (synthetic reach-shaped episodes from the writer: no simulation).

    python -m bench.dataset_open [--episodes 100000] [--length 65] [--layout episodes] [--compression lzf] [--file F]

Writes JSON to bench/results/<date>-cpu-<cores>core-dataset-open-<layout>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mjxgen.data.dataset import TrajectoryDataset
from mjxgen.data.hostbatch import HostBatch
from mjxgen.data.validate import check
from mjxgen.data.writer import DatasetWriter
from mjxgen.runtime.versions import package_versions

OBS = {"joint_pos": 7, "joint_vel": 7, "ee_pos": 3, "target_pos": 3}
RESULTS = Path(__file__).resolve().parent / "results"


def _batch(first: int, end: int, length: int, rng) -> HostBatch:
    e, n = end - first, (end - first) * length
    return HostBatch(first=first, end=end, episode_ids=np.arange(first, end), lengths=np.full(e, length),
                     success=rng.random(e) > 0.5, valid=np.ones(e, bool),
                     observations={k: rng.normal(size=(n, d)).astype(np.float32) for k, d in OBS.items()},
                     actions=rng.normal(size=(n, 4)).astype(np.float32), rewards=rng.normal(size=n).astype(np.float32),
                     policy_record={}, randomization=None, mocap_pos=np.zeros((e, 1, 3)), qpos=None,
                     final_observations={k: rng.normal(size=(e, d)).astype(np.float32) for k, d in OBS.items()})


def write(path: Path, episodes: int, length: int, layout: str, compression: str, block: int = 4096) -> float:
    rng = np.random.default_rng(0)
    w = DatasetWriter(path, env_name="reach", policy="scripted", seed=0, model_xml="<mujoco/>", layout=layout,
                      config={"n_episodes": episodes, "max_steps": length}, compression=compression,
                      obs_shapes={k: (d,) for k, d in OBS.items()}, action_size=4, dtype="float32")
    start = time.perf_counter()
    for a in range(0, episodes, block):
        w.write_batch(_batch(a, min(a + block, episodes), length, rng))
    w.close()
    return time.perf_counter() - start


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=100_000)
    p.add_argument("--length", type=int, default=65)
    p.add_argument("--layout", default="episodes")
    p.add_argument("--compression", default="lzf")
    p.add_argument("--file", type=Path, help="write the file here and keep it; an existing one is measured as is")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = a.file or Path(tmp) / "big.h5"
        write_s = write(path, a.episodes, a.length, a.layout, a.compression) if not path.exists() else None
        open_s, ds = timed(lambda: TrajectoryDataset(path))
        item_s, _ = timed(lambda: [ds[i] for i in range(0, len(ds), len(ds) // 1000)])
        quick_s, _ = timed(lambda: check(path, full=False))
        full_s, report = timed(lambda: check(path, full=True))
        size_mb = path.stat().st_size / 1e6
    row = {"episodes": a.episodes, "length": a.length, "layout": a.layout, "compression": a.compression,
           "file_mb": round(size_mb, 1), "write_s": write_s and round(write_s, 1), "trajectory_dataset_open_s": round(open_s, 2),
           "thousand_items_s": round(item_s, 2), "info_quick_s": round(quick_s, 2), "info_full_s": round(full_s, 1),
           "full_read_every_episode": report.read_every_episode}
    print(json.dumps(row, indent=2))
    date = datetime.date.today().isoformat()
    out = RESULTS / f"{date}-cpu-{os.cpu_count()}core-dataset-open-{a.layout}.json"
    out.write_text(json.dumps({"date": date, "versions": package_versions(), **row}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
