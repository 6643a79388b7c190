"""The fixed-horizon rollout: rollout_batch runs B episodes for T steps each, the steps after an episode's first
success included, and returns (B, T, ...) device arrays.

It runs the streaming program of mjxgen.sim.stream with its slots ending only at the horizon: the generator and
rollout_batch execute one compiled program, so an episode is bit for bit the same in both. Episode i's
randomness comes from fold_in(key(seed), i) alone, so its data do not depend on the batch it ran in.
"""

from __future__ import annotations

import concurrent.futures
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen import checks
from mjxgen.kernels import randomize
from mjxgen.runtime import process, xla
from mjxgen.render import camera as render_camera
from mjxgen.sim import per_episode, stream
from mjxgen.envs import make_env
from mjxgen.sim.episode import Transition, resolve_policy

# How many times each program has been traced (= compiled), keyed by (env, policy, max_steps, slots, steps).
# A second call with the same shapes must not add to it.
TRACE_COUNT = stream.TRACE_COUNT
# Steps per jitted call: the generator's segments, and rollout_batch's (its horizon is covered by
# ceil(T / SEGMENT_STEPS) calls; the steps past T are skipped, not simulated).
SEGMENT_STEPS = 32


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
    final_observations: dict[str, jax.Array]  # key -> (B, ...): the observation after each episode's last action


