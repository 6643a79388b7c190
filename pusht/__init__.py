"""PushT random-DMP dataset generator (seed 003): `python -m mjxgen.pusht`. See docs/pusht.md."""
