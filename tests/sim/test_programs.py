"""Exported programs on disk (mjxgen.sim.programs): a warm process runs the stored programs without tracing,
and its data equal the traced program's bit for bit; a changed key misses, a damaged entry or an unwritable
directory warns once and never fails.

The cross-process tests run two fresh processes on one cache directory (cold: export, store and compile; warm:
load), reach and pick_place with randomization, B = 8, T = 20. The traced reference is the same policy given as
an object, which runs as a plain jit. The cache's own behaviour is tested on a tiny program."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import DURABLE_BATCH, DURABLE_HORIZON
from mjxgen.kernels import randomize
from mjxgen import make_env
from mjxgen.runtime import compile_cache
from mjxgen.sim import programs
from mjxgen.sim import stream, per_episode
from mjxgen.sim.rollout import SEGMENT_STEPS

B, T, SEED = DURABLE_BATCH, DURABLE_HORIZON, 5
ENVS = ("reach", "pick_place")

# A fresh process: the segments of each env (B slots, 2B episodes, randomization on), saved as .npz; prints
# what it traced: the segment programs (TRACE_COUNT) and every call of an env's reset or step (any MJX trace).
CHILD = """
    import json, sys, warnings
    warnings.simplefilter("always")
    import jax, numpy as np, mjxgen
    mjxgen.configure()
    from mjxgen.kernels import randomize
    from mjxgen import envs, make_env
    from mjxgen.sim import per_episode, programs, stream
    calls = {"reset": 0, "step": 0}
    for cls in envs.ENVS.values():
        for name in calls:
            def counted(self, *a, _f=getattr(cls, name), _n=name):
                calls[_n] += 1
                return _f(self, *a)
            setattr(cls, name, counted)
    out = sys.argv[1]
    for env_name in sys.argv[2:]:
        env = make_env(env_name)
        segs = list(stream.run_segments(env, "scripted", first=0, count=2 * %(B)d, slots=%(B)d, seed=%(SEED)d,
                                        max_steps=%(T)d, steps=%(K)d, randomization=randomize.RandomizationConfig()))
        np.savez(f"{out}/{env_name}.npz", *jax.tree.leaves(segs))
        values = per_episode.episode_values(env, "scripted", np.arange(%(B)d), seed=%(SEED)d,
                                            randomization=randomize.RandomizationConfig())
        np.savez(f"{out}/{env_name}-values.npz", *jax.tree.leaves(jax.device_get(values)))
        # What generate_dataset asks besides the segments: a trace of reset each, unless stored.
        print("SHAPES", env_name, json.dumps([programs.obs_shapes(env)]))
    print("TRACES", json.dumps({"segments": sum(stream.TRACE_COUNT.values()), **calls}))
    """ % dict(B=B, T=T, SEED=SEED, K=SEGMENT_STEPS)


def _child(cache: Path, out: Path) -> dict:
    env = dict(os.environ, MJXGEN_COMPILE_CACHE=str(cache))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(out), *ENVS], capture_output=True,
                       text=True, env=env, timeout=900, cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mjxgen:" not in r.stderr, r.stderr[-3000:]  # no warning of mjxgen's (unwritable, unreadable, ...)
    traces = json.loads(r.stdout.split("TRACES", 1)[1])
    shapes = dict(line.split(" ", 2)[1:] for line in r.stdout.splitlines() if line.startswith("SHAPES "))
    return {"traces": traces, "shapes": shapes, **{name: _segments(out / f"{name}.npz") for name in ENVS},
            **{f"{name}-values": _segments(out / f"{name}-values.npz") for name in ENVS}}


def _segments(path) -> list:
    with np.load(path) as f:
        return [f[k] for k in f.files]


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y, err_msg=f"leaf {i}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("programs-cache")


@pytest.fixture(scope="module")
def cold(cache, tmp_path_factory):
    return _child(cache, tmp_path_factory.mktemp("cold"))


@pytest.fixture(scope="module")
def warm(cold, cache, tmp_path_factory):
    return _child(cache, tmp_path_factory.mktemp("warm"))


@pytest.fixture(scope="module")
def traced():
    """Each env's segments from the plain jit (the policy as an object: today's traced program), in this
    process (its disk cache is off)."""
    out = {}
    for name in ENVS:
        env = make_env(name)
        segs = list(stream.run_segments(env, env.policy("scripted"), first=0, count=2 * B, slots=B, seed=SEED,
                                        max_steps=T, steps=SEGMENT_STEPS,
                                        randomization=randomize.RandomizationConfig()))
        out[name] = [np.asarray(x) for x in jax.tree.leaves(segs)]
        values = per_episode.episode_values(env, env.policy("scripted"), np.arange(B), seed=SEED,
                                            randomization=randomize.RandomizationConfig())
        out[f"{name}-values"] = [np.asarray(x) for x in jax.tree.leaves(values)]
    return out


def test_cold_process_exports_and_stores(cold, cache):
    assert cold["traces"]["segments"] == len(ENVS) and cold["traces"]["reset"] > 0
    names = {p.name for p in (cache / programs.SUBDIR).iterdir()}
    # Each env: its segment and values programs, slot shapes and obs_shapes.
    assert len(names) == 4 * len(ENVS) and all(n.endswith(".pkl") for n in names)


def test_warm_process_does_not_trace(warm, cold):
    assert warm["traces"] == {"segments": 0, "reset": 0, "step": 0}
    assert warm["shapes"] == cold["shapes"]  # obs_shapes (in observe's order), loaded
    for name in ENVS:
        (obs_shapes,) = json.loads(warm["shapes"][name])
        assert list(obs_shapes.items()) == [(k, list(v)) for k, v in make_env(name).obs_shapes.items()]


@pytest.mark.parametrize("name", ENVS)
def test_warm_equals_cold_and_the_traced_program(name, cold, warm, traced):
    _assert_same(warm[name], cold[name])
    _assert_same(warm[name], traced[name])
    assert any(x.dtype == bool and x.any() for x in warm[name])  # something ended (done, active): not all zeros
    # The per-episode values (randomization draw, mocap bodies) of the values program, exported the same way.
    _assert_same(warm[f"{name}-values"], cold[f"{name}-values"])
    _assert_same(warm[f"{name}-values"], traced[f"{name}-values"])
    assert len(warm[f"{name}-values"]) > 2


@pytest.fixture
def cache_at(monkeypatch):
    """Point this process's program cache at a directory (its compile cache is off in the suite)."""
    def point(path):
        monkeypatch.setattr(compile_cache, "_active", Path(path))
        monkeypatch.setattr(programs, "_warned", set())
    return point


