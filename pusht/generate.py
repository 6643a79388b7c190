"""`python -m mjxgen.pusht`: seed 003's random-DMP PushT dataset generator.

DMP parameters are drawn as nsf_rl's generate_random_dmp_dataset.py draws them (one NumPy generator, in sample
order) and integrated in batched JAX calls (mjxgen.pusht.plan), then executed in gym-pusht by worker processes
(mjxgen.pusht.execute), and written in index order by this process (mjxgen.pusht.writer).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing
import os
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

MAX_VIDEOS = 10  # seed 003: video capture stops after the first ten samples
SHARD_SIZE = 64  # samples per crash-safe shard (mjxgen.data.shards): a kill loses at most this many
IN_FLIGHT = 4  # samples per worker handed out ahead (results wait in order: at most this many per worker)
POLL_S = 0.1  # s: how often the writing process looks at its workers' health and for signals while it waits


def _init_worker():
    import signal
    from multiprocessing import util

    # Ctrl-C in a terminal reaches the whole process group; the parent saves what is finished and stops the
    # workers, so they ignore it instead of each printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from mjxgen.pusht.execute import close_env

    util.Finalize(None, close_env, exitpriority=10)  # runs when the worker exits cleanly


def _settings(num_samples, seed, video_dir, video_samples, shard_size, cfg) -> tuple[dict, dict, int]:
    """(the run's config: what --resume must match, the file's attributes, the number of videos)."""
    import dataclasses
    import json

    from mjxgen.data.formats.samples import SAMPLES
    from mjxgen.pusht import execute, plan

    video_limit = min(video_samples, MAX_VIDEOS) if video_dir else 0  # the reference's attribute
    n_videos = min(video_limit, num_samples)
    config = {
        "num_samples": num_samples,
        "seed": seed,
        "scale_forcing": cfg.scale_forcing,
        "videos": n_videos,
        "video_dir": os.fspath(video_dir) if n_videos else None,
        "shard_size": shard_size,
        "dmp": dataclasses.asdict(cfg),  # every range, the basis, alpha_s, substeps, clip and step limiter
        "dmp_dt": plan.dmp_dt(cfg),
        "control_dt": execute.CONTROL_DT,
        "reset_seed_range": [0, plan.RESET_SEED_HIGH],
        "env": {"env_id": execute.ENV_ID, "env_kwargs": execute.ENV_KWARGS, "control_hz": execute.CONTROL_HZ,
                "max_episode_steps": 300},
    }
    attrs = {"format": SAMPLES.attr, "format_version": SAMPLES.version, "complete": False, "seed": seed,
             "num_samples": num_samples, "scale_forcing": cfg.scale_forcing,
             "scale_forcing_by_goal_delta": cfg.scale_forcing, "dmp_dt_substeps": cfg.substeps,
             "video_limit": video_limit, "config": json.dumps(config, sort_keys=True),
             "versions": json.dumps(execute.versions(), sort_keys=True)}
    if video_limit:
        attrs["video_directory"] = os.fspath(video_dir)
    return config, attrs, n_videos


class _Work(NamedTuple):
    plans: list  # this process's samples not on disk yet (pusht.plan.Plan), in index order
    tasks: list  # their execute.Task
    share_total: int  # samples of this process's share, those on disk included


def _this_process_work(store, seed: int, num_samples: int, shard_size: int, cfg, video_dir, n_videos: int) -> _Work:
    """This process's shards (its share of the run), but those on disk already (a resumed run: a suffix of its
    share): their plans, integrated in batched JAX calls, and execution tasks."""
    from mjxgen.pusht import execute, plan, writer
    from mjxgen.runtime import distributed as dist

    span = lambda k: (k * shard_size, min((k + 1) * shard_size, num_samples))  # noqa: E731
    mine = dist.share(-(-num_samples // shard_size))
    todo = [k for k in mine if not store.has(*span(k))]
    first, end = (span(todo[0])[0], span(todo[-1])[1]) if todo else (0, 0)
    plans = plan.plan(seed, num_samples, cfg, first=first, end=end) if todo else []
    tasks = [execute.Task(p.index, p.reset_seed, p.actions_pixels(),
                          str(Path(video_dir) / writer.video_name(p.index)) if p.index < n_videos else None)
             for p in plans]
    return _Work(plans, tasks, span(mine[-1])[1] - span(mine[0])[0] if mine else 0)


def _execute_and_write(store, plans, tasks, workers: int, shard_size: int, num_samples: int, bar, cfg) -> None:
    """Run the tasks in worker processes and write their samples in index order, one shard per shard_size."""
    from mjxgen.pusht import plan, writer

    pending = []
    with contextlib.closing(_executed(tasks, workers)) as executed:
        for p, ex in zip(plans, executed):
            pending.append((p, ex))
            bar.update(1)
            if (p.index + 1) % shard_size == 0 or p.index + 1 == num_samples:
                store.write_shard(pending[0][0].index, p.index + 1,
                                  lambda f: [writer.write_sample(f, q, e, plan.dmp_dt(cfg), cfg.alpha_s)
                                             for q, e in pending])
                pending = []


def _executed(tasks: list, workers: int):
    """execute.execute(task) of every task, yielded in task order, computed by `workers` spawned processes (at most
    IN_FLIGHT tasks per worker handed out at once).

    Always worker processes, even for one: envs then run in the same kind of process (no JAX) whatever the count,
    and this process stays free to write. A worker that dies fails the run at once (a ChildProcessError naming
    it: concurrent.futures notices dead workers, multiprocessing.Pool waits for them forever); SIGINT and SIGTERM
    are noticed while waiting (mjxgen.runtime.signals)."""
    from concurrent.futures import ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from mjxgen.runtime import signals

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
    todo, pending, procs, finished = iter(tasks), collections.deque(), {}, False
    try:
        pending.extend(_submit(pool, task) for task in itertools.islice(todo, IN_FLIGHT * workers))
        while pending:
            future = pending.popleft()
            procs.update(getattr(pool, "_processes", None) or {})  # pid -> Process, to name a dead one
            while not wait([future], timeout=POLL_S).done:
                signals.check()
            signals.check()  # a signal to the process group may have ended a worker too: the signal comes first
            result = future.result()
            pending.extend(_submit(pool, task) for task in itertools.islice(todo, 1))
            yield result
        finished = True
    except BrokenProcessPool:  # from a result or a submit
        raise ChildProcessError(_dead_worker(procs)) from None
    finally:
        _shut_down(pool, procs, finished)


def _submit(pool, task):
    from mjxgen.pusht import execute

    with warnings.catch_warnings():  # a submit may start a worker
        # JAX warns on every fork; spawn forks only to exec a fresh interpreter at once, which is safe.
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        return pool.submit(execute.execute, task)


def _dead_worker(procs: dict) -> str:
    """What died: the workers that exited otherwise than by the SIGTERM with which the pool then ends the rest."""
    import signal
    import time

    deadline = time.monotonic() + 2  # the pool's own thread may be reaping the dead worker right now
    while time.monotonic() < deadline and all(p.exitcode in (None, 0) for p in procs.values()):
        time.sleep(0.02)
    dead = {pid: p.exitcode for pid, p in procs.items() if p.exitcode not in (None, 0)}
    first = {pid: code for pid, code in dead.items() if code != -signal.SIGTERM} or dead
    how = ", ".join(f"{pid} ({f'killed by {signal.Signals(-code).name}' if code < 0 else f'exit status {code}'})"
                    for pid, code in sorted(first.items()))
    return f"PushT worker process {how} died" if how else "a PushT worker process died"


def _shut_down(pool, procs: dict, finished: bool) -> None:
    """Let the workers exit cleanly after a finished run; otherwise end them now (a stop must be prompt, and a
    broken pool's workers would wait forever)."""
    if finished:
        pool.shutdown(wait=True)
        return
    procs.update(getattr(pool, "_processes", None) or {})
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs.values():
        if p.is_alive():
            p.terminate()
    for p in procs.values():
        p.join(timeout=5)


def _merge(store):
    """Process 0's last step: the file from every process's shards; returns its stats."""
    from mjxgen.data.formats.samples import SAMPLES
    from mjxgen.data.stats import RunStats

    store.refresh()  # the other processes' shards too
    stats = RunStats.of_files(SAMPLES, store.shard_paths())
    store.finalize({"total_steps": stats.steps}, SAMPLES.merge)
    return stats


def generate(
    num_samples: int,
    seed: int,
    output_h5: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    video_samples: int = 0,
    scale_forcing: bool = False,
    workers: int = 1,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    shard_size: int = SHARD_SIZE,
    dmp_config=None,
    distributed=None,
) -> dict:
    """Generate the dataset; returns seed 000's stats (as mjxgen's generate_dataset does) and `videos`.

    Raises ValueError/FileExistsError/PermissionError on bad input, GenerationInterrupted on SIGINT/SIGTERM
    and OSError when writing fails or a worker process dies (ChildProcessError); then samples [0, safe) stay in
    `<output_h5>.partial/` (mjxgen.data.shards) and resume=True continues the run to the same file an uninterrupted
    run writes. One run writes an output at a time (mjxgen.runtime.runlock); resume=True on a file complete with
    the same settings returns its stats. `dmp_config` (a mjxgen.kernels.dmp.DMPConfig, default PUSHT_REFERENCE) sets
    the DMP ranges; scale_forcing overrides its own. `distributed` (None, True or a
    mjxgen.runtime.distributed.DistributedConfig, as in mjxgen's generate_dataset): each process runs a contiguous
    share of the shards, and process 0 writes the file."""
    import dataclasses

    from mjxgen.kernels import dmp
    from mjxgen.runtime import distributed as dist
    from mjxgen.data import files, shards
    from mjxgen.data.formats.samples import SAMPLES
    from mjxgen.runtime.signals import saving_what_is_done
    from mjxgen.runtime.process import configure

    configure()  # the XLA flags before the planner's first JAX computation
    for name, value in (("num_samples", num_samples), ("workers", workers), ("shard_size", shard_size)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    cfg = dataclasses.replace(dmp_config or dmp.PUSHT_REFERENCE, scale_forcing=bool(scale_forcing))
    config, attrs, n_videos = _settings(num_samples, seed, video_dir, video_samples, shard_size, cfg)
    opened: list = []  # the run's ShardStore, once open

    def open_run(join: bool):
        return shards.open_run(output_h5, SAMPLES.attr, config, attrs, overwrite=overwrite, resume=resume, join=join)

    def run() -> None:
        with tqdm(total=work.share_total, initial=work.share_total - len(work.plans), desc="trajectories",
                  unit="traj", disable=not progress) as bar:
            _execute_and_write(store, work.plans, work.tasks, workers, shard_size, num_samples, bar, cfg)

    def merge():
        return _merge(store) if dist.is_main() else None

    # One block from the start to the finished file: SIGINT/SIGTERM end it at the next safe point, whenever they come.
    with saving_what_is_done(lambda: opened[0].done if opened else None, shards.partial_dir(output_h5), num_samples,
                             "samples", stop=lambda: opened and opened[0].release(), output=output_h5):
        dist.initialize(dist.config_of(distributed))  # before JAX's first computation (after the flags)
        store = dist.first_then_others(open_run, "opening the run")
        opened.append(store)
        if store.complete:
            store.release()
            print(f"{store.output} is complete already (same settings): nothing to resume", file=sys.stderr)
            return files.describe(store.output)[3].summary(store.output) | {"videos": n_videos}
        work = _this_process_work(store, seed, num_samples, shard_size, cfg, video_dir, n_videos)
        dist.together(run, "executing")
        stats = dist.together(merge, "writing the file")
    if stats is None:  # process 0 counted every process's samples; the others read the file's count
        stats = files.describe(store.output)[3]
    return stats.summary(store.output) | {"videos": n_videos}
