"""`python -m pusht.generate`: seed 003's random-DMP PushT dataset generator.

All DMPs are sampled and integrated in batched JAX calls (pusht.plan), then executed in gym-pusht by
worker processes (pusht.execute), and written in index order by this process (pusht.writer).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import warnings
from pathlib import Path

import h5py
from tqdm import tqdm

MAX_VIDEOS = 10  # seed 003: video capture stops after the first ten samples


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(2, f"error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = _Parser(prog="python -m pusht.generate", description=__doc__.splitlines()[0])
    p.add_argument("--num-samples", type=_positive, default=1000, help="trajectories to generate (default 1000)")
    p.add_argument("--seed", type=_non_negative, default=0, help="dataset seed; sample i depends only on (seed, i)")
    p.add_argument("--output-h5", default="data/random_dmp_dataset.h5", help="HDF5 file (parent dirs are created)")
    p.add_argument("--video-dir", default="videos/random_dmp_samples", help="MP4 directory, used when --video-samples > 0")
    p.add_argument("--video-samples", type=_non_negative, default=0, help=f"videos of the first K samples (capped at {MAX_VIDEOS})")
    p.add_argument("--scale-forcing", action="store_true", help="multiply the forcing term by the goal displacement")
    p.add_argument("--workers", type=_positive, default=os.cpu_count() or 1, help="env processes (default: every core)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def _init_worker():
    from multiprocessing import util

    from pusht.execute import close_env

    util.Finalize(None, close_env, exitpriority=10)  # runs when the worker exits cleanly


def generate(
    num_samples: int,
    seed: int,
    output_h5: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    video_samples: int = 0,
    scale_forcing: bool = False,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Generate the dataset; returns counts. Raises ValueError/FileExistsError/PermissionError on bad input."""
    import json

    from mjxgen.writer import check_output_path
    from pusht import execute, plan, writer

    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if workers < 1:
        raise ValueError(f"workers must be positive, got {workers}")
    out = check_output_path(output_h5, overwrite)
    n_videos = min(video_samples, MAX_VIDEOS, num_samples) if video_dir else 0
    config = {
        "num_samples": num_samples,
        "seed": seed,
        "scale_forcing": bool(scale_forcing),
        "dmp_dt": plan.DMP_DT,
        "dmp_dt_substeps": plan.DMP_DT_SUBSTEPS,
        "control_dt": execute.CONTROL_DT,
        "duration_range": plan.DURATION_RANGE,
        "stiffness_range": plan.STIFFNESS_RANGE,
        "goal_range_pixels": plan.GOAL_RANGE_PIXELS,
        "weight_bound": plan.dmp.WEIGHT_BOUND,
        "n_basis": plan.dmp.N_BASIS,
        "alpha_s": plan.dmp.ALPHA_S,
    }
    env_info = {"env_id": execute.ENV_ID, "env_kwargs": execute.ENV_KWARGS, "control_hz": execute.CONTROL_HZ,
                "max_episode_steps": 300, "versions": execute.versions()}

    plans = plan.plan(seed, range(num_samples), scale_forcing)
    tasks = [
        execute.Task(p.index, p.reset_seed, p.actions_pixels(),
                     str(Path(video_dir) / f"{writer.group_name(p.index)}.mp4") if p.index < n_videos else None)
        for p in plans
    ]
    stats = {"num_samples": num_samples, "terminated": 0, "total_steps": 0, "videos": n_videos}
    pool = None
    bar = tqdm(total=num_samples, desc="trajectories", unit="traj", disable=not progress)
    try:
        # Always worker processes, even for one: envs then run in the same kind of process (no JAX)
        # whatever the count, and the main process stays free to write.
        with warnings.catch_warnings():
            # JAX warns on every fork; spawn forks only to exec a fresh interpreter at once, which is safe.
            warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker)
        results = pool.imap(execute.execute, tasks, chunksize=1)
        with h5py.File(out, "w", libver=("v110", "latest")) as f:
            f.attrs.update({"format": writer.FORMAT, "format_version": writer.FORMAT_VERSION, "complete": False,
                            "seed": seed, "num_samples": num_samples, "scale_forcing": bool(scale_forcing),
                            "config": json.dumps(config), "versions": json.dumps(execute.versions())})
            for p, ex in zip(plans, results):
                writer.write_sample(f, p, ex, env_info)
                stats["terminated"] += ex.terminated
                stats["total_steps"] += len(ex.actions)
                bar.update(1)
            f.attrs["complete"] = True
        pool.close()
        pool.join()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return stats


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.video_samples > MAX_VIDEOS:
        print(f"note: --video-samples {args.video_samples} is capped at {MAX_VIDEOS}", file=sys.stderr)
    try:
        stats = generate(args.num_samples, args.seed, args.output_h5, args.video_dir, args.video_samples,
                         args.scale_forcing, args.workers, args.overwrite, progress=not args.no_progress)
    except (ValueError, FileExistsError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{stats['num_samples']} samples, {stats['total_steps']} env steps, {stats['terminated']} reached the goal "
          f"pose, {stats['videos']} videos -> {args.output_h5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
