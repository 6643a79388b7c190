"""`mjxgen datagen` (seed 000's flags), `python -m mjxgen.<task>` and `mjxgen info`.

Both generating commands take their flags from GenerationConfig's settings (mjxgen.cli.arguments.add_settings):
the same names, defaults, checks and help as generate_dataset's parameters. The task CLIs differ in five: the
task is the module's, and --episodes, --batch, --output and --policy have their own names or defaults.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mjxgen import checks
from mjxgen.cli.arguments import (Parser, add_cache_flags, add_distributed_args, add_settings, configure_from,
                                  distributed_of, report_failures, settings_from)
from mjxgen.data.stats import print_table, stats_rows
from mjxgen.envs import ENVS
from mjxgen.generate.config import GenerationConfig
from mjxgen.generate.pipeline import run_generation


def add_generation_flags(p: argparse.ArgumentParser, **overrides: dict) -> list[str]:
    """GenerationConfig's flags (with overrides: see add_settings), the compile-cache and the many-process ones.
    Returns the settings' names."""
    names = add_settings(p, GenerationConfig, **overrides)
    add_cache_flags(p)
    add_distributed_args(p)
    return names


def generate(command: list[str], settings: dict) -> int:
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
    if result.frames and result.render_s > 0:  # MuJoCo's renderer, timed in the writer thread
        rows.append(("Rendered frames/s", f"{result.frames / result.render_s:,.0f} ({result.frames} frames, in the "
                                          "writer thread, overlapping the simulation)"))
    elif result.frames:  # the JAX renderer: the frames came with the simulation, inside its time
        rows.append(("Rendered frames", f"{result.frames} (inside the simulation program)"))
    print_table(rows)
    return 0


def task_main(env_name: str, argv: list[str] | None = None) -> int:
    """`python -m mjxgen.<env_name> --batch B [--episodes N ...]` (run it through mjxgen.cli.task_main, which
    turns SIGINT and SIGTERM into one line)."""
    argv = sys.argv[1:] if argv is None else argv
    configure_from(argv)
    p = Parser(prog=f"python -m mjxgen.{env_name}", description=f"Generate a {env_name} dataset.")
    names = add_generation_flags(
        p,
        env_name={"flag": None},  # the module's
        n_episodes={"flag": "--episodes", "default": None, "help": "episodes to generate (default: one batch)"},
        batch_size={"flag": "--batch"},
        output_path={"default": None, "help": f"HDF5 file (default data/{env_name}_<policy>.h5)"},
        policy_type={"default": "scripted", "choices": ENVS[env_name].policy_names, "help": "the policy"},
    )
    a = p.parse_args(argv)
    settings = settings_from(a, names) | {"env_name": env_name, "distributed": distributed_of(p, a)}
    settings["n_episodes"] = settings["n_episodes"] or settings["batch_size"]
    settings["output_path"] = settings["output_path"] or f"data/{env_name}_{settings['policy_type']}.h5"
    return generate(["python", "-m", f"mjxgen.{env_name}", *argv], settings)


def add_datagen(d: argparse.ArgumentParser) -> None:
    """`mjxgen datagen`'s flags, seed 000's among them: --env-name --n-episodes --output --policy --randomize."""
    names = add_generation_flags(d)

    def run(a: argparse.Namespace, argv: list[str]) -> int:
        settings = settings_from(a, names) | {"distributed": distributed_of(d, a)}
        return generate(["mjxgen", *argv], settings)

    d.set_defaults(run=run)


def add_info(i: argparse.ArgumentParser) -> None:
    i.add_argument("path")
    i.add_argument("--allow-incomplete", action="store_true", help="also summarize an unfinished run (.partial)")
    i.add_argument("--quick", action="store_true",
                   help="check the structure, index and totals without reading every episode's arrays")
    i.set_defaults(run=lambda a, argv: info(a.path, a.allow_incomplete, a.quick))


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
