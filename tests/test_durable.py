"""Durable datasets: SIGKILL and SIGINT leave readable partial runs that --resume completes to the same data;
NaN episodes are caught; a failing disk gives one line and intact shards; untrusted files fail clearly."""

import errno
import json
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from support import DURABLE_BATCH, DURABLE_HORIZON, NanReach, assert_same_episodes, episodes_of, subprocess_env
from mjxgen import cli
from mjxgen.data import shards
from mjxgen.data.dataset import DatasetFormatError, TrajectoryDataset
from mjxgen.envs import ENVS
from mjxgen.generate.config import GenerationConfig
from mjxgen.generate.pipeline import generate_dataset, run_generation

# 20 batches of 8 short episodes: one small compiled shape, shared by every test here.
BATCH, HORIZON, N, SEED = DURABLE_BATCH, DURABLE_HORIZON, 160, 11
CLI = ["--batch", str(BATCH), "--episodes", str(N), "--max-steps", str(HORIZON), "--seed", str(SEED), "--no-progress"]


def _run(path, **settings):
    """run_generation of the module's shape (reach, scripted, N episodes in batches of BATCH), with overrides."""
    base = dict(env_name="reach", n_episodes=N, output_path=path, policy_type="scripted", max_steps=HORIZON, seed=SEED,
                batch_size=BATCH, progress=False)
    return run_generation(GenerationConfig(**(base | settings)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run."""
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    _run(path)
    return path


def _start(tmp_path, env, extra=()):
    out = tmp_path / "run.h5"
    proc = subprocess.Popen([sys.executable, "-m", "mjxgen.reach", *CLI, "--output", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return out, proc


def _wait_for_shards(out, proc, at_least, timeout=300):
    partial = shards.partial_dir(out)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if partial.is_dir() and len(shards.list_shards(partial)) >= at_least:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    raise TimeoutError("no shards appeared")


def _kill_and_resume(tmp_path, env, reference, sig, at_least, delay):
    out, proc = _start(tmp_path, env)
    assert _wait_for_shards(out, proc, at_least), proc.communicate()
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    ref = episodes_of(reference)
    if proc.returncode == 0:  # finished before the signal landed: nothing to resume, but it must be whole
        assert_same_episodes(episodes_of(out), ref)
        return proc.returncode, err, None
    part = episodes_of(out, allow_incomplete=True)
    assert 0 < len(part) < N
    assert_same_episodes(part, ref)  # the finished episodes are those of the uninterrupted run
    ds = TrajectoryDataset(out, allow_incomplete=True)
    assert not ds.complete and ds.n_episodes == len(part)
    with pytest.raises(DatasetFormatError, match="unfinished run"):
        TrajectoryDataset(out)
    n_safe = len(part)
    # The resume runs here, through the same CLI: a fresh process would only trace the rollout again.
    assert cli.task_main("reach", [*CLI, "--output", str(out), "--resume"]) == 0
    resumed = episodes_of(out)
    assert resumed.keys() == ref.keys()
    assert_same_episodes(resumed, ref)
    with h5py.File(out) as f, h5py.File(reference) as g:
        assert f.attrs["complete"] and f.attrs["total_episodes"] == N and f.attrs["config"] == g.attrs["config"]
    assert not shards.partial_dir(out).exists()
    return proc.returncode, err, n_safe


def test_sigkill_then_resume_gives_the_reference(tmp_path, tmp_path_factory, reference):
    rc, _, n_safe = _kill_and_resume(tmp_path, subprocess_env(tmp_path_factory), reference, signal.SIGKILL, 3, 0.0)
    assert rc == -signal.SIGKILL and n_safe


@pytest.mark.slow
def test_sigkill_five_random_moments(tmp_path, tmp_path_factory, reference):
    rng = random.Random(0)
    env = subprocess_env(tmp_path_factory)
    for i in range(5):
        d = tmp_path / str(i)
        d.mkdir()
        # at most half of the 20 shards written and 20 ms more: the kill lands while the run is going
        shards_before, delay = rng.randint(1, 10), rng.uniform(0, 0.02)
        rc, _, n_safe = _kill_and_resume(d, env, reference, signal.SIGKILL, shards_before, delay)
        assert rc == -signal.SIGKILL and n_safe, f"kill {i} did not interrupt the run (rc {rc})"
        print(f"kill {i}: after {shards_before} shards + {delay * 1e3:.0f} ms: rc {rc}, {n_safe} of {N} episodes "
              "safe, resumed to the reference")


def test_sigint_exits_130_with_a_resume_hint(tmp_path, tmp_path_factory, reference):
    rc, err, n_safe = _kill_and_resume(tmp_path, subprocess_env(tmp_path_factory), reference, signal.SIGINT, 2, 0.0)
    assert rc == 130, err
    # (stderr also carries JAX's notes about the shared compilation cache)
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("interrupted")]
    assert len(lines) == 1 and "interrupted by SIGINT" in lines[0] and f"({n_safe} of {N})" in lines[0]
    assert "resume with: python -m mjxgen.reach" in lines[0] and lines[0].endswith("--resume")


@pytest.mark.parametrize("mode", ["drop", "flag"])
def test_nan_episodes_are_caught(tmp_path, monkeypatch, mode):
    monkeypatch.setitem(ENVS, "reach_nan", NanReach)
    path = tmp_path / f"{mode}.h5"
    stats = generate_dataset("reach_nan", 2 * BATCH, path, "nan", max_steps=HORIZON, seed=SEED, batch_size=BATCH,
                             on_invalid=mode, progress=False)
    ds = TrajectoryDataset(path)
    with h5py.File(path) as f:
        target_x = {int(n.split("_")[1]): f[n]["observations/target_pos"][0, 0] for n in f}
        dropped = list(f.attrs["dropped_episodes"])
    n_bad = stats["invalid_episodes"]
    assert 0 < n_bad < 2 * BATCH
    if mode == "drop":
        assert len(dropped) == n_bad and ds.n_episodes == 2 * BATCH - n_bad
        assert all(x <= 0.5 for x in target_x.values())
        assert np.isfinite(ds.actions).all() and np.isfinite(ds.observations["joint_pos"]).all()
    else:
        assert dropped == [] and ds.n_episodes == 2 * BATCH and ds.n_invalid == n_bad
        flagged = {int(i) for i, bad in zip(ds.episode_index, ds.invalid) if bad}
        assert flagged == {i for i, x in target_x.items() if x > 0.5}
    assert stats["total_episodes"] == ds.n_episodes


def test_full_disk_gives_one_line_and_intact_shards(tmp_path, monkeypatch, capsys, reference):
    out = tmp_path / "full.h5"
    real = shards.ShardStore.write_shard
    calls = []

    def failing(self, first, end, write):
        calls.append(first)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, first, end, write)

    monkeypatch.setattr(shards.ShardStore, "write_shard", failing)
    rc = cli.task_main("reach", [*CLI, "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err
    assert err.startswith("error: ") and "No space left on device" in err and err.endswith("--resume")
    assert "episodes 0 to 15 are safe" in err
    assert not out.exists()
    part = episodes_of(out, allow_incomplete=True)
    assert len(part) == 2 * BATCH
    assert_same_episodes(part, episodes_of(reference))
    monkeypatch.setattr(shards.ShardStore, "write_shard", real)
    assert cli.task_main("reach", [*CLI, "--output", str(out), "--resume"]) == 0
    assert_same_episodes(episodes_of(out), episodes_of(reference))


def test_resume_refuses_other_settings(tmp_path, monkeypatch, reference):
    out = tmp_path / "x.h5"
    def fail(self, *args):
        raise OSError(errno.EIO, "merge failed")

    monkeypatch.setattr(shards.ShardStore, "finalize", fail)  # leave the run unfinished
    with pytest.raises(OSError, match="episodes 0 to 159 are safe"):
        _run(out)
    with pytest.raises(ValueError, match="settings differ in seed"):
        _run(out, seed=SEED + 1, resume=True)
    with pytest.raises(FileExistsError, match="--resume"):
        _run(out)


def test_untrusted_files_fail_with_one_clear_line(tmp_path, reference):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(3)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(reference.read_bytes()[: reference.stat().st_size // 2])
    text = tmp_path / "notes.txt"
    text.write_text("episode_0: not really\n")
    malformed = tmp_path / "malformed.h5"
    malformed.write_bytes(reference.read_bytes())
    with h5py.File(malformed, "a") as f:
        del f["episode_3/actions"]
    cases = {
        other: "not an mjxgen dataset",
        truncated: "not a readable HDF5 file|unreadable or malformed",
        text: "not an HDF5 file",
        malformed: "episode_3/actions is missing",
    }
    broken = tmp_path / "broken.h5.partial"  # an unfinished run whose manifest was cut short
    broken.mkdir()
    (broken / shards.MANIFEST).write_text('{"format": "mjx')
    cases[broken] = "manifest.json is missing or broken"
    for path, message in cases.items():
        with pytest.raises(DatasetFormatError, match=message) as e:
            # opening reads the index; each episode is checked when it is read
            TrajectoryDataset(path, allow_incomplete=path == broken).episode(3)
        assert "\n" not in str(e.value), str(e.value)
        assert str(path) in str(e.value)


def test_info_reports_counts_and_completeness(reference, capsys):
    assert cli.main(["info", str(reference)]) == 0
    out = capsys.readouterr().out
    ds = TrajectoryDataset(reference)
    assert f"Episodes             {N}" in out and f"Total steps          {len(ds)}" in out
    assert "Complete             yes" in out and f"{ds.success.mean():.1%}" in out
    config = json.loads(out.split("Config:\n", 1)[1].split("Statistics", 1)[0])
    assert config["seed"] == SEED and config["batch_size"] == BATCH
    assert cli.main(["info", str(reference.parent / "missing.h5")]) == 2
