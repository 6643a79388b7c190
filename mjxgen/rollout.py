"""Batched rollouts: rollout_batch = jit(vmap over episodes of lax.scan over time).

This is the only module that calls `jax.jit`. Episode i's randomness comes from
fold_in(key(seed), i) alone, so an episode's data do not depend on the batch it ran in.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from kernels import randomize
from mjxgen import runtime, xla_config
from mjxgen.envs.arm import N_ARM_JOINTS
from mjxgen.envs import make_env

# How many times each rollout has been traced (= compiled), keyed by (env, policy, max_steps, batch).
# A second call with the same shapes must not add to it.
TRACE_COUNT: collections.Counter = collections.Counter()


class Transition(NamedTuple):
    """One control step, as recorded: the observation before the action, and what followed."""

    observations: dict[str, jax.Array]  # key -> (..., *obs_shape)
    qpos: jax.Array  # (..., nq) the full physics position before the action (for rendering; not stored)
    actions: jax.Array  # (..., action_dim)
    rewards: jax.Array  # (...,)
    successes: jax.Array  # (...,) bool: success reached by this step's action


class Rollout(NamedTuple):
    """A batch of episodes. Steps at or past an episode's length are padding and must be ignored."""

    trajectory: Transition  # leaves (B, T, ...)
    lengths: jax.Array  # (B,) int32: steps up to and including the first success, else T
    success: jax.Array  # (B,) bool
    episode_ids: jax.Array  # (B,) int32
    valid: jax.Array  # (B,) bool: no NaN or inf in any observation, action or reward up to the length
    policy_record: dict[str, jax.Array]  # field -> (B, ...): what the policy records per episode ({} for none)
    randomization: randomize.Draw  # (B, ...) each episode's domain-randomization draw
    mocap_pos: jax.Array  # (B, nmocap, 3) each episode's mocap bodies (its targets), for rendering


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
    draw = randomize.sample(jax.random.fold_in(key, RANDOMIZE_KEY), randomization,
                            jnp.asarray(env.mj_model.light_dir[0]), N_ARM_JOINTS)
    state = env.reset(m, reset_key)
    m, state = env.randomize(m, state, draw)
    policy_state = policy.init(jax.random.fold_in(policy_key, INIT_KEY), env.observe(state), params)
    return EpisodeStart(model=m, state=state, policy_state=policy_state, policy_key=policy_key, draw=draw)


def step_episode(env, policy, m, state, policy_state, policy_key, t, params):
    """Step t of an episode: (state, policy_state, the Transition recorded)."""
    obs = env.observe(state)
    action, policy_state = policy.act(policy_state, jax.random.fold_in(policy_key, t), obs, params)
    qpos = state.data.qpos
    state, reward, success = env.step(m, state, action)
    return state, policy_state, Transition(observations=obs, qpos=qpos, actions=action, rewards=reward,
                                           successes=success)


def record(policy, policy_state) -> dict:
    """What the policy stores per episode ({} for a policy without `record`)."""
    rec = getattr(policy, "record", None)
    return {} if rec is None else rec(policy_state)


def _episode(env, policy, m, seed, episode_id, max_steps: int, randomization, params):
    """One episode, as a Rollout without the batch axis: (T, ...) transitions and per-episode values."""
    start = start_episode(env, policy, m, seed, episode_id, randomization, params)

    def body(carry, t):
        state, policy_state = carry
        state, policy_state, tr = step_episode(env, policy, start.model, state, policy_state, start.policy_key,
                                               t, params)
        return (state, policy_state), tr

    _, tr = lax.scan(body, (start.state, start.policy_state), jnp.arange(max_steps))
    success = tr.successes.any()
    length = jnp.where(success, jnp.argmax(tr.successes) + 1, max_steps).astype(jnp.int32)
    in_episode = jnp.arange(max_steps) < length
    finite = [jnp.isfinite(x).reshape(max_steps, -1).all(axis=1)
              for x in jax.tree.leaves((tr.observations, tr.actions, tr.rewards))]
    valid = jnp.all(jnp.where(in_episode, jnp.stack(finite).all(axis=0), True))
    return Rollout(trajectory=tr, lengths=length, success=success, episode_ids=episode_id, valid=valid,
                   policy_record=record(policy, start.policy_state), randomization=start.draw,
                   mocap_pos=start.state.data.mocap_pos)


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
    return policy, getattr(policy, "name", type(policy).__name__)


def default_chunk_size(env) -> int | None:
    """Episodes per chunk on the CPU with jaxlib 0.10.x (batched-LAPACK deadlock); None elsewhere."""
    if jax.default_backend() == "cpu" and xla_config.has_lapack_split_deadlock(xla_config.jaxlib_version()):
        return xla_config.cpu_safe_batch(env.mj_model.nv)
    return None


@functools.cache
def _model_on(env, device):
    """The env's MJX model on `device` (one copy per device, made once)."""
    return jax.device_put(env.mjx_model, device)


@functools.cache
def _compiled(env, policy, max_steps: int):
    """The jitted rollout of (env, policy, max_steps): one program for one device. Several devices each run
    this same program on their share (see rollout_batch), never a partitioned one: XLA compiles a
    shard_map or NamedSharding program differently, and its contact steps then differ in the last bit."""
    policy, label = resolve_policy(env, policy)

    def run(m, seed, episode_ids, randomization, params):
        TRACE_COUNT[(env.name, label, max_steps, episode_ids.shape[0])] += 1
        return jax.vmap(lambda i: _episode(env, policy, m, seed, i, max_steps, randomization, params))(episode_ids)

    return jax.jit(run)


