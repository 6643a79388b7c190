"""Failures that end cleanly (issue 27): one writer per output, episode ids within int32, a policy's action checked,
a dead PushT worker, a full disk, zip bombs in checkpoints, signals at any moment, --overwrite and --resume
that do what they say.

The arm-task runs use tests/test_durable.py's shape (reach, scripted, 160 episodes in shards of 8, 20 steps); the
PushT runs a few dozen samples in shards of 4.

The issue's numbered failures and where each is tested: 1, 2, 5, 6, 7, 8, 9 and 11 (but the opening speed of a
100,000-episode file) here, under their numbers; 3 and 4 (readers that check what they claim, links out of the
file) in tests/test_hostile_files.py; 10: a checkpoint's deep JSON and int manifest entry here, a dataset's deep
JSON config and string actions in tests/test_hostile_files.py, `--batch 1000000000` and a signal during the imports
in tests/test_cli.py (test_a_batch_too_large_for_memory_is_refused_in_one_line,
test_a_signal_during_the_imports_ends_in_one_line).
"""

import errno
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import (DURABLE_BATCH, DURABLE_HORIZON, assert_same_episodes, assert_same_pusht_files, episodes_of,
                     subprocess_env)
from mjxgen import checks, cli
from mjxgen.data import shards
from mjxgen.data.formats import episodes as episodes_format
from mjxgen.data.writer import DatasetWriter
from mjxgen.generate.config import GenerationConfig
from mjxgen.generate.pipeline import generate_dataset, run_generation
from mjxgen.kernels import randomize
from mjxgen.learn import checkpoints as ckpt
from mjxgen.learn.models import ModelRegistry
from mjxgen.pusht import generate as pusht
from mjxgen.runtime.signals import GenerationInterrupted
from mjxgen.sim import episode
from mjxgen.sim.rollout import rollout_batch

BATCH, HORIZON, N, SEED = DURABLE_BATCH, DURABLE_HORIZON, 160, 11
CLI = ["--batch", str(BATCH), "--episodes", str(N), "--max-steps", str(HORIZON), "--seed", str(SEED), "--no-progress"]
MB = 2**20


def lock_path(out) -> Path:
    """Where a run's lock lives (mjxgen.runtime.runlock); gone once the run ends."""
    return Path(f"{out}.lock")


