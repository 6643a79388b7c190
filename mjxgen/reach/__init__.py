"""The reach task: `python -m mjxgen.reach`."""

from mjxgen.envs.reach import ReachConfig, ReachEnv, ReachState

__all__ = ["ReachConfig", "ReachEnv", "ReachState"]