def test_the_program_loaded_in_process_equals_the_traced_one(cold, cache, cache_at, traced, reach_env):
    """A fresh segment program (not the suite's: functools.cache bypassed) loads its entry and does not trace."""
    cache_at(cache)
    before = sum(stream.TRACE_COUNT.values())
    fn = stream.compiled_segment.__wrapped__(reach_env, "scripted", T, SEGMENT_STEPS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the entry is there and readable
        segs = list(_run(fn, reach_env))
    assert sum(stream.TRACE_COUNT.values()) == before
    _assert_same([np.asarray(x) for x in jax.tree.leaves(segs)], traced["reach"])


def _run(fn, env):
    """run_segments' loop with a given program (fn): 2B episodes through B slots."""
    args = (env.mjx_model, jnp.uint32(SEED), stream.ranges(randomize.RandomizationConfig()), None)
    st = stream.initial_stream(env, "scripted", np.arange(B), first=0, count=2 * B)
    ended = 0
    while ended < 2 * B:
        st, seg = fn(*args, st)
        seg = jax.device_get(seg)
        ended += int((seg.done & seg.active).sum())
        yield seg


def test_keys_cover_the_source_and_the_environment(cold, cache, cache_at, reach_env, monkeypatch):
    """The cold process's slot-shapes entry is found under this process's key; a change of the source, of
    XLA_FLAGS, of the batch size or of the env's XML is another key, so the entry is not used."""
    cache_at(cache)

    def entry():
        return programs.load(programs.key("slot_shapes", reach_env, policy="scripted", slots=B))

    assert entry() is not None
    with monkeypatch.context() as m:
        m.setattr(programs, "source_hash", lambda: "another source")
        assert entry() is None
    with monkeypatch.context() as m:
        m.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_fast_math=true")
        assert entry() is None
    with monkeypatch.context() as m:
        m.setattr(reach_env, "xml", reach_env.xml + "<!-- edited -->")
        assert entry() is None
    assert programs.load(programs.key("slot_shapes", reach_env, policy="scripted", slots=B + 1)) is None
    assert entry() is not None


def test_source_hash_covers_every_python_file_of_both_packages(tmp_path):
    """The hash of copies of the imported packages' folders is the process's; editing any .py file of either
    changes it, a file that is not Python does not."""
    copies = {}
    for name, folder in programs.package_dirs().items():
        copies[name] = tmp_path / name
        shutil.copytree(folder, copies[name], ignore=shutil.ignore_patterns("__pycache__"))
    base = programs.source_hash_of(copies)
    assert base == programs.source_hash()
    (copies["mjxgen"] / "envs" / "assets" / "notes.txt").write_text("not source")
    assert programs.source_hash_of(copies) == base
    for path in (copies["mjxgen.kernels"] / "ik.py", copies["mjxgen"] / "envs" / "reach.py"):
        original = path.read_text()
        path.write_text(original + "\n# edited\n")
        assert programs.source_hash_of(copies) != base, path
        path.write_text(original)
    assert programs.source_hash_of(copies) == base


# --- the cache itself, on a tiny program with PRNG keys in and out and a donated argument ----------------------
def _tiny(counter):
    def run(key, x, state):
        counter.append(1)
        k1, k2 = jax.random.split(key)
        return {"key": k2, "y": x * 2 + jax.random.uniform(k1, x.shape)}, state + x.sum()

    return run


def _tiny_program(env, counter, steps=1):
    run = _tiny(counter)
    return programs.Exportable(run, jax.jit(run, donate_argnums=(2,)), donate_argnums=(2,), when=lambda a: True,
                               key=dict(kind="tiny", env=env, steps=steps))


def _tiny_args():
    return jax.random.key(3), jnp.arange(4, dtype=jnp.float32), jnp.float32(1.0)


def _tiny_result(fn):
    out, state = fn(*_tiny_args())
    return jax.random.key_data(out["key"]), np.asarray(out["y"]), np.asarray(state)


def test_tiny_program_round_trip(tmp_path, cache_at, reach_env):
    cache_at(tmp_path)
    counter = []
    reference = _tiny_result(jax.jit(_tiny(counter)))
    counter.clear()
    first = _tiny_result(_tiny_program(reach_env, counter))
    assert len(counter) == 1 and len(list((tmp_path / programs.SUBDIR).iterdir())) == 1
    second = _tiny_result(_tiny_program(reach_env, counter))  # a new program object: loads the entry
    assert len(counter) == 1
    for a, b, c in zip(reference, first, second):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    out, _ = _tiny_program(reach_env, counter)(*_tiny_args())
    assert jax.dtypes.issubdtype(out["key"].dtype, jax.dtypes.prng_key)  # keys come back as keys
    _tiny_program(reach_env, counter, steps=2)(*_tiny_args())  # another key: exported again
    assert len(counter) == 2


def test_a_damaged_entry_warns_once_and_is_written_again(tmp_path, cache_at, reach_env):
    cache_at(tmp_path)
    counter = []
    expected = _tiny_result(_tiny_program(reach_env, counter))
    (entry,) = (tmp_path / programs.SUBDIR).iterdir()
    good = entry.read_bytes()
    for damaged in (good[: len(good) // 2], b"not a pickle", b""):
        entry.write_bytes(damaged)
        programs._warned.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _tiny_result(_tiny_program(reach_env, counter))
            _tiny_result(_tiny_program(reach_env, counter))  # the rewritten entry: no second warning
        assert [str(w.message).count("unreadable program cache entry") for w in caught] == [1]
        for a, b in zip(expected, result):
            np.testing.assert_array_equal(a, b)
    assert len(counter) == 4  # the first export and one per damaged entry


def test_an_unwritable_directory_warns_once_and_never_fails(tmp_path, cache_at, reach_env):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache_at(blocker)  # programs/ would be a directory under a file
    counter = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = _tiny_result(_tiny_program(reach_env, counter))
        b = _tiny_result(_tiny_program(reach_env, counter))
        shapes = programs.stored("values", reach_env, lambda: {"x": 1})
    assert [str(w.message).count("not writable") for w in caught] == [1]
    assert len(counter) == 2 and shapes == {"x": 1}
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_cache_off_writes_nothing_and_still_runs_the_exported_program(tmp_path, monkeypatch, reach_env):
    monkeypatch.setattr(compile_cache, "_active", None)
    counter = []
    fn = _tiny_program(reach_env, counter)
    _tiny_result(fn)
    assert programs.directory() is None and len(counter) == 1
    assert fn.program_for(_tiny_args()) is not fn._traced
