"""Planning PushT samples: reset seeds, random planar DMPs and their integration, in batched JAX calls.

Sample i's randomness comes from fold_in(key(seed), i) alone, so it does not depend on how many samples
are generated, on the chunking, or on the number of worker processes that execute it.

Coordinates: pixels are gym-pusht's [0, 512]^2 workspace (its action space); normalized coordinates are
pixels / 512 * 2 - 1, in [-1, 1]. The DMP is integrated in normalized coordinates.

Time: the env acts at 10 Hz. The DMP is integrated with DMP_DT_SUBSTEPS substeps per control step and
down-sampled to the control instants t_k = k * 0.1 s, k = 0..N with N = ceil(duration / 0.1). The planned
action k (sent at t_k) is the DMP position at t_{k+1}, clipped to the action space.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kernels import dmp
from pusht.execute import AGENT_RESET_HIGH, AGENT_RESET_LOW, CONTROL_DT, WORKSPACE, agent_reset_position

DMP_DT_SUBSTEPS = 10  # fine integration substeps per 0.1 s control step
DMP_DT = CONTROL_DT / DMP_DT_SUBSTEPS  # 0.01 s, the same as gym-pusht's physics step
DURATION_RANGE = (2.0, 6.0)  # s: 20 to 60 control steps, well inside PushT's 300-step limit
STIFFNESS_RANGE = (50.0, 300.0)  # K; damping is critical, D = 2 sqrt(K)
GOAL_RANGE_PIXELS = (float(AGENT_RESET_LOW), float(AGENT_RESET_HIGH))  # goals where the agent can start
MAX_CONTROL_STEPS = math.ceil(DURATION_RANGE[1] / CONTROL_DT)
CHUNK = 4096  # samples per compiled planning call (one shape, padded)


def to_normalized(pixels):
    return pixels / WORKSPACE * 2.0 - 1.0


def to_pixels(normalized):
    return (normalized + 1.0) / 2.0 * WORKSPACE


def control_steps(duration) -> int:
    """N = ceil(duration / 0.1 s): the number of planned actions."""
    return int(math.ceil(float(duration) / CONTROL_DT - 1e-6))


@jax.jit
def _reset_seeds(seed, ids):
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(ids)
    # The first of two subkeys seeds env.reset; the second draws the DMP.
    return jax.vmap(lambda k: jax.random.randint(jax.random.split(k)[0], (), 0, 2**31 - 1))(keys)


@functools.partial(jax.jit, static_argnames="scale_forcing")
def _plan(seed, ids, start_normalized, scale_forcing: bool):
    low, high = to_normalized(jnp.float32(GOAL_RANGE_PIXELS[0])), to_normalized(jnp.float32(GOAL_RANGE_PIXELS[1]))

    def one(i, start):
        key = jax.random.split(jax.random.fold_in(jax.random.key(seed), i))[1]
        params = dmp.sample_params(key, start, low, high, DURATION_RANGE, STIFFNESS_RANGE)
        fine = dmp.integrate(params, DMP_DT, MAX_CONTROL_STEPS * DMP_DT_SUBSTEPS, scale_forcing)
        return params, dmp.downsample(fine, DMP_DT_SUBSTEPS)

    return jax.vmap(one)(ids, start_normalized)


class Plan(NamedTuple):
    """Sample i's DMP, down-sampled to the control instants (rows k = 0..N)."""

    index: int
    reset_seed: int
    params: dmp.DMPParams  # NumPy leaves, normalized units
    timestamps: np.ndarray  # (N + 1,)
    waypoints_normalized: np.ndarray  # (N + 1, 2)
    velocity_normalized: np.ndarray  # (N + 1, 2)
    forcing_normalized: np.ndarray  # (N + 1, 2)
    phase: np.ndarray  # (N + 1,)

    @property
    def n_actions(self) -> int:
        return len(self.timestamps) - 1

    def actions_pixels(self) -> np.ndarray:
        """(N, 2) float32: the targets sent to the env, DMP positions at t_1..t_N clipped to [0, 512]."""
        return np.clip(to_pixels(self.waypoints_normalized[1:]), 0.0, WORKSPACE).astype(np.float32)


def plan(seed: int, indices, scale_forcing: bool) -> list[Plan]:
    """Plans for the given sample indices: one compiled call per CHUNK samples (padded to a fixed shape)."""
    indices = np.asarray(indices, np.int64)
    out: list[Plan] = []
    for lo in range(0, len(indices), CHUNK):
        ids = indices[lo : lo + CHUNK]
        padded = np.concatenate([ids, np.repeat(ids[-1:], CHUNK - len(ids))]).astype(np.int32)
        seeds = np.asarray(_reset_seeds(jnp.uint32(seed), jnp.asarray(padded)))
        start = to_normalized(np.stack([agent_reset_position(s) for s in seeds[: len(ids)]]))
        start = np.concatenate([start, np.repeat(start[-1:], CHUNK - len(ids), axis=0)]).astype(np.float32)
        params, down = jax.device_get(_plan(jnp.uint32(seed), jnp.asarray(padded), jnp.asarray(start), scale_forcing))
        for j, i in enumerate(ids):
            p = jax.tree.map(lambda x: np.asarray(x[j]), params)
            rows = control_steps(p.duration) + 1
            out.append(
                Plan(
                    index=int(i),
                    reset_seed=int(seeds[j]),
                    params=p,
                    timestamps=np.asarray(down.t[j, :rows], np.float32),
                    waypoints_normalized=down.position[j, :rows],
                    velocity_normalized=down.velocity[j, :rows],
                    forcing_normalized=down.forcing[j, :rows],
                    phase=down.phase[j, :rows],
                )
            )
    return out
