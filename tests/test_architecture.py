"""The package's shape, checked on the installed source: every import points down the layers, and no module,
class or function outgrows what a reader takes in at once.

The layers, lowest first. A module may import its own layer and those below it, never one above. Every
subpackage and top-level module of mjxgen must appear here, so a new one has to be placed (the test fails
until it is)."""

import ast
import importlib.util
from pathlib import Path

import pytest

LAYERS = [
    ("mjxgen.kernels",),  # pure JAX functions: no MuJoCo, no I/O, nothing of mjxgen's
    ("mjxgen.checks",),  # argument checks shared by every layer: plain Python
    ("mjxgen.runtime",),  # process plumbing: XLA flags, caches, exported programs, pools, signals, processes
    ("mjxgen.envs",),  # the tasks on MJX and native MuJoCo
    ("mjxgen.render",),  # camera images of the scenes
    ("mjxgen.sim",),  # episodes, the streamed program, rollout_batch
    ("mjxgen.data",),  # formats, writer, shards, readers, TrajectoryDataset
    # the jobs: generate a dataset, PushT, learn from one, export one to other libraries' formats
    ("mjxgen.generate", "mjxgen.pusht", "mjxgen.learn", "mjxgen.export"),
    ("mjxgen.cli", "mjxgen.reach", "mjxgen.pick_place", "mjxgen"),  # commands, task entry points, the public API
]
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 150
MAX_FUNCTION_LINES = 60  # lines of code, the docstring aside


def package_root(name: str) -> Path:
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


def modules() -> dict[str, Path]:
    """Every module of the installed mjxgen, by dotted name (mjxgen.kernels and mjxgen.pusht included)."""
    out = {}
    for package in ("mjxgen", "mjxgen.kernels", "mjxgen.pusht"):
        root = package_root(package)
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join([package, *parts]).removesuffix(".__init__")
            out.setdefault(name, path)
    return dict(sorted(out.items()))


def layer_of(module: str) -> int:
    """The index in LAYERS of the longest unit (subpackage or module) that contains `module`."""
    best, found = -1, None
    for i, units in enumerate(LAYERS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and len(unit) > best:
                best, found = len(unit), i
    return found


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported mjxgen module, line) of every import in a module, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out += [(f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base, node.lineno) for a in node.names]
    return [(m, line) for m, line in out if m == "mjxgen" or m.startswith("mjxgen.")]


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_every_unit_of_the_package_has_a_layer():
    unplaced = [m for m in modules() if layer_of(m) is None]
    assert not unplaced, f"place these in LAYERS: {unplaced}"
    subpackages = {m for m, p in modules().items() if p.name == "__init__.py" and m.count(".") == 1}
    named = {u for units in LAYERS for u in units}
    assert subpackages <= named, f"subpackages missing from LAYERS: {sorted(subpackages - named)}"


def test_no_import_points_up():
    """An entry script (__main__) may import the CLI; everything else imports its own layer or lower ones."""
    upward = []
    for name, path in modules().items():
        if name.endswith("__main__"):
            continue
        own = layer_of(name)
        for imported, line in imports_of(name, path):
            if layer_of(imported) > own:
                upward.append(f"{name}:{line} imports {imported}")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def test_the_layer_check_sees_a_forbidden_import(tmp_path):
    """The check itself: an env module importing the simulation layer is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from mjxgen.sim import rollout\nimport mjxgen.data.writer\n")
    found = imports_of("mjxgen.envs.bad", bad)
    assert [layer_of(m) > layer_of("mjxgen.envs.bad") for m, _ in found] == [True, True]


def _code_lines(node) -> int:
    """Lines of a function or class, its docstring's lines left out."""
    lines = node.end_lineno - node.lineno + 1
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines -= body[0].end_lineno - body[0].lineno + 1
    return lines


@pytest.mark.parametrize("name", list(modules()))
def test_sizes(name):
    path = modules()[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name}: {len(text.splitlines())} lines"
    big = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef) and _code_lines(node) > MAX_CLASS_LINES:
            big.append(f"class {node.name}: {_code_lines(node)} lines")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > MAX_FUNCTION_LINES:
            big.append(f"{node.name}(): {_code_lines(node)} lines of code")
    assert not big, f"{name}: " + "; ".join(big)
