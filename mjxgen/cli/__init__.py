"""Command-line entry points: `mjxgen datagen|train|eval ...` (seed 000's flags), `mjxgen info` and
`python -m mjxgen.<task>`.

Bad input ends with a one-line `error: ...` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any, Callable

import numpy as np

from mjxgen import checks
from mjxgen.envs import ENVS
from mjxgen.generate.config import GenerationConfig
from mjxgen.generate.pipeline import run_generation
from mjxgen.data import formats
from mjxgen.runtime.signals import GenerationInterrupted
from mjxgen.data.stats import print_table, stats_rows
from mjxgen.runtime.process import configure
from mjxgen.data.writer import COMPRESSIONS, ON_INVALID


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`prog: error: ...`), without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _checked(check):
    """An argparse type: the text as an int, then `check` (mjxgen.checks) on it; its message, one line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = text
        try:
            return check("value", value)
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e).replace("value must be", "must be").replace(", got str ", ", got ")) from None

    parse.__name__ = check.__name__  # argparse names the type in its messages
    return parse


positive_int = _checked(checks.positive_int)
non_negative_int = _checked(checks.non_negative_int)
_seed = _checked(checks.seed)
episode_count = _checked(checks.episode_count)


def report_failures(run: Callable[[], Any], command: list[str]) -> tuple[int, Any]:
    """Call run(); turn its failures into one stderr line. Returns (exit status, run's result or None):
    0; 2 for bad input; 1 when writing failed; 128 + the signal when interrupted (SIGINT: 130). Messages
    about an unfinished run end with the command that resumes it (`command` plus --resume)."""
    resume = shlex.join([c for c in command if c not in ("--overwrite", "--resume")] + ["--resume"])
    try:
        return 0, run()
    except GenerationInterrupted as e:
        print(f"{e}; resume with: {resume}", file=sys.stderr)
        return 128 + e.signum, None
    except (TypeError, ValueError, FileExistsError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None
    except OSError as e:
        print(f"error: {e}".replace("run again with --resume", f"resume with: {resume}"), file=sys.stderr)
        return 1, None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-steps", type=positive_int, default=200, help="horizon T in control steps (default 200)")
    p.add_argument("--seed", type=_seed, default=42, help="dataset seed (default 42)")
    p.add_argument("--compression", choices=COMPRESSIONS, default="gzip", help="HDF5 codec (default gzip)")
    p.add_argument("--on-invalid", choices=ON_INVALID, default="drop",
                   help="episodes with NaN/inf: drop them (default) or flag them with an invalid attribute")
    p.add_argument("--overwrite", action="store_true", help="replace the output file (and any unfinished run of it)")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in <output>.partial/")
    p.add_argument("--randomize", action="store_true",
                   help="per-episode domain randomization: light, friction, masses, damping, gains, start noise, camera")
    p.add_argument("--camera", action="store_true", help="store observations/image from the 'front' camera")
    p.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"), default=(64, 64),
                   help="camera image size (default 64 64)")
    p.add_argument("--layout", choices=formats.options(), default="episodes",
                   help="episodes: seed 000's group per episode (default); flat: all steps per key + episode_ends (fast)")
    p.add_argument("--dtype", choices=formats.DTYPES, default="float64", help="stored float arrays (default float64, seed 000)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_cache_flags(p)
    add_distributed_args(p)


def add_distributed_args(p: argparse.ArgumentParser) -> None:
    """--distributed, --coordinator, --num-processes, --process-id (read them with distributed_of)."""
    g = p.add_argument_group("many processes (jax.distributed; README: Scaling out)")
    g.add_argument("--distributed", action="store_true",
                   help="one of many processes, as the cluster's environment says (SLURM, ...)")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, the same for every process")
    g.add_argument("--num-processes", type=positive_int, metavar="N", help="how many processes run")
    g.add_argument("--process-id", type=non_negative_int, metavar="I", help="this process's index, 0..N-1")


def distributed_of(p: argparse.ArgumentParser, a: argparse.Namespace):
    """--distributed / --coordinator, --num-processes, --process-id as generate_dataset's `distributed` (a
    parser error, exit 2, for an incomplete or inconsistent set)."""
    from mjxgen.runtime.distributed import DistributedConfig

    explicit = (a.coordinator, a.num_processes, a.process_id)
    if any(v is not None for v in explicit):
        try:
            return DistributedConfig(coordinator=a.coordinator, num_processes=a.num_processes,
                                     process_id=a.process_id)
        except ValueError as e:
            p.error(str(e).replace("coordinator, num_processes and process_id", "--coordinator, --num-processes "
                                   "and --process-id"))
    return True if a.distributed else None


def _add_cache_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--compile-cache", metavar="DIR", default=None,
                   help="JAX's persistent compilation cache (default: $MJXGEN_COMPILE_CACHE, else ~/.cache/mjxgen)")
    g.add_argument("--no-compile-cache", action="store_true", help="compile without the persistent cache")


