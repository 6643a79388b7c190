"""Every Python block of README.md and docs/*.md, and every usage example of both seeds, runs as a test.

The blocks are extracted from the files at collection time, so the documentation can't drift from the code. The
README's blocks run in order in one directory; each docs page's blocks run in order in a directory of their own, so a
block reads only what earlier blocks of its page wrote (they write to relative paths such as data/reach.h5). Shell
blocks are not run, except the seeds' commands. The seeds (docs/seeds/, copies of the specification) use SimScaleAI's
names; SEED_NAMES maps them to ours. Seed examples of thousands of episodes or steps are marked slow (run with
--run-slow), and seed 000's train -> eval pipeline also runs scaled down by default. The pages are also checked for
issue numbers (they describe the package, not its history) and for relative links that don't resolve.
"""

import contextlib
import io
import json
import re
import shlex
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from mjxgen import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SEED_000 = ROOT / "docs" / "seeds" / "000_a6305e2c0263f5ad.txt"
SEED_003 = ROOT / "docs" / "seeds" / "003_85a11f8505dacb65.txt"

# The seeds' names -> ours (DEVELOPERS' mapping: simscale.datagen -> mjxgen, `simscale datagen` -> `mjxgen datagen`).
SEED_NAMES = [
    ("simscaleai.datagen.generator", "mjxgen"),
    ("simscaleai.training.data.dataset", "mjxgen"),
    ("simscaleai.training.trainer", "mjxgen.learn.training"),
    ("simscaleai.models", "mjxgen.learn.models"),
    ("simscale ", "mjxgen "),
    # Our checkpoints are pickle-free .npz files (mjxgen.learn.checkpoints), not torch's .pt.
    ("checkpoints/final.pt", "checkpoints/final.npz"),
    ("uv run -- python scripts/generate_random_dmp_dataset.py", "python -m mjxgen.pusht"),
]


def code_blocks(path: Path, lang: str) -> list[str]:
    """The fenced blocks of a Markdown file whose info string is `lang` ("" for an unlabeled fence)."""
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", path.read_text(), re.M | re.S) if m.group(1) == lang]


def to_ours(text: str) -> str:
    for theirs, ours in SEED_NAMES:
        text = text.replace(theirs, ours)
    return text


def commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(" ".join(line.split()))
    return out


def run_python(source: str, name: str) -> str:
    """Execute a block as a script; returns what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, name, "exec"), {"__name__": "__main__"})
    return out.getvalue()


def run_command(command: str) -> None:
    """Run one (mapped) CLI example in this process, so compiled shapes are shared with the rest of the suite."""
    argv = shlex.split(command)
    if argv[0] == "mjxgen":
        status = cli.main(argv[1:])
    elif argv[:3] == ["python", "-m", "mjxgen.pusht"]:
        from mjxgen.cli import pusht

        status = pusht.main(argv[3:])
    else:
        raise AssertionError(f"no runner for {command!r}")
    assert status == 0, command


def _episodes(path) -> int:
    with h5py.File(path) as f:
        return len(f.keys())


# ---------------------------------------------------------------------------------------------- README


README_PYTHON = code_blocks(README, "python")


def test_readme_has_python_blocks():
    assert len(README_PYTHON) >= 3  # generate_dataset, rollout_batch, TrajectoryDataset at least


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")


@pytest.mark.parametrize("index", range(len(README_PYTHON)))
def test_readme_python_block(index, readme_dir, monkeypatch):
    """The blocks run in order in one directory: later blocks read what earlier ones wrote."""
    monkeypatch.chdir(readme_dir)
    printed = run_python(README_PYTHON[index], f"README.md python block {index}")
    assert "Traceback" not in printed


# ---------------------------------------------------------------------------------------------- docs/*.md

DOC_PAGES = sorted(DOCS.glob("*.md"))
# (page name, index on the page, source): pytest runs them in this order, so a page's blocks run in its order.
DOC_PYTHON = [(page.name, i, block) for page in DOC_PAGES for i, block in enumerate(code_blocks(page, "python"))]


def test_docs_pages_exist_and_have_python_blocks():
    names = {page.name for page in DOC_PAGES}
    assert {"cli.md", "api.md", "file-formats.md", "determinism.md", "training.md"} <= names
    assert len({page for page, _, _ in DOC_PYTHON}) >= 5


@pytest.fixture(scope="module")
def docs_dirs(tmp_path_factory):
    """One working directory per docs page, made on first use: a page's blocks share it, pages never do."""
    dirs = {}

    def of(page: str):
        if page not in dirs:
            dirs[page] = tmp_path_factory.mktemp(page.removesuffix(".md"))
        return dirs[page]

    return of


