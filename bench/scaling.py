"""Scaling out: episodes/s on 1 and 2 devices of one process, and from 1 and 2 processes of one run.

    python -m bench.scaling [--env reach] [--episodes 512] [--batch 256] [--max-steps 200]

Each configuration runs in fresh subprocesses (device counts and jax.distributed are fixed when JAX starts),
sharing one persistent compilation cache that a warm-up run fills first, so compile time is mostly excluded.

- devices: rollout_batch of --episodes episodes, timed on the second call, in one process that sees D devices.
  On a CPU machine the devices are forced (`--xla_force_host_platform_device_count`): they split the same
  cores, so this is a functional check, not a speedup. On a multi-GPU machine they are the GPUs.
- processes: `python -m mjxgen.<env>` with P local processes and a loopback coordinator, wall time of the whole
  run (start, cache load, simulate, write, process 0 merging the file), episodes/s = episodes / wall.

Writes bench/results/<date>-<device>-scaling.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

_DEVICES = """
import json, sys, time, jax, numpy as np, mjxgen
mjxgen.configure()
env, n, horizon = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
run = lambda first: jax.block_until_ready(mjxgen.rollout_batch(env, "scripted", np.arange(first, first + n), seed=0,
                                                               max_steps=horizon))
t0 = time.perf_counter(); run(0); first = time.perf_counter() - t0
t0 = time.perf_counter(); out = run(n); wall = time.perf_counter() - t0
print(json.dumps({"devices": len(jax.local_devices()), "device_kind": jax.local_devices()[0].device_kind,
                  "first_call_s": first, "wall_s": wall, "episodes_per_s": n / wall,
                  "useful_steps_per_s": int(np.asarray(out.lengths).sum()) / wall,
                  "simulated_steps_per_s": n * horizon / wall}))
"""


def _env(cache: str, devices: int | None = None) -> dict:
    env = dict(os.environ)
    env["JAX_COMPILATION_CACHE_DIR"] = cache
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    if devices:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    return env


def devices_run(env_name: str, n: int, horizon: int, devices: int, cache: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _DEVICES, env_name, str(n), str(horizon)], capture_output=True,
                       text=True, env=_env(cache, devices), check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def processes_run(env_name: str, n: int, batch: int, horizon: int, processes: int, cache: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", f"mjxgen.{env_name}", "--policy", "scripted", "--episodes", str(n), "--batch",
           str(batch), "--max-steps", str(horizon), "--output", str(out), "--overwrite", "--no-progress"]
    port = _free_port()
    where = [[] if processes == 1 else ["--coordinator", f"localhost:{port}", "--num-processes", str(processes),
                                        "--process-id", str(i)] for i in range(processes)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd + w, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(cache))
             for w in where]
    outputs = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outputs):
        if p.returncode:
            raise RuntimeError(err[-2000:])
    return {"processes": processes, "wall_s": wall, "episodes_per_s": n / wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="reach", choices=("reach", "pick_place"))
    p.add_argument("--episodes", type=int, default=512)
    p.add_argument("--batch", type=int, default=256, help="episodes per batch of the multi-process runs")
    p.add_argument("--max-steps", type=int, default=200)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        rows = {"devices": [], "processes": []}
        for d in (1, 2):
            rows["devices"].append(devices_run(a.env, a.episodes, a.max_steps, d, cache))
            print("devices", rows["devices"][-1], flush=True)
        processes_run(a.env, a.episodes, a.batch, a.max_steps, 1, cache, Path(tmp) / "warm.h5")  # fills the cache
        for n in (1, 2):
            rows["processes"].append(processes_run(a.env, a.episodes, a.batch, a.max_steps, n, cache,
                                                   Path(tmp) / f"p{n}.h5"))
            print("processes", rows["processes"][-1], flush=True)
    kind = rows["devices"][0]["device_kind"]
    device = f"cpu-{os.cpu_count()}core" if kind.lower() == "cpu" else kind.replace(" ", "-").lower()
    result = {"date": datetime.date.today().isoformat(), "device": device, "machine": platform.machine(),
              "settings": vars(a), "note": "forced CPU devices share the same cores: a functional check only",
              "load_avg_at_end": os.getloadavg(), **rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{result['date']}-{device}-scaling.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
