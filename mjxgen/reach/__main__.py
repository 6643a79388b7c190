"""`python -m mjxgen.reach --batch 4096 [--episodes N --output PATH --policy random|scripted ...]`."""

import sys

from mjxgen.cli import task_main  # light: the command's imports happen inside its signal handlers

sys.exit(task_main("reach"))
