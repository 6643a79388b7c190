"""The command lines: one-line errors for bad input, a real small run, and every flag's effect in the file."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from support import DURABLE_BATCH as N, DURABLE_HORIZON as T, SEED_N, SEED_T
from mjxgen import cli


@pytest.mark.parametrize(
    "argv, message",
    [
        (["datagen", "--env-name", "juggle", "--n-episodes", "2"], "unknown env 'juggle'"),
        (["datagen", "--n-episodes", "0"], "must be a positive integer"),
        (["datagen", "--n-episodes", "-3"], "must be a positive integer"),
        (["datagen", "--batch-size", "1.5"], "must be a positive integer"),
        (["datagen", "--policy", "teleop"], "unknown policy 'teleop'"),
        (["datagen", "--camera", "--image-size", "64", "0"], "must be a positive integer"),
        (["datagen", "--camera", "--image-size", "600", "64"], "image_size must be two integers"),
    ],
)
def test_datagen_bad_input_is_one_line(argv, message, capsys, tmp_path):
    argv = argv + ["--output", str(tmp_path / "x.h5")]
    try:
        status = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        status = e.code
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert message in err
    assert err.count("\n") == 0 and "error:" in err


def test_existing_output_and_unwritable_directory(capsys, tmp_path):
    existing = tmp_path / "old.h5"
    existing.write_text("")
    assert cli.task_main("reach", ["--batch", "2", "--output", str(existing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists; pass --overwrite" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.task_main("reach", ["--batch", "2", "--output", str(blocker / "d" / "x.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot create output directory" in err


def test_batch_must_be_a_positive_integer(capsys):
    for bad in ("0", "-1", "abc", "2.5"):
        with pytest.raises(SystemExit) as e:
            cli.task_main("reach", ["--batch", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert "--batch: must be a positive integer" in err and err.count("\n") == 0


def test_reach_module_runs_end_to_end(tmp_path):
    """`python -m mjxgen.reach` in a fresh process: stats table, a complete file, and the compiled programs in the
    cache directory given by --compile-cache."""
    out, cache = tmp_path / "r.h5", tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "mjxgen.reach", "--batch", "4", "--max-steps", "10", "--output", str(out), "--no-progress",
         "--compile-cache", str(cache)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for label in ("Episodes", "Total steps", "Mean length", "Mean reward", "Success rate", "File size", "Physics steps/s",
                  "Episodes/s", "Useful env steps/s", "Useful fraction"):
        assert label in proc.stdout
    # For the next run: the compiled segment program (JAX's cache) and the exported one (mjxgen.sim.programs).
    assert any(p.name.startswith("jit_segment_exported") for p in cache.iterdir())
    assert any((cache / "programs").glob("*.pkl"))
    with h5py.File(out) as f:
        assert f.attrs["complete"] and len(f.keys()) == 4
    # A second run without --overwrite is refused in one line, with no traceback.
    again = subprocess.run([sys.executable, "-m", "mjxgen.reach", "--batch", "4", "--output", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr and "already exists" in again.stderr


def test_a_batch_too_large_for_memory_is_refused_in_one_line(tmp_path, capsys):
    """Issue 27: `--batch 1000000000` died with _ArrayMemoryError (a traceback, exit 1, a .partial left behind)."""
    out = tmp_path / "huge.h5"
    assert cli.task_main("reach", ["--batch", "1000000000", "--output", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: a batch of 1000000000 episodes does not fit in memory")
    largest = int(re.search(r"the largest batch that fits is (\d+)", err).group(1))
    assert largest < 10**9
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .partial directory


# Each entry point, started in a fresh process and signalled while it imports (issue 27): one line, 128 + signal.
ENTRY_POINTS = {
    "python -m mjxgen.reach": ["-m", "mjxgen.reach", "--batch", "4", "--max-steps", "10", "--output", "r.h5"],
    "python -m mjxgen.pick_place": ["-m", "mjxgen.pick_place", "--batch", "4", "--output", "p.h5"],
    "python -m mjxgen.pusht": ["-m", "mjxgen.pusht", "--num-samples", "1", "--output-h5", "s.h5"],
    "mjxgen": ["-c", "import sys; from mjxgen.cli import main; sys.exit(main())", "datagen", "--n-episodes", "4"],
}


def _handles(pid: int, sig: int) -> bool:
    """Whether process pid has a handler installed for sig (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (sig - 1) & 1)


