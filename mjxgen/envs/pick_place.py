"""The pick_place task: grasp a cube on the table and put it down on a place target.

- Observations: those of reach (joint_pos 7, joint_vel 7, ee_pos 3, target_pos 3 = place_pos), plus
  object_pos (3), object_quat (4, w x y z), gripper_pos (1: the finger opening, m) and place_pos (3).
- Action: the arm's 4-D action (mjxgen.envs.arm); action[3] = -1 closes the gripper, +1 opens it.
- Reward (dense, m): -(||ee_pos - object_pos|| + ||object_pos - place_pos||), after the action.
- Success: the cube's centre is within success_threshold of place_pos (the resting centre on the place
  target) and the gripper has released it (finger opening > release_opening).
- Cube: uniform in cube_low..cube_high, resting, axis-aligned. Place target: at a random direction and a
  distance in place_distance from the cube, clipped to place_low..place_high.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from mujoco import mjx

from mjxgen.kernels import pick_place_expert as expert
from mjxgen.kernels import policies
from mjxgen.envs.arm import FINGER_OPEN, ArmConfig, ArmTask, refresh

CUBE_HALF = 0.02  # m: half the cube's edge (pick_place.xml)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PickPlaceConfig:
    """Settings of the pick_place task."""

    arm: ArmConfig = ArmConfig()  # control settings shared by the arm tasks
    success_threshold: float = 0.03  # m: cube centre to place target
    release_opening: float = 0.05  # m: finger opening above which the cube counts as released (cube: 0.04)
    cube_low: tuple[float, float] = (0.40, -0.20)  # m: cube centre x, y range (base frame)
    cube_high: tuple[float, float] = (0.60, 0.20)
    place_distance: tuple[float, float] = (0.10, 0.20)  # m: place target distance from the cube
    place_low: tuple[float, float] = (0.30, -0.30)  # m: place target x, y range after clipping
    place_high: tuple[float, float] = (0.70, 0.30)
    # The `scripted` expert (mjxgen.kernels.pick_place_expert): 1 is the phase machine with a hidden phase and
    # timer, 2 decides from the current observation alone. Files record it in their env_config.
    expert_version: int = expert.DEFAULT

    def __post_init__(self):
        if self.expert_version not in expert.VERSIONS or isinstance(self.expert_version, bool):
            raise ValueError(f"expert_version must be one of {expert.VERSIONS}, got {self.expert_version!r}")


class PickPlaceState(NamedTuple):
    data: mjx.Data
    place_pos: jax.Array  # (3,): where the cube's centre rests when placed


class PickPlaceEnv(ArmTask):
    """The pick_place task on MJX. Static: construct once, then trace its pure methods inside a jit."""

    name = "pick_place"
    config_class = PickPlaceConfig
    scene = "pick_place.xml"
    policy_names = ("random", "scripted", "dmp")

    def __init__(self, config: PickPlaceConfig = PickPlaceConfig()):
        super().__init__(config)
        m = self.mj_model
        self._cube_qpos = m.joint("cube").qposadr[0]
        self._finger_qpos = [m.joint("finger_joint1").qposadr[0], m.joint("finger_joint2").qposadr[0]]
        self._place_mocap = m.body("place").mocapid[0]
        self._cube_body = m.body("cube").id

    def reset(self, m: mjx.Model, key: jax.Array) -> PickPlaceState:
        """Home posture, gripper open, the cube resting at a random spot, a place target near it."""
        cfg = self.config
        k_cube, k_angle, k_dist = jax.random.split(key, 3)
        cube_xy = jax.random.uniform(k_cube, (2,), minval=jnp.asarray(cfg.cube_low), maxval=jnp.asarray(cfg.cube_high))
        angle = jax.random.uniform(k_angle, (), minval=-jnp.pi, maxval=jnp.pi)
        dist = jax.random.uniform(k_dist, (), minval=cfg.place_distance[0], maxval=cfg.place_distance[1])
        place_xy = jnp.clip(cube_xy + dist * jnp.array([jnp.cos(angle), jnp.sin(angle)]),
                            jnp.asarray(cfg.place_low), jnp.asarray(cfg.place_high))
        cube = jnp.concatenate([cube_xy, jnp.array([CUBE_HALF, 1.0, 0.0, 0.0, 0.0])])
        place = jnp.concatenate([place_xy, jnp.array([CUBE_HALF])])
        d = self._data0
        qpos = d.qpos.at[self._cube_qpos:self._cube_qpos + 7].set(cube).at[jnp.array(self._finger_qpos)].set(FINGER_OPEN)
        ctrl = d.ctrl.at[7:].set(FINGER_OPEN)
        d = d.replace(qpos=qpos, ctrl=ctrl, mocap_pos=d.mocap_pos.at[self._place_mocap].set(place))
        return PickPlaceState(refresh(m, d), place)

    def randomize(self, m: mjx.Model, state: PickPlaceState, draw):
        """The arm's randomization, plus the cube's mass (and inertia, so its density scales)."""
        m, state = super().randomize(m, state, draw)
        b, s = self._cube_body, draw.object_mass_scale
        return m.replace(body_mass=m.body_mass.at[b].multiply(s), body_inertia=m.body_inertia.at[b].multiply(s)), state

    def observe(self, state: PickPlaceState) -> dict[str, jax.Array]:
        d = state.data
        q = self._cube_qpos
        fingers = d.qpos[jnp.array(self._finger_qpos)]
        return self.arm_obs(d) | {
            "target_pos": state.place_pos,
            "object_pos": d.qpos[q:q + 3],
            "object_quat": d.qpos[q + 3:q + 7],
            "gripper_pos": fingers.sum()[None],
            "place_pos": state.place_pos,
        }

    def step(self, m: mjx.Model, state: PickPlaceState, action: jax.Array):
        """Apply one control step; return the new state, the reward and the success flag."""
        ctrl = self.arm.ctrl_from_action(m, state.data, action)
        data = self.arm.physics_step(m, state.data, ctrl)
        new = PickPlaceState(data, state.place_pos)
        obs = self.observe(new)
        to_place = jnp.linalg.norm(obs["object_pos"] - state.place_pos)
        reward = -(jnp.linalg.norm(obs["ee_pos"] - obs["object_pos"]) + to_place)
        success = (to_place < self.config.success_threshold) & (obs["gripper_pos"][0] > self.config.release_opening)
        return new, reward, success

    def dmp_goal(self, obs: dict) -> jax.Array:
        """The `dmp` policy reaches for the point above the cube where the expert's approach ends."""
        return obs["object_pos"] + jnp.array([0.0, 0.0, expert.APPROACH_HEIGHT])

    def _policies(self) -> dict[str, policies.Policy]:
        if self.config.expert_version == 1:
            scripted = policies.Policy(
                init=expert.init,
                act=lambda s, key, obs, params: expert.act(s, obs["ee_pos"], obs["object_pos"], obs["place_pos"]),
            )
        else:
            scripted = policies.stateless(lambda key, obs: expert.act_markov(
                obs["ee_pos"], obs["object_pos"], obs["place_pos"], obs["gripper_pos"]))
        return super()._policies() | {"scripted": scripted}
