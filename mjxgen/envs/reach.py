"""The reach task: move the arm's end effector to a target sampled per episode.

- Observations: joint_pos (7), joint_vel (7), ee_pos (3), target_pos (3).
- Action: the arm's 4-D action (see mjxgen.envs.arm); the gripper is ignored by the reward.
- Reward: -||ee_pos - target_pos|| (m), after the action. Success: that distance < success_threshold.
- The target is uniform in a box of the arm's reachable workspace, in front of the base, above the table.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from mujoco import mjx

from mjxgen.kernels import policies
from mjxgen.envs.arm import ArmConfig, ArmTask, refresh


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReachConfig:
    """Settings of the reach task."""

    arm: ArmConfig = ArmConfig()  # control settings shared by the arm tasks
    success_threshold: float = 0.02  # m: success when the end effector is closer than this to the target
    target_low: tuple[float, float, float] = (0.30, -0.30, 0.10)  # m: target box, robot base frame
    target_high: tuple[float, float, float] = (0.70, 0.30, 0.50)


class ReachState(NamedTuple):
    data: mjx.Data
    target_pos: jax.Array  # (3,)


class ReachEnv(ArmTask):
    """The reach task on MJX. Static: construct once, then trace its pure methods inside a jit."""

    name = "reach"
    config_class = ReachConfig
    scene = "reach.xml"
    policy_names = ("random", "scripted", "dmp")

    def __init__(self, config: ReachConfig = ReachConfig()):
        super().__init__(config)
        self._target_mocap = self.mj_model.body("target").mocapid[0]

    def reset(self, m: mjx.Model, key: jax.Array) -> ReachState:
        """The home posture and a target drawn uniformly in the workspace box."""
        low = jnp.asarray(self.config.target_low, jnp.float32)
        high = jnp.asarray(self.config.target_high, jnp.float32)
        target = jax.random.uniform(key, (3,), minval=low, maxval=high)
        data = self._data0.replace(mocap_pos=self._data0.mocap_pos.at[self._target_mocap].set(target))
        return ReachState(refresh(m, data), target)  # the target body's pose too: physics_step's invariant

    def observe(self, state: ReachState) -> dict[str, jax.Array]:
        return self.arm_obs(state.data) | {"target_pos": state.target_pos}

    def step(self, m: mjx.Model, state: ReachState, action: jax.Array) -> tuple[ReachState, jax.Array, jax.Array]:
        """Apply one control step; return the new state, the reward and the success flag."""
        ctrl = self.arm.ctrl_from_action(m, state.data, action)
        data = self.arm.physics_step(m, state.data, ctrl)
        dist = jnp.linalg.norm(self.arm.tcp_pos(data) - state.target_pos)
        return ReachState(data, state.target_pos), -dist, dist < self.config.success_threshold

    def _policies(self) -> dict[str, policies.Policy]:
        scripted = policies.stateless(lambda key, obs: policies.p_controller(obs["ee_pos"], obs["target_pos"]))
        return super()._policies() | {"scripted": scripted}
