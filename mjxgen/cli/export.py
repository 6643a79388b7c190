"""`mjxgen export INPUT --to lerobot|robomimic|minari --output OUT`: a dataset file in another library's format
(mjxgen.export). Bad input is one `error:` line and exit status 2 (mjxgen.cli.report_failures)."""

from __future__ import annotations

import argparse
import signal
import sys

from mjxgen.cli import Parser, interrupts, report_failures
from mjxgen.data.stats import print_table


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {value:g}")
    return value


def parse_args(argv, prog: str) -> argparse.Namespace:
    from mjxgen.export import names

    p = Parser(prog=prog, description="Export a dataset file (reach, pick_place in either layout, or PushT) to "
                                      "LeRobot v3.0, robomimic's HDF5 or Minari.")
    p.add_argument("input", help="an mjxgen dataset file")
    p.add_argument("--to", required=True, choices=names(), help="the target format")
    p.add_argument("--output", required=True, metavar="OUT",
                   help="lerobot: a dataset directory; robomimic: an HDF5 file; minari: a datasets root "
                        "(MINARI_DATASETS_PATH) holding one dataset")
    p.add_argument("--task", default=None, help="the task text (lerobot: every frame's task; minari: the "
                                                "description; default: the task's own sentence)")
    p.add_argument("--images", action="store_true",
                   help="lerobot only: camera frames as video (arm files made with --camera; PushT: replayed in "
                        "gym-pusht at 96x96)")
    p.add_argument("--val-fraction", type=_fraction, default=0.1,
                   help="robomimic: the share of demos in mask/valid, drawn from the file's seed (default 0.1)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it holds an earlier export")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def main(argv=None, prog: str = "mjxgen export") -> int:
    from mjxgen.export import export

    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv, prog)
    try:
        status, r = report_failures(
            lambda: export(a.input, to=a.to, output=a.output, task=a.task, images=a.images,
                           val_fraction=a.val_fraction, overwrite=a.overwrite, progress=not a.no_progress),
            [*prog.split(), *argv])
    except (KeyboardInterrupt, interrupts.Interrupted) as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"interrupted by {signal.Signals(signum).name}: the export did not finish ({a.output} is left as it "
              f"was)", file=sys.stderr)
        return 128 + signum
    if status:
        return status
    rows = [("Output", f"{r.output} ({r.target})"), ("Episodes", str(r.episodes)), ("Frames", str(r.frames)),
            *[(k.replace("_", " ").capitalize(), str(v)) for k, v in r.details.items()],
            ("Wall time", f"{r.seconds:.1f} s")]
    if r.replay_s_per_sample is not None:
        rows.append(("Replay", f"{r.replay_s_per_sample * 1000:.0f} ms per sample (gym-pusht frames)"))
    print_table(rows)
    return 0