def configure_from(argv: list[str]) -> None:
    """mjxgen.configure() with the compile-cache flags of argv: before anything else, bad input included."""
    pre = Parser(add_help=False)
    _add_cache_flags(pre)
    a, _ = pre.parse_known_args(argv)
    configure(compile_cache=False if a.no_compile_cache else a.compile_cache)


def _run(command: list[str], **settings) -> int:
    """Generate the dataset that settings (GenerationConfig fields) describe, print a stats table, and
    return the exit status: 0, 2 for bad input, 1 when writing failed, 128 + signal when interrupted.
    `command` is the command line, for the resume hint."""
    status, result = report_failures(lambda: run_generation(GenerationConfig(**settings)), command)
    if status:
        return status
    wall = result.wall_s
    useful = result.useful_steps / max(result.simulated_steps, 1)
    rows = stats_rows(result.stats) + [
        ("Batch", f"{result.batch_size} episodes at once ({result.rollout}), {result.n_batches} blocks written"),
        ("Wall time", f"{wall:.1f} s (compile included)"),
        ("Episodes/s", f"{result.stats['total_episodes'] / wall:,.1f}" if not settings.get("resume") else "-"),
        ("Useful env steps/s", f"{result.useful_steps / wall:,.0f} (steps inside episodes)"),
        ("Useful fraction", f"{useful:.1%} of {result.simulated_steps:,} simulated env steps"),
        ("Physics steps/s", f"{result.physics_steps / wall:,.0f} (simulated)"),
    ]
    if result.frames:
        rows.append(("Rendered frames/s", f"{result.frames / result.render_s:,.0f} ({result.frames} frames, in the "
                                          "writer thread, overlapping the simulation)"))
    print_table(rows)
    return 0


def _common(a: argparse.Namespace) -> dict:
    return {"max_steps": a.max_steps, "seed": a.seed, "compression": a.compression, "on_invalid": a.on_invalid,
            "overwrite": a.overwrite, "resume": a.resume, "progress": not a.no_progress,
            "domain_randomization": a.randomize, "camera": a.camera, "image_size": tuple(a.image_size),
            "layout": a.layout, "dtype": a.dtype, "distributed": a.distributed}


def task_main(env_name: str, argv: list[str] | None = None) -> int:
    """`python -m mjxgen.<env_name> --batch B [--episodes N ...]`."""
    argv = sys.argv[1:] if argv is None else argv
    configure_from(argv)
    p = Parser(prog=f"python -m mjxgen.{env_name}", description=f"Generate a {env_name} dataset.")
    p.add_argument("--batch", type=positive_int, default=256, help="episodes simulated per device call (default 256)")
    p.add_argument("--episodes", type=episode_count, default=None, help="episodes to generate (default: one batch)")
    p.add_argument("--output", default=None, help=f"HDF5 file (default data/{env_name}_<policy>.h5)")
    p.add_argument("--policy", choices=ENVS[env_name].policy_names, default="scripted")
    _add_common(p)
    a = p.parse_args(argv)
    a.distributed = distributed_of(p, a)
    return _run(
        ["python", "-m", f"mjxgen.{env_name}", *argv],
        env_name=env_name,
        n_episodes=a.episodes or a.batch,
        output_path=a.output or f"data/{env_name}_{a.policy}.h5",
        policy_type=a.policy,
        batch_size=a.batch,
        **_common(a),
    )


