"""The arm that every task shares: model loading, Cartesian action -> joint servo targets, physics substeps.

Tasks (reach, pick_place) build on `Arm`. It is static: every id is looked up once here, never in traced
code. Its methods are pure functions of (model, data, ...) that the rollout traces inside one jit.

Action layout (4-D, as seed 000): action[:3] is a Cartesian end-effector velocity command in [-1, 1]^3,
scaled to at most `max_ee_step` metres per control step and turned into joint targets by one
damped-least-squares IK step on MJX's Jacobian; action[3] in [-1, 1] is the gripper: -1 closed, +1 open.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from jax import lax
from mujoco import mjx

from mjxgen.envs.physics import refresh, step
from mjxgen.kernels import dmp, ik, policies, randomize

N_ARM_JOINTS = 7
ACTION_DIM = 4
FINGER_OPEN = 0.04  # m: each finger's opening at gripper command +1 (0 at -1)


# The `dmp` policy's DMPs: a random Cartesian DMP per episode, from the end effector to the task's goal point.
# Same config type and kernel as PushT (mjxgen.kernels.dmp.PUSHT_REFERENCE), with ranges that suit the arm:
# - stiffness K in [14, 35]: a spring K^2/4 of 49 to 306 with damping K (the arm's earlier 50 to 300). It
#   settles (2%) in about 11.6 tau / K, at most 2.5 s, within an episode; the reference's K = 5 needs 7 s.
# - alpha_s = 4: s(tau) = 0.018, so the forcing term has faded by the end of the motion (1.2 leaves 0.30).
# - 10 basis functions: a richer path shape per axis than the reference's 3.
# - forcing scaled by the goal displacement (m), so detours scale with the motion; no workspace clipping and
#   no step limiter (the P-controller and the arm's 0.5 m/s limit bound the motion).
ARM_DMP = dmp.DMPConfig(
    n_basis=10,
    alpha_s=4.0,
    duration_range=(1.5, 3.0),  # s; long enough that the arm's 0.5 m/s limit rarely binds
    stiffness_range=(14.0, 35.0),
    weight_bound=60.0,
    substeps=10,  # integration steps per control step (2 ms at 50 Hz)
    scale_forcing=True,
    goal_jitter=0.0,  # m: the goal is the task's goal point exactly
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArmConfig:
    """Control settings shared by the arm tasks."""

    substeps: int = 4  # physics steps per control step: 4 x 5 ms = 20 ms, a 50 Hz control rate
    max_ee_step: float = 0.01  # m of end-effector displacement per control step at |action| = 1 (0.5 m/s)
    ik_damping: float = 0.05  # DLS damping (m); keeps the IK step bounded near singularities
    nullspace_gain: float = 0.05  # per step, pulls the redundant joint toward the home posture
    dmp_policy: dmp.DMPConfig = ARM_DMP  # the `dmp` policy's DMPs (ranges, basis, substeps)


def load_scene(filename: str) -> tuple[mujoco.MjModel, str]:
    """Compile a scene from mjxgen/assets and return the model and its self-contained XML."""
    path = resources.files("mjxgen.envs") / "assets" / filename
    with resources.as_file(path) as p:
        spec = mujoco.MjSpec.from_file(str(p))
    model = spec.compile()
    return model, spec.to_xml()


class Arm:
    """The Panda-like arm inside a compiled scene: ids, home state, and the control step."""

    def __init__(self, mj_model: mujoco.MjModel, config: ArmConfig = ArmConfig()):
        self.config = config
        self.mj_model = mj_model
        self.tcp_site = mj_model.site("tcp").id
        self.tcp_body = int(mj_model.site_bodyid[self.tcp_site])
        self.home_key = mj_model.key("home").id
        self.arm_qpos_adr = np.array([mj_model.joint(f"joint{i + 1}").qposadr[0] for i in range(N_ARM_JOINTS)])
        self.arm_dof_adr = np.array([mj_model.joint(f"joint{i + 1}").dofadr[0] for i in range(N_ARM_JOINTS)])
        # next_ctrl relies on this actuator order: joints 1-7, then the two fingers.
        expected = [f"actuator{i + 1}" for i in range(N_ARM_JOINTS)] + ["finger1", "finger2"]
        actual = [mj_model.actuator(i).name for i in range(mj_model.nu)]
        if actual != expected:
            raise ValueError(f"scene actuators must be exactly {expected}, got {actual}")
        self.ctrl_low = mj_model.actuator_ctrlrange[:, 0].astype(np.float32)
        self.ctrl_high = mj_model.actuator_ctrlrange[:, 1].astype(np.float32)
        self.q_home = mj_model.key_qpos[self.home_key][self.arm_qpos_adr].astype(np.float32)
        self.dt = float(mj_model.opt.timestep) * config.substeps  # control period (s)

    def home_data(self) -> mjx.Data:
        """MJX data at the home keyframe, with kinematics computed."""
        d = mujoco.MjData(self.mj_model)
        mujoco.mj_resetDataKeyframe(self.mj_model, d, self.home_key)
        mujoco.mj_forward(self.mj_model, d)
        return mjx.put_data(self.mj_model, d, device=jax.local_devices()[0])  # see ArmTask.__init__

    def tcp_pos(self, d: mjx.Data) -> jax.Array:
        """End-effector (tool centre point) position (3,)."""
        return d.site_xpos[self.tcp_site]

    def joint_pos(self, d: mjx.Data) -> jax.Array:
        return d.qpos[self.arm_qpos_adr]

    def joint_vel(self, d: mjx.Data) -> jax.Array:
        return d.qvel[self.arm_dof_adr]

    def next_ctrl(self, jacp, q, ctrl, action, xp=jnp):
        """New actuator targets (nu,) from a 4-D action: one DLS IK step for the arm, the gripper opening.

        jacp (3, 7) is the TCP's Jacobian over the arm joints, q (7,) the arm's joint angles and ctrl (nu,)
        the current targets. `xp` is jax.numpy (MJX) or NumPy (native MuJoCo, mjxgen.envs.native).
        """
        cfg = self.config
        action = xp.clip(action, -1.0, 1.0)
        dq = ik.dls_step(jacp, action[:3] * cfg.max_ee_step, q, self.q_home, cfg.ik_damping, cfg.nullspace_gain, xp)
        # Targets are integrated (not q + dq), so the servo's tracking lag does not shrink each step.
        opening = (action[3] + 1.0) * 0.5 * FINGER_OPEN
        ctrl = xp.concatenate([ctrl[:N_ARM_JOINTS] + dq, xp.full((2,), opening, dtype=dq.dtype)])
        return xp.clip(ctrl, self.ctrl_low, self.ctrl_high)

    def ctrl_from_action(self, m: mjx.Model, d: mjx.Data, action: jax.Array) -> jax.Array:
        """next_ctrl on MJX data, with MJX's Jacobian."""
        jacp, _ = mjx.jac(m, d, self.tcp_pos(d), self.tcp_body)  # (nv, 3)
        return self.next_ctrl(jacp[self.arm_dof_adr].T, self.joint_pos(d), d.ctrl, action)

    def physics_step(self, m: mjx.Model, d: mjx.Data, ctrl: jax.Array) -> mjx.Data:
        """Hold ctrl for `substeps` physics steps (`step`), then refresh kinematics so positions match qpos.

        d's kinematics must be current (computed from its qpos), as they are after reset and after every
        physics_step: the first substep reuses them instead of computing them again.
        """
        d = step(m, d.replace(ctrl=ctrl), kinematics_current=True)
        d = lax.fori_loop(1, self.config.substeps, lambda _, x: step(m, x), d)
        return refresh(m, d)


