"""Discrete dynamic movement primitives as pure JAX functions, with the semantics of nsf_rl's PlanarDMP.

Per dimension, in the DMP's own units, with duration tau and stiffness K (alpha_z = K, beta_z = K / 4):

    z <- z + (alpha_z (beta_z (g - y) - z) + f) dt / tau        y <- y + z dt / tau
    s <- max(s - alpha_s s dt / tau, 0),  s = 1 at the start,   z = 0 at the start
    f = (psi / (sum(psi) + 1e-6)) @ W^T * s * k,   psi_i = exp(-h_i (s - c_i)^2)

Each step computes f from s before the step's update. k = 1, or k = g - y0 per dimension when the forcing
term is scaled by the goal displacement (seed 003's `--scale-forcing`). The centres c are
linspace(0, 1, n_basis) and h = 1 / spacing^2. W has shape (D, n_basis). In second-order form
tau^2 y'' = (K^2 / 4) (g - y) - K tau y' + f: critically damped for every K. z = tau dy/dt.

`DMPConfig` is the one description of a family of DMPs (how they are drawn and integrated) that PushT and
the arm's `dmp` policy share; each has its own instance and its own sampler (PushT draws with NumPy in
reference order, pusht/plan.py; the arm draws with JAX keys in the rollout, `sample_params`).

Every function works on one DMP and vmaps over a batch; the number of basis functions is the static last
dimension of `weights`. Nothing here touches I/O or an environment.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

PSI_EPS = 1e-6  # added to sum(psi) in the forcing term's normalization (the reference's constant)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DMPConfig:
    """A family of DMPs: the sampling ranges and the integration settings. Ranges are (low, high), uniform."""

    n_basis: int  # RBF basis functions per dimension
    alpha_s: float  # canonical decay rate: s = (1 - alpha_s dt / tau)^k after k steps
    duration_range: tuple[float, float]  # tau, s
    stiffness_range: tuple[float, float]  # K = alpha_z (beta_z = K / 4); the stored damping is 2 sqrt(K)
    weight_bound: float  # each weight uniform in [-weight_bound, weight_bound]
    substeps: int  # integration steps per control step
    scale_forcing: bool = False  # forcing times the goal displacement g - y0
    # The goal: uniform per axis in goal_range (absolute, in the sampler's units, e.g. PushT pixels), or
    # None: the task gives a goal point and the goal is uniform within +-goal_jitter of it per axis.
    goal_range: tuple[float, float] | None = None
    goal_jitter: float = 0.0
    # Path shaping for a bounded workspace (PushT), both off when None: recorded positions clipped to
    # `clip`, and the step length capped at max_step * linspace(1, max_step_decay, T)[i] (`shape_path`).
    clip: tuple[float, float] | None = None
    max_step: float | None = None
    max_step_decay: float = 1.0

    def __post_init__(self):
        for name in ("duration_range", "stiffness_range", "goal_range", "clip"):
            r = getattr(self, name)
            if r is not None and not (len(r) == 2 and r[0] <= r[1]):
                raise ValueError(f"{name} must be (low, high) with low <= high, got {r}")
            if r is not None:  # tuples, so that a config stays hashable (a static argument of jit)
                object.__setattr__(self, name, (float(r[0]), float(r[1])))
        if self.n_basis < 1 or self.substeps < 1:
            raise ValueError(f"n_basis and substeps must be positive, got {self.n_basis}, {self.substeps}")
        if self.duration_range[0] <= 0 or self.stiffness_range[0] <= 0 or self.weight_bound < 0:
            raise ValueError("durations and stiffnesses must be positive and weight_bound non-negative")


# nsf_rl's scripts/generate_random_dmp_dataset.py (seed 003): PushT's defaults. Its positions are in
# normalized workspace coordinates [-1, 1]^2; its goal range is in pixels (the draw, before normalizing).
PUSHT_REFERENCE = DMPConfig(
    n_basis=3,
    alpha_s=1.2,
    duration_range=(1.0, 4.0),
    stiffness_range=(5.0, 35.0),
    weight_bound=60.0,
    substeps=8,  # 0.1 s / 8 = 12.5 ms per step
    goal_range=(0.0, 512.0),
    clip=(-1.0, 1.0),
    max_step=0.36,  # 0.18 of the workspace's span of 2
    max_step_decay=0.4,
)


class DMPParams(NamedTuple):
    """One DMP (or a batch: a leading axis on every leaf). Positions are in the DMP's own units."""

    start: jax.Array  # (D,) y0
    goal: jax.Array  # (D,) g
    duration: jax.Array  # () tau, s
    stiffness: jax.Array  # () K = alpha_z
    alpha_s: jax.Array  # () canonical decay rate
    weights: jax.Array  # (D, n_basis) RBF weights