def _settings(path, **settings) -> GenerationConfig:
    base = dict(env_name="reach", n_episodes=N, output_path=path, policy_type="scripted", max_steps=HORIZON, seed=SEED,
                batch_size=BATCH, progress=False)
    return GenerationConfig(**(base | settings))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and its stats."""
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    return path, run_generation(_settings(path)).stats


def _task(argv) -> int:
    return cli.task_main("reach", [*CLI, *argv])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "Exception ignored" not in err, err
    return err


def _assert_same_file(path, reference) -> None:
    """Every episode and every file attribute equal (but the package versions)."""
    ref = episodes_of(reference)
    got = episodes_of(path)
    assert got.keys() == ref.keys()
    assert_same_episodes(got, ref)
    with h5py.File(path) as f, h5py.File(reference) as g:
        a, b = dict(f.attrs), dict(g.attrs)
    for attrs in (a, b):
        attrs.pop("versions")
    assert a.keys() == b.keys() and a["complete"]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_safe_and_resumable(out, reference, capsys) -> None:
    """The unfinished run holds the reference's episodes, and --resume completes it to the reference's file."""
    part = episodes_of(out, allow_incomplete=True)
    assert part and not out.exists()
    assert_same_episodes(part, episodes_of(reference))
    assert _task(["--output", str(out), "--resume"]) == 0
    capsys.readouterr()
    _assert_same_file(out, reference)
    assert not shards.partial_dir(out).exists() and not lock_path(out).exists()


# --------------------------------------------------------------------------- 1. one writer per output


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(tmp_path, tmp_path_factory, reference,
                                                                        capsys):
    """Run A (a real process) holds the output; run B (this process), with or without --overwrite or --resume,
    fails at once naming A, and touches nothing; A then finishes with its own data."""
    out = tmp_path / "run.h5"
    a = subprocess.Popen([sys.executable, "-m", "mjxgen.reach", *CLI, "--output", str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=subprocess_env(tmp_path_factory))
    partial = shards.partial_dir(out)
    deadline = time.time() + 300
    while not (partial.is_dir() and shards.list_shards(partial)):
        assert a.poll() is None and time.time() < deadline, a.communicate()
        time.sleep(0.005)
    a.send_signal(signal.SIGSTOP)  # A holds its run, mid-way
    try:
        before = sorted(p.name for p in partial.iterdir())
        for extra in (["--seed", "2", "--overwrite"], ["--seed", "2"], ["--resume"], []):
            t = time.perf_counter()
            assert _task([*extra, "--output", str(out)]) == 2
            err = _one_line(capsys)
            assert f"{out} is being written by another run (held by pid {a.pid} on host " in err, err
            assert ", started 20" in err and time.perf_counter() - t < 30
            assert sorted(p.name for p in partial.iterdir()) == before  # nothing of A's was touched
        with pytest.raises(FileExistsError, match=f"held by pid {a.pid}"):  # RunLocked
            generate_dataset("reach", N, out, "scripted", max_steps=HORIZON, seed=2, batch_size=BATCH, overwrite=True,
                             progress=False)
    finally:
        a.send_signal(signal.SIGCONT)
    _, err = a.communicate(timeout=300)
    assert a.returncode == 0, err
    _assert_same_file(out, reference[0])
    assert not lock_path(out).exists() and not partial.exists()


_HOLD = """
import sys
from mjxgen.runtime.runlock import RunLock
lock = RunLock.acquire(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
"""


def test_pusht_runs_take_the_lock_and_a_killed_holder_blocks_nothing(tmp_path):
    out = tmp_path / "pusht.h5"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for flags in ({}, {"overwrite": True}, {"resume": True}):
            with pytest.raises(FileExistsError, match=f"held by pid {holder.pid} on host .*, started 20"):
                pusht.generate(4, 1, out, workers=1, progress=False, **flags)
        assert not shards.partial_dir(out).exists()
    finally:
        holder.kill()  # SIGKILL: the operating system releases the lock
        holder.wait()
    from mjxgen.runtime.runlock import RunLock

    RunLock.acquire(out).release()  # the dead holder's lock file is left, its lock is not
    assert not lock_path(out).exists()


# --------------------------------------------------------------------------- 2. episode ids within int32


@pytest.mark.parametrize("ids, named", [([2**32, 2**32 + 1, 2**40], "4294967296"), ([2**31], "2147483648"),
                                         ([-1], "-1")])
def test_episode_ids_past_int32_are_refused(reach_env, ids, named):
    with pytest.raises(ValueError, match=rf"episode_ids must be integers in \[0, 2\*\*31\) .*got {named}"):
        rollout_batch(reach_env, "scripted", np.asarray(ids), max_steps=HORIZON)


def test_episode_counts_past_int32_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"n_episodes must be a positive integer of at most 2\*\*31"):
        GenerationConfig(n_episodes=2**31 + 1, output_path=tmp_path / "x.h5")
    assert GenerationConfig(n_episodes=2**31, output_path=tmp_path / "x.h5").n_episodes == checks.MAX_EPISODES
    with pytest.raises(SystemExit) as e:
        cli.main(["datagen", "--n-episodes", "3000000000", "--output", str(tmp_path / "x.h5")])
    err = _one_line(capsys)
    assert e.value.code == 2 and "--n-episodes: must be a positive integer of at most 2**31" in err, err
    assert not (tmp_path / "x.h5").exists()


# --------------------------------------------------------------------------- 5. a policy's contract, at trace time


@dataclass(frozen=True)
class _Policy:
    """A user policy whose act returns an action of `shape` and `dtype`; `broken` names a method that breaks its
    contract."""

    name: str
    shape: tuple = (4,)
    dtype: str = "float32"
    broken: str = ""

    def init(self, key, obs, params):
        return "not an array" if self.broken == "init" else jnp.zeros(2)

    def act(self, state, key, obs, params):
        action = jnp.zeros(self.shape, self.dtype)
        if self.broken == "tuple":
            return action
        return action, (jnp.zeros(3) if self.broken == "state" else state)

    def record(self, state):
        return [state] if self.broken == "record" else {"s": state}


@pytest.fixture(scope="module")
def reset_shape(reach_env):
    """The shapes of a reach state (traced once)."""
    return jax.eval_shape(reach_env.reset, reach_env.mjx_model, jax.random.key(0))


@pytest.mark.parametrize("policy, message", [
    (_Policy("three", (3,)), r"policy three: act must return a floating action of shape \(4,\) for reach, "
                             r"got float32\[3\]"),
    (_Policy("scalar", ()), r"policy scalar: .* of shape \(4,\) .*got float32\[\]"),
    (_Policy("ints", dtype="int32"), r"policy ints: act must return a floating action .*got int32\[4\]"),
    (_Policy("bare", broken="tuple"), r"policy bare: act\(state, key, obs, params\) must return \(action, state\), "
                                      r"got \w+"),
    (_Policy("grows", broken="state"), r"policy grows: act must return its state as it was given"),
])
def test_a_policy_breaking_its_contract_is_a_type_error_at_trace_time(reach_env, reset_shape, policy, message):
    """Before: an action of shape (3,) was stored as (B, T, 3) without a word; a scalar was a bare IndexError. The
    rollout traces step_episode (rollout_batch and the generator alike); tracing it alone shows the check at a
    fraction of a compile's cost."""
    m, key = reach_env.mjx_model, jax.random.key(0)
    with pytest.raises(TypeError, match=message):
        jax.eval_shape(lambda s: episode.step_episode(reach_env, policy, m, s, jnp.zeros(2), key, 0, None), reset_shape)


def test_a_policy_init_must_return_arrays(reach_env):
    with pytest.raises(TypeError, match=r"policy named: init must return arrays .*got a str"):
        jax.eval_shape(lambda: episode.start_episode(reach_env, _Policy("named", broken="init"), reach_env.mjx_model,
                                                     jnp.uint32(0), jnp.int32(0), randomize.OFF, None))


def test_a_policy_record_must_be_a_dict_of_arrays():
    with pytest.raises(TypeError, match=r"policy listed: record\(state\) must return a dict of name -> array"):
        episode.record(_Policy("listed", broken="record"), jnp.zeros(2))
    with pytest.raises(TypeError, match=r"policy odd: record must return arrays .*got a str"):
        episode.record(_Policy("odd"), "text")
    assert episode.record(_Policy("fine"), jnp.zeros(2))["s"].shape == (2,)




# --------------------------------------------------------------------------- 6. a PushT worker dies

_PUSHT = """
import sys
from mjxgen.cli import report_failures
from mjxgen.pusht.generate import generate
status, _ = report_failures(lambda: generate(int(sys.argv[2]), 3, sys.argv[1], workers=2, shard_size=4,
                                             progress=False), ["python", "-m", "mjxgen.pusht"])
sys.exit(status)
"""
PUSHT_N = 24


def _workers_of(pid: int) -> list[int]:
    """The spawned multiprocessing workers among a process's children (not its resource tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            out.append(int(stat.parent.name))
    return sorted(out)


def test_a_dead_pusht_worker_fails_the_run_at_once_and_resume_completes_it(tmp_path, tmp_path_factory):
    ref, out = tmp_path / "ref.h5", tmp_path / "run.h5"
    proc = subprocess.Popen([sys.executable, "-c", _PUSHT, str(out), str(PUSHT_N)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(tmp_path_factory))
    partial, deadline = shards.partial_dir(out), time.time() + 300
    try:
        while not (partial.is_dir() and shards.list_shards(partial) and len(_workers_of(proc.pid)) == 2):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.01)
        victim = _workers_of(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.perf_counter()
        _, err = proc.communicate(timeout=60)  # before: the main process waited forever beside a zombie
        assert time.perf_counter() - killed < 15
    finally:
        proc.kill()
    # XLA's own log lines (W1206 12:00:00.000 ... pjrt_executable.cc] on a warm program cache) are not mjxgen's
    lines = [line for line in err.splitlines() if line.strip() and not re.match(r"[IWEF]\d{4} \d\d:", line)]
    assert proc.returncode == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"error: PushT worker process {victim} (killed by SIGKILL) died; samples 0 to ")
    assert f"are safe in {partial};" in lines[0] and lines[0].endswith("python -m mjxgen.pusht --resume")
    assert partial.is_dir() and not out.exists() and not lock_path(out).exists()
    pusht.generate(PUSHT_N, 3, ref, workers=2, shard_size=4, progress=False)  # an uninterrupted run
    stats = pusht.generate(PUSHT_N, 3, out, workers=2, shard_size=4, progress=False, resume=True)
    assert stats["total_episodes"] == PUSHT_N
    assert_same_pusht_files(out, ref)
    # --resume on the complete file: its stats, nothing run (a requeued job succeeds)
    assert pusht.generate(PUSHT_N, 3, out, workers=2, shard_size=4, progress=False, resume=True) == stats


# --------------------------------------------------------------------------- 7. a full disk


@pytest.fixture(scope="module")
def run_bytes(tmp_path_factory, reference) -> int:
    """The disk space of this shape's unfinished run (its manifest and 20 shards), measured on the first shards
    of the same settings (a shard's per-shard statistics make it far larger than its share of the merged file)."""
    out = tmp_path_factory.mktemp("measure") / "run.h5"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(shards.ShardStore, "finalize", lambda self, attrs, merge: (_ for _ in ()).throw(OSError("measured")))
        with pytest.raises(OSError, match="measured"):
            run_generation(_settings(out, n_episodes=2 * BATCH))
    partial = shards.partial_dir(out)
    shard = max(p.stat().st_size for _, _, p in shards.list_shards(partial))
    return (partial / shards.MANIFEST).stat().st_size + (N // BATCH) * shard


@pytest.fixture
def tiny_disk(tmp_path, run_bytes):
    """A tmpfs twice the size of an unfinished run, plus 1 MB (CI runs as root); skipped where mounting is not
    allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    size = f"{(2 * run_bytes + MB) // 1024}k"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs here (needs root): {r.stderr.strip() or r.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves `leave` bytes free on disk."""
    ballast = disk / "ballast"
    st = os.statvfs(disk)
    ballast.write_bytes(bytes(max(st.f_bavail * st.f_frsize - leave, 0)))
    return ballast


@pytest.mark.parametrize("where", ["shards", "merge"])
def test_a_full_disk_is_one_line_and_resume_completes(tiny_disk, run_bytes, tmp_path_factory, reference, capsys,
                                                      where):
    """Before: exit 139 (a segmentation fault in h5py's File.close) and dozens of tracebacks. The run is a real
    process: a crash must not take the test runner with it. "shards": room for about half the shards; "merge":
    room for every shard, not for the merged file beside them."""
    ballast = _fill(tiny_disk, run_bytes // 2 if where == "shards" else run_bytes + 160_000)
    out = tiny_disk / "run.h5"
    r = subprocess.run([sys.executable, "-m", "mjxgen.reach", *CLI, "--output", str(out)], capture_output=True,
                       text=True, env=subprocess_env(tmp_path_factory), timeout=600)
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert r.returncode == 1 and len(lines) == 1, (r.returncode, r.stderr[-3000:])
    err = lines[0]
    assert err.startswith("error: ") and "No space left on device" in err and err.endswith("--resume"), err
    assert ("merge needs up to" in err) == (where == "merge"), err
    safe = re.search(rf"episodes 0 to (\d+) are safe in {re.escape(str(shards.partial_dir(out)))}", err)
    assert safe, err  # the disk filled with shards written: the scenario happened
    assert (int(safe.group(1)) + 1 == N) == (where == "merge") and int(safe.group(1)) > 0, err
    assert not list(tiny_disk.glob("**/*.tmp")) and not lock_path(out).exists()
    ballast.unlink()  # space freed
    _assert_safe_and_resumable(out, reference[0], capsys)


@pytest.mark.parametrize("where", ["merge", "rename"])
def test_an_injected_disk_error_at_the_merge_or_rename_is_one_line(tmp_path, reference, capsys, monkeypatch, where):
    out = tmp_path / "run.h5"
    if where == "merge":
        real = episodes_format.merge

        def copy(f, paths):
            real(f, paths[:3])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(episodes_format, "merge", copy)
    else:
        real_replace = os.replace

        def replace(src, dst):
            if Path(dst) == out:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real_replace(src, dst)

        monkeypatch.setattr(shards.os, "replace", replace)
    assert _task(["--output", str(out)]) == 1
    monkeypatch.undo()
    err = _one_line(capsys)
    assert ("No space left on device" if where == "merge" else "Input/output error") in err
    assert f"episodes 0 to {N - 1} are safe in {shards.partial_dir(out)}; fix the cause and resume with: " in err, err
    assert not Path(f"{out}.tmp").exists() and not lock_path(out).exists()
    _assert_safe_and_resumable(out, reference[0], capsys)


# --------------------------------------------------------------------------- 8, 10. checkpoints within bounds


def _checkpoint(path, config_edit=None) -> Path:
    """A small valid checkpoint of reach: a BC network 3 -> 8 -> 4 on ee_pos (its first weight, net/layers/0/w, is
    float32 (3, 8)), config edited by config_edit(config) -> bytes."""
    import jax

    model = ModelRegistry.create("bc", state_dim=3, action_dim=4, hidden=(8,))
    arrays = ckpt.flatten(model.init(jax.random.key(0)), "net") | ckpt.flatten(model.identity_norm(), "norm")
    config = {"model": model.to_json(), "obs_keys": ["ee_pos"], "obs_shapes": {"ee_pos": [3]}, "step": 1,
              "env_name": "reach"}
    ckpt.save(path, config, arrays)
    if config_edit is not None:
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist()}
        members["config.json"] = config_edit(json.loads(members["config.json"]))
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    return path


def _deflated(head: bytes, zeros: int, piece: int = 2**24) -> tuple[bytes, int, int]:
    """(raw deflate stream, CRC-32, size) of head and then `zeros` zero bytes, made without compressing every piece:
    after a full flush each further piece of zeros compresses to the same bytes."""
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)]
    n, rest = divmod(zeros, piece)
    block = c.compress(bytes(piece)) + c.flush(zlib.Z_FULL_FLUSH)
    crc, zero = zlib.crc32(head), bytes(piece)
    for _ in range(n):
        crc = zlib.crc32(zero, crc)
    out += [block] * n + [c.compress(bytes(rest)) + c.flush()]
    return b"".join(out), zlib.crc32(bytes(rest), crc), len(head) + zeros


def _zip(path: Path, members: dict[str, tuple[bytes, int, int, int]]) -> Path:
    """A zip archive written by hand: name -> (data, CRC-32, uncompressed size, method: 0 stored, 8 deflated)."""
    central = []
    with open(path, "wb") as f:
        for name, (data, crc, size, method) in members.items():
            offset, raw = f.tell(), name.encode()
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0))
            f.write(raw + data)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data),
                                       size, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        start = f.tell()
        f.write(b"".join(central))
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), f.tell() - start, start, 0))
    return path


