"""`mjxgen pusht ...` and `python -m mjxgen.pusht ...`: seed 003's PushT generator command (mjxgen.pusht.generate)."""

from __future__ import annotations

import argparse
import os
import sys

from mjxgen.cli.arguments import (Parser, add_distributed_args, distributed_of, non_negative_int, positive_int,
                                  report_failures)
from mjxgen.data.stats import print_table, stats_rows
from mjxgen.pusht.generate import MAX_VIDEOS, generate
from mjxgen.runtime.process import configure


def parse_args(argv=None, prog: str = "python -m mjxgen.pusht") -> argparse.Namespace:
    """Seed 003's flags (and ours: --workers, --overwrite, --resume, --no-progress, the distributed ones)."""
    p = Parser(prog=prog, description="Seed 003's random-DMP PushT dataset generator.")
    p.add_argument("--num-samples", type=positive_int, default=1000, help="trajectories to generate (default 1000)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="numpy.random.default_rng seed of the DMP parameters and reset seeds (the reference's draws)")
    p.add_argument("--output-h5", default="data/random_dmp_dataset.h5", help="HDF5 file (parent dirs are created)")
    p.add_argument("--video-dir", default="videos/random_dmp_samples", help="MP4 directory, used when --video-samples > 0")
    p.add_argument("--video-samples", type=non_negative_int, default=0, help=f"videos of the first K samples (capped at {MAX_VIDEOS})")
    p.add_argument("--scale-forcing", action="store_true", help="multiply the forcing term by the goal displacement")
    p.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1, help="env processes (default: every core)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (and any unfinished run)")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in <output-h5>.partial/")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_distributed_args(p)
    a = p.parse_args(argv)
    a.distributed = distributed_of(p, a)
    return a


def main(argv=None, prog: str = "python -m mjxgen.pusht") -> int:
    """The PushT command: `python -m mjxgen.pusht ...` or `mjxgen pusht ...` (prog: how it was called). Run it
    through mjxgen.cli.pusht_main (or mjxgen.cli.main), which turns SIGINT and SIGTERM into one line."""
    configure()
    args = parse_args(argv, prog)
    if args.video_samples > MAX_VIDEOS:
        print(f"note: --video-samples {args.video_samples} is capped at {MAX_VIDEOS}", file=sys.stderr)
    argv = sys.argv[1:] if argv is None else argv
    status, stats = report_failures(
        lambda: generate(args.num_samples, args.seed, args.output_h5, args.video_dir, args.video_samples,
                         args.scale_forcing, args.workers, args.overwrite, args.resume, progress=not args.no_progress,
                         distributed=args.distributed),
        [*prog.split(), *argv],
    )
    if status:
        return status
    print_table(stats_rows(stats) + [("Videos", str(stats["videos"]))])
    return 0


