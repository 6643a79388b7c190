"""TrajectoryDataset's memory on a large file with images: RSS before and after opening it and reading items.

    python -m bench.dataset_memory [--episodes 10000] [--length 20] [--image-size 64 64] [--items 2000]

The file is written by the real DatasetWriter (gzip, one chunk per frame) with a stand-in renderer that paints
each frame a constant colour, so no GL is needed and the file stays small on disk while its image payload
(episodes x length x H x W x 3 bytes) is what an eager reader would have to hold. The reading is measured in a
fresh process: peak RSS (ru_maxrss) after the imports, after opening the file, and after reading --items
random items with their image. Writes JSON to bench/results/<date>-<device>-dataset-memory.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mjxgen.render import opengl
from mjxgen.data.hostbatch import HostBatch
from mjxgen.runtime.versions import package_versions
from mjxgen.data.writer import DatasetWriter

RESULTS = Path(__file__).parent / "results"
OBS = {"joint_pos": 7, "joint_vel": 7, "ee_pos": 3, "target_pos": 3}
_READER = """
import resource, sys, time, numpy as np
from mjxgen.data.dataset import TrajectoryDataset
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss(); t0 = time.perf_counter()
ds = TrajectoryDataset(sys.argv[1], obs_keys=["ee_pos", "image"])
opened, t_open = rss(), time.perf_counter() - t0
t0 = time.perf_counter()
for i in np.random.default_rng(0).integers(0, len(ds), int(sys.argv[2])):
    ds[int(i)]
print(base, opened, rss(), t_open, time.perf_counter() - t0, len(ds))
"""


class _ConstantFrames:
    def __init__(self, model_xml, height, width):
        self.shape = (height, width, 3)

    def render(self, qpos, mocap_pos, light_dir=None, camera_offset=None):
        return np.full((len(qpos), *self.shape), int(mocap_pos[0, 0]) % 256, np.uint8)

    def close(self):
        pass


def write_file(path: Path, episodes: int, length: int, size: tuple[int, int]) -> float:
    opengl.EpisodeRenderer = _ConstantFrames  # this process only writes; nothing renders for real
    w = DatasetWriter(path, env_name="reach", policy="random", seed=0, config={}, model_xml="<mujoco/>",
                      obs_shapes={k: (d,) for k, d in OBS.items()}, action_size=4, image_size=size)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for first in range(0, episodes, 500):
        b = min(500, episodes - first)
        w.write_batch(HostBatch.from_padded(
            first=first, end=first + b, episode_ids=np.arange(first, first + b), lengths=np.full(b, length),
            success=np.zeros(b, bool), valid=np.ones(b, bool),
            observations={k: rng.normal(size=(b, length, d)).astype(np.float32) for k, d in OBS.items()},
            actions=rng.normal(size=(b, length, 4)).astype(np.float32), rewards=np.zeros((b, length), np.float32),
            policy_record={}, randomization=None,
            mocap_pos=np.arange(first, first + b, dtype=float)[:, None, None] * np.ones((1, 1, 3)),
            qpos=np.zeros((b, length, 9)),
        ))
    w.close()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=10_000)
    p.add_argument("--length", type=int, default=20)
    p.add_argument("--image-size", type=int, nargs=2, default=(64, 64))
    p.add_argument("--items", type=int, default=2000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.h5"
        write_s = write_file(path, a.episodes, a.length, tuple(a.image_size))
        file_mb = path.stat().st_size / 1e6
        out = subprocess.run([sys.executable, "-c", _READER, str(path), str(a.items)], capture_output=True,
                             text=True, check=True)
    base, opened, after, t_open, t_items, steps = (float(x) for x in out.stdout.split())
    payload_mb = a.episodes * a.length * a.image_size[0] * a.image_size[1] * 3 / 1e6
    row = {"episodes": a.episodes, "length": a.length, "image_size": a.image_size, "steps": int(steps),
           "image_payload_mb": payload_mb, "file_mb": file_mb, "write_s": write_s, "rss_after_imports_mb": base,
           "rss_after_open_mb": opened, "rss_after_items_mb": after, "open_s": t_open, "items": a.items,
           "items_per_s": a.items / t_items}
    print(f"{a.episodes} episodes x {a.length} frames of {a.image_size[0]}x{a.image_size[1]}: "
          f"{payload_mb:,.0f} MB of images ({file_mb:,.1f} MB on disk, written in {write_s:.1f} s)")
    print(f"RSS: {base:.0f} MB after imports, {opened:.0f} MB after opening ({t_open:.1f} s), {after:.0f} MB after "
          f"{a.items} random items with images ({a.items / t_items:,.0f} items/s)")
    date = datetime.date.today().isoformat()
    out_path = RESULTS / f"{date}-cpu-{os.cpu_count()}core-dataset-memory.json"
    out_path.write_text(json.dumps({"date": date, "versions": package_versions(), **row}, indent=2) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
