"""Seed 000's datagen -> train -> eval pipeline end to end, then the trained policy on fresh episodes.

    python -m bench.bc [--envs reach pick_place] [--episodes 1000] [--train-steps 50000] [--eval-episodes 512]

For each env, in a fresh directory, the three commands run as separate processes, exactly as a user types
them (names mapped: simscale -> mjxgen, checkpoints/final.pt -> checkpoints/final.npz). `mjxgen train --model bc`
builds the recipe of docs/training.md by default (an 8-action chunk with temporal ensembling, a gripper head):

    mjxgen datagen --env-name ENV --n-episodes 1000 --output data/ENV_expert.h5 --policy scripted --randomize
    mjxgen train --model bc --dataset data/ENV_expert.h5 --max-steps 50000 --batch-size 64
    mjxgen eval checkpoints/final.npz --env-name ENV --n-episodes 100

Each command's wall time includes start-up and compilation; "train.wall_s_process" is the training's, the
number the acceptance bounds (15 minutes per task on 2 cores). Then, in this process, the final checkpoint is
evaluated on --eval-episodes fresh episodes (seed 1; the data are seed 42), without and with domain
randomization, next to the scripted expert on the same episodes. The dataset's expert version (pick_place's
env_config) is recorded, and the 1-minute load average before and after each task (the 2 cores may be shared).
JSON goes to bench/results/<date>-cpu-2core[-<tag>]-bc.json.
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

import mjxgen

mjxgen.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mjxgen.data.dataset import TrajectoryDataset  # noqa: E402
from mjxgen.kernels.randomize import RandomizationConfig  # noqa: E402
from mjxgen.learn import checkpoints, evaluate  # noqa: E402
from mjxgen.runtime.versions import package_versions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def run_cli(args: list[str], cwd: Path) -> tuple[float, dict]:
    """Run `mjxgen ARGS` in a new process; (wall seconds, the printed table as {row: value})."""
    env = dict(os.environ)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "mjxgen.cli", *args], cwd=cwd, env=env, capture_output=True,
                         text=True)
    wall = time.perf_counter() - start
    print(f"$ mjxgen {' '.join(args)}   [{wall:.1f} s]\n{out.stdout}", flush=True)
    if out.returncode:
        raise SystemExit(f"failed ({out.returncode}): {out.stderr[-2000:]}")
    rows = dict(line.split(None, 1) if "  " not in line else [s.strip() for s in line.split("  ", 1)]
                for line in out.stdout.splitlines() if line.strip())
    return wall, rows


def fresh_eval(ckpt: Path, env_name: str, n: int, randomize: bool) -> dict:
    r = evaluate.evaluate(ckpt, env_name, n, seed=evaluate.EVAL_SEED, max_steps=200, randomize=randomize)
    expert = jax.device_get(mjxgen.rollout_batch(env_name, "scripted", np.arange(n), seed=evaluate.EVAL_SEED,
                                                 max_steps=200,
                                                 randomization=RandomizationConfig() if randomize else None))
    result = {"episodes": n, "seed": evaluate.EVAL_SEED, "randomize": randomize, "fresh": r.fresh,
              "success_rate": r.success_rate, "mean_length": r.mean_length, "mean_reward": r.mean_reward,
              "wall_s_compile_included": r.wall_s, "expert_success_rate": float(expert.success.mean()),
              "expert_mean_length": float(expert.lengths.mean())}
    print(json.dumps(result), flush=True)
    return result


def pipeline(env_name: str, workdir: Path, a: argparse.Namespace) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    data = f"data/{env_name}_expert.h5"
    gen_s, gen = run_cli(["datagen", "--env-name", env_name, "--n-episodes", str(a.episodes), "--output", data,
                          "--policy", "scripted", "--randomize", "--no-progress", "--overwrite"], workdir)
    train_s, train = run_cli(["train", "--model", "bc", "--dataset", data, "--max-steps", str(a.train_steps),
                              "--batch-size", "64", "--no-progress", "--overwrite"], workdir)
    eval_s, ev = run_cli(["eval", "checkpoints/final.npz", "--env-name", env_name, "--n-episodes", "100"], workdir)
    final = workdir / "checkpoints" / "final.npz"
    config = checkpoints.read_config(final)
    env_config = TrajectoryDataset(workdir / data).config["env_config"]
    return {
        "datagen": {"wall_s": gen_s, "episodes": int(gen["Episodes"]), "total_steps": int(gen["Total steps"]),
                    "success_rate": gen["Success rate"], "mean_length": float(gen["Mean length"]),
                    "file_mb": gen["File size"], "expert_version": env_config.get("expert_version")},
        "train": {"wall_s_process": train_s, "loop_wall_s": float(train["Wall time"].split()[0]),
                  "steps": int(config["step"]), "batch_size": 64, "lr": config["train"]["lr"],
                  "steps_per_s": float(train["Steps/s"].replace(",", "")), "final_loss": config["loss"],
                  "loss": train["Loss"], "model": config["model"], "model_line": train["Model"],
                  "obs_keys": config["obs_keys"], "lr_schedule": config["train"]["lr_schedule"],
                  "normalization": train["Normalization"]},
        "eval_100": {"wall_s": eval_s, "success_rate": ev["Success rate"], "mean_length": float(ev["Mean length"]),
                     "mean_reward": float(ev["Mean reward"])},
        "fresh": [fresh_eval(final, env_name, a.eval_episodes, False),
                  fresh_eval(final, env_name, a.eval_episodes, True)],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=["reach", "pick_place"])
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--train-steps", type=int, default=50_000)
    p.add_argument("--eval-episodes", type=int, default=512)
    p.add_argument("--workdir", default=None, help="where the pipeline runs (default: a temporary directory)")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    p.add_argument("--tag", default="", help="added to the JSON's name: <date>-cpu-2core-<tag>-bc.json "
                                             "(e.g. shared, when other jobs share the cores)")
    a = p.parse_args()
    root = Path(a.workdir or tempfile.mkdtemp(prefix="bench-bc-"))
    date = datetime.date.today().isoformat()
    results = {"date": date, "device": "cpu-2core", "cpu_count": os.cpu_count(),
               "versions": package_versions() | {"optax": __import__("optax").__version__},
               "settings": vars(a) | {"eval_seed": evaluate.EVAL_SEED, "data_seed": 42}, "envs": {}}
    for env_name in a.envs:
        load = os.getloadavg()[0]
        results["envs"][env_name] = pipeline(env_name, root / env_name, a)
        results["envs"][env_name]["load_average_1min"] = {"start": load, "end": os.getloadavg()[0]}
    if not a.no_save:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{date}-cpu-2core{'-' + a.tag if a.tag else ''}-bc.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
