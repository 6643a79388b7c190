"""`python -m mjxgen.pick_place --batch N [--episodes N --output PATH --policy random|scripted ...]`."""

import sys

import mjxgen  # noqa: F401  (sets the XLA flags before jax starts)
from mjxgen.cli import task_main

sys.exit(task_main("pick_place"))
