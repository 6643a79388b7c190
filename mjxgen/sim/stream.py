"""Streaming rollouts with auto-reset: B slots run episodes back to back, so no simulated step is padding.

    initial_stream(...)            every slot pending, nothing simulated yet
    segment(stream) -> (stream, Segment (K, B, ...))
        one jit: lax.scan over K steps of vmap over slots. Each step first starts the next episode id in every
        slot whose episode ended (or that is new), then steps every slot.

A slot's episode ends at its first success or after max_steps steps. Ids come from a small explicit source
(`IdSource`: first + stride * k, k handed out in order), so data never depend on the slot an episode ran in.
Every slot runs `start_episode` / `step_episode` of mjxgen.sim.rollout, the functions of rollout_batch, so a
streamed episode equals its fixed-horizon twin bit for bit. Per-episode values (the policy's record, the
randomization draw, the mocap bodies) are not streamed: mjxgen.sim.per_episode recomputes them for finished ids.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mjxgen.kernels import randomize
from mjxgen.render import camera as render_camera
from mjxgen.sim import programs
from mjxgen.sim.episode import Step, resolve_policy, start_episode, step_episode

# How many times each segment program has been traced, keyed by (env, policy, max_steps, steps, slots).
TRACE_COUNT: collections.Counter = collections.Counter()


class IdSource(NamedTuple):
    """The ids a stream runs, k = 0, 1, ... handed out in order while k < count: the first B from `table`,
    then first + stride * k. Several streams (devices, processes) can split one dataset by taking disjoint
    (first, stride) pairs; the table lets the fixed-horizon rollout run any B ids through the same program."""

    table: jax.Array  # (B,) int32: the ids of k < B (first + stride * k, or any ids)
    first: jax.Array  # () int32
    stride: jax.Array  # () int32
    count: jax.Array  # () int32: how many ids this stream runs
    next: jax.Array  # () int32: the next k to hand out

    def id(self, k):
        n = self.table.shape[0]
        return jnp.where(k < n, self.table[jnp.clip(k, 0, n - 1)], self.first + self.stride * k)


class Slots(NamedTuple):
    """What each slot carries across steps, segments and jitted calls; leaves (B, ...)."""

    state: Any  # the env state
    policy_state: Any
    policy_key: jax.Array  # step t acts with fold_in(policy_key, t)
    draw: randomize.Draw  # this episode's randomization: its model is rebuilt from it each step
    episode_id: jax.Array  # int32
    t: jax.Array  # int32: the step inside the episode
    active: jax.Array  # bool: the slot runs a real episode (False once the stream's ids are used up)
    ended: jax.Array  # bool: the episode ended at the previous step, or the slot is new: start the next id


class Stream(NamedTuple):
    slots: Slots
    ids: IdSource
    # True: an episode ends at its first success or its horizon, and its slot starts the next id (the streaming
    # generator). False: it ends only at its horizon and the steps after its first success are simulated too
    # (rollout_batch's fixed-horizon form). A leaf, so both forms run the same compiled program.
    end_at_success: jax.Array  # () bool


class Segment(NamedTuple):
    """K steps of B slots, time-major. Rows with active False are not part of any episode."""

    step: Step  # leaves (K, B, ...): what followed each action
    episode_id: jax.Array  # (K, B) int32
    t: jax.Array  # (K, B) int32
    active: jax.Array  # (K, B) bool
    done: jax.Array  # (K, B) bool: this step ended its episode (first success, or t + 1 == max_steps)
    finite: jax.Array  # (K, B) bool: no NaN or inf in this step's next observations, action and reward


def _start(env, policy, m, seed, episode_id, active, randomization, params) -> Slots:
    s = start_episode(env, policy, m, seed, episode_id, randomization, params)
    return Slots(state=s.state, policy_state=s.policy_state, policy_key=s.policy_key, draw=s.draw,
                 episode_id=episode_id, t=jnp.int32(0), active=active, ended=jnp.bool_(False))


def _where(mask, a, b):
    return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a, b)


def _restart(env, policy, m, seed, randomization, params, stream: Stream) -> Stream:
    """Slots whose episode ended start the next ids, in slot order; ids past the stream's count are inactive."""
    sl, ids = stream.slots, stream.ids
    k = ids.next + jnp.cumsum(sl.ended) - 1
    started = jax.vmap(lambda i, a: _start(env, policy, m, seed, i, a, randomization, params))(ids.id(k), k < ids.count)
    slots = jax.tree.map(lambda a, b: _where(sl.ended, a, b), started, sl)
    # (next stops at count, so the ids of slots left inactive at the end never wrap around)
    return stream._replace(slots=slots, ids=ids._replace(next=jnp.minimum(ids.next + sl.ended.sum(dtype=jnp.int32),
                                                                          ids.count)))