def default_chunk_size(env) -> int | None:
    """Episodes per chunk on the CPU with jaxlib 0.10.x (batched-LAPACK deadlock); None elsewhere."""
    if jax.default_backend() == "cpu" and xla.has_lapack_split_deadlock(xla.jaxlib_version()):
        return xla.cpu_safe_batch(env.mj_model.nv)
    return None


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
    camera: render_camera.Camera | None = None,
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
      randomization: per-episode domain randomization (mjxgen.kernels.randomize.RandomizationConfig), or None for
        none. It is an argument of the compiled program: switching it on does not recompile.
      chunk_size: run the batch as chunks of at most this many episodes (one compiled shape, results
        identical to one batch). Default: None, except on the CPU with jaxlib 0.10.x, where larger
        batches deadlock (see mjxgen.runtime.xla).
      devices: the devices to share the episodes among (default: every local device). Each runs the same
        one-device program on its contiguous share, concurrently; B is padded to a multiple of their number
        and cut. The data are identical to a one-device run, bit for bit (a shard_map or NamedSharding
        program is partitioned by XLA, and pick_place's contact steps then differ in the last bit). Each
        device compiles the program once, in parallel threads.
      camera: a `mjxgen.render.camera.Camera(height, width)`: the trajectory's `images` (B, T, H, W, 3) uint8,
        the scene's "front" camera before each action, rendered inside the program by the JAX renderer.

    Returns:
      A `Rollout` of (B, T, ...) transitions, lengths (B,) and success (B,), still on the device(s): sharded
      along the episode axis over several devices.
    """
    process.configure()  # the XLA flags, if nothing has set them yet (idempotent)
    if isinstance(env, str):
        env = make_env(env)
    resolve_policy(env, policy)  # a ValueError or TypeError for a bad policy, before anything is traced
    max_steps, seed = checks.positive_int("max_steps", max_steps), checks.seed("seed", seed)
    ids = checks.episode_ids("episode_ids", episode_ids)
    devices = tuple(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    if chunk_size is None:
        chunk_size = default_chunk_size(env)
    run = functools.partial(_fixed_horizon, env, policy, seed=int(seed), max_steps=int(max_steps),
                            randomization=randomization, params=policy_params, camera=camera)
    # Each device gets a contiguous share, run as chunks of one compiled shape (dispatched asynchronously and
    # joined on the device). A chunk is the same program as a batch of that size, so the data equal a
    # one-device, unchunked run.
    n_dev = len(devices)
    share = -(-ids.size // n_dev)
    size = share if chunk_size is None else min(share, chunk_size)
    n_chunks = -(-share // size)
    padded = np.concatenate([ids, np.repeat(ids[-1:], n_dev * n_chunks * size - ids.size)]).astype(np.int32)
    blocks = padded.reshape(n_dev, n_chunks, size)

    def on_device(device, chunks):
        parts = [run(c, device=device) for c in chunks]
        return parts[0] if len(parts) == 1 else jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)

    if n_dev == 1:
        out = on_device(devices[0], blocks[0])
    else:  # threads: each device's first call compiles, and the compiles run side by side
        with concurrent.futures.ThreadPoolExecutor(n_dev) as pool:
            out = _gathered(devices, list(pool.map(on_device, devices, blocks)))
    return out if padded.size == ids.size else jax.tree.map(lambda x: x[: ids.size], out)


def _gathered(devices: tuple, per_device: list):
    """One Rollout whose arrays are sharded over `devices` along the episode axis, from each device's part
    (no copy: the parts become the shards)."""
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.asarray(devices), ("batch",)),
                                          jax.sharding.PartitionSpec("batch"))

    def join(*xs):
        return jax.make_array_from_single_device_arrays((len(xs) * xs[0].shape[0],) + xs[0].shape[1:], sharding,
                                                        list(xs))

    return jax.tree.map(join, *per_device)


def _fixed_horizon(env, policy, ids: np.ndarray, *, seed: int, max_steps: int, randomization, params, camera,
                   device) -> Rollout:
    """One batch on one device: ceil(T / K) segments of the streaming program, episodes ending only at the
    horizon."""
    fn = stream.compiled_segment(env, policy, max_steps, SEGMENT_STEPS, camera)
    args = stream.program_args(env, seed, randomization, params, device)
    st = stream.initial_stream(env, policy, ids, first=0, count=len(ids), end_at_success=False, params=params,
                               device=device)
    segments = []
    for _ in range(-(-max_steps // SEGMENT_STEPS)):
        st, seg = fn(*args, st)
        segments.append(seg)
    values = per_episode.episode_values(env, policy, ids, seed=seed, randomization=randomization, params=params,
                                        device=device, camera=camera)
    return _assemble(segments, max_steps, jax.device_put(jnp.asarray(ids, jnp.int32), device), values)


@functools.partial(jax.jit, static_argnums=1)
def _assemble(segments, max_steps: int, ids, values) -> Rollout:
    """(K, B, ...) segments -> the Rollout of (B, T, ...) arrays: the observation before step t is the one after
    step t - 1, and before step 0 the episode's start (values)."""
    step = jax.tree.map(lambda *xs: jnp.swapaxes(jnp.concatenate(xs)[:max_steps], 0, 1), *[s.step for s in segments])
    finite = jnp.concatenate([s.finite for s in segments])[:max_steps].T  # (B, T)
    success = step.successes.any(axis=1)
    length = jnp.where(success, jnp.argmax(step.successes, axis=1) + 1, max_steps).astype(jnp.int32)
    in_episode = jnp.arange(max_steps) < length[:, None]

    def before(first, after):  # (B, ...) and (B, T, ...) -> (B, T, ...)
        return jnp.concatenate([first[:, None], after[:, :-1]], axis=1)

    tr = Transition(observations=jax.tree.map(before, values["initial_observations"], step.next_observations),
                    qpos=before(values["initial_qpos"], step.next_qpos), actions=step.actions, rewards=step.rewards,
                    successes=step.successes,
                    images=None if step.next_image is None else before(values["initial_image"], step.next_image))
    last = jax.tree.map(lambda x: x[jnp.arange(x.shape[0]), length - 1], step.next_observations)
    start_finite = _all_finite(values["initial_observations"])
    return Rollout(trajectory=tr, lengths=length, success=success, episode_ids=ids,
                   valid=jnp.all(finite | ~in_episode, axis=1) & start_finite, policy_record=values["policy_record"],
                   randomization=randomize.Draw(**values["randomization"]), mocap_pos=values["mocap_pos"],
                   final_observations=last)


def _all_finite(tree) -> jax.Array:
    """(B,) bool: every leaf's row is finite."""
    return jnp.stack([jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1) for x in jax.tree.leaves(tree)]).all(axis=0)
