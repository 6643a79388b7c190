"""Exports of a reach dataset, state only: seconds per target (lerobot, robomimic, minari) for each layout.

    python -m bench.export [--episodes 1000] [--layouts episodes flat] [--targets lerobot robomimic minari]

The episodes are synthetic reach-shaped steps written by the real writer (no simulation): lengths drawn around
the scripted expert's (uniform in 30..100, mean 65), float64, gzip, with final observations. Each export is timed
end to end as `mjxgen export` runs it (open and check the file, read every episode, write, move into place), best
of --repeat. The acceptance bar: 1000 episodes in under 10 s on a 2-core CPU.
Writes JSON to bench/results/<date>-cpu-<cores>core-export.json.
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

from mjxgen.data.hostbatch import HostBatch
from mjxgen.data.writer import DatasetWriter
from mjxgen.export import export
from mjxgen.runtime.versions import package_versions

OBS = {"joint_pos": 7, "joint_vel": 7, "ee_pos": 3, "target_pos": 3}
RESULTS = Path(__file__).resolve().parent / "results"
CONTROL_DT = 0.02  # reach's: 4 physics steps of 5 ms


def write(path: Path, episodes: int, layout: str, block: int = 1024) -> float:
    """A reach-shaped file of `episodes` synthetic episodes; returns the writer's seconds."""
    rng = np.random.default_rng(0)
    w = DatasetWriter(path, env_name="reach", policy="scripted", seed=0, model_xml="<mujoco/>", layout=layout,
                      config={"n_episodes": episodes, "max_steps": 100, "env_config": {"control_dt": CONTROL_DT}},
                      compression="gzip", obs_shapes={k: (d,) for k, d in OBS.items()}, action_size=4)
    start = time.perf_counter()
    for first in range(0, episodes, block):
        e = min(first + block, episodes) - first
        lengths = rng.integers(30, 101, e)
        n = int(lengths.sum())
        w.write_batch(HostBatch(first=first, end=first + e, episode_ids=np.arange(first, first + e), lengths=lengths,
                                success=lengths < 100, valid=np.ones(e, bool),
                                observations={k: rng.normal(size=(n, d)) for k, d in OBS.items()},
                                actions=rng.uniform(-1, 1, (n, 4)), rewards=rng.normal(size=n), policy_record={},
                                randomization=None, mocap_pos=np.zeros((e, 1, 3)), qpos=None,
                                final_observations={k: rng.normal(size=(e, d)) for k, d in OBS.items()}))
    w.close()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--layouts", nargs="+", default=["episodes", "flat"])
    p.add_argument("--targets", nargs="+", default=["lerobot", "robomimic", "minari"])
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout in a.layouts:
            source = Path(tmp) / f"reach-{layout}.h5"
            write_s = write(source, a.episodes, layout)
            for target in a.targets:
                times = []
                for i in range(a.repeat):
                    start = time.perf_counter()
                    r = export(source, to=target, output=Path(tmp) / f"out-{layout}-{target}", overwrite=True,
                               progress=False)
                    times.append(time.perf_counter() - start)
                row = {"layout": layout, "target": target, "episodes": r.episodes, "frames": r.frames,
                       "seconds": round(min(times), 2), "all_seconds": [round(t, 2) for t in times],
                       "episodes_per_s": round(r.episodes / min(times)), "source_write_s": round(write_s, 1)}
                print(json.dumps(row))
                rows.append(row)
    date = datetime.date.today().isoformat()
    out = RESULTS / f"{date}-cpu-{os.cpu_count()}core-export.json"
    out.write_text(json.dumps({"date": date, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
                               "versions": package_versions() | _export_versions(), "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


def _export_versions() -> dict:
    import importlib.metadata

    return {name: importlib.metadata.version(name) for name in ("pyarrow", "av", "minari")}


if __name__ == "__main__":
    main()