def _run_on_device(fn, env, device, chunks: np.ndarray, seed, dr, params):
    """Run the chunks (n_chunks, size) of episode ids on one device; the Rollout of all of them, there."""
    put = functools.partial(jax.device_put, device=device)
    m, seed, dr, params = _model_on(env, device), put(seed), put(dr), put(params)
    parts = [fn(m, seed, put(c), dr, params) for c in chunks]  # dispatched asynchronously
    return parts[0] if len(parts) == 1 else jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


def _gathered(devices: tuple, per_device: list):
    """One Rollout whose arrays are sharded over `devices` along the episode axis, from each device's part
    (no copy: the parts become the shards)."""
    if len(devices) == 1:
        return per_device[0]
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.asarray(devices), ("batch",)),
                                          jax.sharding.PartitionSpec("batch"))

    def join(*xs):
        return jax.make_array_from_single_device_arrays((len(xs) * xs[0].shape[0],) + xs[0].shape[1:], sharding,
                                                        list(xs))

    return jax.tree.map(join, *per_device)


def rollout_batch(
    env: Any,
    policy: Any,
    episode_ids: Any,
    seed: int = 0,
    max_steps: int = 200,
    *,
    policy_params: Any = None,
    randomization: randomize.RandomizationConfig | None = None,
    chunk_size: int | None = None,
    devices: Any = None,
) -> Rollout:
    """Roll out a batch of episodes in one jitted call.

    Args:
      env: an env name ("reach", with its default config) or an env object from `make_env(name, config)`,
        which is how a task config (another success threshold, target box, ...) reaches the rollout.
      policy: a policy name of that env ("random", "scripted", "dmp"), or your own policy: any hashable object
        with `init(key, obs, params) -> state` and `act(state, key, obs, params) -> (action, state)` (and
        optionally `record(state) -> dict`), pure JAX functions traced inside the rollout's scan. The
        compiled rollout is cached per (env, policy object, max_steps, batch size).
      episode_ids: (B,) ints: the global indices of the episodes to run. Episode i's data depend only on
        (seed, i), never on B or on the other ids.
      seed: the dataset seed.
      max_steps: T, the horizon. Episodes end at their first success; later steps are padding.
      policy_params: a pytree handed to the policy's init and act (a network's weights, gains), an argument
        of the compiled program: new values of the same shapes do not recompile. None for the built-ins.
      randomization: per-episode domain randomization (kernels.randomize.RandomizationConfig), or None for
        none. It is an argument of the compiled program: switching it on does not recompile.
      chunk_size: run the batch as chunks of at most this many episodes (one compiled shape, results
        identical to one batch). Default: None, except on the CPU with jaxlib 0.10.x, where larger
        batches deadlock (see mjxgen.xla_config).
      devices: the devices to share the episodes among (default: every local device). Each runs the same
        one-device program on its contiguous share, concurrently; B is padded to a multiple of their number
        and cut. The data are identical to a one-device run, bit for bit. Each device compiles the program
        once (in parallel threads).

    Returns:
      A `Rollout` of (B, T, ...) transitions, lengths (B,) and success (B,), still on the device(s): sharded
      along the episode axis over several devices.
    """
    runtime.configure()  # the XLA flags, if nothing has set them yet (idempotent)
    if isinstance(env, str):
        env = make_env(env)
    resolve_policy(env, policy)  # a ValueError or TypeError for a bad policy, before anything is traced
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps <= 0:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    ids = np.asarray(episode_ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer) or (ids < 0).any():
        raise ValueError("episode_ids must be a non-empty 1-D array of non-negative integers")
    devices = tuple(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    n_dev = len(devices)
    if chunk_size is None:
        chunk_size = default_chunk_size(env)
    fn = _compiled(env, policy, int(max_steps))
    seed = jnp.uint32(seed)
    dr = (randomize.OFF if randomization is None else randomization).as_arrays()  # float32 leaves: no recompile
    # Each device gets a contiguous share, run as chunks of one compiled shape (dispatched asynchronously and
    # joined on the device). A chunk is the same program as a batch of that size, so the data equal a
    # one-device, unchunked run.
    share = -(-ids.size // n_dev)
    size = share if chunk_size is None else min(share, chunk_size)
    n_chunks = -(-share // size)
    padded = np.concatenate([ids, np.repeat(ids[-1:], n_dev * n_chunks * size - ids.size)]).astype(np.int32)
    blocks = padded.reshape(n_dev, n_chunks, size)
    if n_dev == 1:
        out = _run_on_device(fn, env, devices[0], blocks[0], seed, dr, policy_params)
    else:  # threads: each device's first call compiles, and the compiles run side by side
        with concurrent.futures.ThreadPoolExecutor(n_dev) as pool:
            per_device = list(pool.map(lambda d, b: _run_on_device(fn, env, d, b, seed, dr, policy_params),
                                       devices, blocks))
        out = _gathered(devices, per_device)
    return out if padded.size == ids.size else jax.tree.map(lambda x: x[: ids.size], out)
