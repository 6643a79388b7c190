"""Shared fixtures. Each jitted shape compiles once per session: small batches, one horizon."""

import os

import mjxgen

# Never the user's compile cache. mjxgen leaves JAX's cache settings alone with this, and the session's own cache
# (shared_compile_cache below: one directory for this process and every subprocess) is switched on instead.
os.environ["MJXGEN_COMPILE_CACHE"] = "0"
# Every subprocess of the suite (`python -c`, `python -m`) imports the installed mjxgen too: Python 3.11's
# PYTHONSAFEPATH keeps the working directory (the checkout, under CI) off its sys.path.
os.environ["PYTHONSAFEPATH"] = "1"
mjxgen.configure()  # first: the XLA flags before any JAX computation, the GL backend

import importlib.metadata
import json
from pathlib import Path

import pytest

from mjxgen import make_env
from support import (BATCH, HORIZON, PP_BATCH, PP_HORIZON, SEED_N, SEED_T, generate_file,  # noqa: E402
                     session_cache_dir)

def imported_from() -> tuple[Path, bool]:
    """(the folder mjxgen was imported from, whether its installed distribution is an editable one)."""
    try:
        direct = importlib.metadata.distribution("mjxgen").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        direct = None
    editable = bool(direct) and bool(json.loads(direct).get("dir_info", {}).get("editable"))
    return Path(mjxgen.__file__).resolve().parent, editable


def pytest_report_header(config):
    folder, editable = imported_from()
    return f"mjxgen imported from {folder} ({'an editable install' if editable else 'installed'})"


def pytest_sessionstart(session):
    """The suite tests what users install: an mjxgen imported from inside this checkout is refused, unless it is
    an editable install (pip install -e), whose files are the checkout's by design."""
    folder, editable = imported_from()
    root = Path(session.config.rootpath).resolve()
    if folder == root / "mjxgen" and not editable:  # the source tree (a venv inside the checkout is fine)
        raise pytest.UsageError(f"mjxgen was imported from the checkout ({folder}), not from the installed package: "
                                "run `pip install .` and then `pytest` (not `python -m pytest`, which puts the "
                                "current directory first on sys.path)")


@pytest.fixture(scope="session", autouse=True)
def shared_compile_cache(tmp_path_factory):
    """Switch this process onto the session cache before its first compile (JAX decides once whether to use a
    cache: the first compile of the process)."""
    import jax
    from jax._src import compilation_cache

    jax.config.update("jax_compilation_cache_dir", str(session_cache_dir(tmp_path_factory)))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compilation_cache.reset_cache()  # in case something compiled during collection, before the directory was set
    yield


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")
    parser.addoption("--run-gpu", action="store_true", help="also run tests marked gpu (needs a GPU)")


def pytest_collection_modifyitems(config, items):
    import jax

    skip_slow = pytest.mark.skip(reason="slow (minutes on a 2-core CPU): run with --run-slow")
    if not config.getoption("--run-gpu"):
        skip_gpu = pytest.mark.skip(reason="needs a GPU: run with --run-gpu on a GPU machine")
    elif jax.default_backend() != "gpu":
        skip_gpu = pytest.mark.skip(reason=f"needs a GPU, but JAX's backend is {jax.default_backend()}")
    else:
        skip_gpu = None
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and skip_gpu is not None:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def reach_env():
    return make_env("reach")


@pytest.fixture(scope="session")
def scripted_file(tmp_path_factory):
    """64 scripted reach episodes in two batches of 32 (the same compiled shape as the rollout tests)."""
    return generate_file(tmp_path_factory, "reach", 64, "scripted", HORIZON, BATCH, seed=7)


@pytest.fixture(scope="session")
def random_file(tmp_path_factory):
    """100 random reach episodes of 200 steps (seed 000's random example's shape: no compile of its own)."""
    return generate_file(tmp_path_factory, "reach", SEED_N, "random", SEED_T, SEED_N, seed=7)


@pytest.fixture(scope="session")
def pick_place_file(tmp_path_factory):
    """16 scripted pick_place episodes, one batch."""
    return generate_file(tmp_path_factory, "pick_place", PP_BATCH, "scripted", PP_HORIZON, PP_BATCH, seed=3)


def pytest_terminal_summary(terminalreporter):
    """How many rollouts this session compiled, by (env, policy, horizon, batch): each costs 15-25 s on 2 cores,
    so keeping this list short keeps the suite fast."""
    from mjxgen.sim.rollout import TRACE_COUNT

    if TRACE_COUNT:
        terminalreporter.write_sep("-", f"{sum(TRACE_COUNT.values())} rollout compiles in this session")
        for key, n in sorted(TRACE_COUNT.items(), key=str):
            terminalreporter.write_line(f"{n} x {key}")