def _loaded_jax(pid: int) -> bool:
    try:
        return "jaxlib" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _start(entry: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *ENTRY_POINTS[entry], "--no-progress"], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask in /proc")
@pytest.mark.parametrize("entry, sig", [("python -m mjxgen.reach", signal.SIGINT),
                                        ("python -m mjxgen.pick_place", signal.SIGTERM),
                                        ("python -m mjxgen.pusht", signal.SIGINT), ("mjxgen", signal.SIGTERM)])
def test_a_signal_during_the_imports_ends_in_one_line(entry, sig, tmp_path):
    """The signal is sent as soon as the process handles SIGTERM (Python never does by default), before JAX has
    loaded: the command's handlers must be in place before its heavy imports. Without a handler it is sent
    after 5 s, while the process imports or compiles."""
    proc = _start(entry, tmp_path)
    start = time.monotonic()
    while not _handles(proc.pid, signal.SIGTERM) and time.monotonic() - start < 5 and proc.poll() is None:
        time.sleep(0.001)
    early = not _loaded_jax(proc.pid)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (128 + sig, f"interrupted by {signal.Signals(sig).name}\n"), err[-2000:]
    assert out == "" and early, "the signal handlers came after JAX had loaded"
    assert list(tmp_path.iterdir()) == []


def test_a_signal_later_ends_in_one_line(tmp_path):
    """Seconds later (JAX loaded; the command imports, builds its env or compiles): still one line and 130."""
    proc = _start("python -m mjxgen.reach", tmp_path)
    start = time.monotonic()
    while not _loaded_jax(proc.pid) and time.monotonic() - start < 60 and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.count("\n") == 1 and "Traceback" not in err, err[-2000:]
    assert err.startswith("interrupted by SIGINT")


