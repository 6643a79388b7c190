"""Discrete dynamic movement primitives (Ijspeert et al. 2013) as pure JAX functions.

For each dimension, with duration tau, stiffness K and damping D (unit mass):

    tau * dz/dt = K (g - y) - D z + f(s)        tau * dy/dt = z
    tau * ds/dt = -alpha_s s,  s(0) = 1         so s(t) = exp(-alpha_s t / tau)
    f(s) = k * s * sum_i psi_i(s) w_i / sum_i psi_i(s)
    psi_i(s) = exp(-h_i (s - c_i)^2)

k = 1, or k = g - y0 per dimension when the forcing term is scaled by the goal displacement (seed 003's
`--scale-forcing`). D = 2 sqrt(K) is critical damping. The velocity dy/dt = z / tau.

Every function works on one DMP and vmaps over a batch of them; the number of basis functions is the
static leading dimension of `weights`. Nothing here touches I/O or an environment.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Seed 003's weight range: each RBF weight is drawn uniformly from [-WEIGHT_BOUND, WEIGHT_BOUND].
WEIGHT_BOUND = 60.0
# Basis functions per dimension (the usual default, e.g. pydmps).
N_BASIS = 10
# Canonical decay: s(tau) = exp(-ALPHA_S) = 0.018, so the forcing term has faded by the end of the motion.
ALPHA_S = 4.0


class DMPParams(NamedTuple):
    """One DMP (or a batch: a leading axis on every leaf). Positions are in the DMP's own units."""

    start: jax.Array  # (D,) y0
    goal: jax.Array  # (D,) g
    duration: jax.Array  # () tau, seconds
    stiffness: jax.Array  # () K
    damping: jax.Array  # () D
    alpha_s: jax.Array  # () canonical decay rate
    weights: jax.Array  # (n_basis, D) RBF weights


class DMPRollout(NamedTuple):
    """An integrated DMP: values at the times `t` (n,), one row per instant."""

    t: jax.Array  # (n,) seconds from the start
    position: jax.Array  # (n, D) y
    velocity: jax.Array  # (n, D) dy/dt
    phase: jax.Array  # (n,) canonical phase s
    forcing: jax.Array  # (n, D) f(s)


def basis(n_basis: int, alpha_s) -> tuple[jax.Array, jax.Array]:
    """RBF centres c_i = exp(-alpha_s i / (n-1)) (even in time) and widths h_i = n^1.5 / c_i / alpha_s (pydmps)."""
    i = jnp.arange(n_basis, dtype=jnp.float32)
    centres = jnp.exp(-alpha_s * i / max(n_basis - 1, 1))
    widths = n_basis**1.5 / centres / alpha_s
    return centres, widths


def canonical_phase(t, duration, alpha_s):
    """The closed form s(t) = exp(-alpha_s t / tau)."""
    return jnp.exp(-alpha_s * t / duration)


def forcing(params: DMPParams, s, scale_forcing: bool = False) -> jax.Array:
    """f(s) (D,): the normalized RBF mixture, gated by s, times 1 or the goal displacement g - y0."""
    centres, widths = basis(params.weights.shape[0], params.alpha_s)
    psi = jnp.exp(-widths * (s - centres) ** 2)
    mix = psi @ params.weights / jnp.maximum(psi.sum(), 1e-10)
    scale = params.goal - params.start if scale_forcing else 1.0
    return mix * s * scale


class DMPState(NamedTuple):
    """The integrator's state: position y, scaled velocity z = tau dy/dt, phase s."""

    y: jax.Array  # (D,)
    z: jax.Array  # (D,)
    s: jax.Array  # ()


def initial_state(params: DMPParams) -> DMPState:
    """At rest at the start, s = 1."""
    y0 = params.start.astype(jnp.float32)
    return DMPState(y0, jnp.zeros_like(y0), jnp.ones((), jnp.float32))


def step(params: DMPParams, state: DMPState, dt: float, scale_forcing: bool = False) -> tuple[DMPState, jax.Array]:
    """One semi-implicit Euler substep of dt seconds; also returns f(s) at the substep's start.

    The phase advances by its exact decay factor, so it equals the closed form up to float32 rounding
    (1e-5 relative after 400 substeps)."""
    f = forcing(params, state.s, scale_forcing)
    dz = (params.stiffness * (params.goal - state.y) - params.damping * state.z + f) / params.duration
    z = state.z + dt * dz
    y = state.y + dt * z / params.duration
    return DMPState(y, z, state.s * jnp.exp(-params.alpha_s * dt / params.duration)), f


def advance(params: DMPParams, state: DMPState, dt: float, n_steps: int, scale_forcing: bool = False) -> DMPState:
    """n_steps substeps: what a policy calls once per control step."""
    return jax.lax.fori_loop(0, n_steps, lambda _, st: step(params, st, dt, scale_forcing)[0], state)


def integrate(params: DMPParams, dt: float, n_steps: int, scale_forcing: bool = False) -> DMPRollout:
    """Integrate n_steps substeps of dt seconds; returns n_steps + 1 rows from t = 0.

    The motion may run past tau: after the duration the forcing term has faded and y settles on g.
    """

    def body(st, _):
        new, f = step(params, st, dt, scale_forcing)
        return new, (st.y, st.z / params.duration, st.s, f)  # the values at the substep's start

    last, rows = jax.lax.scan(body, initial_state(params), None, length=n_steps)
    final = (last.y, last.z / params.duration, last.s, forcing(params, last.s, scale_forcing))
    position, velocity, phase, f = (jnp.concatenate([r, x[None]]) for r, x in zip(rows, final))
    return DMPRollout(
        t=jnp.arange(n_steps + 1, dtype=jnp.float32) * dt,
        position=position,
        velocity=velocity,
        phase=phase,
        forcing=f,
    )


def downsample(rollout: DMPRollout, every: int) -> DMPRollout:
    """Every `every`-th row from t = 0: the values at the control instants, with their timestamps in `t`."""
    return jax.tree.map(lambda x: x[::every], rollout)


def sample_params(
    key: jax.Array,
    start: jax.Array,
    goal_low,
    goal_high,
    duration_range: tuple[float, float],
    stiffness_range: tuple[float, float],
    n_basis: int = N_BASIS,
    weight_bound: float = WEIGHT_BOUND,
    alpha_s: float = ALPHA_S,
) -> DMPParams:
    """Seed 003's draw: goal uniform in [goal_low, goal_high], duration and stiffness uniform in their ranges,
    critical damping D = 2 sqrt(K), weights uniform in [-weight_bound, weight_bound]. `start` is given (where
    the controlled point is). Vmap over keys and starts for a batch."""
    k_goal, k_tau, k_stiff, k_w = jax.random.split(key, 4)
    start = jnp.asarray(start, jnp.float32)
    dim = start.shape[-1]
    goal = jax.random.uniform(k_goal, (dim,), minval=jnp.asarray(goal_low), maxval=jnp.asarray(goal_high))
    duration = jax.random.uniform(k_tau, (), minval=duration_range[0], maxval=duration_range[1])
    stiffness = jax.random.uniform(k_stiff, (), minval=stiffness_range[0], maxval=stiffness_range[1])
    weights = jax.random.uniform(k_w, (n_basis, dim), minval=-weight_bound, maxval=weight_bound)
    return DMPParams(
        start=start,
        goal=goal,
        duration=duration,
        stiffness=stiffness,
        damping=2.0 * jnp.sqrt(stiffness),
        alpha_s=jnp.float32(alpha_s),
        weights=weights,
    )
