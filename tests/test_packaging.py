"""What users install: the wheel holds every module and asset of the source tree under the one name `mjxgen`, and
every documented entry point works from an empty directory, where nothing but the installed package can be
imported."""

import concurrent.futures
import filecmp
import importlib.metadata
import importlib.util
import shutil
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from support import DURABLE_BATCH, DURABLE_HORIZON, subprocess_env

CHECKOUT = Path(__file__).resolve().parents[1]
# Source folder of the checkout -> the package it installs as.
ROOTS = {"mjxgen": "mjxgen", "kernels": "mjxgen.kernels", "pusht": "mjxgen.pusht"}
SHIPPED = ("*.py", "*.xml")  # modules and the scene assets


def installed_dir(package: str) -> Path:
    return Path(importlib.util.find_spec(package).submodule_search_locations[0])


def source_files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for pattern in SHIPPED for p in folder.rglob(pattern)
                  if "__pycache__" not in p.parts)


@pytest.mark.parametrize("source", sorted(ROOTS))
def test_the_installed_package_holds_every_module_and_asset_of_the_source_tree(source):
    """A subpackage or asset missing from the wheel (a package list written by hand, a folder without
    __init__.py, a package-data pattern that misses a file) fails here, and so does a stale install."""
    src, dst = CHECKOUT / source, installed_dir(ROOTS[source])
    files = source_files(src)
    assert files, src
    missing = [str(f) for f in files if not (dst / f).is_file()]
    assert not missing, f"{ROOTS[source]} installed at {dst} lacks {missing}"
    differ = [str(f) for f in files if not filecmp.cmp(src / f, dst / f, shallow=False)]
    assert not differ, f"the installed {ROOTS[source]} differs from the checkout in {differ}: reinstall"


def test_the_distribution_claims_only_the_mjxgen_name():
    """No top-level package but mjxgen (PyPI's `kernels` is Hugging Face's): every installed file lies under
    mjxgen/, its dist-info, or the console script."""
    dist = importlib.metadata.distribution("mjxgen")
    # (an editable install adds setuptools' import hook, __editable___mjxgen_*_finder.py, beside the package)
    tops = {f.parts[0] for f in dist.files or () if f.suffix == ".py" and f.parts[0] != ".."
            and not f.name.startswith("__editable__")}
    assert tops <= {"mjxgen"}, tops
    assert [ep.value for ep in dist.entry_points if ep.group == "console_scripts"] == ["mjxgen.cli:main"]


def _console_script() -> str:
    script = shutil.which("mjxgen", path=str(Path(sys.executable).parent))
    assert script, f"no mjxgen console script beside {sys.executable}"
    return script


@pytest.fixture(scope="module")
def run_here(tmp_path_factory):
    """Run a command in a new, empty directory, with the suite's shared compile cache; returns its output."""
    env = subprocess_env(tmp_path_factory)

    def run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
        cwd = tmp_path_factory.mktemp("empty")
        r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"{argv} in {cwd}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        r.cwd = cwd
        return r

    return run


def test_every_help_from_an_empty_directory(run_here):
    py = sys.executable
    commands = {
        "mjxgen --help": [_console_script(), "--help"],
        "mjxgen pusht --help": [_console_script(), "pusht", "--help"],
        "mjxgen export --help": [_console_script(), "export", "--help"],
        "python -m mjxgen.reach --help": [py, "-m", "mjxgen.reach", "--help"],
        "python -m mjxgen.pick_place --help": [py, "-m", "mjxgen.pick_place", "--help"],
        "python -m mjxgen.pusht --help": [py, "-m", "mjxgen.pusht", "--help"],
    }
    with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
        outputs = dict(zip(commands, pool.map(run_here, commands.values())))
    assert "datagen" in outputs["mjxgen --help"].stdout and "pusht" in outputs["mjxgen --help"].stdout
    assert "usage: mjxgen pusht" in outputs["mjxgen pusht --help"].stdout
    assert "usage: mjxgen export" in outputs["mjxgen export --help"].stdout and "export" in outputs["mjxgen --help"].stdout
    assert "usage: python -m mjxgen.pusht" in outputs["python -m mjxgen.pusht --help"].stdout
    for name in ("reach", "pick_place"):
        assert f"usage: python -m mjxgen.{name}" in outputs[f"python -m mjxgen.{name} --help"].stdout


def test_the_public_api_imports_in_a_plain_interpreter(run_here):
    r = run_here([sys.executable, "-c", "import mjxgen; from mjxgen import rollout_batch, generate_dataset, "
                  "TrajectoryDataset; print(mjxgen.__file__, mjxgen.rollout_batch.__name__)"])
    where = Path(r.stdout.split()[0]).resolve()
    assert where.parent == installed_dir("mjxgen")
    assert r.stdout.split()[1] == "rollout_batch"


@pytest.mark.parametrize("argv", [
    ["mjxgen", "datagen", "--env-name", "reach", "--policy", "scripted"],
    ["python", "-m", "mjxgen.reach"],
    ["python", "-m", "mjxgen.pick_place"],
], ids=["mjxgen datagen", "python -m mjxgen.reach", "python -m mjxgen.pick_place"])
def test_a_tiny_arm_run_from_an_empty_directory(run_here, argv):
    """Each arm command writes a file of DURABLE_BATCH episodes where it was run (the suite's shared compile
    cache: these shapes are compiled once in the session)."""
    head = [_console_script(), *argv[1:]] if argv[0] == "mjxgen" else [sys.executable, *argv[1:]]
    counts = (["--n-episodes", str(DURABLE_BATCH), "--batch-size", str(DURABLE_BATCH)] if argv[0] == "mjxgen"
              else ["--batch", str(DURABLE_BATCH)])
    r = run_here([*head, *counts, "--max-steps", str(DURABLE_HORIZON), "--output", "x.h5", "--no-progress"])
    with h5py.File(r.cwd / "x.h5") as f:
        assert f.attrs["complete"] and f.attrs["total_episodes"] == DURABLE_BATCH


@pytest.mark.parametrize("head", [["mjxgen", "pusht"], ["python", "-m", "mjxgen.pusht"]], ids=" ".join)
def test_a_tiny_pusht_run_from_an_empty_directory(run_here, head):
    head = [_console_script(), "pusht"] if head[0] == "mjxgen" else [sys.executable, "-m", "mjxgen.pusht"]
    r = run_here([*head, "--num-samples", "2", "--workers", "1", "--output-h5", "p.h5", "--no-progress"])
    with h5py.File(r.cwd / "p.h5") as f:
        assert sorted(f) == ["sample_00000", "sample_00001"] and f.attrs["complete"]


def test_python_m_in_the_checkouts_root_runs_the_source_tree():
    """The README's first command runs `python -m mjxgen.reach` in the clone's root, where Python imports the
    source tree first: its kernels/ and pusht/ must be mjxgen.kernels and mjxgen.pusht there too."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    for module in ("mjxgen.reach", "mjxgen.pusht"):
        r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=CHECKOUT, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0 and f"usage: python -m {module}" in r.stdout, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-c", "import mjxgen, mjxgen.kernels; print(mjxgen.kernels.__file__)"],
                       cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == str(CHECKOUT / "kernels" / "__init__.py"), r.stderr
