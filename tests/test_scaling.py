"""Scaling out: the same episodes on several devices, or from several processes, give the same data as on one.

Forced CPU devices (`--xla_force_host_platform_device_count`) must be set before JAX starts, so the
multi-device side runs in a subprocess; so do the processes of a multi-process run (loopback coordinator).
The one-device, one-process side runs here, on shapes the suite already compiles (reach/scripted 8 x 20 as
tests/test_durable.py, pick_place/scripted 16 x 200 as conftest's fixture). The devices compare on pick_place
alone, randomized: its contact steps are where a partitioned program differs in the last bit, and each device
compiles its own program, so a second case would cost two more compiles for what this one shows.
"""

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import h5py
import jax
import numpy as np
import pytest

from support import (DURABLE_BATCH, DURABLE_HORIZON, PP_BATCH, PP_HORIZON, assert_same_episodes,
                      assert_same_pusht_files, episodes_of, subprocess_env)
from mjxgen.kernels.randomize import RandomizationConfig
from mjxgen.data import shards
from mjxgen.generate.config import GenerationConfig
from mjxgen.runtime.distributed import DistributedConfig
from mjxgen.generate.pipeline import run_generation
from mjxgen.sim.rollout import rollout_batch

CASES = {  # name: (env, policy, n episodes, horizon, seed, randomized)
    "pick_place": ("pick_place", "scripted", PP_BATCH, PP_HORIZON, 3, True),
}

_TWO_DEVICES = """
import sys, jax, numpy as np, mjxgen
from mjxgen.kernels.randomize import RandomizationConfig
mjxgen.configure()
assert len(jax.local_devices()) == 2, jax.local_devices()
out = {}
for name, (env, policy, n, horizon, seed, randomized) in CASES.items():
    dr = RandomizationConfig() if randomized else None
    both = mjxgen.rollout_batch(env, policy, np.arange(n), seed=seed, max_steps=horizon, randomization=dr)
    assert both.lengths.sharding.device_set == set(jax.local_devices())
    for i, leaf in enumerate(jax.tree.leaves(jax.device_get(both))):
        out[f"{name}/{i}"] = np.asarray(leaf)
    # devices=: where the episodes run. The first half alone on the second device (the shape each device
    # compiled above): the same data, and only that device holds them.
    alone = mjxgen.rollout_batch(env, policy, np.arange(n // 2), seed=seed, max_steps=horizon, randomization=dr,
                                 devices=jax.local_devices()[1:])
    assert alone.lengths.sharding.device_set == {jax.local_devices()[1]}, alone.lengths.sharding
    for a, b in zip(jax.tree.leaves(jax.device_get(alone)), jax.tree.leaves(jax.device_get(both))):
        np.testing.assert_array_equal(a, b[:n // 2])
np.savez(sys.argv[1], **out)
"""


def forced_devices_env(n: int, tmp_path_factory) -> dict:
    """The subprocesses' environment with n forced CPU devices, appended to the user's XLA_FLAGS."""
    env = subprocess_env(tmp_path_factory)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


