"""The reach env on native MuJoCo: one env, float64, stepped from Python.

Two uses: the seed-style baseline of the benchmarks (one env in a Python loop, the P-controller in NumPy),
and a replay reference. Stored actions applied here from the stored target reproduce an MJX episode's
states (tests/envs/test_native.py). The control law is the same code as in MJX (`Arm.next_ctrl` with NumPy).
"""

from __future__ import annotations

import mujoco
import numpy as np

from mjxgen.kernels import policies
from mjxgen.envs.reach import ReachEnv, ReachState


class NativeReach:
    """ReachEnv's dynamics, observations, reward and success on mujoco.MjData."""

    def __init__(self, env: ReachEnv, mj_model: mujoco.MjModel | None = None):
        self.env = env
        self.arm = env.arm
        self.model = env.mj_model if mj_model is None else mj_model
        self.data = mujoco.MjData(self.model)
        self._jacp = np.zeros((3, self.model.nv))
        self._target = np.zeros(3)
        self._target_mocap = self.model.body("target").mocapid[0]

    def reset(self, target_pos) -> dict[str, np.ndarray]:
        m, d = self.model, self.data
        mujoco.mj_resetDataKeyframe(m, d, self.arm.home_key)
        self._target = np.asarray(target_pos, np.float64)
        d.mocap_pos[self._target_mocap] = self._target
        mujoco.mj_forward(m, d)
        return self.observe()

    def observe(self) -> dict[str, np.ndarray]:
        """ReachEnv.observe on the MjData (it only indexes arrays), copied out of the live buffers."""
        obs = self.env.observe(ReachState(data=self.data, target_pos=self._target))
        return {k: np.array(v, copy=True) for k, v in obs.items()}

    def step(self, action) -> tuple[float, bool]:
        """One control step, as ReachEnv.step: IK, `substeps` mj_step calls, kinematics refresh."""
        m, d, arm = self.model, self.data, self.arm
        mujoco.mj_jacSite(m, d, self._jacp, None, arm.tcp_site)
        q = d.qpos[arm.arm_qpos_adr]
        d.ctrl[:] = arm.next_ctrl(self._jacp[:, arm.arm_dof_adr], q, d.ctrl, np.asarray(action, np.float64), np)
        for _ in range(self.env.substeps):
            mujoco.mj_step(m, d)
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        dist = float(np.linalg.norm(d.site_xpos[arm.tcp_site] - self._target))
        return -dist, dist < self.env.config.success_threshold

    def replay(self, target_pos, actions) -> dict[str, np.ndarray]:
        """Apply recorded actions (L, 4) from the reset state; return the observations (L, ...) before each."""
        obs = [self.reset(target_pos)]
        for a in actions[:-1]:
            self.step(a)
            obs.append(self.observe())
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}

    def run_scripted(self, target_pos, max_steps: int) -> int:
        """Seed 000's loop: the P-controller in NumPy until success or max_steps; returns the length."""
        obs = self.reset(target_pos)
        for t in range(max_steps):
            action = policies.p_controller(obs["ee_pos"], obs["target_pos"], xp=np)
            _, success = self.step(action)
            if success:
                return t + 1
            obs = self.observe()
        return max_steps
