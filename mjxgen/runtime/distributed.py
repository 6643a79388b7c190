"""Many processes, one dataset, through JAX's own runtime (`jax.distributed`).

Each process runs a contiguous share of the run's batches (arm tasks) or shards (PushT) on its local devices
and writes them as crash-safe shards into the shared `<output>.partial/` (mjxgen.data.shards). Process 0 opens the
run first; the others join it. When every process has written its share (`agree`, a collective over every
process, from JAX's runtime), process 0 merges the shards into the one output file. Episode i depends only on
(seed, i), and the shards are the ones a one-process run writes, so the file is the same.

    generate_dataset(..., distributed=DistributedConfig(coordinator="host0:1234", num_processes=2, process_id=1))
    generate_dataset(..., distributed=True)   # under SLURM (or another cluster jax.distributed detects)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, TypeVar

import jax
import numpy as np

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistributedConfig:
    """Where this process stands in a multi-process run: the coordinator's HOST:PORT, the number of processes
    and this one's index. Leave all three None to let `jax.distributed` read them from the cluster's
    environment (SLURM, Open MPI, Kubernetes)."""

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    def __post_init__(self):
        given = [v is not None for v in (self.coordinator, self.num_processes, self.process_id)]
        if any(given) and not all(given):
            raise ValueError("distributed: give coordinator, num_processes and process_id together, or none of "
                             "them (read from the cluster's environment)")
        if self.coordinator is not None:
            host, _, port = str(self.coordinator).rpartition(":")
            if not isinstance(self.coordinator, str) or not host or not port.isdigit():
                raise ValueError(f"distributed coordinator must be HOST:PORT, got {self.coordinator!r}")
            for name in ("num_processes", "process_id"):
                value = getattr(self, name)
                if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                    raise TypeError(f"distributed {name} must be an integer, got {type(value).__name__} {value!r}")
            if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
                raise ValueError(f"distributed process_id must be in [0, num_processes), got process_id "
                                 f"{self.process_id} of {self.num_processes}")


def config_of(distributed) -> DistributedConfig | None:
    """None (one process), True (from the cluster's environment) or a DistributedConfig, as a config or None."""
    if distributed is None or distributed is False:
        return None
    if distributed is True:
        return DistributedConfig()
    if isinstance(distributed, DistributedConfig):
        return distributed
    raise TypeError(f"distributed must be None, True or a DistributedConfig, got {type(distributed).__name__} "
                    f"{distributed!r}")


def initialize(config: DistributedConfig | None) -> None:
    """Join the multi-process run (`jax.distributed.initialize`), once per process, before JAX's first
    computation. On the CPU, cross-process collectives use gloo; JAX's default device becomes this process's
    first device. Nothing happens for config None."""
    if config is None or jax.distributed.is_initialized():
        return
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=config.coordinator, num_processes=config.num_processes,
                                   process_id=config.process_id)
    except (RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"distributed: jax.distributed.initialize failed: {first}") from None
    # Arrays made outside a jitted call (constants, the model) go to this process's device, not to
    # jax.devices()[0], which belongs to process 0.
    jax.config.update("jax_default_device", jax.local_devices()[0])


def share(n_items: int) -> range:
    """This process's contiguous share of range(n_items): the same split whatever the devices."""
    p, n = jax.process_index(), jax.process_count()
    return range(n_items * p // n, n_items * (p + 1) // n)


def is_main() -> bool:
    return jax.process_index() == 0


def agree(ok: bool, what: str) -> None:
    """Wait until every process gets here (a barrier), then raise in every process if any of them failed.
    One process: nothing to wait for."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    flags = np.asarray(multihost_utils.process_allgather(np.asarray([ok], np.int32))).reshape(-1)
    failed = [i for i, f in enumerate(flags) if not f]
    if ok and failed:
        raise RuntimeError(f"{what} failed in process {', '.join(map(str, failed))} (see its output); the finished "
                           "shards are kept: run every process again with --resume")


def first_then_others(open_run: Callable[[bool], T], what: str) -> T:
    """open_run(join) in process 0 first (join False: it starts or resumes the run), then in the others (join
    True: they join the run process 0 opened). An error in any process is raised in all."""
    result, error = None, None

    def attempt(join: bool) -> None:
        nonlocal result, error
        try:
            result = open_run(join)
        except Exception as e:  # noqa: BLE001 (raised below, once the others know)
            error = e

    if is_main():
        attempt(False)
    agree(error is None, what)  # the others raise here if process 0 failed
    if error is not None:
        raise error
    if not is_main():
        attempt(True)
    agree(error is None, what)  # process 0 raises here if another failed
    if error is not None:
        raise error
    return result


def together(run: Callable[[], T], what: str) -> T:
    """run() in every process, then a barrier; an error in any process is raised in all (its own in the
    process that failed, a RuntimeError naming it in the others). An interrupted or killed process is not waited
    for: JAX's runtime stops the others when it leaves."""
    try:
        result = run()
    except Exception:
        agree(False, what)
        raise
    agree(True, what)
    return result