class DMPRollout(NamedTuple):
    """An integrated DMP: T points, point i after i steps (point 0 is the start)."""

    t: jax.Array  # (T,) i * dt, s
    position: jax.Array  # (T, D) y
    z: jax.Array  # (T, D) z = tau dy/dt (0 at point 0)
    phase: jax.Array  # (T,) s after the step (1 at point 0)
    forcing: jax.Array  # (T, D) f of the step that produced the point (0 at point 0)


class DMPState(NamedTuple):
    """The integrator's state: position y, scaled velocity z = tau dy/dt, phase s."""

    y: jax.Array  # (D,)
    z: jax.Array  # (D,)
    s: jax.Array  # ()


def basis(n_basis: int) -> tuple[jax.Array, jax.Array]:
    """RBF centres c = linspace(0, 1, n) (in s) and widths h = 1 / spacing^2 (1 for a single basis)."""
    centres = jnp.linspace(0.0, 1.0, n_basis, dtype=jnp.float32)
    spacing = 1.0 / (n_basis - 1) if n_basis > 1 else 1.0
    return centres, jnp.full((n_basis,), 1.0 / spacing**2, jnp.float32)


def forcing(params: DMPParams, s, scale_forcing: bool = False) -> jax.Array:
    """f(s) (D,): the normalized RBF mixture times s, times 1 or the goal displacement g - y0."""
    centres, widths = basis(params.weights.shape[-1])
    psi = jnp.exp(-widths * (s - centres) ** 2)
    f = params.weights @ (psi / (psi.sum() + PSI_EPS)) * s
    return f * (params.goal - params.start) if scale_forcing else f


def initial_state(params: DMPParams) -> DMPState:
    """At rest at the start, s = 1."""
    y0 = jnp.asarray(params.start, jnp.float32)
    return DMPState(y0, jnp.zeros_like(y0), jnp.ones((), jnp.float32))


def step(params: DMPParams, state: DMPState, dt: float, scale_forcing: bool = False) -> tuple[DMPState, jax.Array]:
    """One explicit Euler step of dt seconds (z first, then y with the new z, then s); also returns f."""
    f = forcing(params, state.s, scale_forcing)
    k = dt / params.duration
    K = params.stiffness
    z = state.z + (K * (K / 4.0 * (params.goal - state.y) - state.z) + f) * k
    y = state.y + z * k
    s = jnp.maximum(state.s - params.alpha_s * state.s * k, 0.0)
    return DMPState(y, z, s), f


def advance(params: DMPParams, state: DMPState, dt: float, n_steps: int, scale_forcing: bool = False) -> DMPState:
    """n_steps steps: what a policy calls once per control step."""
    return jax.lax.fori_loop(0, n_steps, lambda _, st: step(params, st, dt, scale_forcing)[0], state)


