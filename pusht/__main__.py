"""`python -m mjxgen.pusht --num-samples N ...`: seed 003's PushT generator (also `mjxgen pusht ...`)."""

import sys

from mjxgen.cli import pusht_main  # light: the command's imports happen inside its signal handlers

sys.exit(pusht_main())
