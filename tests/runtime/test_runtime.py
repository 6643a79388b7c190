"""No import side effects; `mjxgen.configure()` sets the XLA flags and GL backend; entry points call it first."""

import ctypes.util
import importlib
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import warnings

import pytest

import mjxgen
from mjxgen import cli
from mjxgen.generate import pipeline
from mjxgen.render import opengl
from mjxgen.runtime import gl, process, xla
from mjxgen.envs import make_env
from mjxgen.sim.rollout import rollout_batch

MARK = "--- mjxgen import ---"
# Variables that configure() would set: unset in the child, so an import that configured would show.
UNSET = ("XLA_FLAGS", "MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tempfile.gettempdir())


def test_import_after_jax_and_mjx_changes_no_env_and_prints_nothing():
    r = _python(f"""
        import os, sys, jax, mujoco.mjx
        before = dict(os.environ)
        print({MARK!r}); print({MARK!r}, file=sys.stderr); sys.stdout.flush(); sys.stderr.flush()
        import mjxgen
        assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
        mjxgen.configure()
        from mujoco.rendering.classic import gl_context
        print(os.environ.get("XLA_FLAGS"), os.environ.get("MUJOCO_GL"), gl_context.GLContext.__module__,
              sep="|", file=sys.stderr)
        """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split(MARK, 1)[1].strip() == ""  # `import mjxgen` printed nothing
    # Nothing else on stderr either: one line, three '|'-separated fields (XLA_FLAGS itself holds spaces).
    flags, gl, context = r.stderr.split(MARK, 1)[1].strip().split("|")
    # configure() did what import no longer does, and the renderer sees the GL choice made after `import mujoco`.
    assert (xla.FUSION_FLAG in flags) is xla.needs_fusion_flag(xla.jaxlib_version())
    assert (xla.DETERMINISTIC_FLAG in flags) is xla.wants_deterministic_flag(
        xla.jaxlib_version(), platform.machine(), os.environ)
    if ctypes.util.find_library("EGL"):
        assert (gl, context) == ("egl", "mujoco.egl")


def test_import_alone_hides_only_the_warp_lines():
    """mjxgen's first import of MJX (mjxgen.envs) hides MJX's "Failed to import warp" lines, and only those."""
    r = _python("import mjxgen.envs\nimport mujoco.mjx\nprint('done')")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout == "done\n"


def test_warp_prints_hidden_passes_other_lines(capsys):
    with process.warp_prints_hidden():
        print("Failed to import warp: No module named 'warp'")
        print("something else")
        print("Failed to import mujoco_warp: No module named 'warp'")
    assert capsys.readouterr().out == "something else\n"


@pytest.fixture
def fresh(monkeypatch):
    """configure() as in a new process: not yet run, no XLA_FLAGS, JAX's backend not yet created."""
    monkeypatch.setattr(process, "_configured", False)
    monkeypatch.setattr(xla, "_backend_initialized", lambda: False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(gl, "configure_gl", lambda: None)
    return monkeypatch


@pytest.mark.parametrize("version, flagged", [((0, 7, 0), True), ((0, 9, 2), True), ((0, 10, 2), True),
                                              ((0, 6, 2), False), ((0, 12, 0), False)])
def test_configure_sets_the_flag_only_where_needed(fresh, version, flagged):
    fresh.setattr(xla, "jaxlib_version", lambda: version)
    fresh.setenv("MJXGEN_DETERMINISTIC", "0")  # only the fusion flag here (the ISA cap: test_xla_config.py)
    mjxgen.configure()
    assert (os.environ.get("XLA_FLAGS") == xla.FUSION_FLAG) is flagged
    assert flagged or "XLA_FLAGS" not in os.environ  # a newer XLA aborts on the unknown flag
    mjxgen.configure()  # idempotent
    assert os.environ.get("XLA_FLAGS", "").count("fusion_emitters") == int(flagged)


def test_configure_too_late_warns_once(fresh):
    fresh.setattr(xla, "jaxlib_version", lambda: (0, 9, 2))
    fresh.setattr(xla, "_backend_initialized", lambda: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            mjxgen.configure()
    assert [str(w.message).count("Call mjxgen.configure() before any JAX computation") for w in caught] == [1]
    assert "XLA_FLAGS" not in os.environ


@pytest.fixture
def headless(monkeypatch):
    """No display, no MUJOCO_GL, libraries as `present` says; importlib.reload recorded, not run."""
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    present, reloaded = set(), []
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so" if name in present else None)
    monkeypatch.setattr(importlib, "reload", lambda module: reloaded.append(module.__name__))
    return monkeypatch, present, reloaded


@pytest.mark.parametrize("libraries, choice", [({"EGL", "OSMesa"}, "egl"), ({"OSMesa"}, "osmesa"), (set(), None)])
def test_gl_choice_headless(headless, libraries, choice):
    _, present, reloaded = headless
    present |= libraries
    assert gl.configure_gl() == choice
    assert os.environ.get("MUJOCO_GL") == choice and os.environ.get("PYOPENGL_PLATFORM") == choice
    # mujoco is imported (it read MUJOCO_GL then): its GL context module is reloaded, once.
    assert reloaded == (["mujoco.rendering.classic.gl_context"] if choice else [])
    gl.configure_gl()
    assert len(reloaded) == (1 if choice else 0)


def test_gl_choice_respects_the_user_and_a_display(headless):
    monkeypatch, present, reloaded = headless
    present |= {"EGL", "OSMesa"}
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert gl.configure_gl() == "osmesa" and os.environ["MUJOCO_GL"] == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")
    assert gl.configure_gl() is None and "MUJOCO_GL" not in os.environ
    assert reloaded == []


class Stop(Exception):
    pass


def _raise_stop(*args, **kwargs):
    raise Stop


ENTRY_POINTS = {
    "mjxgen datagen": lambda env: cli.main(["datagen", "--n-episodes", "0"]),
    "python -m mjxgen.reach": lambda env: cli.task_main("reach", ["--batch", "0"]),
    "python -m mjxgen.pusht": lambda env: importlib.import_module("mjxgen.cli.pusht").main(["--num-samples", "0"]),
    "generate_dataset": lambda env: mjxgen.generate_dataset("reach", 1, "unused.h5", progress=False),
    "make_env": lambda env: make_env("no_such_env"),
    "rollout_batch": lambda env: rollout_batch(env, "no_such_policy", [0]),
    "EpisodeRenderer": lambda env: opengl.EpisodeRenderer("<not xml", 8, 8),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_points_configure_first(entry, reach_env, monkeypatch):
    """Each entry point applies the settings before anything else (here: before it fails on bad input)."""
    calls = []
    monkeypatch.setattr(process, "_configured", False)
    monkeypatch.setattr(xla, "configure", lambda: calls.append("xla"))
    monkeypatch.setattr(gl, "configure_gl", lambda: calls.append("gl"))
    monkeypatch.setattr(pipeline, "make_env", _raise_stop)  # generate_dataset stops after configuring
    with pytest.raises((SystemExit, ValueError, Stop)):
        ENTRY_POINTS[entry](reach_env)
    assert calls == (["gl"] if entry == "EpisodeRenderer" else ["xla", "gl"])


# --- the persistent compile cache ------------------------------------------------------------------------------
def test_compile_cache_directory_choice(monkeypatch, tmp_path):
    from mjxgen.runtime import compile_cache

    monkeypatch.delenv("MJXGEN_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.resolve() == tmp_path / "xdg" / "mjxgen"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.resolve() == tmp_path / "home" / ".cache" / "mjxgen"
    monkeypatch.setenv("MJXGEN_COMPILE_CACHE", str(tmp_path / "env"))
    assert compile_cache.resolve() == tmp_path / "env"
    assert compile_cache.resolve(tmp_path / "flag") == tmp_path / "flag"  # an explicit directory wins
    assert compile_cache.resolve(False) is None
    for off in ("0", "off", "False", "no"):
        monkeypatch.setenv("MJXGEN_COMPILE_CACHE", off)
        assert compile_cache.resolve() is None


def _cache_child(env_value, **extra):
    """A fresh process: configure(), then one jitted program; prints JAX's cache directory. env_value None: no
    MJXGEN_COMPILE_CACHE (the default directory)."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET + ("MJXGEN_COMPILE_CACHE", "XDG_CACHE_HOME")}
    env |= extra if env_value is None else {**extra, "MJXGEN_COMPILE_CACHE": env_value}
    code = """
        import warnings, jax, mjxgen
        warnings.simplefilter("always")
        mjxgen.configure()
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # even this tiny program is kept
        print(jax.jit(lambda x: x * 2 + 1)(jax.numpy.arange(3)).sum(), jax.config.jax_compilation_cache_dir)
        """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_compile_cache_is_used_and_an_unwritable_one_only_warns(tmp_path):
    cache = tmp_path / "cache"
    r = _cache_child(str(cache))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["9", str(cache)] and any(cache.iterdir())  # the program was written there
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = _cache_child(str(blocker / "cache"))  # a directory under a file: can't be created
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] == "9" and r.stdout.split()[1] in ("None", "")
    assert r.stderr.count("not writable") == 1 and "Traceback" not in r.stderr


def test_compile_cache_is_on_by_default_and_off_writes_nothing(tmp_path):
    r = _cache_child(None, XDG_CACHE_HOME=str(tmp_path / "on"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[1] == str(tmp_path / "on" / "mjxgen") and any((tmp_path / "on" / "mjxgen").iterdir())
    r = _cache_child("0", XDG_CACHE_HOME=str(tmp_path / "off"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[1] in ("None", "") and not (tmp_path / "off").exists()


@pytest.mark.parametrize("argv, expected", [([], None), (["--no-compile-cache"], False),
                                            (["--compile-cache", "/some/dir"], "/some/dir")])
def test_cli_cache_flags_reach_configure(argv, expected, monkeypatch):
    from mjxgen.runtime import compile_cache

    calls = []
    monkeypatch.setattr(process, "_configured", False)
    monkeypatch.setattr(xla, "configure", lambda: None)
    monkeypatch.setattr(gl, "configure_gl", lambda: None)
    monkeypatch.setattr(compile_cache, "enable", calls.append)
    cli.configure_from(["--batch", "4", *argv])
    assert calls == [expected]