def integrate(params: DMPParams, dt: float, n_points: int, scale_forcing: bool = False) -> DMPRollout:
    """n_points points (n_points - 1 steps of dt seconds) from the start. The motion may run past tau."""

    def body(st, _):
        new, f = step(params, st, dt, scale_forcing)
        return new, (new.y, new.z, new.s, f)

    first = initial_state(params)
    _, rows = jax.lax.scan(body, first, None, length=n_points - 1)
    row0 = (first.y, first.z, first.s, jnp.zeros_like(first.y))
    position, z, phase, f = (jnp.concatenate([x[None], r]) for x, r in zip(row0, rows))
    return DMPRollout(t=jnp.arange(n_points, dtype=jnp.float32) * dt, position=position, z=z, phase=phase, forcing=f)


def downsample(rollout: DMPRollout, every: int) -> DMPRollout:
    """Every `every`-th point from point 0 (the control instants when every = substeps)."""
    return jax.tree.map(lambda x: x[::every], rollout)


def limit_steps(position: jax.Array, goal: jax.Array, n_points, max_step: float, decay: float) -> jax.Array:
    """Cap each step |p_i - p_{i-1}| at max_step * linspace(1, decay, T)[i], i = 1..T-2, in order (p_{i-1}
    already capped); the last point T-1 is the goal, or the capped step towards it. T = n_points may be traced
    and smaller than len(position): rows from T on are returned unchanged (padding)."""
    last = n_points - 1
    frac = jnp.maximum(last, 1).astype(jnp.float32)

    def body(prev, xs):
        i, p = xs
        target = jnp.where(i == last, goal, p)
        delta = target - prev
        norm = jnp.sqrt(jnp.sum(delta**2))
        limit = max_step * (1.0 + (decay - 1.0) * i / frac)
        capped = prev + delta * (limit / jnp.maximum(norm, 1e-30))
        new = jnp.where(i > last, p, jnp.where(norm > limit, capped, target))
        return new, new

    idx = jnp.arange(1, position.shape[0])
    _, rest = jax.lax.scan(body, position[0], (idx, position[1:]))
    return jnp.concatenate([position[:1], rest])


def shape_path(position: jax.Array, params: DMPParams, n_points, config: DMPConfig) -> jax.Array:
    """The recorded path in a bounded workspace (PushT): point 0 on the start, each point clipped to
    config.clip, the steps capped (`limit_steps`), clipped again, point 0 on the start again. Identity on an
    integrated path when clip and max_step are None."""
    lo, hi = config.clip if config.clip is not None else (-jnp.inf, jnp.inf)
    position = jnp.clip(position.at[0].set(params.start), lo, hi)
    if config.max_step is not None:
        position = limit_steps(position, params.goal, n_points, config.max_step, config.max_step_decay)
    return jnp.clip(position, lo, hi).at[0].set(params.start)


def sample_params(key: jax.Array, config: DMPConfig, start: jax.Array, goal: jax.Array) -> DMPParams:
    """The arm's draw, with JAX keys: the goal uniform within +-goal_jitter of `goal` per axis, duration,
    stiffness and weights (D, n_basis) uniform in config's ranges. `start` is where the controlled point is.
    (Seed 003's PushT draw is NumPy's, in the reference's order: mjxgen.pusht.plan.draw.)"""
    if config.goal_range is not None:
        raise ValueError("sample_params draws goals around a given point; this config has an absolute goal_range")
    k_goal, k_tau, k_stiff, k_w = jax.random.split(key, 4)
    start = jnp.asarray(start, jnp.float32)
    dim = start.shape[-1]
    goal = jnp.asarray(goal, jnp.float32) + jax.random.uniform(
        k_goal, (dim,), minval=-config.goal_jitter, maxval=config.goal_jitter
    )
    duration = jax.random.uniform(k_tau, (), minval=config.duration_range[0], maxval=config.duration_range[1])
    stiffness = jax.random.uniform(k_stiff, (), minval=config.stiffness_range[0], maxval=config.stiffness_range[1])
    weights = jax.random.uniform(k_w, (dim, config.n_basis), minval=-config.weight_bound, maxval=config.weight_bound)
    return DMPParams(start=start, goal=goal, duration=duration, stiffness=stiffness,
                     alpha_s=jnp.float32(config.alpha_s), weights=weights)
