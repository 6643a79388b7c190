"""`python -m mjxgen.cli ...`: the `mjxgen` command."""

import sys

from mjxgen.cli import main

sys.exit(main())
