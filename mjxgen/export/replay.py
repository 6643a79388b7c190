"""PushT camera frames, replayed: a PushT file stores no images, but a sample's rollout depends only on its reset seed
and its executed actions (mjxgen.pusht.execute), so resetting gym-pusht with the seed and sending the actions again
reproduces it, and gym-pusht renders each state on the way.

The frames are gym-pusht's own image observations (`obs_type="pixels_agent_pos"`, 96 x 96): the 512 x 512 canvas
drawn as for `render()`, resized with OpenCV's default (bilinear) interpolation, without `render()`'s action marker.
That is how the 96 x 96 images of Diffusion Policy's PushT data (LeRobot's `lerobot/pusht`) were made, and what
LeRobot's PushT env hands a policy. (`render()` gives 680 x 680 with a cross at the last action: resizing it to 96
would resample twice and keep the cross.)

Every replayed state is checked against the stored observations (agent position, block position and angle,
exactly, as float32): a replay that differs (another gym-pusht or pymunk release) is an error, never silent."""

from __future__ import annotations

import time

import numpy as np

from mjxgen.data.formats import DatasetFormatError
from mjxgen.pusht.execute import CONTROL_HZ, ENV_ID

IMAGE_SIZE = (96, 96)  # (H, W): gym-pusht's observation_height, observation_width defaults
ENV_KWARGS = {"obs_type": "pixels_agent_pos", "render_mode": "rgb_array", "observation_height": IMAGE_SIZE[0],
              "observation_width": IMAGE_SIZE[1]}
__all__ = ["CONTROL_HZ", "IMAGE_SIZE", "frames"]

_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        import gymnasium as gym
        import gym_pusht  # noqa: F401  (registers the env)

        from mjxgen.pusht.compat import patch_pymunk

        patch_pymunk()
        _ENV = gym.make(ENV_ID, **ENV_KWARGS)
    return _ENV


def _state(obs: dict, info: dict) -> np.ndarray:
    """The replayed state as the file stores it: agent x, y, block x, y, angle mod 2 pi (float32)."""
    block = np.asarray(info["block_pose"], np.float64)
    return np.array([*obs["agent_pos"], block[0], block[1], block[2] % (2 * np.pi)], np.float32)


def frames(path, name: str, reset_seed: int, actions: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, float]:
    """(the (n + 1, 96, 96, 3) uint8 frames of sample `name`: the reset state's, then one after each of its n
    actions; seconds taken). `stored` is its (n + 1, 5) observations, which the replay must reproduce."""
    env = _env()  # made once per process, not timed
    start = time.perf_counter()
    obs, info = env.reset(seed=int(reset_seed))
    out = [obs["pixels"]]
    states = [_state(obs, info)]
    for t, action in enumerate(actions):
        obs, _, terminated, truncated, info = env.step(np.asarray(action, np.float64))
        out.append(obs["pixels"])
        states.append(_state(obs, info))
        if (terminated or truncated) and t + 1 < len(actions):
            break
    states = np.asarray(states)
    if states.shape != stored.shape or not np.array_equal(states, np.asarray(stored, np.float32)):
        raise DatasetFormatError(f"{path}: replaying {name} in gym-pusht does not reproduce its stored observations "
                                 "(another gym-pusht or pymunk release than the one that wrote it?)")
    return np.asarray(out, np.uint8), time.perf_counter() - start


def close() -> None:
    global _ENV
    if _ENV is not None:
        _ENV.close()
        _ENV = None