def _stored(data: bytes) -> tuple[bytes, int, int, int]:
    import zlib

    return data, zlib.crc32(data), len(data), 0


def _bombs(tmp_path) -> dict[Path, str]:
    """A checkpoint whose weight member unpacks to 1.6 GB (1.6 MB on disk), and one whose config.json does (1.5 GB)."""
    good = _checkpoint(tmp_path / "good.npz")
    with zipfile.ZipFile(good) as z:
        members = {name: _stored(z.read(name)) for name in z.namelist()}
    config = members["config.json"][0]
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (400_000_000,)})
    bomb = members | {"net/layers/0/w.npy": (*_deflated(head.getvalue(), 1_600_000_000), 8)}
    weight = _zip(tmp_path / "weight_bomb.npz", bomb)
    # the config's text, then 1.5 GB of zero bytes (never parsed: refused by its size)
    config_bomb = _zip(tmp_path / "config_bomb.npz", members | {"config.json": (*_deflated(config, 1_500_000_000), 8)})
    return {weight: "net/layers/0/w is <f4\\[400000000\\], but the manifest says <f4\\[3, 8\\]",
            config_bomb: "config.json is 1,500,00.* bytes, more than the 1,048,576"}


_MEASURE = """
import json, resource, sys
from mjxgen.learn import checkpoints
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    checkpoints.load(sys.argv[1])
    error = None
except checkpoints.CheckpointError as e:
    error = str(e)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "peak_kb": after, "error": error}))
"""