def main(argv: list[str] | None = None) -> int:
    """`mjxgen datagen --env-name reach --n-episodes N --output PATH --policy scripted [--randomize]`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pusht"]:  # its own parser, as `python -m mjxgen.pusht`
        from mjxgen.cli.pusht import main as pusht_main

        return pusht_main(argv[1:], prog="mjxgen pusht")
    if argv[:1] == ["export"]:  # its own parser (mjxgen.cli.export)
        from mjxgen.cli.export import main as export_main

        return export_main(argv[1:], prog="mjxgen export")
    configure_from(argv)
    p = Parser(prog="mjxgen", description="Vectorized MJX trajectory datasets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("pusht", add_help=False, help="generate a PushT random-DMP dataset (seed 003's flags; "
                                                 "`mjxgen pusht --help`)")
    sub.add_parser("export", add_help=False, help="export to LeRobot, robomimic or Minari (`mjxgen export --help`)")
    d = sub.add_parser("datagen", help="generate a dataset (seed 000's flags)")
    d.add_argument("--env-name", default="reach", help="task: reach or pick_place (default reach)")
    d.add_argument("--n-episodes", type=episode_count, default=100, help="episodes to generate (default 100)")
    d.add_argument("--output", default="data/dataset.h5", help="HDF5 file (default data/dataset.h5)")
    d.add_argument("--policy", default="random", help="random, scripted or dmp (default random)")
    d.add_argument("--batch-size", type=positive_int, default=256, help="episodes per device call (default 256)")
    _add_common(d)
    i = sub.add_parser("info", help="summarize a dataset file: counts, success, lengths, config, completeness")
    i.add_argument("path")
    i.add_argument("--allow-incomplete", action="store_true", help="also summarize an unfinished run (.partial)")
    i.add_argument("--quick", action="store_true",
                   help="check the structure, index and totals without reading every episode's arrays")
    _add_train(sub.add_parser("train", help="train a policy on a dataset (seed 000's flags)"))
    _add_eval(sub.add_parser("eval", help="evaluate a checkpoint in simulation (seed 000's flags)"))
    a = p.parse_args(argv)
    if a.command == "info":
        return info(a.path, a.allow_incomplete, a.quick)
    if a.command == "train":
        return train(a)
    if a.command == "eval":
        return evaluate(a)
    a.distributed = distributed_of(d, a)
    return _run(
        ["mjxgen", *argv],
        env_name=a.env_name,
        n_episodes=a.n_episodes,
        output_path=a.output,
        policy_type=a.policy,
        batch_size=a.batch_size,
        **_common(a),
    )


def info(path: str, allow_incomplete: bool = False, quick: bool = False) -> int:
    """`mjxgen info PATH`: check a dataset file (arm task or PushT) against what it claims and print what it holds
    (quick: without reading the episodes' arrays)."""
    from mjxgen.data.formats import DatasetFormatError
    from mjxgen.data.validate import check

    try:
        r = check(path, allow_incomplete, full=not quick)
    except (DatasetFormatError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stats, attrs = r.stats, r.attrs
    n = stats.episodes
    flagged = stats.invalid - len(stats.dropped)
    rows = [
        ("Path", str(r.source)),
        ("Complete", "yes" if r.complete else "NO: an unfinished run (resume it with --resume)"),
        ("Valid", f"yes ({r.checked})"),
        ("Flagged (NaN/inf)", str(flagged)),
        ("Dropped (NaN/inf)", str(len(stats.dropped))),
        ("Env / policy / seed", f"{attrs.get('env_name', 'pusht')} / {attrs.get('policy', 'random DMP')} / "
                                f"{attrs['seed']}"),
        ("Episodes", str(n)),
        ("Total steps", str(stats.steps)),
        ("Success rate", f"{stats.successes / n:.1%}" if n else "-"),
        ("Length min/mean/max", f"{stats.min_length} / {stats.steps / n:.1f} / {stats.max_length}" if n else "-"),
        ("Format", f"{attrs['format']} v{attrs['format_version']}" +
                   (f", {attrs['compression']}" if "compression" in attrs else "")),
    ]
    print_table(rows)
    print("Config:")
    print(json.dumps(checks.json_text("config", attrs["config"]), indent=2, sort_keys=True))
    if "statistics" in attrs:
        print("Statistics (per column: mean / std / min / max / q01 / q99):")
        for name, st in checks.json_text("statistics", attrs["statistics"]).items():
            cols = zip(*(np.atleast_1d(st[k]) for k in ("mean", "std", "min", "max", "q01", "q99")))
            print(f"  {name} (count {st['count'][0]}): " +
                  "; ".join(" / ".join(f"{v:.4g}" for v in c) for c in cols))
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def _add_train(t: argparse.ArgumentParser) -> None:
    from mjxgen.learn.models import ModelRegistry

    t.add_argument("--model", choices=ModelRegistry.names(), default="bc", help="the model (default bc)")
    t.add_argument("--dataset", required=True, help="an HDF5 dataset of the arm tasks (mjxgen datagen's output)")
    t.add_argument("--max-steps", type=positive_int, default=50_000, help="optimizer steps (default 50000)")
    t.add_argument("--batch-size", type=positive_int, default=64, help="steps per batch (default 64)")
    t.add_argument("--lr", type=_positive_float, default=1e-4, help="Adam's learning rate (default 1e-4)")
    t.add_argument("--output-dir", default="checkpoints", help="where checkpoints go (default checkpoints/)")
    t.add_argument("--seed", type=_seed, default=0, help="weights' init and shuffling seed (default 0)")
    t.add_argument("--obs-keys", nargs="+", default=None, metavar="KEY",
                   help="observations to use, in this order (default: all but image, in the file's order)")
    t.add_argument("--checkpoint-every", type=non_negative_int, default=10_000,
                   help="steps between periodic checkpoints step_<n>.npz (default 10000; 0: only final.npz)")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    t.add_argument("--overwrite", action="store_true", help="delete the checkpoints in --output-dir and start over")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def train(a: argparse.Namespace) -> int:
    """`mjxgen train --model bc --dataset PATH --max-steps N --batch-size B`: train, write checkpoints, print a
    table."""
    from mjxgen.data.dataset import TrajectoryDataset
    from mjxgen.learn.models import ModelRegistry
    from mjxgen.learn.training import BatchLoader, TrainConfig, Trainer

    def run():
        cfg = TrainConfig(max_steps=a.max_steps, lr=a.lr, seed=a.seed, output_dir=a.output_dir,
                          checkpoint_every=a.checkpoint_every, resume=a.resume, overwrite=a.overwrite,
                          progress=not a.no_progress)
        try:
            dataset = TrajectoryDataset(a.dataset, obs_keys=a.obs_keys)
        except FileNotFoundError as e:
            raise ValueError(f"--dataset {e}") from None
        loader = BatchLoader(dataset, a.batch_size, seed=a.seed)
        state_dim = sum(v[0].size for v in loader.obs.values())
        model = ModelRegistry.create(a.model, state_dim=state_dim, action_dim=loader.actions.shape[1])
        return dataset, model, Trainer(model, loader, cfg).train()

    status, result = report_failures(run, ["mjxgen", "train"])
    if status:
        return status
    dataset, model, r = result
    print_table([
        ("Model", f"{model.kind} {model.state_dim} -> {' -> '.join(map(str, model.hidden))} -> {model.action_dim}"),
        ("Dataset", f"{dataset.path} ({dataset.n_episodes} episodes, {len(dataset)} steps)"),
        ("Observations", " + ".join(dataset.obs_keys)),
        ("Steps", f"{r.step} (batch {a.batch_size}, lr {a.lr:g})"),
        ("Loss", f"{r.losses[0][1]:.4g} -> {r.losses[-1][1]:.4g}" if r.losses else "-"),
        ("Wall time", f"{r.wall_s:.1f} s (compile included)"),
        ("Steps/s", f"{r.steps_per_s:,.0f}"),
        ("Checkpoint", str(r.checkpoint)),
    ])
    return 0


def _add_eval(e: argparse.ArgumentParser) -> None:
    from mjxgen.learn.evaluate import EVAL_SEED

    e.add_argument("checkpoint", help="a checkpoint (checkpoints/final.npz), or a directory holding final.npz")
    e.add_argument("--env-name", default=None, help="the task (default: the checkpoint's)")
    e.add_argument("--n-episodes", type=positive_int, default=100, help="episodes (default 100)")
    e.add_argument("--seed", type=_seed, default=EVAL_SEED,
                   help=f"episodes' seed (default {EVAL_SEED}; training data use 42 by default)")
    e.add_argument("--max-steps", type=positive_int, default=200, help="horizon T (default 200)")
    e.add_argument("--randomize", action="store_true", help="domain randomization (the default ranges)")
    e.add_argument("--batch", type=positive_int, default=None, help="episodes per compiled call (default: all)")
    e.add_argument("--output", default=None, help="write the evaluation rollouts to this HDF5 dataset")
    e.add_argument("--overwrite", action="store_true", help="replace the --output file")


def evaluate(a: argparse.Namespace) -> int:
    """`mjxgen eval CKPT --env-name reach --n-episodes 100`: one batched rollout, a table of the metrics."""
    from pathlib import Path

    from mjxgen.learn import checkpoints, evaluate as ev

    path = Path(a.checkpoint) / "final.npz" if Path(a.checkpoint).is_dir() else Path(a.checkpoint)

    def run():
        env_name = a.env_name or checkpoints.read_config(path).get("env_name") or "reach"
        return env_name, ev.evaluate(path, env_name, a.n_episodes, seed=a.seed, max_steps=a.max_steps,
                                     randomize=a.randomize, batch=a.batch, output=a.output, overwrite=a.overwrite)

    status, result = report_failures(run, ["mjxgen", "eval"])
    if status:
        return status
    env_name, r = result
    fresh = {True: "yes", False: "NO: some are training episodes", None: "unknown"}[r.fresh]
    rows = [
        ("Checkpoint", str(path)),
        ("Env", f"{env_name}{' (randomized)' if a.randomize else ''}"),
        ("Episodes", f"{r.n_episodes} (seed {a.seed}, max steps {a.max_steps}; not in the training data: {fresh})"),
        ("Success rate", f"{r.success_rate:.1%}"),
        ("Mean length", f"{r.mean_length:.1f}"),
        ("Mean reward", f"{r.mean_reward:.2f}"),
        ("Batch", f"{r.batch} x {r.n_calls}"),
        ("Wall time", f"{r.wall_s:.1f} s (compile included)"),
    ]
    if a.output:
        rows.append(("Output path", a.output))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
