"""Executing planned actions in gym-pusht, on the CPU. No JAX here: this runs in worker processes.

A sample's execution depends only on its reset seed and its planned actions, never on which process ran it
or what ran before: every `reset(seed=...)` rebuilds the pymunk space from scratch.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mjxgen.pusht.compat import patch_pymunk

ENV_ID = "gym_pusht/PushT-v0"
ENV_KWARGS = {"obs_type": "state", "render_mode": "rgb_array"}
# gym-pusht steps its PD controller and pymunk 10 times per action at 10 Hz (env.dt = 0.01 s).
CONTROL_HZ = 10
CONTROL_DT = 1.0 / CONTROL_HZ
WORKSPACE = 512.0  # pixels: the action space is Box(0, 512, (2,))
# gym-pusht 0.1.8's reset: agent position integers in [AGENT_RESET_LOW, AGENT_RESET_HIGH).
AGENT_RESET_LOW, AGENT_RESET_HIGH = 50, 450
VIDEO_FPS = CONTROL_HZ  # gym-pusht's render_fps
# As the reference: 680x680 frames are edge-padded to a multiple of ffmpeg's 16-pixel macro block (688x688),
# so ffmpeg neither resizes nor warns.
VIDEO_MACRO_BLOCK = 16
INFO_KEYS = ("pos_agent", "vel_agent", "block_pose", "goal_pose", "n_contacts", "is_success", "coverage")


def versions() -> dict[str, str]:
    """gym-pusht's reset distribution differs between releases, so every file records these."""
    out = {}
    for name in ("gym-pusht", "pymunk", "gymnasium", "shapely"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def agent_reset_position(seed: int) -> np.ndarray:
    """Where `env.reset(seed=seed)` puts the agent (pixels), without building an env.

    gym-pusht 0.1.8 draws the agent's x then y with `np_random.integers(50, 450)` from gymnasium's seeded
    generator; tests check this against a real reset."""
    from gymnasium.utils import seeding

    rng, _ = seeding.np_random(int(seed))
    return np.array([rng.integers(AGENT_RESET_LOW, AGENT_RESET_HIGH), rng.integers(AGENT_RESET_LOW, AGENT_RESET_HIGH)], np.float64)


def make_env():
    import gymnasium as gym
    import gym_pusht  # noqa: F401  (registers the env)

    patch_pymunk()
    return gym.make(ENV_ID, **ENV_KWARGS)


def to_jsonable(x: Any) -> Any:
    """Info values (NumPy arrays and scalars, pymunk Vec2d) as plain JSON types."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


class Task(NamedTuple):
    index: int
    reset_seed: int
    actions: np.ndarray  # (W, 2) float32 planned targets in pixels (the DMP's waypoints), in the action space
    video_path: str | None


class Executed(NamedTuple):
    """One sample's rollout in the env."""

    index: int
    actions: np.ndarray  # (n, 2) float32 actions actually sent (n <= W: the episode may end early)
    observations: np.ndarray  # (n + 1, 5) float32: the reset observation, then one per step
    rewards: np.ndarray  # (n,) float32
    terminated: bool
    truncated: bool
    reset_info: dict
    step_infos: list[dict]
    video_path: str | None


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        _ENV = make_env()
    return _ENV


def close_env() -> None:
    global _ENV
    if _ENV is not None:
        _ENV.close()
        _ENV = None


def execute(task: Task) -> Executed:
    """Reset with the sample's seed and send its actions until they run out or the episode ends.

    A video has one frame per step, after the step (as the reference's; no frame of the reset state)."""
    env = _env()
    obs, reset_info = env.reset(seed=int(task.reset_seed))
    observations, rewards, infos, frames = [obs], [], [], []
    terminated = truncated = False
    sent = 0
    for action in task.actions:
        obs, reward, terminated, truncated, info = env.step(np.asarray(action, np.float64))
        sent += 1
        observations.append(obs)
        rewards.append(reward)
        infos.append(to_jsonable(info))
        if task.video_path:
            frames.append(env.render())
        if terminated or truncated:
            break
    if task.video_path:
        write_video(task.video_path, frames)
    return Executed(
        index=task.index,
        actions=np.asarray(task.actions[:sent], np.float32),
        observations=np.asarray(observations, np.float32),
        rewards=np.asarray(rewards, np.float32),
        terminated=bool(terminated),
        truncated=bool(truncated),
        reset_info=to_jsonable(reset_info),
        step_infos=infos,
        video_path=task.video_path,
    )


def pad_frame(frame: np.ndarray, block: int = VIDEO_MACRO_BLOCK) -> np.ndarray:
    """Edge-pad height and width up to multiples of `block` (680 -> 688)."""
    h, w = frame.shape[:2]
    pad = ((0, -h % block), (0, -w % block)) + ((0, 0),) * (frame.ndim - 2)
    return np.pad(frame, pad, mode="edge")


def write_video(path: str, frames: list[np.ndarray]) -> None:
    import imageio.v2 as imageio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=VIDEO_FPS, codec="libx264", macro_block_size=VIDEO_MACRO_BLOCK) as w:
        for frame in frames:
            w.append_data(pad_frame(frame))


def json_dumps(x: Any) -> str:
    return json.dumps(to_jsonable(x), separators=(",", ":"))
