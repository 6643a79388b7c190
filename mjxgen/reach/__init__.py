"""The reach task: `python -m mjxgen.reach`."""

from mjxgen.reach.env import ReachConfig, ReachEnv, ReachState

__all__ = ["ReachConfig", "ReachEnv", "ReachState"]