@pytest.mark.parametrize("page, index, source", DOC_PYTHON, ids=[f"{p}-{i}" for p, i, _ in DOC_PYTHON])
def test_docs_python_block(page, index, source, docs_dirs, monkeypatch):
    monkeypatch.chdir(docs_dirs(page))
    printed = run_python(source, f"docs/{page} python block {index}")
    assert "Traceback" not in printed


# "issue 16", "issues 12 and 14", "#15": the pages describe the package, not the history of its issues.
ISSUE_NUMBER = re.compile(r"\bissues?\s+#?\d+|(?<![\w&#/])#\d+\b", re.I)


@pytest.mark.parametrize("path", [README, *DOC_PAGES], ids=lambda p: p.name)
def test_no_issue_numbers(path):
    found = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if ISSUE_NUMBER.search(line)]
    assert not found, f"{path.name} names issue numbers: {found}"


@pytest.mark.parametrize("path", [README, *DOC_PAGES], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    """Every [text](target) and ![alt](target) that is not a URL or an anchor points at a file of the checkout."""
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text())
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in local if not (path.parent / t).exists()]
    assert not missing, f"{path.name} links to missing files: {missing}"


# ---------------------------------------------------------------------------------------------- seed 000

SEED_000_PYTHON = [to_ours(b) for b in code_blocks(SEED_000, "python")]
# Later blocks call generate_dataset without importing it: they continue the "Python API" block, so they run
# after that block's import line.
SEED_000_IMPORT = SEED_000_PYTHON[0].splitlines()[0]
SEED_000_PYTHON = [b if "import generate_dataset" in b or "generate_dataset" not in b else f"{SEED_000_IMPORT}\n{b}"
                   for b in SEED_000_PYTHON]
SEED_000_SHELL = [commands(to_ours(b)) for b in code_blocks(SEED_000, "bash")]


def test_seed_000_examples_are_all_accounted_for():
    """If the seed gains or loses an example, the tables below must be updated."""
    assert len(SEED_000_PYTHON) == 8
    assert SEED_000_IMPORT == "from mjxgen import generate_dataset"
    assert [len(c) for c in SEED_000_SHELL] == [4, 3]


@pytest.fixture(scope="module")
def seed_api(tmp_path_factory):
    """Seed 000's "Python API" block, verbatim but for the import, in its own directory."""
    d = tmp_path_factory.mktemp("seed000-api")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        printed = run_python(SEED_000_PYTHON[0], "seed 000 python block 0")
    return d, printed


def test_seed_000_python_api(seed_api):
    d, printed = seed_api
    lines = printed.splitlines()
    labels = ["Episodes:", "Total steps:", "Mean length:", "Mean reward:", "Success rate:", "File size:", "Output path:"]
    assert [line.split(":")[0] + ":" for line in lines] == labels
    assert lines[0].split()[-1] == "100"
    assert lines[-1].split()[-1] == "data/reach.h5"
    with h5py.File(d / "data" / "reach.h5") as f:
        assert len(f.keys()) == 100 and f.attrs["policy"] == "scripted"
        assert json.loads(f.attrs["config"])["max_steps"] == 200 and f.attrs["seed"] == 42
        friction = np.array([f[n]["randomization/friction_scale"][()] for n in f])  # a draw per episode
        assert friction.min() >= 0.8 and friction.max() <= 1.2 and len(np.unique(friction)) == 100
        assert all("image" not in f[n]["observations"] for n in f)


def test_seed_000_reading_with_h5py(seed_api, monkeypatch):
    d, _ = seed_api
    monkeypatch.chdir(d)
    printed = run_python(SEED_000_PYTHON[3], "seed 000 python block 3")
    assert "Number of episodes: 100" in printed and "Action dim: 4" in printed
    assert "'ee_pos'" in printed and "'target_pos'" in printed


def test_seed_000_trajectory_dataset_with_torch(seed_api, monkeypatch):
    pytest.importorskip("torch", reason="seed 000's DataLoader example needs torch, an optional dependency")
    d, _ = seed_api
    monkeypatch.chdir(d)
    printed = run_python(SEED_000_PYTHON[4], "seed 000 python block 4")
    assert "torch.Size([32, 7])" in printed and "torch.Size([32, 4])" in printed


def _in_fresh_dir(tmp_path, monkeypatch, source, name):
    monkeypatch.chdir(tmp_path)
    return run_python(source, name)


def test_seed_000_random_policy(tmp_path, monkeypatch):
    _in_fresh_dir(tmp_path, monkeypatch, SEED_000_PYTHON[1], "seed 000 python block 1")
    with h5py.File(tmp_path / "data" / "dataset.h5") as f:  # generate_dataset's default output path
        assert len(f.keys()) == 100 and f.attrs["policy"] == "random"
        actions = np.concatenate([f[n]["actions"][()] for n in f])
    assert actions.min() >= -1 and actions.max() <= 1 and actions.std(axis=0).min() > 0.5