@pytest.fixture(scope="module")
def two_device_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("scaling") / "two.npz"
    code = f"CASES = {CASES!r}\n" + textwrap.dedent(_TWO_DEVICES)
    proc = subprocess.run([sys.executable, "-c", code, str(path)], env=forced_devices_env(2, tmp_path_factory), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(path)


@pytest.mark.parametrize("name", list(CASES))
def test_two_devices_equal_one_device(two_device_run, name):
    env, policy, n, horizon, seed, randomized = CASES[name]
    one = jax.device_get(rollout_batch(env, policy, np.arange(n), seed=seed, max_steps=horizon,
                                       randomization=RandomizationConfig() if randomized else None))
    leaves = jax.tree.leaves(one)
    assert len(leaves) == len([k for k in two_device_run.files if k.startswith(f"{name}/")])
    for i, leaf in enumerate(leaves):
        np.testing.assert_array_equal(two_device_run[f"{name}/{i}"], np.asarray(leaf), err_msg=f"{name} leaf {i}")


def test_devices_argument_is_checked(reach_env):
    with pytest.raises(ValueError, match="at least one device"):
        rollout_batch(reach_env, "scripted", np.arange(2), devices=[])


# Multi-process: 6 batches of the durable shape; process 0 runs batches 0-2, process 1 batches 3-5.
MP_EPISODES, MP_SEED = 6 * DURABLE_BATCH, 5
MP_CLI = ["--episodes", str(MP_EPISODES), "--batch", str(DURABLE_BATCH), "--max-steps", str(DURABLE_HORIZON),
          "--seed", str(MP_SEED), "--randomize", "--no-progress"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    path = tmp_path_factory.mktemp("one") / "one.h5"
    run_generation(GenerationConfig(env_name="reach", n_episodes=MP_EPISODES, output_path=path,
                                    policy_type="scripted", max_steps=DURABLE_HORIZON, seed=MP_SEED,
                                    batch_size=DURABLE_BATCH, domain_randomization=True, progress=False))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _slurm_job_id() -> int:
    """A SLURM job id whose coordinator port (jax.distributed: 61440 + id % 4096) is free here."""
    for job_id in np.random.default_rng().permutation(4096):
        with socket.socket() as s:
            try:
                s.bind(("localhost", 61440 + int(job_id)))
            except OSError:
                continue
        return int(job_id)
    raise RuntimeError("no free port in 61440..65535")


def _start_processes(out, env, extra=(), n=2, slurm=False) -> list[subprocess.Popen]:
    """n processes of one run: told their place by flags, or (slurm) by a SLURM job's environment and
    --distributed, as `srun` would start them."""
    port, job_id = _free_port(), _slurm_job_id()
    procs = []
    for i in range(n):
        if slurm:
            where, env_i = ["--distributed"], env | {"SLURM_JOB_ID": str(job_id), "SLURM_NTASKS": str(n),
                                                     "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i),
                                                     "SLURM_STEP_NODELIST": "localhost"}
        else:
            where, env_i = ["--coordinator", f"localhost:{port}", "--num-processes", str(n), "--process-id", str(i)], env
        procs.append(subprocess.Popen([sys.executable, "-m", "mjxgen.reach", *MP_CLI, "--output", str(out), *extra,
                                       *where], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_i))
    return procs


def _finish(procs, timeout=600) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each process, once it ended."""
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, *o) for p, o in zip(procs, outputs)]


def _assert_same_file(path, reference):
    """Every dataset and every attribute equal, but the package versions."""
    assert_same_episodes(episodes_of(path), episodes_of(reference))
    assert episodes_of(path).keys() == episodes_of(reference).keys()
    with h5py.File(path) as f, h5py.File(reference) as g:
        a, b = dict(f.attrs), dict(g.attrs)
    for attrs in (a, b):
        attrs.pop("versions")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_two_processes_write_the_one_process_file(tmp_path, tmp_path_factory, one_process):
    out = tmp_path / "two.h5"
    results = _finish(_start_processes(out, subprocess_env(tmp_path_factory)))
    for i, (rc, stdout, stderr) in enumerate(results):
        assert rc == 0, f"process {i}: {stderr[-3000:]}"
        assert re.search(rf"^Episodes +{MP_EPISODES}$", stdout, re.M), stdout  # every process: the whole file
    _assert_same_file(out, one_process)
    assert not shards.partial_dir(out).exists()


def test_killing_one_process_then_resuming_both_loses_nothing(tmp_path, tmp_path_factory, one_process):
    out, env = tmp_path / "killed.h5", subprocess_env(tmp_path_factory)
    procs = _start_processes(out, env, slurm=True)  # and --distributed reads the SLURM job's environment
    partial, deadline = shards.partial_dir(out), time.time() + 600
    # Wait for process 1's first shard (episodes >= 24), then kill it as a node failure would, and stop
    # process 0 as the scheduler then would.
    while not (partial.is_dir() and any(first >= MP_EPISODES // 2 for first, _, _ in shards.list_shards(partial))):
        assert time.time() < deadline and procs[1].poll() is None, _finish(procs)
        time.sleep(0.01)
    procs[1].send_signal(signal.SIGKILL)
    procs[0].send_signal(signal.SIGTERM)
    _finish(procs)
    assert procs[1].returncode == -signal.SIGKILL
    if out.exists():  # everything was written before the signals landed: nothing to resume
        _assert_same_file(out, one_process)
        return
    safe = episodes_of(out, allow_incomplete=True)
    assert safe  # the finished shards stayed, and hold the one-process run's episodes
    assert_same_episodes(safe, episodes_of(one_process))
    for i, (rc, _, stderr) in enumerate(_finish(_start_processes(out, env, extra=["--resume"], slurm=True))):
        assert rc == 0, f"process {i}: {stderr[-3000:]}"
    _assert_same_file(out, one_process)


def test_distributed_arguments_are_checked():
    with pytest.raises(ValueError, match="together"):
        DistributedConfig(coordinator="localhost:1234")
    with pytest.raises(ValueError, match="HOST:PORT"):
        DistributedConfig(coordinator="localhost", num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="process_id must be in"):
        DistributedConfig(coordinator="localhost:1", num_processes=2, process_id=2)
    with pytest.raises(TypeError, match="distributed must be"):
        GenerationConfig(distributed="yes")
    with pytest.raises(ValueError, match="flat"):
        GenerationConfig(layout="flat", distributed=True)


_PUSHT_PROCESS = """
import sys
from mjxgen.runtime.distributed import DistributedConfig
from mjxgen.pusht.generate import generate

if __name__ == "__main__":  # the env workers are spawned, and import this module
    port, i, out = sys.argv[1:]
    generate(8, 3, out, workers=1, shard_size=3, progress=False,
             distributed=DistributedConfig(coordinator=f"localhost:{port}", num_processes=2, process_id=int(i)))
"""
def test_pusht_samples_split_over_two_processes(tmp_path, tmp_path_factory):
    from mjxgen.pusht.generate import generate

    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    generate(8, 3, one, workers=1, shard_size=3, progress=False)  # 3 shards: process 0 runs 1, process 1 runs 2
    script = tmp_path / "pusht_process.py"
    script.write_text(textwrap.dedent(_PUSHT_PROCESS))
    port, env = _free_port(), subprocess_env(tmp_path_factory)
    procs = [subprocess.Popen([sys.executable, str(script), str(port), str(i), str(two)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    for i, (rc, _, stderr) in enumerate(_finish(procs)):
        assert rc == 0, f"process {i}: {stderr[-3000:]}"
    assert_same_pusht_files(one, two)  # the coverage-derived fields to a few ulps: GEOS rounds them run to run


def test_each_share_resumes_from_its_own_finished_shards(tmp_path):
    """Process 0's share [0, 24) is done; process 1's [24, 48) has one shard: each resumes at its own end."""
    on_disk = [(0, 8), (8, 16), (16, 24), (24, 32)]
    store = shards.ShardStore(tmp_path / "x.h5", tmp_path, {}, [(a, b, tmp_path / shards.shard_name(a, b))
                                                             for a, b in on_disk])
    assert store.done_from(0, 24) == 24  # not 32: the next share's shard follows on disk
    assert store.done_from(24, 48) == 32
    assert store.done == 32
    store.shards.pop(1)  # a gap: [8, 16) missing
    assert store.done_from(0, 24) == 8 and store.done == 8