class ArmTask:
    """What the arm tasks share: the compiled scene, the Arm, the MJX model and the home state, the 4-D action.

    Subclasses set `name`, `config_class`, `scene` and `policy_names`, take a config with an `arm: ArmConfig`
    field, define reset, observe and step as pure functions of (model, state, ...), and extend _policies.
    Together they satisfy mjxgen.envs.Env.
    """

    scene: str
    action_size = ACTION_DIM  # the 4-D action of the module docstring

    def __init__(self, config):
        self.config = config
        self.mj_model, self.xml = load_scene(self.scene)
        self.arm = Arm(self.mj_model, config.arm)
        # On this process's first device: MJX's default is jax.devices()[0], which in a multi-process run
        # (mjxgen.runtime.distributed) belongs to process 0. The same for the data (Arm.home_data).
        self.mjx_model = mjx.put_model(self.mj_model, device=jax.local_devices()[0])
        self._data0 = self.arm.home_data()

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return self.config.arm.substeps

    @functools.cached_property
    def obs_shapes(self) -> dict[str, tuple[int, ...]]:
        """Observation key -> shape, in observe's order (the stored order), from observe on a reset state (a
        trace of reset; mjxgen.sim.programs.obs_shapes keeps it on disk for later processes)."""
        keys = []

        def shapes(key):
            obs = self.observe(self.reset(self.mjx_model, key))
            keys.extend(obs)  # eval_shape returns dicts with sorted keys: keep observe's order apart
            return tuple(obs.values())

        out = jax.eval_shape(shapes, jax.random.key(0))
        return {k: tuple(s.shape) for k, s in zip(keys, out)}

    def policy(self, name: str) -> policies.Policy:
        """The named policy (mjxgen.kernels.policies.Policy); a ValueError names the choices."""
        if name not in self.policy_names:
            raise ValueError(f"unknown policy {name!r} for {self.name}; choose one of {', '.join(self.policy_names)}")
        return self._policies()[name]

    def _policies(self) -> dict[str, policies.Policy]:
        """Every task's random policy (uniform on [-1, 1]^4) and DMP policy. Subclasses add theirs."""
        cfg = self.config.arm
        c = cfg.dmp_policy

        def sample(key, obs):
            return dmp.sample_params(key, c, obs["ee_pos"], self.dmp_goal(obs))

        return {
            "random": policies.stateless(lambda key, obs: policies.random_action(key, ACTION_DIM)),
            "dmp": policies.dmp_tracker(sample, c, self.arm.dt, cfg.max_ee_step),
        }

    def dmp_goal(self, obs: dict) -> jax.Array:
        """Where the `dmp` policy's DMP ends (before jitter): the task's target point."""
        return obs["target_pos"]

    def draw(self, key: jax.Array, ranges: randomize.RandomizationConfig) -> randomize.Draw:
        """One episode's randomization draw (`ranges` as float32 arrays; randomize.OFF for none)."""
        return randomize.sample(key, ranges, jnp.asarray(self.mj_model.light_dir[0]), N_ARM_JOINTS, self.mj_model.ngeom)

    def randomize(self, m: mjx.Model, state, draw: randomize.Draw):
        """Apply one episode's domain randomization: (its model, its start state). The model's randomized
        fields become batched leaves under the rollout's vmap; everything else stays shared."""
        n, gain = N_ARM_JOINTS, draw.actuator_gain_scale
        m = m.replace(
            geom_friction=m.geom_friction.at[:, 0].multiply(draw.friction_scale),
            pair_friction=m.pair_friction.at[:, :2].multiply(draw.friction_scale),
            dof_damping=m.dof_damping.at[self.arm.arm_dof_adr].multiply(draw.joint_damping_scale),
            actuator_gainprm=m.actuator_gainprm.at[:n, 0].multiply(gain),  # kp
            actuator_biasprm=m.actuator_biasprm.at[:n, 1:3].multiply(gain),  # -kp, -kv
        )
        d = state.data
        d = d.replace(qpos=d.qpos.at[self.arm.arm_qpos_adr].add(draw.joint_offset),
                      ctrl=d.ctrl.at[:n].add(draw.joint_offset))
        # Recompute kinematics only for a real offset, so randomization off leaves the start state untouched.
        d = lax.cond(jnp.any(draw.joint_offset != 0), lambda x: refresh(m, x), lambda x: x, d)
        return m, state._replace(data=d)

    def arm_obs(self, d: mjx.Data) -> dict[str, jax.Array]:
        """The observations every arm task has: joint_pos (7), joint_vel (7), ee_pos (3)."""
        return {"joint_pos": self.arm.joint_pos(d), "joint_vel": self.arm.joint_vel(d), "ee_pos": self.arm.tcp_pos(d)}

    def config_dict(self) -> dict:
        """The task settings, for the dataset's metadata."""
        return dataclasses.asdict(self.config) | {
            "control_dt": self.arm.dt,
            "physics_dt": float(self.mj_model.opt.timestep),
        }
