"""The process boundary and the import graph, read from the source with `ast` (no module is
imported, so no framework is needed):

- the parent (compare.py, the CLI, plan, pre-flight, runner, launcher, studies, reports, figures)
  never reaches worker code, a `*_impl` package or a framework, not even through another module;
- worker code (common.worker, keras_impl, torch_impl) never reaches the CLI, reports or figures;
- nothing imports common.worker.__main__ (`python -m common.worker` runs it once, as __main__);
- nothing in common/ imports a framework (the worker imports `*_impl` by name when a job runs);
- no import cycle among the project's modules, counting imports inside functions too (an import
  moved into a function to dodge a cycle is still a cycle);
- `import common.data` loads no slow library (scikit-learn, SciPy, tqdm, pandas).

An edge is what an import statement names: `from common.data.cache import x` is an edge to
common.data.cache (not to the package above it, whose __init__ only re-exports).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "keras_impl", "torch_impl")
FRAMEWORKS = frozenset({"torch", "torchvision", "tensorflow", "keras", "jax", "jaxlib",
                        "scikeras", "skorch"})
# The parent process: these modules and everything they import.
PARENT = ("compare", "common.cli", "common.flags", "common.plan", "common.preflight",
          "common.runner", "common.launch", "common.executors", "common.ray_executor",
          "common.studies", "common.study_settings", "common.figures", "common.report")
# The framework processes' own code.
WORKER = ("common.worker", "keras_impl", "torch_impl")
# What only the parent may import.
PARENT_ONLY = ("compare", "common.cli", "common.flags", "common.plan", "common.preflight",
               "common.runner", "common.executors", "common.ray_executor", "common.studies",
               "common.figures", "common.report")
SLOW = ("sklearn", "scipy", "tqdm", "pandas")

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_imports() -> tuple[Graph, Graph]:
    """(project module -> the project modules it imports, project module -> the top-level
    names of the other packages it imports)."""
    files = [ROOT / "compare.py"] + [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    project: Graph = {m: set() for m in modules}
    external: Graph = {m: set() for m in modules}

    def add(source: str, name: str) -> None:
        if name in modules:
            project[source].add(name)
        elif name.split(".")[0] in {m.split(".")[0] for m in modules}:
            # a project name that is no module (e.g. a re-exported function): its module
            project[source].add(name.rpartition(".")[0])
        else:
            external[source].add(name.split(".")[0])

    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(name, alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    add(name, full if full in modules else node.module)
    return project, external


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def reach(graph: Graph, start: str) -> dict[str, list[str]]:
    """Every module `start` imports, directly or not, with one import path to it."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for nxt in sorted(graph[current]):
            if nxt not in paths:
                paths[nxt] = paths[current] + [nxt]
                todo.append(nxt)
    return paths


def boundary_violations(project: Graph, external: Graph) -> list[str]:
    """One line per forbidden import path (the rules in the module docstring)."""
    problems = []
    for module in sorted(project):
        if within(module, PARENT):
            for target, path in reach(project, module).items():
                names = {target} | {f"{t} (framework)" for t in external[target] & FRAMEWORKS}
                for bad in sorted(names):
                    if within(target, WORKER) or bad.endswith("(framework)"):
                        problems.append(f"parent {module} reaches {bad}: {' -> '.join(path)}")
        if within(module, WORKER):
            for target, path in reach(project, module).items():
                if within(target, PARENT_ONLY):
                    problems.append(f"worker {module} reaches {target}: {' -> '.join(path)}")
        if "common.worker.__main__" in project[module]:  # it would run twice (as __main__ too)
            problems.append(f"{module} imports common.worker.__main__, which only runs as a program")
        if within(module, ("common",)) and external[module] & FRAMEWORKS:
            problems.append(f"{module} imports {', '.join(sorted(external[module] & FRAMEWORKS))}")
    return problems


def cycles(project: Graph) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module, or a module
    importing itself), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(project[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in project[v]:
                found.append(sorted(component))

    for v in sorted(project):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def imports() -> tuple[Graph, Graph]:
    return read_imports()


def test_the_graph_is_read(imports):
    project, external = imports
    assert "common.worker.__main__" in project and "compare" in project
    assert "common.cli" in project["compare"]
    assert "torch" in external["torch_impl.model"] and "keras" in external["keras_impl.model"]


def test_the_process_boundary_holds(imports):
    problems = boundary_violations(*imports)
    assert not problems, "\n".join(problems)


def test_no_import_cycle(imports):
    found = cycles(imports[0])
    assert not found, "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("source, target, expected", [
    ("common.runner", "common.worker.train", "parent common.runner reaches common.worker.train"),
    ("common.report.run", "keras_impl.train", "parent common.report.run reaches keras_impl.train"),
    ("common.worker.train", "common.report.run", "worker common.worker.train reaches"),
    ("keras_impl.train", "common.worker.__main__", "keras_impl.train imports common.worker.__main__"),
])
def test_a_bad_import_is_caught(imports, source, target, expected):
    """The checks above can fail: one forbidden edge added to the real graph is reported."""
    project, external = imports
    bad = {m: set(t) for m, t in project.items()}
    bad[source].add(target)
    assert any(line.startswith(expected) for line in boundary_violations(bad, external))


def test_a_framework_import_and_a_cycle_are_caught(imports):
    project, external = imports
    bad_external = {m: set(t) for m, t in external.items()}
    bad_external["common.specs"].add("torch")
    assert "common.specs imports torch" in boundary_violations(project, bad_external)
    bad = {m: set(t) for m, t in project.items()}
    bad["common.errors"].add("common.config")  # config imports errors
    assert any({"common.errors", "common.config"} <= set(c) for c in cycles(bad))


def test_importing_the_data_package_loads_no_slow_library():
    code = ("import sys, common.data\n"
            f"print(sorted(m for m in {SLOW!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_a_framework_process_starts_without_scikit_learn_or_torchvision():
    """Every framework process imports the worker's modules and its framework's training code;
    scikit-learn (about 1 s to import: common.metrics imports it where it is used) and
    torchvision (about 2 s: torch_impl.augment imports it on the first augmented batch) are
    left to the jobs that need them."""
    code = ("import sys\n"
            "import common.worker.train, common.worker.grid, common.worker.parity\n"
            "import torch_impl.train, torch_impl.parity\n"
            "print(sorted(m for m in ('sklearn', 'pandas', 'torchvision') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
