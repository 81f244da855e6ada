"""The layering rule of docs/architecture.md, read from the source: a package imports only
packages below it (never one beside or above it), and no two modules import each other,
directly or round a longer cycle. Imports inside functions count too."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, where pytest depends on tomli, the same parser
    import tomli as tomllib

SIR = Path(__file__).resolve().parent.parent / "sir"

# Lowest first. A package may import its own modules and any package of a lower rank;
# packages of equal rank know nothing of each other (data and policies).
RANKS = {
    "base": 0,  # sir.errors, sir.atomic, sir.config, sir.runtime
    "envs": 1,
    "experts": 2,
    "data": 3,
    "policies": 3,
    "eval": 4,
    "training": 5,
    "dagger": 6,
    "results": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANKS else "base"


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in SIR.rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """sir modules imported anywhere in ``path`` (``from pkg import submodule`` resolves to the submodule)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sir"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sir":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def test_the_graph_sees_every_package():
    graph = import_graph()
    assert {package_of(m) for m in graph} == set(RANKS)
    assert "sir.policies.checkpoint" in graph["sir.eval.evaluate"]


@pytest.mark.parametrize("package", sorted(RANKS))
def test_a_package_imports_only_packages_below_it(package):
    bad = []
    for module, targets in import_graph().items():
        if package_of(module) != package:
            continue
        for target in targets:
            other = package_of(target)
            if other != package and RANKS[other] >= RANKS[package]:
                bad.append(f"{module} imports {target}")
    assert not bad, "\n".join(sorted(bad))


def test_no_two_modules_import_each_other():
    # Package __init__ files only re-export; importing a submodule always runs its
    # package's __init__, which is Python's doing, not a cycle in sir's design.
    modules = all_modules()
    graph = {m: {t for t in ts if t in modules and modules[t].name != "__init__.py"}
             for m, ts in import_graph().items() if modules[m].name != "__init__.py"}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other: {cycles}"


def test_no_module_is_over_400_lines():
    long = {m: n for m, p in all_modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_the_data_halves_share_only_labels_resolution_and_video():
    # Writing datasets (sir.data.record and its commands) and reading them for training
    # (sir.data.mixture, sir.data.store, verify) meet only in the top-level modules.
    writing = ("sir.data.record", "sir.data.collect", "sir.data.import_hdf5")
    reading = ("sir.data.mixture", "sir.data.store", "sir.data.verify")
    bad = []
    for module, targets in import_graph().items():
        for mine, theirs in ((writing, reading), (reading, writing)):
            if module.startswith(mine):
                bad += [f"{module} imports {t}" for t in targets if t.startswith(theirs)]
    assert not bad, "\n".join(sorted(bad))


def test_the_data_package_has_at_most_8_modules_at_its_top_level():
    top = [p for p in (SIR / "data").glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 8, sorted(p.name for p in top)


def test_ruff_passes_with_the_enforced_line_length():
    # The line length is a rule ruff enforces (E501 at 120), not a habit: the setting stays
    # in pyproject.toml, and the code stays within it.
    root = SIR.parent
    ruff = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff.get("line-length") == 120
    lint = ruff.get("lint", {})
    assert {"E", "E501"} & set(lint.get("select", [])), "E501 must stay selected"
    assert "E501" not in lint.get("ignore", []) + lint.get("extend-ignore", []) + ruff.get("ignore", [])
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "sir", "tests", "benchmarks"],
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
