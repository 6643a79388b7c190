"""Planning PushT samples as nsf_rl's generate_random_dmp_dataset.py does: its draws, its DMP, its waypoints.

Draws (`draw`): one `numpy.random.default_rng(seed)` for the whole run and, for each sample in order, the
env's reset seed `integers(0, 1_000_000)`, the goal `uniform(0, 512, 2)` pixels (float32), the duration
`uniform(1, 4)` s, the stiffness `uniform(5, 35)` and the weights `uniform(-60, 60, (2, 3))` (float32), with
the ranges of `mjxgen.kernels.dmp.PUSHT_REFERENCE`. So a `--seed` gives the reference's parameters and reset seeds,
whatever the number of workers; a resumed run draws samples 0..done-1 again (cheap) to reach its first one.

The start is where `env.reset(seed)` puts the agent. The DMP runs in normalized coordinates
n = clip((p - 256) / 256, -1, 1) with T = max(2, ceil(duration / dmp_dt)) points, dmp_dt = 0.1 s / 8
(`mjxgen.kernels.dmp`, batched JAX calls), clipped to [-1, 1] and step-limited (`mjxgen.kernels.dmp.shape_path`).

Waypoints: the points 0, 8, 16, ... (one per 0.1 s control step) plus the last point T - 1 when it is off
that grid. Every waypoint, in pixels, is an action; the first is the start.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen.kernels import dmp
from mjxgen.pusht.execute import CONTROL_DT, WORKSPACE, agent_reset_position

RESET_SEED_HIGH = 1_000_000  # reset seeds are integers in [0, 1_000_000)
CHUNK = 4096  # samples per compiled integration call (one shape, padded)


def to_normalized(pixels) -> np.ndarray:
    """Pixels -> normalized workspace coordinates, float32, clipped to [-1, 1]."""
    half = np.float32(WORKSPACE / 2)
    return np.clip((np.asarray(pixels, np.float32) - half) / half, -1.0, 1.0)


def to_pixels(normalized) -> np.ndarray:
    """Normalized -> pixels, float32, clipped to the action space [0, 512]."""
    half = np.float32(WORKSPACE / 2)
    return np.clip(np.asarray(normalized, np.float32) * half + half, 0.0, WORKSPACE)


def dmp_dt(config: dmp.DMPConfig) -> float:
    """Seconds per DMP step: the 0.1 s control step over config.substeps (0.0125 s for the reference)."""
    return CONTROL_DT / config.substeps


def n_points(duration: float, config: dmp.DMPConfig) -> int:
    """T = max(2, ceil(duration / dmp_dt)), in float64 as the reference computes it."""
    return max(2, math.ceil(float(duration) / dmp_dt(config)))


def waypoint_indices(n: int, substeps: int) -> np.ndarray:
    """The points sent as actions: 0, substeps, 2 substeps, ... < n, plus n - 1 if it is not among them."""
    idx = np.arange(0, n, substeps)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


class Draws(NamedTuple):
    """Every sample's random parameters, in sample order (leading axis: the sample index)."""

    reset_seed: np.ndarray  # (N,) int64
    goal_pixels: np.ndarray  # (N, 2) float32
    duration: np.ndarray  # (N,) float64, s
    stiffness: np.ndarray  # (N,) float64
    weights: np.ndarray  # (N, 2, n_basis) float32, normalized units


def draw(seed: int, num_samples: int, config: dmp.DMPConfig) -> Draws:
    """The reference's draws for samples 0..num_samples-1: one generator, this order within each sample."""
    if config.goal_range is None:
        raise ValueError("PushT draws absolute goals: the DMP config needs a goal_range (pixels)")
    rng = np.random.default_rng(seed)
    seeds, goals, durations, stiffnesses, weights = [], [], [], [], []
    for _ in range(num_samples):
        seeds.append(int(rng.integers(0, RESET_SEED_HIGH)))
        goals.append(rng.uniform(*config.goal_range, size=2).astype(np.float32))
        durations.append(float(rng.uniform(*config.duration_range)))
        stiffnesses.append(float(rng.uniform(*config.stiffness_range)))
        weights.append(rng.uniform(-config.weight_bound, config.weight_bound, size=(2, config.n_basis)).astype(np.float32))
    return Draws(
        reset_seed=np.asarray(seeds, np.int64),
        goal_pixels=np.asarray(goals, np.float32).reshape(num_samples, 2),
        duration=np.asarray(durations, np.float64),
        stiffness=np.asarray(stiffnesses, np.float64),
        weights=np.asarray(weights, np.float32).reshape(num_samples, 2, config.n_basis),
    )


