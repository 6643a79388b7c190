"""Whether a generation batch fits in memory, decided before the output is touched.

A batch of B episode slots holds, per slot, what one slot's carry and one step's record weigh (their shapes, from
`jax.eval_shape`: nothing compiled, nothing allocated) times what the run
keeps of them: the stream's carry and segments on the device (mjxgen.sim.stream), the segments the stitcher
holds and the blocks of whole episodes on their way to the writer (mjxgen.generate.stitch, mjxgen.data.writer).
That is compared with the memory available now: the host's (MemAvailable, capped by the cgroup's limit) and,
on a GPU, the device's (memory_stats). The estimate is an upper bound of what the run holds: measured on reach
(scripted, T = 200, B = 1024 and 4096: peaks of 1.36 and 1.50 GB) a slot takes ~46 KB, and the estimate says
~225 KB.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen.generate.config import GenerationConfig
from mjxgen.sim import stream
from mjxgen.render import camera as render_camera
from mjxgen.sim.episode import Step, resolve_policy
from mjxgen.sim.rollout import SEGMENT_STEPS

# What a slot holds, in slot carries (the env state, the policy's, the draw, the ids) and step records:
CARRY_COPIES = 4  # the program's carry in and out (donated) and XLA's temporaries of a step, about as much again
DEVICE_SEGMENTS = 2  # segments of SEGMENT_STEPS steps on the device: the one computed, the one awaiting its fetch
HOST_BLOCKS = 5  # blocks of whole episodes (<= max_steps steps each): the stitcher's, one awaiting its per-episode
#                  values, the writer queue's two and the one being written
FIXED_DEVICE_ROLLOUTS = 2  # rollout="fixed": whole rollouts of max_steps steps on the device (one dispatched ahead)
FIXED_HOST_COPIES = 6  # rollout="fixed": fetched, cut to the episodes, selected, the writer queue's two, written
# Per-step record fields the segment adds to a transition: episode_id, t (int32), active, done, finite (bool).
SEGMENT_FIELDS_BYTES = 4 + 4 + 1 + 1 + 1
# The process beyond what it holds at the check: XLA compiling the program, MuJoCo, the renderer (the reach runs
# above peaked ~0.9 GB above their size at the check).
PROCESS_BYTES = 2**30
PER_EPISODE_BYTES = 10  # the stitcher's per-id ended (bool), length (int64) and success (bool) of the whole run


@dataclasses.dataclass(frozen=True)
class Estimate:
    """The memory of a run: `fixed` bytes plus, per episode slot, `host` and `device` bytes (on a CPU both are
    the host's)."""

    fixed: int
    host: int
    device: int
    on_cpu: bool

    def largest_batch(self, host_room: int | None, device_room: int | None) -> int | None:
        """The most slots that fit in the room given (None: unknown, not limited)."""
        limits = []
        if host_room is not None:
            limits.append((host_room - self.fixed) // (self.host + self.device * self.on_cpu))
        if device_room is not None and not self.on_cpu:
            limits.append(device_room // self.device)
        return max(0, min(limits)) if limits else None


def _nbytes(tree) -> int:
    """Bytes of a pytree of ShapeDtypeStructs (a PRNG key: its two uint32 words)."""
    total = 0
    for x in jax.tree.leaves(tree):
        itemsize = 8 if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else np.dtype(x.dtype).itemsize
        total += int(np.prod(x.shape, dtype=np.int64)) * itemsize
    return total


def slot_bytes(env, policy: str, batch: int, camera: render_camera.Camera | None = None) -> tuple[int, int]:
    """(carry, step): the bytes of one slot's carry (mjxgen.sim.stream.Slots) and of one step's record (a Step,
    with its camera image when the program renders one, and the segment's fields), from shapes: the slots' are
    those the run's initial_stream asks for (the same cached call), a step's are traced from observe and the
    policy's act (no physics step)."""
    slots = stream._slot_shapes(env, policy, batch, None)  # B slots: the call (and cache entry) of initial_stream
    one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), slots)
    pol, _ = resolve_policy(env, policy)
    obs = jax.eval_shape(env.observe, one.state)
    action, _ = jax.eval_shape(lambda s, k, o: pol.act(s, k, o, None), one.policy_state, one.policy_key, obs)
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    image = None if camera is None else jax.ShapeDtypeStruct((camera.height, camera.width, 3), jnp.uint8)
    record = Step(next_observations=obs, next_qpos=one.state.data.qpos, actions=action, rewards=scalar,
                  successes=jax.ShapeDtypeStruct((), jnp.bool_), next_image=image)
    return _nbytes(one), _nbytes(record) + SEGMENT_FIELDS_BYTES


def estimate(cfg: GenerationConfig, env, batch: int) -> Estimate:
    """What a run of cfg with `batch` episode slots holds: fixed bytes and bytes per slot."""
    carry, step = slot_bytes(env, cfg.policy_type, batch, cfg.device_camera)
    t, k = cfg.max_steps, render_camera.segment_steps(cfg.device_camera, batch, SEGMENT_STEPS)
    device = CARRY_COPIES * carry + DEVICE_SEGMENTS * k * step
    if cfg.rollout == "stream":  # the stitcher holds segments until their rows leave: up to max_steps + a segment
        host = (t + 2 * k) * step + HOST_BLOCKS * t * step
    else:
        device += FIXED_DEVICE_ROLLOUTS * t * step
        host = FIXED_HOST_COPIES * t * step
    # MuJoCo's renderer on the host: one episode's frames, and encoded
    frames = 2 * t * cfg.image_size[0] * cfg.image_size[1] * 3 if cfg.camera and cfg.device_camera is None else 0
    on_cpu = jax.local_devices()[0].platform == "cpu"
    return Estimate(fixed=PROCESS_BYTES + PER_EPISODE_BYTES * cfg.n_episodes + frames, host=host, device=device,
                    on_cpu=on_cpu)


def host_room() -> int | None:
    """Bytes the host can give now: MemAvailable (else the free pages), capped by this cgroup's limit."""
    room = _meminfo_available()
    if room is None:
        try:
            room = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            room = None
    cgroup = _cgroup_room()
    return cgroup if room is None else room if cgroup is None else min(room, cgroup)


def device_room() -> int | None:
    """Bytes JAX's first device can still allocate (a GPU's memory_stats), None where it does not say."""
    device = jax.local_devices()[0]
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 (backends without memory statistics raise various errors)
        return None
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """limit - usage of this process's cgroup (v2, else v1), None without a limit."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            text = Path(limit).read_text().strip()
            if text == "max" or int(text) >= 2**60:
                return None
            return int(text) - int(Path(usage).read_text())
        except (OSError, ValueError):
            continue
    return None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_batch(cfg: GenerationConfig, env, batch: int) -> None:
    """A ValueError, naming the largest batch that fits, when `batch` episode slots of cfg's run can't fit in
    the memory available now."""
    est = estimate(cfg, env, batch)
    host, device = host_room(), device_room()
    largest = est.largest_batch(host, device)
    if largest is None or batch <= largest:
        return
    per_slot = est.host + est.device * est.on_cpu
    if host is not None and (host - est.fixed) // per_slot < batch:
        where, room, need = "memory", host, est.fixed + batch * per_slot
    else:
        where, room, need, per_slot = "GPU memory", device, batch * est.device, est.device
    why = "" if largest else (f" (the run itself needs {_size(est.fixed)}, of which "
                              f"{_size(PER_EPISODE_BYTES * cfg.n_episodes)} for its {cfg.n_episodes} episode ids)")
    raise ValueError(f"a batch of {batch} episodes does not fit in {where}: it needs about {_size(need)} "
                     f"({_size(per_slot)} per episode slot: {cfg.env_name}, {cfg.max_steps} steps) and "
                     f"{_size(room)} is available; the largest batch that fits is {largest}{why}")