@pytest.mark.slow
def test_seed_000_scripted_policy(tmp_path, monkeypatch):
    _in_fresh_dir(tmp_path, monkeypatch, SEED_000_PYTHON[2], "seed 000 python block 2")
    with h5py.File(tmp_path / "data" / "dataset.h5") as f:
        assert len(f.keys()) == 500 and f.attrs["policy"] == "scripted"
        assert np.mean([f[n].attrs["success"] for n in f]) > 0.95


@pytest.mark.slow
def test_seed_000_large_scale(tmp_path, monkeypatch):
    _in_fresh_dir(tmp_path, monkeypatch, SEED_000_PYTHON[5], "seed 000 python block 5")
    assert _episodes(tmp_path / "data" / "reach_10k.h5") == 10_000


@pytest.mark.slow
def test_seed_000_multiple_datasets(tmp_path, monkeypatch):
    printed = _in_fresh_dir(tmp_path, monkeypatch, SEED_000_PYTHON[6], "seed 000 python block 6")
    lines = printed.splitlines()
    assert [l.split(":")[0] for l in lines] == ["reach/random", "reach/scripted", "pick_place/random", "pick_place/scripted"]
    for env in ("reach", "pick_place"):
        for policy in ("random", "scripted"):
            assert _episodes(tmp_path / "data" / f"{env}_{policy}.h5") == 500


# Seed 000's pipeline at full size: 1000 episodes, 50,000 training steps.
PIPELINE_SIZES = [("n_episodes=1000", "n_episodes=100"), ("max_steps=50_000", "max_steps=30")]


def _checkpoint(path):
    from mjxgen.learn import checkpoints

    return checkpoints.read_config(path)


@pytest.mark.slow
def test_seed_000_pipeline_python(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="seed 000's pipeline block trains from a torch DataLoader (optional)")
    _in_fresh_dir(tmp_path, monkeypatch, SEED_000_PYTHON[7], "seed 000 python block 7")
    assert _checkpoint(tmp_path / "checkpoints" / "final.npz")["step"] == 50_000


class _NumpyDataLoader:
    """torch.utils.data.DataLoader's surface for dict items, collated into NumPy arrays (a stand-in where torch
    is not installed)."""

    def __init__(self, dataset, batch_size=1, shuffle=False):
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle

    def __iter__(self):
        n = len(self.dataset)
        order = np.random.default_rng(0).permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            yield _collate([self.dataset[int(i)] for i in order[start:start + self.batch_size]])


def _collate(items):
    if isinstance(items[0], dict):
        return {k: _collate([it[k] for it in items]) for k in items[0]}
    return np.stack([np.asarray(it) for it in items])


def test_seed_000_pipeline_python_scaled_down(tmp_path, monkeypatch):
    """The same block with 100 episodes (the shape seed 000's API block compiles) and 30 steps, with torch's
    DataLoader, or a NumPy stand-in of it where torch is not installed."""
    import sys
    import types

    try:
        import torch.utils.data  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torch.utils.data")
        stub.DataLoader = _NumpyDataLoader
        for name in ("torch", "torch.utils"):
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        monkeypatch.setitem(sys.modules, "torch.utils.data", stub)
    source = SEED_000_PYTHON[7]
    for full, small in PIPELINE_SIZES:
        assert full in source
        source = source.replace(full, small)
    _in_fresh_dir(tmp_path, monkeypatch, source, "seed 000 python block 7, scaled down")
    config = _checkpoint(tmp_path / "checkpoints" / "final.npz")
    assert config["step"] == 30 and config["env_name"] == "reach" and config["model"]["state_dim"] == 20
    assert config["dataset"]["episodes"] == 100 and config["train"]["lr"] == 1e-4


# The CLI examples. Each runs in a fresh directory; the checks read the file it wrote.
_SLOW = pytest.mark.slow
SEED_000_COMMANDS = [
    pytest.param(SEED_000_SHELL[0][0], "data/reach_random.h5", 100, id="datagen-reach-random"),
    pytest.param(SEED_000_SHELL[0][1], "data/reach_expert.h5", 500, id="datagen-reach-scripted", marks=_SLOW),
    pytest.param(SEED_000_SHELL[0][2], "data/reach_dr.h5", 1000, id="datagen-reach-randomize", marks=_SLOW),
    pytest.param(SEED_000_SHELL[0][3], "data/pick_place.h5", 200, id="datagen-pick_place-random"),
    pytest.param(SEED_000_SHELL[1][0], "data/reach_expert.h5", 1000, id="pipeline-datagen", marks=_SLOW),
]


