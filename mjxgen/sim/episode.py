"""One episode as pure functions of (seed, episode id): its start and its steps. The fixed-horizon rollout
(mjxgen.sim.rollout) and the streaming one (mjxgen.sim.stream) both run episodes through these, so an episode's data
depend only on (seed, id).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen.kernels import randomize


class Transition(NamedTuple):
    """One control step as a dataset stores it: the observation before the action, and what followed."""

    observations: dict[str, jax.Array]  # key -> (..., *obs_shape)
    qpos: jax.Array  # (..., nq) the full physics position before the action (for rendering; not stored)
    actions: jax.Array  # (..., action_dim)
    rewards: jax.Array  # (...,)
    successes: jax.Array  # (...,) bool: success reached by this step's action
    images: jax.Array | None = None  # (..., H, W, 3) uint8: the camera's image before the action (camera on)


class Step(NamedTuple):
    """One control step as the programs record it: what followed the action. The observation before step t is
    the one after step t - 1, and before step 0 the episode's start (mjxgen.sim.per_episode), so an episode's
    last row carries its final observation at no extra cost."""

    next_observations: dict[str, jax.Array]  # key -> (..., *obs_shape): the observation after the action
    next_qpos: jax.Array  # (..., nq) the physics position after the action (for rendering; not stored)
    actions: jax.Array  # (..., action_dim)
    rewards: jax.Array  # (...,)
    successes: jax.Array  # (...,) bool: success reached by this step's action
    next_image: jax.Array | None = None  # (..., H, W, 3) uint8: the camera's image after the action (camera on)


def episode_key(seed: jax.Array, episode_id: jax.Array) -> jax.Array:
    """The key of one episode: fold_in(key(seed), episode_id)."""
    return jax.random.fold_in(jax.random.key(seed), episode_id)


# fold_in(policy_key, INIT_KEY) draws the policy's episode parameters; steps use fold_in(policy_key, t), t < T.
INIT_KEY = 2**31 - 1
# fold_in(episode key, RANDOMIZE_KEY) draws the domain randomization, apart from every other stream.
RANDOMIZE_KEY = 2**31 - 2


class EpisodeStart(NamedTuple):
    """An episode at t = 0: what `start_episode` returns and `step_episode` carries on."""

    model: Any  # mjx.Model: this episode's model (its randomized fields are batched leaves under vmap)
    state: Any  # the env state after reset and randomization
    policy_state: Any
    policy_key: jax.Array  # step t acts with fold_in(policy_key, t)
    draw: randomize.Draw


def start_episode(env, policy, m, seed, episode_id, randomization, params) -> EpisodeStart:
    """Reset, randomize and initialize the policy for one episode, from (seed, episode_id) alone."""
    key = episode_key(seed, episode_id)
    reset_key, policy_key = jax.random.split(key)
    draw = env.draw(jax.random.fold_in(key, RANDOMIZE_KEY), randomization)
    state = env.reset(m, reset_key)
    m, state = env.randomize(m, state, draw)
    policy_state = policy.init(jax.random.fold_in(policy_key, INIT_KEY), env.observe(state), params)
    _check_tree(policy, "init", policy_state)
    return EpisodeStart(model=m, state=state, policy_state=policy_state, policy_key=policy_key, draw=draw)


def step_episode(env, policy, m, state, policy_state, policy_key, t, params):
    """Step t of an episode: (state, policy_state, the Step recorded)."""
    obs = env.observe(state)
    out = policy.act(policy_state, jax.random.fold_in(policy_key, t), obs, params)
    action, policy_state = _checked_act(env, policy, out, policy_state)
    state, reward, success = env.step(m, state, action)
    return state, policy_state, Step(next_observations=env.observe(state), next_qpos=state.data.qpos, actions=action,
                                     rewards=reward, successes=success)


def record(policy, policy_state) -> dict:
    """What the policy stores per episode ({} for a policy without `record`)."""
    rec = getattr(policy, "record", None)
    if rec is None:
        return {}
    out = rec(policy_state)
    if not (isinstance(out, dict) and all(isinstance(k, str) for k in out)):
        raise TypeError(f"policy {policy_name(policy)}: record(state) must return a dict of name -> array, got "
                        f"{type(out).__name__}")
    _check_tree(policy, "record", out)
    return out


def policy_name(policy) -> str:
    return getattr(policy, "name", type(policy).__name__)


def _checked_act(env, policy, out, state):
    """act's result, checked when the rollout is traced (shapes are static then, so this costs nothing per step):
    (action, state), the action a floating (env.action_size,) array, the state shaped as the one act was given."""
    name = policy_name(policy)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"policy {name}: act(state, key, obs, params) must return (action, state), got "
                        f"{type(out).__name__}")
    action, new_state = out
    shape, dtype = np.shape(action), jnp.result_type(action)
    expected = (env.action_size,)
    if shape != expected or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"policy {name}: act must return a floating action of shape {expected} for {env.name}, "
                        f"got {dtype.name}{list(shape)}")
    spec = lambda tree: jax.tree.map(lambda x: (np.shape(x), jnp.result_type(x).name), tree)  # noqa: E731
    if jax.tree.structure(new_state) != jax.tree.structure(state) or spec(new_state) != spec(state):
        raise TypeError(f"policy {name}: act must return its state as it was given (the structure, shapes and dtypes "
                        f"init made), got {spec(new_state)} for {spec(state)}")
    return action, new_state


def _check_tree(policy, method: str, tree) -> None:
    """Every leaf of what init or record returned is an array or a number (no strings, no objects)."""
    bad = [type(x).__name__ for x in jax.tree.leaves(tree)
           if not isinstance(x, (jax.Array, np.ndarray, np.generic, bool, int, float, complex))]
    if bad:
        raise TypeError(f"policy {policy_name(policy)}: {method} must return arrays (a pytree of them), got a "
                        f"{bad[0]}")


def resolve_policy(env, policy) -> tuple[Any, str]:
    """(the policy, its label): a policy name of env, or any hashable object with init/act (and record)."""
    if isinstance(policy, str):
        return env.policy(policy), policy
    if not (callable(getattr(policy, "init", None)) and callable(getattr(policy, "act", None))):
        raise TypeError(f"policy must be a policy name of {env.name} ({', '.join(env.policy_names)}) or an object "
                        f"with init(key, obs, params) and act(state, key, obs, params); got {type(policy).__name__}")
    try:
        hash(policy)
    except TypeError:
        raise TypeError(f"a policy object must be hashable (it keys the compiled rollout): {type(policy).__name__} "
                        "is not; use a frozen dataclass or a plain object") from None
    return policy, policy_name(policy)