@functools.partial(jax.jit, static_argnames=("config", "length"))
def integrate_batch(config: dmp.DMPConfig, length: int, params: dmp.DMPParams, n: jax.Array) -> dmp.DMPRollout:
    """A batch of DMPs, `length` points each (padding past each one's n points), with the path shaped."""

    def one(p, n_i):
        r = dmp.integrate(p, dmp_dt(config), length, config.scale_forcing)
        return r._replace(position=dmp.shape_path(r.position, p, n_i, config))

    return jax.vmap(one)(params, n)


class Plan(NamedTuple):
    """Sample i: its draws and its DMP at the W waypoints (`waypoint_indices`)."""

    index: int
    reset_seed: int
    duration: float  # s
    stiffness: float  # K
    weights: np.ndarray  # (2, n_basis) float32
    start_pixels: np.ndarray  # (2,) float32: the agent after env.reset(seed=reset_seed)
    goal_pixels: np.ndarray  # (2,) float32
    n_points: int  # T
    timestamps: np.ndarray  # (W,) float32: waypoint index * dmp_dt
    waypoints_normalized: np.ndarray  # (W, 2) float32
    velocity_normalized: np.ndarray  # (W, 2) float32: z = tau dy/dt
    forcing_normalized: np.ndarray  # (W, 2) float32
    phase: np.ndarray  # (W,) float32: s at the waypoints (1 at the start)

    @property
    def start_normalized(self) -> np.ndarray:
        return to_normalized(self.start_pixels)

    @property
    def goal_normalized(self) -> np.ndarray:
        return to_normalized(self.goal_pixels)

    @property
    def n_actions(self) -> int:
        return len(self.timestamps)

    def actions_pixels(self) -> np.ndarray:
        """(W, 2) float32: the targets sent to the env, every waypoint in pixels, the first being the start."""
        return to_pixels(self.waypoints_normalized)


def plan(seed: int, num_samples: int, config: dmp.DMPConfig, first: int = 0, end: int | None = None) -> list[Plan]:
    """Plans for samples first..end-1 (end: num_samples by default); every sample's parameters are drawn, in
    order, to reach sample first's draws, as the reference's one generator does."""
    end = num_samples if end is None else end
    d = draw(seed, num_samples, config)
    length = n_points(config.duration_range[1], config)
    dt = dmp_dt(config)
    out: list[Plan] = []
    for lo in range(first, end, CHUNK):
        ids = np.arange(lo, min(lo + CHUNK, end))
        pad = np.concatenate([ids, np.repeat(ids[-1:], CHUNK - len(ids))])
        start_pixels = np.stack([np.clip(agent_reset_position(s), 0.0, WORKSPACE) for s in d.reset_seed[ids]])
        start_pixels = start_pixels.astype(np.float32)
        starts = np.concatenate([start_pixels, np.repeat(start_pixels[-1:], CHUNK - len(ids), axis=0)])
        npts = np.array([n_points(tau, config) for tau in d.duration[pad]], np.int32)
        params = dmp.DMPParams(
            start=jnp.asarray(to_normalized(starts)),
            goal=jnp.asarray(to_normalized(d.goal_pixels[pad])),
            duration=jnp.asarray(d.duration[pad], jnp.float32),
            stiffness=jnp.asarray(d.stiffness[pad], jnp.float32),
            alpha_s=jnp.full((CHUNK,), config.alpha_s, jnp.float32),
            weights=jnp.asarray(d.weights[pad]),
        )
        r = jax.device_get(integrate_batch(config, length, params, jnp.asarray(npts)))
        for j, i in enumerate(ids):
            w = waypoint_indices(int(npts[j]), config.substeps)
            out.append(
                Plan(
                    index=int(i),
                    reset_seed=int(d.reset_seed[i]),
                    duration=float(d.duration[i]),
                    stiffness=float(d.stiffness[i]),
                    weights=d.weights[i],
                    start_pixels=start_pixels[j],
                    goal_pixels=d.goal_pixels[i],
                    n_points=int(npts[j]),
                    timestamps=np.arange(length, dtype=np.float32)[w] * dt,
                    waypoints_normalized=np.asarray(r.position[j, w], np.float32),
                    velocity_normalized=np.asarray(r.z[j, w], np.float32),
                    forcing_normalized=np.asarray(r.forcing[j, w], np.float32),
                    phase=np.asarray(r.phase[j, w], np.float32),
                )
            )
    return out