@pytest.mark.parametrize("command, output, n", SEED_000_COMMANDS)
def test_seed_000_cli(command, output, n, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_command(command)
    argv = shlex.split(command)
    with h5py.File(output) as f:
        assert len(f.keys()) == n
        assert f.attrs["env_name"] == argv[argv.index("--env-name") + 1]
        assert f.attrs["policy"] == (argv[argv.index("--policy") + 1] if "--policy" in argv else "random")
        randomized = "--randomize" in argv
        assert all(("randomization" in f[k]) == randomized for k in f)


def _eval_table(printed: str) -> dict:
    return {k.strip(): v.strip() for k, v in (line.split("  ", 1) for line in printed.splitlines() if "  " in line)}


@pytest.mark.slow
def test_seed_000_pipeline_train_eval(tmp_path, monkeypatch, capsys):
    """Seed 000's three commands in one directory: 1000 randomized scripted episodes, 50,000 steps, 100 episodes."""
    monkeypatch.chdir(tmp_path)
    for command in SEED_000_SHELL[1]:
        run_command(command)
    assert _checkpoint("checkpoints/final.npz")["step"] == 50_000
    table = _eval_table(capsys.readouterr().out.split("Checkpoint")[-1])
    assert float(table["Success rate"].rstrip("%")) >= 90


# The scaled-down train and eval commands: the 64-episode scripted file as the dataset, 300 steps, 32 episodes
# (the evaluation shape tests/learn/test_bc.py compiles for the model `mjxgen train` builds by default).
TRAIN_EVAL_SIZES = [("--max-steps 50000", "--max-steps 300"), ("--n-episodes 100", "--n-episodes 32")]


def test_seed_000_pipeline_train_eval_scaled_down(scripted_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copy(scripted_file[0], tmp_path / "data" / "reach_expert.h5")  # what the datagen command writes
    for command in SEED_000_SHELL[1][1:]:
        for full, small in TRAIN_EVAL_SIZES:
            command = command.replace(full, small)
        run_command(command)
    assert _checkpoint("checkpoints/final.npz")["step"] == 300
    table = _eval_table(capsys.readouterr().out.split("Checkpoint")[-1])
    assert table["Episodes"].startswith("32 (seed 1, max steps 200; not in the training data: yes)")
    assert table["Batch"] == "32 x 1" and table["Success rate"].endswith("%")


# ---------------------------------------------------------------------------------------------- seed 003

SEED_003_SHELL = [commands(to_ours(b)) for b in code_blocks(SEED_003, "")]
# Seed 003's "Practical Tips", quoted: each must still be in the seed, and each runs below.
TIP_QUICK = "--num-samples 10 --video-samples 0"
TIP_STREAM = 'with h5py.File(path) as f: traj = f["sample_00042"]'
TIP_JSON = 'json.loads(traj["reset_info"][()])'


def test_seed_003_examples_are_all_accounted_for():
    assert [len(c) for c in SEED_003_SHELL] == [1]
    text = SEED_003.read_text()
    assert all(tip in text for tip in (TIP_QUICK, TIP_STREAM, TIP_JSON))


@pytest.fixture(scope="module")
def seed_003_run(tmp_path_factory):
    """Seed 003's command line: 1000 samples, 10 videos, --scale-forcing."""
    d = tmp_path_factory.mktemp("seed003")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        run_command(SEED_003_SHELL[0][0] + " --no-progress")
    return d


def test_seed_003_cli(seed_003_run):
    with h5py.File(seed_003_run / "data" / "random_dmp_dataset.h5") as f:
        assert len(f.keys()) == 1000 and f.attrs["seed"] == 42
        videos = [f[n].attrs["video_path"] for n in f if "video_path" in f[n].attrs]
    assert len(videos) == 10  # --video-samples 10
    assert all((seed_003_run / v).is_file() for v in videos)
    assert all(Path(v).parent == Path("videos/random_dmp_samples") for v in videos)


def test_seed_003_streaming_and_json_tips(seed_003_run, monkeypatch):
    monkeypatch.chdir(seed_003_run)
    source = f'import h5py, json\npath = "data/random_dmp_dataset.h5"\n{TIP_STREAM}\n' \
             f'with h5py.File(path) as f:\n    traj = f["sample_00042"]\n    print(sorted({TIP_JSON}))\n'
    printed = run_python(source, "seed 003 practical tips")
    assert "pos_agent" in printed


def test_seed_003_quick_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_command(f"python -m mjxgen.pusht {TIP_QUICK} --no-progress")
    assert _episodes(tmp_path / "data" / "random_dmp_dataset.h5") == 10
    assert not (tmp_path / "videos").exists()  # --video-samples 0: no video directory
