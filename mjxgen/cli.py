"""Command-line entry points: `mjxgen datagen ...` (seed 000's flags) and `python -m mjxgen.<task>`.

Bad input ends with a one-line `error: ...` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from mjxgen.envs import ENVS
from mjxgen.generate import GenerationConfig, run_generation
from mjxgen.writer import COMPRESSIONS


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`prog: error: ...`), without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {value}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-steps", type=_positive_int, default=200, help="horizon T in control steps (default 200)")
    p.add_argument("--seed", type=_seed, default=42, help="dataset seed (default 42)")
    p.add_argument("--compression", choices=COMPRESSIONS, default="gzip", help="HDF5 codec (default gzip)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run(**settings) -> int:
    """Generate the dataset that settings (GenerationConfig fields) describe, print a stats table, and
    return the exit status."""
    try:
        result = run_generation(GenerationConfig(**settings))
    except (ValueError, NotImplementedError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = result.stats
    rows = [
        ("Episodes", f"{s['total_episodes']}"),
        ("Total steps", f"{s['total_steps']}"),
        ("Mean length", f"{s['mean_episode_length']:.1f}"),
        ("Mean reward", f"{s['mean_reward']:.2f}"),
        ("Success rate", f"{s['success_rate']:.1%}"),
        ("File size", f"{s['file_size_mb']:.1f} MB"),
        ("Output path", s["output_path"]),
        ("Batch", f"{result.batch_size} x {result.n_batches}"),
        ("Wall time", f"{result.wall_s:.1f} s (compile included)"),
        ("Env steps/s", f"{result.simulated_steps / result.wall_s:,.0f}"),
        ("Physics steps/s", f"{result.physics_steps / result.wall_s:,.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _common(a: argparse.Namespace) -> dict:
    return {"max_steps": a.max_steps, "seed": a.seed, "compression": a.compression, "overwrite": a.overwrite,
            "progress": not a.no_progress}


def task_main(env_name: str, argv: list[str] | None = None) -> int:
    """`python -m mjxgen.<env_name> --batch B [--episodes N ...]`."""
    p = _Parser(prog=f"python -m mjxgen.{env_name}", description=f"Generate a {env_name} dataset.")
    p.add_argument("--batch", type=_positive_int, default=256, help="episodes simulated per device call (default 256)")
    p.add_argument("--episodes", type=_positive_int, default=None, help="episodes to generate (default: one batch)")
    p.add_argument("--output", default=None, help=f"HDF5 file (default data/{env_name}_<policy>.h5)")
    p.add_argument("--policy", choices=ENVS[env_name]().policy_names, default="scripted")
    _add_common(p)
    a = p.parse_args(argv)
    return _run(
        env_name=env_name,
        n_episodes=a.episodes or a.batch,
        output_path=a.output or f"data/{env_name}_{a.policy}.h5",
        policy_type=a.policy,
        batch_size=a.batch,
        **_common(a),
    )


def main(argv: list[str] | None = None) -> int:
    """`mjxgen datagen --env-name reach --n-episodes N --output PATH --policy scripted [--randomize]`."""
    p = _Parser(prog="mjxgen", description="Vectorized MJX trajectory datasets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("datagen", help="generate a dataset (seed 000's flags)")
    d.add_argument("--env-name", default="reach", help="task: reach or pick_place (default reach)")
    d.add_argument("--n-episodes", type=_positive_int, default=100, help="episodes to generate (default 100)")
    d.add_argument("--output", default="data/dataset.h5", help="HDF5 file (default data/dataset.h5)")
    d.add_argument("--policy", default="random", help="random or scripted (default random)")
    d.add_argument("--randomize", action="store_true", help="domain randomization (not implemented yet)")
    d.add_argument("--batch-size", type=_positive_int, default=256, help="episodes per device call (default 256)")
    _add_common(d)
    a = p.parse_args(argv)
    return _run(
        env_name=a.env_name,
        n_episodes=a.n_episodes,
        output_path=a.output,
        policy_type=a.policy,
        domain_randomization=a.randomize,
        batch_size=a.batch_size,
        **_common(a),
    )


if __name__ == "__main__":
    sys.exit(main())