def _advance(env, policy, m, max_steps, params, end_at_success, camera, sl: Slots) -> tuple[Slots, Segment]:
    """One step of every slot (and, with a camera, each slot's image after it)."""

    def one(s: Slots):
        model = env.randomize(m, s.state, s.draw)[0]  # the episode's model, from its draw (same values each step)
        return step_episode(env, policy, model, s.state, s.policy_state, s.policy_key, s.t, params)

    state, policy_state, step = jax.vmap(one)(sl)
    if camera is not None:
        step = step._replace(next_image=render_camera.frames(env, camera, state.data.geom_xpos, state.data.geom_xmat,
                                                             sl.draw))
    horizon = sl.t + 1 >= max_steps
    done = sl.active & (step.successes | horizon)
    finite = [jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
              for x in jax.tree.leaves((step.next_observations, step.actions, step.rewards))]
    out = Segment(step=step, episode_id=sl.episode_id, t=sl.t, active=sl.active, done=done,
                  finite=jnp.stack(finite).all(axis=0))
    ended = (done & end_at_success) | horizon | ~sl.active
    return sl._replace(state=state, policy_state=policy_state, t=sl.t + 1, ended=ended), out


def _step(env, policy, m, seed, max_steps, randomization, params, camera, stream: Stream):
    """Start the next episode in every slot whose episode ended (a real cond: skipped while none did), then
    step every slot (skipped once every id is finished)."""
    restart = functools.partial(_restart, env, policy, m, seed, randomization, params)
    stream = lax.cond(jnp.any(stream.slots.ended), restart, lambda st: st, stream)
    traced = {}

    def advance(sl):
        slots, out = _advance(env, policy, m, max_steps, params, stream.end_at_success, camera, sl)
        traced["out"] = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), out)
        return slots, out

    def idle(sl):  # lax.cond traces advance first: its output shapes, without tracing the step again
        shapes = traced.get("out") or jax.eval_shape(advance, sl)[1]
        return sl, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    slots, out = lax.cond(jnp.any(stream.slots.active), advance, idle, stream.slots)
    return stream._replace(slots=slots), out


@functools.cache
def compiled_segment(env, policy, max_steps: int, steps: int, camera: render_camera.Camera | None = None):
    """The jitted segment program: (m, seed, randomization, params, stream) -> (stream, Segment (K, B, ...)).
    The stream is donated. rollout_batch and the streaming generator both run it.

    A built-in policy (a name) without params runs as an exported program (mjxgen.sim.programs), one per batch
    size, kept in the compile cache's directory: a later process loads it and does not trace. A policy object,
    or params, run as a plain jit."""
    name = policy
    policy, label = resolve_policy(env, policy)

    def run(m, seed, randomization, params, stream):
        TRACE_COUNT[(env.name, label, max_steps, stream.slots.t.shape[0], steps) + ((camera,) if camera else ())] += 1
        step = functools.partial(_step, env, policy, m, seed, max_steps, randomization, params, camera)
        return lax.scan(lambda st, _: step(st), stream, None, length=steps)

    return programs.jit(run, kind="segment", env=env, policy=name, params_at=3, donate_argnums=(4,),
                        max_steps=max_steps, steps=steps, camera=None if camera is None else dataclasses.asdict(camera))


