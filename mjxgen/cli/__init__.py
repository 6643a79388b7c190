"""Command-line entry points: `mjxgen datagen|info|train|eval|pusht|export ...` (seed 000's flags), `python -m
mjxgen.<task>` and `python -m mjxgen.pusht`.

Bad input ends with a one-line `error: ...` and exit status 2, never a traceback; SIGINT and SIGTERM end any
command with one line and 130 or 143, at any moment, imports included. This package's top level imports only the
standard library: each entry point installs the signal handlers first and imports the command inside them.

    dispatch.py    `mjxgen ...`: the subcommands
    datagen.py     `mjxgen datagen`, `python -m mjxgen.<task>`, `mjxgen info`
    learn.py       `mjxgen train`, `mjxgen eval`
    pusht.py       `mjxgen pusht`, `python -m mjxgen.pusht`
    export.py      `mjxgen export`: LeRobot, robomimic and Minari datasets
    arguments.py   the shared parser pieces: flags made from the config dataclasses, argparse types, failures
    interrupts.py  SIGINT/SIGTERM -> one line
"""

from __future__ import annotations

import importlib

from mjxgen.cli import interrupts

# Names of the submodules, reachable as attributes (mjxgen.cli.configure_from, ...), imported on first use.
_LAZY = {"configure_from": "mjxgen.cli.arguments", "Parser": "mjxgen.cli.arguments",
         "report_failures": "mjxgen.cli.arguments", "info": "mjxgen.cli.datagen"}


def main(argv: list[str] | None = None) -> int:
    """`mjxgen ...` (the console script): the exit status. argv None: sys.argv[1:]."""
    return interrupts.run("mjxgen.cli.dispatch", "main", argv=argv)


def task_main(env_name: str, argv: list[str] | None = None) -> int:
    """`python -m mjxgen.<env_name> --batch B [--episodes N ...]`: the exit status."""
    return interrupts.run("mjxgen.cli.datagen", "task_main", env_name, argv=argv)


def pusht_main(argv: list[str] | None = None) -> int:
    """`python -m mjxgen.pusht ...`: the exit status."""
    return interrupts.run("mjxgen.cli.pusht", "main", argv=argv)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mjxgen.cli' has no attribute {name!r}")