def test_checkpoint_zip_bombs_are_refused_unread(tmp_path):
    """Before: the 1.6 GB weight reached 1.86 GB of memory before it was refused; the 1.5 GB config 3.45 GB."""
    for path, message in _bombs(tmp_path).items():
        assert path.stat().st_size < 3 * MB
        # Through a shell that forks it: Linux keeps a process's ru_maxrss across exec, and a child that Python's
        # subprocess starts directly (vfork, then exec) would start with this test process's peak.
        r = subprocess.run(["sh", "-c", '"$0" -c "$1" "$2"; exit $?', sys.executable, _MEASURE, str(path)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{path.name}: peak RSS {m['peak_kb'] / 1024:.0f} MB ({m['before_kb'] / 1024:.0f} MB after import)")
        assert m["error"] is not None and re.search(message, m["error"]), m["error"]
        assert m["peak_kb"] - m["before_kb"] < 40 * 1024 and m["peak_kb"] < 200 * 1024, m


def _set_manifest_entry(value):
    def edit(config):
        config["arrays"]["net/layers/0/w"] = value
        return json.dumps(config).encode()

    return edit


@pytest.mark.parametrize("edit, message", [
    (_set_manifest_entry(7), "manifest entry 'net/layers/0/w' is not .*got 7"),
    (_set_manifest_entry({"shape": [3, "8"], "dtype": "<f4"}), "manifest entry 'net/layers/0/w' is not"),
    (_set_manifest_entry({"shape": [3, 8], "dtype": "<q17"}), "manifest entry 'net/layers/0/w' has an unknown dtype"),
    (_set_manifest_entry({"shape": [2**40], "dtype": "<f4"}), "declares 4,398,0.* bytes of arrays"),
    (lambda config: ("[" * 100_000 + "]" * 100_000).encode(), "nests JSON 100000 levels deep, more than the 64"),
    (lambda config: json.dumps(config | {"deep": json.loads("[" * 70 + "]" * 70)}).encode(), "nests JSON 71 levels"),
])
def test_malformed_checkpoints_are_one_line_checkpoint_errors(tmp_path, capsys, edit, message):
    bad = _checkpoint(tmp_path / "bad.npz", edit)
    with pytest.raises(ckpt.CheckpointError, match=message) as e:
        ckpt.load(bad)
    assert "\n" not in str(e.value) and str(bad) in str(e.value)
    assert cli.main(["eval", str(bad), "--n-episodes", "2"]) == 2
    err = _one_line(capsys)
    assert err.startswith("error: ") and str(bad) in err
    good = ckpt.load(_checkpoint(tmp_path / "good.npz"))
    assert good.arrays["net/layers/0/w"].shape == (3, 8) and good.arrays["net/layers/0/w"].flags.writeable


# --------------------------------------------------------------------------- 9. SIGINT and SIGTERM at any moment


def _signal_in_a_finalizer(monkeypatch, sig):
    """SIGINT while a finalizer runs during the merge (as in h5py's object registry): before, the handler raised
    inside the finalizer, Python printed "Exception ignored" and the run finished with exit 0."""
    real = episodes_format.merge

    def copy(out, paths):
        class Registered:
            pass

        obj = Registered()
        weakref.finalize(obj, signal.raise_signal, sig)
        del obj  # the finalizer runs here, and the signal arrives inside it
        real(out, paths)

    monkeypatch.setattr(episodes_format, "merge", copy)


def _signal_at_fsync_of_the_merged_file(monkeypatch, sig, out):
    real = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}") == os.path.realpath(f"{out}.tmp"):
            signal.raise_signal(sig)
        return real(fd)

    monkeypatch.setattr(shards.os, "fsync", fsync)


def _signal_after_the_rename(monkeypatch, sig, out):
    real = os.replace

    def replace(src, dst):
        real(src, dst)
        if Path(dst) == out:
            signal.raise_signal(sig)

    monkeypatch.setattr(shards.os, "replace", replace)


@pytest.mark.parametrize("moment, sig", [("finalizer", signal.SIGINT), ("fsync", signal.SIGINT),
                                         ("finalizer", signal.SIGTERM), ("renamed", signal.SIGINT)])
def test_a_signal_around_the_merge_ends_the_run_with_one_line(tmp_path, reference, capsys, monkeypatch, moment, sig):
    out = tmp_path / "run.h5"
    before = signal.getsignal(signal.SIGINT)
    if moment == "finalizer":
        _signal_in_a_finalizer(monkeypatch, sig)
    elif moment == "fsync":
        _signal_at_fsync_of_the_merged_file(monkeypatch, sig, out)
    else:
        _signal_after_the_rename(monkeypatch, sig, out)
    assert _task(["--output", str(out)]) == 128 + sig
    monkeypatch.undo()
    err = _one_line(capsys)
    assert err.startswith(f"interrupted by {signal.Signals(sig).name}: ") and err.endswith("--resume"), err
    assert signal.getsignal(signal.SIGINT) is before  # the run's handler is gone, the caller's is back
    if moment == "renamed":  # the file was complete when the signal came: it says so, and --resume has nothing to do
        assert f"all {N} episodes are in {out}, which is complete" in err
        _assert_same_file(out, reference[0])
        assert _task(["--output", str(out), "--resume"]) == 0
        assert "complete already (same settings): nothing to resume" in capsys.readouterr().err
        return
    assert f"episodes 0 to {N - 1} ({N} of {N}) are safe in {shards.partial_dir(out)}" in err
    assert not Path(f"{out}.tmp").exists() and not lock_path(out).exists()
    _assert_safe_and_resumable(out, reference[0], capsys)


def test_a_signal_in_a_finalizer_stops_a_python_api_run(tmp_path, reference, capsys, monkeypatch):
    """The same from Python, without the command line's handlers (mjxgen.cli.interrupts sends a signal whose
    exception Python dropped again, which hides a handler that raises inside a finalizer): the signal is raised at
    the run's next safe point, never inside the finalizer."""
    out = tmp_path / "run.h5"
    _signal_in_a_finalizer(monkeypatch, signal.SIGINT)
    with pytest.raises(GenerationInterrupted) as e:
        run_generation(_settings(out))
    monkeypatch.undo()
    assert (e.value.signum, e.value.safe) == (signal.SIGINT, N), str(e.value)
    assert "Exception ignored" not in capsys.readouterr().err
    assert not out.exists() and not Path(f"{out}.tmp").exists() and not lock_path(out).exists()
    run_generation(_settings(out, resume=True))
    _assert_same_file(out, reference[0])


def test_a_signal_before_the_first_shard_says_nothing_is_safe_yet(tmp_path, reference, capsys, monkeypatch):
    """Before: "episodes 0 to -1 (0 of 160) are safe in ...". """
    out = tmp_path / "run.h5"
    real = DatasetWriter.write_batch

    def write_batch(self, batch):
        signal.raise_signal(signal.SIGINT)
        real(self, batch)

    monkeypatch.setattr(DatasetWriter, "write_batch", write_batch)
    assert _task(["--output", str(out)]) == 130
    monkeypatch.undo()
    err = _one_line(capsys)
    assert err.startswith(f"interrupted by SIGINT: no episodes are safe yet (0 of {N}); resume with: "), err
    assert not shards.list_shards(shards.partial_dir(out))
    assert _task(["--output", str(out), "--resume"]) == 0
    _assert_same_file(out, reference[0])


_SLOW_MERGE = """
import sys, time
import h5py
from mjxgen import cli
from mjxgen.data.formats import episodes
real = episodes.merge
def merge(out, paths):  # the merge made to last: h5py objects made and dropped all the while, their finalizers run
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        with h5py.File(paths[0], "r") as f:
            [f[name].attrs["length"] for name in f]
    real(out, paths)
episodes.merge = merge
sys.exit(cli.task_main("reach", sys.argv[2:]))
"""


def test_sigint_as_the_merged_file_appears(tmp_path, tmp_path_factory, reference):
    """A real Ctrl-C from outside, sent as `<out>.tmp` appears, while h5py's finalizers run (before: 1 in 4 printed
    "Exception ignored ... Signalled: SIGINT" and exited 0). The merge is made to last 3 s, so the signal always
    lands inside it: the test fails unless the run was interrupted."""
    out = tmp_path / "run.h5"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_MERGE, "3", *CLI, "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(tmp_path_factory))
    tmp, deadline = Path(f"{out}.tmp"), time.time() + 300
    try:
        while not tmp.exists():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.0005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "Exception ignored" not in err and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert proc.returncode == 130 and len(lines) == 1, err  # the signal came during the merge, and ended it
    assert f"({N} of {N}) are safe in {shards.partial_dir(out)}" in lines[0], lines[0]
    assert not out.exists() and not tmp.exists() and not lock_path(out).exists()
    assert cli.task_main("reach", [*CLI, "--output", str(out), "--resume"]) == 0
    _assert_same_file(out, reference[0])


_STUCK = """
import hashlib, sys
from mjxgen import cli
from mjxgen.data.writer import DatasetWriter
real, calls = DatasetWriter.write_batch, []
def write_batch(self, batch):
    calls.append(1)
    if len(calls) == 3:  # one long call into C, as a compile or a collective: no Python handler runs meanwhile
        hashlib.pbkdf2_hmac("sha256", b"x", b"y", 200_000_000)
    real(self, batch)
DatasetWriter.write_batch = write_batch
sys.exit(cli.task_main("reach"))  # a process's entry point (argv from sys.argv): the watchdog is on
"""


def test_a_signal_during_a_long_call_into_c_ends_the_run_within_the_grace(tmp_path, tmp_path_factory, reference,
                                                                         capsys):
    """Python runs handlers only between bytecodes: before, SIGTERM waited for the call to return (minutes). Now
    the watchdog ends the run GRACE_S (5 s) after the signal, with one line."""
    out = tmp_path / "run.h5"
    proc = subprocess.Popen([sys.executable, "-c", _STUCK, *CLI, "--output", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(tmp_path_factory))
    partial, deadline = shards.partial_dir(out), time.time() + 300
    try:
        while not (partial.is_dir() and len(shards.list_shards(partial)) >= 2):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        sent = time.perf_counter()
        _, err = proc.communicate(timeout=120)
        assert time.perf_counter() - sent < 20
    finally:
        proc.kill()
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert proc.returncode == 143 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("interrupted by SIGTERM: episodes 0 to ") and "stopped at once" in lines[0]
    _assert_safe_and_resumable(out, reference[0], capsys)


def test_inside_a_program_no_watchdog_ends_the_process(monkeypatch):
    """The watchdog is a command-line process's: inside a program (a notebook, this test) a signal that meets no
    safe point is raised when the block ends, and the process lives on however long that takes."""
    from mjxgen.runtime import signals as run_signals

    monkeypatch.setattr(run_signals, "GRACE_S", 0.2)
    with pytest.raises(run_signals.Signalled):
        with run_signals.stop_on_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # no safe point: a watchdog would have ended this process after 0.2 s


# --------------------------------------------------------------------------- 11. --overwrite and --resume


def test_overwrite_replaces_only_mjxgen_datasets(tmp_path, reference, capsys):
    notes = tmp_path / "notes.h5"
    notes.write_text("a user's file, not a dataset\n")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(3)
    for path in (notes, other):
        before = path.read_bytes()
        assert _task(["--output", str(path), "--overwrite"]) == 2
        err = _one_line(capsys)
        assert f"{path} is not an mjxgen dataset; --overwrite replaces only mjxgen datasets" in err, err
        assert path.read_bytes() == before and not lock_path(path).exists()
    odd = tmp_path / "odd.h5"
    shards.partial_dir(odd).mkdir()
    (shards.partial_dir(odd) / "thesis.tex").write_text("\\documentclass{article}")
    assert _task(["--output", str(odd), "--overwrite"]) == 2
    assert "is not an unfinished mjxgen run" in _one_line(capsys)
    assert (shards.partial_dir(odd) / "thesis.tex").exists()
    mine = tmp_path / "mine.h5"
    mine.write_bytes(reference[0].read_bytes())  # an mjxgen dataset: replaced
    assert _task(["--output", str(mine), "--overwrite", "--seed", "12"]) == 0
    with h5py.File(mine) as f:
        assert f.attrs["seed"] == 12


def test_resume_on_a_complete_file(tmp_path, reference, capsys):
    """Same settings: exit 0, it says so, nothing is simulated (a requeued SLURM job succeeds). Other settings:
    refused. Before: exit 2, "nothing to resume"."""
    out = tmp_path / "done.h5"
    out.write_bytes(reference[0].read_bytes())
    capsys.readouterr()
    assert _task(["--output", str(out), "--resume"]) == 0
    assert f"{out} is complete already (same settings): nothing to resume" in capsys.readouterr().err
    stats = generate_dataset("reach", N, out, "scripted", max_steps=HORIZON, seed=SEED, batch_size=BATCH, resume=True,
                             progress=False)
    assert stats == reference[1] | {"output_path": str(out)}
    capsys.readouterr()
    assert _task(["--output", str(out), "--resume", "--max-steps", "21"]) == 2
    err = _one_line(capsys)
    assert f"{out} is complete, with other settings (they differ in max_steps)" in err, err
    assert not shards.partial_dir(out).exists() and not lock_path(out).exists()
    _assert_same_file(out, reference[0])