@functools.cache
def _slot_shapes(env, policy, slots: int, params_shapes):
    """The Slots of B slots, as ShapeDtypeStructs (traced once per env, policy, B and params shapes; for a
    policy name without params, kept beside the exported programs, so a later process does not trace)."""
    name = policy
    policy, _ = resolve_policy(env, policy)
    params = jax.tree.unflatten(params_shapes[0], params_shapes[1]) if params_shapes else None

    def start_all(i):
        return jax.vmap(lambda j: _start(env, policy, env.mjx_model, jnp.uint32(0), j, jnp.bool_(False),
                                         randomize.OFF.as_arrays(), params))(i)

    def shapes():
        return jax.eval_shape(start_all, jax.ShapeDtypeStruct((slots,), jnp.int32))

    if params_shapes is not None:
        return shapes()
    return programs.stored_for(name, "slot_shapes", env, shapes, slots=slots)


@functools.cache
def model_on(env, device):
    """The env's MJX model on `device` (one copy per device, made once)."""
    return jax.device_put(env.mjx_model, device)


def program_args(env, seed: int, randomization, params, device) -> tuple:
    """The segment program's arguments before the stream, (m, seed, randomization ranges, params), committed to
    `device`. The generator and rollout_batch place them alike, so they share one compiled program (with
    uncommitted arguments the generator's call lowered to another module: a second compile of the shape)."""
    put = functools.partial(jax.device_put, device=device)
    return model_on(env, device), put(jnp.uint32(seed)), put(ranges(randomization)), put(params)


def initial_stream(env, policy, table, *, first: int, count: int, stride: int = 1, end_at_success: bool = True,
                   params=None, device=None) -> Stream:
    """B = len(table) slots, all pending (each starts its first id at the first step), and the id source, on
    `device` (default: this process's first), committed, as the program's own outputs are, so the second call
    does not recompile."""
    leaves, tree = jax.tree.flatten(params)
    shapes = _slot_shapes(env, policy, len(table), (tree, tuple(jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x))
                                                                 for x in leaves)) if leaves else None)

    def zeros(s):
        if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(np.zeros(s.shape + (2,), np.uint32))
        return np.zeros(s.shape, s.dtype)

    sl = jax.tree.map(zeros, shapes)._replace(ended=np.ones(len(table), bool))
    ids = IdSource(table=np.asarray(table, np.int32), first=np.int32(first), stride=np.int32(stride),
                   count=np.int32(count), next=np.int32(0))
    return jax.device_put(Stream(sl, ids, np.bool_(end_at_success)), device or jax.local_devices()[0])


def run_segments(env, policy, *, first: int, count: int, slots: int, seed: int, max_steps: int, steps: int,
                 randomization=None, params=None, stride: int = 1, keep_qpos: bool = True,
                 camera: render_camera.Camera | None = None) -> Iterator[Segment]:
    """Stream the ids first + stride * k, k < count, through `slots` slots, each episode ending at its first
    success; yield each segment on the host (NumPy) until every episode has ended. Segment k+1 is dispatched
    before segment k is fetched. keep_qpos=False: the segments' step.next_qpos is None, not fetched (only
    rendering needs it; on a GPU it is a quarter of reach's transfer). camera: each step's image after the action
    is rendered in the program (step.next_image)."""
    fn = compiled_segment(env, policy, int(max_steps), int(steps), camera)
    device = jax.local_devices()[0]
    args = program_args(env, seed, randomization, params, device)
    table = first + stride * np.arange(slots)
    stream, pending = fn(*args, initial_stream(env, policy, table, first=first, count=count, stride=stride,
                                               params=params, device=device))
    ended = 0
    while ended < count:
        stream, following = fn(*args, stream)
        host = jax.device_get(pending if keep_qpos else pending._replace(step=pending.step._replace(next_qpos=None)))
        ended += int((host.done & host.active).sum())
        yield host
        pending = following


def ranges(randomization):
    """The randomization ranges as the programs take them (float32 leaves: on or off, no recompile)."""
    return (randomize.OFF if randomization is None else randomization).as_arrays()
