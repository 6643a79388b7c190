"""`python -m mjxgen.pusht --num-samples N ...`: seed 003's PushT generator (also `mjxgen pusht ...`)."""

import sys

from mjxgen.cli.pusht import main

sys.exit(main())
