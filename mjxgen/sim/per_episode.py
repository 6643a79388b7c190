"""Per-episode values, recomputed for finished ids rather than streamed with every step: the policy's record,
the randomization draw, the mocap bodies (the targets, for rendering) and the episode's start (its first
observation and physics position: the programs record what follows each action, mjxgen.sim.episode.Step). They
depend only on (seed, id), so one jitted batch of `start_episode` (a reset per episode) gives them exactly;
streaming them would transfer them with every step of every slot.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen.render import camera as render_camera
from mjxgen.sim import programs
from mjxgen.sim.episode import record, resolve_policy, start_episode
from mjxgen.sim.stream import model_on, ranges

# Episodes per call of the per-episode values program (one compiled shape for every batch size).
VALUES_CHUNK = 64


@functools.cache
def _compiled_values(env, policy, camera: render_camera.Camera | None = None):
    """The jitted values program: (m, seed, ids, randomization, params) -> values. For a policy name without
    params, an exported program kept on disk (mjxgen.sim.programs), as the segment program."""
    name = policy
    policy, _ = resolve_policy(env, policy)

    def run(m, seed, ids, randomization, params):
        s = jax.vmap(lambda i: start_episode(env, policy, m, seed, i, randomization, params))(ids)
        out = {"policy_record": record(policy, s.policy_state), "randomization": s.draw._asdict(),
               "mocap_pos": s.state.data.mocap_pos, "initial_observations": jax.vmap(env.observe)(s.state),
               "initial_qpos": s.state.data.qpos}
        if camera is not None:
            out["initial_image"] = render_camera.frames(env, camera, s.state.data.geom_xpos, s.state.data.geom_xmat,
                                                        s.draw)
        return out

    return programs.jit(run, kind="values", env=env, policy=name, params_at=4,
                        camera=None if camera is None else dataclasses.asdict(camera))


def episode_values(env, policy, ids: np.ndarray, *, seed: int, randomization=None, params=None, device=None,
                   camera: render_camera.Camera | None = None) -> dict:
    """The per-episode values of episodes ids (E,), as device arrays (dispatched, not awaited): policy_record
    {field: (E, ...)}, randomization {field: (E, ...)}, mocap_pos (E, nmocap, 3), initial_observations
    {key: (E, ...)}, initial_qpos (E, nq) and, with a camera, initial_image (E, H, W, 3) uint8, on `device`
    (default: this process's first)."""
    fn = _compiled_values(env, policy, camera)
    device = device or jax.local_devices()[0]
    put = functools.partial(jax.device_put, device=device)
    m, seed, dr, params = model_on(env, device), put(jnp.uint32(seed)), put(ranges(randomization)), put(params)
    n = len(ids)
    padded = np.resize(np.asarray(ids, np.int32), -(-n // VALUES_CHUNK) * VALUES_CHUNK)
    parts = [fn(m, seed, put(c), dr, params) for c in padded.reshape(-1, VALUES_CHUNK)]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[:n], *parts)
