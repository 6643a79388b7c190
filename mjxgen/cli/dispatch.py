"""`mjxgen datagen|info|train|eval|pusht|export ...`: the subcommands, each built by its module. Only the command asked
for is built (and its modules imported): `mjxgen datagen` does not load the training code."""

from __future__ import annotations

import importlib
import sys

from mjxgen.cli.arguments import Parser, configure_from

# command -> (module, the function that adds its arguments and its `run(args, argv)`, the help line)
COMMANDS = {
    "datagen": ("mjxgen.cli.datagen", "add_datagen", "generate a dataset (seed 000's flags)"),
    "info": ("mjxgen.cli.datagen", "add_info",
             "summarize a dataset file: counts, success, lengths, config, completeness"),
    "train": ("mjxgen.cli.learn", "add_train", "train a policy on a dataset (seed 000's flags)"),
    "eval": ("mjxgen.cli.learn", "add_eval", "evaluate a checkpoint in simulation (seed 000's flags)"),
}


def main(argv: list[str] | None = None) -> int:
    """`mjxgen datagen --env-name reach --n-episodes N --output PATH --policy scripted [--randomize]`, and the
    other subcommands (run it through mjxgen.cli.main, which turns SIGINT and SIGTERM into one line)."""
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
    for name, (module, add, help_line) in COMMANDS.items():
        command = sub.add_parser(name, help=help_line)
        if argv[:1] == [name]:
            getattr(importlib.import_module(module), add)(command)
    a = p.parse_args(argv)
    return a.run(a, argv)
