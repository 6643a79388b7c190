"""The PushT random-DMP dataset generator (seed 003). Not implemented yet: see the README."""