class _Dropped:
    """An object whose __del__ receives the signal: Python drops exceptions raised there ("Exception ignored")."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, inside __del__


def test_a_signal_while_the_command_runs_ends_in_one_line(monkeypatch, tmp_path, capsys):
    """In the command (here: while it builds its env), SIGINT raises, the command's cleanup runs, and the entry point
    prints one line and returns 130; also when the exception is raised where Python drops it (a __del__, JAX's gc
    callback): the signal is sent again."""
    from mjxgen.generate import pipeline

    def make_env(*args):
        _Dropped()  # collected at once: the signal's exception is dropped in its __del__ ...
        time.sleep(2)  # ... and raised again here
        raise AssertionError("the signal was lost")

    monkeypatch.setattr(pipeline, "make_env", make_env)
    before = signal.getsignal(signal.SIGINT)
    assert cli.task_main("reach", ["--batch", "2", "--output", str(tmp_path / "x.h5")]) == 130
    assert capsys.readouterr().err == "interrupted by SIGINT\n"
    assert signal.getsignal(signal.SIGINT) is before  # a call inside a program gives the handlers back


# Every flag of both arm CLIs (`mjxgen datagen` and `python -m mjxgen.<task>`), each checked in the file it writes.
# They run in-process on shapes the suite compiles anyway: tests/test_durable.py's (N, T) = (8 episodes, 20 steps)
# (reach/scripted, camera, NaN env), seed 000's (100, 200) for reach/random (tests/test_docs.py) and conftest's
# pick_place fixture (16 x 200).


class _Datagen:
    """`mjxgen datagen --env-name ENV ...`"""

    episodes, batch = "--n-episodes", "--batch-size"

    def __call__(self, env, argv):
        return cli.main(["datagen", "--env-name", env, *argv])


class _Task:
    """`python -m mjxgen.ENV ...`"""

    episodes, batch = "--episodes", "--batch"

    def __call__(self, env, argv):
        return cli.task_main(env, argv)


CLIS = [pytest.param(_Datagen(), id="datagen"), pytest.param(_Task(), id="task")]


def _flags(c, path, env="reach", n=N, batch=N, steps=T, seed=7, policy="scripted", extra=()):
    return [c.episodes, str(n), c.batch, str(batch), "--max-steps", str(steps), "--seed", str(seed),
            "--policy", policy, "--output", str(path), "--no-progress", *extra]


def generate_file(c, tmp_path, name="x.h5", env="reach", **kw):
    path = tmp_path / name
    assert c(env, _flags(c, path, env=env, **kw)) == 0
    return path


def _attrs(path, key):
    with h5py.File(path) as f:
        return {int(n.split("_")[1]): f[n][key][()] for n in f}


@pytest.fixture(scope="module", params=CLIS)
def base(request, tmp_path_factory):
    """One plain run per CLI: reach, scripted, N = 8 episodes of at most T = 20 steps, seed 7, gzip."""
    c = request.param
    return c, generate_file(c, tmp_path_factory.mktemp("cli"), "base.h5")


def test_base_run_follows_every_flag(base):
    _, path = base
    with h5py.File(path) as f:
        config = json.loads(f.attrs["config"])
        assert len(f.keys()) == N and f.attrs["seed"] == 7 and f.attrs["policy"] == "scripted"
        assert f.attrs["env_name"] == "reach" and f.attrs["compression"] == "gzip"
        assert config["max_steps"] == T and config["batch_size"] == N and config["domain_randomization"] is False
        assert max(f[n].attrs["length"] for n in f) == T  # --max-steps binds
        for n in f:
            assert "image" not in f[n]["observations"] and "randomization" not in f[n]


def test_episodes_and_batch_flags(base, tmp_path):
    c, _ = base
    path = generate_file(c, tmp_path, n=2 * N, batch=N + 6)
    with h5py.File(path) as f:
        assert len(f.keys()) == 2 * N  # --n-episodes / --episodes
        assert json.loads(f.attrs["config"])["batch_size"] == N  # --batch 14: 8 slots (2 x 8 episodes), not 14


def test_policy_flag(base, tmp_path):
    c, path = base
    random = _attrs(generate_file(c, tmp_path, policy="random", n=SEED_N, batch=SEED_N, steps=SEED_T), "actions")
    scripted = _attrs(path, "actions")
    assert all((a[:, 3] == 0).all() for a in scripted.values())  # the P-controller leaves the gripper at 0
    assert np.concatenate(list(random.values()))[:, 3].std() > 0.4  # uniform on [-1, 1]


def test_seed_flag(base, tmp_path):
    c, path = base
    other = generate_file(c, tmp_path, seed=8)
    assert h5py.File(other).attrs["seed"] == 8
    a, b = _attrs(path, "observations/target_pos"), _attrs(other, "observations/target_pos")
    assert all(not np.allclose(a[i][0], b[i][0]) for i in a)


def test_layout_and_dtype_flags(base, tmp_path):
    c, path = base
    flat = generate_file(c, tmp_path, "flat.h5", extra=["--layout", "flat", "--dtype", "float32"])
    with h5py.File(flat) as f, h5py.File(path) as g:
        assert f.attrs["format"] == "mjxgen-flat" and f.attrs["dtype"] == "float32"
        assert f["data/joint_pos"].dtype == np.float32 and len(f["meta/episode_ends"]) == len(g)
        ends = f["meta/episode_ends"][()]
        np.testing.assert_array_equal(f["data/joint_pos"][ends[2]:ends[3]],
                                      g["episode_3/observations/joint_pos"][()].astype(np.float32))


def test_compression_flag(base, tmp_path):
    c, _ = base
    path = generate_file(c, tmp_path, extra=["--compression", "lzf"])
    with h5py.File(path) as f:
        assert f.attrs["compression"] == "lzf" and f["episode_0/actions"].compression == "lzf"


def test_randomize_flag(base, tmp_path):
    c, _ = base
    path = generate_file(c, tmp_path, extra=["--randomize"])
    friction = np.array(list(_attrs(path, "randomization/friction_scale").values()))
    assert friction.min() >= 0.8 and friction.max() <= 1.2 and friction.std() > 0.05


def test_camera_and_image_size_flags(base, tmp_path):
    c, _ = base
    path = generate_file(c, tmp_path, extra=["--camera", "--image-size", "24", "40"])
    with h5py.File(path) as f:
        for n in f:
            assert f[n]["observations/image"].shape == (f[n].attrs["length"], 24, 40, 3)


def test_env_selection(base, tmp_path):
    """`--env-name pick_place` / `python -m mjxgen.pick_place`."""
    c, _ = base
    path = generate_file(c, tmp_path, env="pick_place", n=16, batch=16, steps=200)
    with h5py.File(path) as f:
        assert f.attrs["env_name"] == "pick_place" and len(f.keys()) == 16
        assert "object_pos" in f["episode_0/observations"]


def test_on_invalid_flag(base, tmp_path, monkeypatch):
    from support import NanReach
    from mjxgen.envs import ENVS

    c, _ = base
    monkeypatch.setitem(ENVS, "reach_nan", NanReach)
    flagged = generate_file(c, tmp_path, "flag.h5", env="reach_nan", n=16, batch=8, steps=20, policy="nan",
                        extra=["--on-invalid", "flag"])
    dropped = generate_file(c, tmp_path, "drop.h5", env="reach_nan", n=16, batch=8, steps=20, policy="nan")
    with h5py.File(flagged) as f, h5py.File(dropped) as g:
        bad = {n for n in f if f[n].attrs.get("invalid", False)}
        assert 0 < len(bad) < 16 and len(f.keys()) == 16
        assert set(g.keys()) == set(f.keys()) - bad and len(g.attrs["dropped_episodes"]) == len(bad)


def test_overwrite_flag(base, tmp_path, capsys):
    c, _ = base
    path = generate_file(c, tmp_path, seed=1)
    assert c("reach", _flags(c, path, seed=2)) == 2 and "already exists" in capsys.readouterr().err
    assert h5py.File(path).attrs["seed"] == 1
    assert c("reach", _flags(c, path, seed=2, extra=["--overwrite"])) == 0
    assert h5py.File(path).attrs["seed"] == 2


def test_resume_flag(base, tmp_path, monkeypatch, capsys):
    from mjxgen.data import shards

    c, reference = base
    path = tmp_path / "x.h5"
    monkeypatch.setattr(shards.ShardStore, "finalize", lambda self, *a: (_ for _ in ()).throw(OSError("disk")))
    assert c("reach", _flags(c, path)) == 1
    assert capsys.readouterr().err.strip().endswith("--resume") and not path.exists()
    monkeypatch.undo()
    assert c("reach", _flags(c, path, extra=["--resume"])) == 0
    a, b = _attrs(reference, "observations/joint_pos"), _attrs(path, "observations/joint_pos")
    for i in a:
        np.testing.assert_array_equal(a[i], b[i])


def test_no_progress_flag(base, tmp_path, capsys):
    c, _ = base
    generate_file(c, tmp_path, "quiet.h5")
    assert "reach/scripted" not in capsys.readouterr().err
    path = tmp_path / "bar.h5"
    argv = [f for f in _flags(c, path) if f != "--no-progress"]
    assert c("reach", argv) == 0
    assert "reach/scripted" in capsys.readouterr().err


def test_info_allow_incomplete(tmp_path, monkeypatch, capsys):
    from mjxgen.data import shards

    path = tmp_path / "x.h5"
    monkeypatch.setattr(shards.ShardStore, "finalize", lambda self, *a: (_ for _ in ()).throw(OSError("disk")))
    assert cli.main(["datagen", *_flags(_Datagen(), path)]) == 1
    monkeypatch.undo()
    capsys.readouterr()
    assert cli.main(["info", str(path)]) == 2 and "unfinished run" in capsys.readouterr().err
    assert cli.main(["info", str(path), "--allow-incomplete"]) == 0
    out = capsys.readouterr().out
    assert "NO: an unfinished run" in out and f"Episodes             {N}\n" in out
