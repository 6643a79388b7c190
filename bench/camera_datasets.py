"""Camera datasets end to end: generate_dataset with camera images drawn by the JAX renderer inside the
simulation program, against MuJoCo's renderer on the host, in episodes/s and frames/s.

    python -m bench.camera_datasets [--env reach] [--episodes 1000] [--mujoco-episodes 64] [--batch 256]
                                    [--size 64 64]

Each renderer runs twice on the same shape: the first run includes compiling (the persistent compile cache is
off), the second is warm. MuJoCo's renderer draws every frame on the host, one at a time, in the writer thread;
its run is shorter (--mujoco-episodes) and its rate is what extrapolates. Writes JSON to
bench/results/<date>-<device>-camera-datasets.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import mjxgen

mjxgen.configure(compile_cache=False)

from bench.throughput import RESULTS, device_name  # noqa: E402
from mjxgen.generate.config import GenerationConfig  # noqa: E402
from mjxgen.generate.pipeline import run_generation  # noqa: E402
from mjxgen.runtime.versions import package_versions  # noqa: E402


def run(env: str, renderer: str, episodes: int, batch: int, size: tuple[int, int], max_steps: int, path: Path) -> dict:
    cfg = GenerationConfig(env_name=env, n_episodes=episodes, output_path=path, policy_type="scripted",
                           max_steps=max_steps, batch_size=batch, camera=True, image_size=size, renderer=renderer,
                           progress=False, overwrite=True)
    start, cpu = time.perf_counter(), time.process_time()
    result = run_generation(cfg)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"renderer": renderer, "episodes": episodes, "frames": result.useful_steps, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "episodes_per_s": round(episodes / wall, 2),
            "frames_per_s": round(result.useful_steps / wall, 1), "file_mb": round(path.stat().st_size / 1e6, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="reach")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--mujoco-episodes", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, nargs=2, default=(64, 64))
    p.add_argument("--max-steps", type=int, default=200)
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for renderer, n in (("jax", a.episodes), ("mujoco", a.mujoco_episodes)):
            for attempt in ("cold", "warm"):
                row = run(a.env, renderer, n, min(a.batch, n), tuple(a.size), a.max_steps, Path(tmp) / "c.h5")
                rows.append(row | {"run": attempt})
                print(json.dumps(rows[-1]), flush=True)
    warm = {r["renderer"]: r for r in rows if r["run"] == "warm"}
    summary = {"jax_over_mujoco_frames_per_s": round(warm["jax"]["frames_per_s"] / warm["mujoco"]["frames_per_s"], 1)}
    print(json.dumps(summary))
    date = datetime.date.today().isoformat()
    out = RESULTS / f"{date}-{device_name()}-camera-datasets.json"
    out.write_text(json.dumps({"date": date, "device": device_name(), "cpu_count": os.cpu_count(),
                               "versions": package_versions(), "env": a.env, "size": a.size, "batch": a.batch,
                               "max_steps": a.max_steps, "runs": rows, **summary}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
