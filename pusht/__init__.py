"""PushT random-DMP dataset generator (seed 003): `python -m pusht.generate`. See the README."""
