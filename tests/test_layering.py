"""The core's layers: imports only go downward, and there is no import cycle (issue 13).

A newcomer reads the package bottom-up: neutral leaves (errors, devices, apportioning, the code
sandbox, answer parsing, progress), then the frozen configs, then the run store's file formats
and atomic writes, then the pure math and models by method, then the orchestration of stages,
then the front ends (CLI, jobs, report). A module may import its own layer or a lower one; a
package may not import a package that imports it back. Function-level (lazy) imports count:
a lazy import is still a dependency.

The store sits below the math, not above it as a first sketch had it: it imports only `errors`,
and the math modules that cache (embeddings, LoRA checkpoints, model conversion) need its
atomic writes and memmaps; what stays out of the math is orchestration over a run directory.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "selection_core"

# Lowest first. Keys are module names or package prefixes; the longest matching key wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("neutral leaves", ("spine", "spine.errors", "spine.devices", "spine.apportion",
                        "spine.sandbox", "data.answers", "spine.progress")),
    ("configs", ("spine.config", "spine.config_args")),
    ("store: file formats, atomic writes, memmaps", ("spine.store",)),
    ("Ray shards of the per-row stages (driver and worker)", ("scale",)),
    ("models and data", ("data", "lm", "cluster", "select", "iterative")),
    ("features, scores, training", ("features", "quality", "train")),
    ("benchmarks and influence math", ("evaluate", "influence")),
    ("figures", ("viz",)),
    ("orchestration", ("spine.runner", "select.stages", "select.clean", "iterative.loop",
                       "experiment", "influence.pipeline", "influence.ray_features")),
    ("front ends", ("api", "cli", "__main__", "influence.cli", "evaluate.cli", "frontends",
                    "__init__")),
]
# Cycles still to break, each with the issue that owns it (none left).
KNOWN_CYCLES: set[frozenset[str]] = set()


def core_modules() -> dict[str, Path]:
    modules = {}
    for path in CORE.rglob("*.py"):
        name = ".".join(path.relative_to(CORE).with_suffix("").parts)
        modules[name.removesuffix(".__init__") or "__init__"] = path
    return modules


def imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The core modules `name` imports (anywhere in the file), relative to selection_core."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):  # absolute: `import select` is the standard library's
            targets = [alias.name.removeprefix("selection_core.") for alias in node.names
                       if alias.name.startswith("selection_core.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = parts[: len(parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
                if module != "selection_core" and not module.startswith("selection_core."):
                    continue
                module = module.removeprefix("selection_core").removeprefix(".")
            targets = [f"{module}.{alias.name}".lstrip(".") for alias in node.names] + [module]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def layer(name: str) -> int:
    best, rank = "", None
    for index, (_, keys) in enumerate(LAYERS):
        for key in keys:
            if (name == key or name.startswith(key + ".")) and len(key) > len(best):
                best, rank = key, index
    if rank is None:
        raise AssertionError(f"selection_core.{name} has no layer: add it to LAYERS in "
                             f"{Path(__file__).name}")
    return rank


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = core_modules()
    return {name: imports(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    for name in graph:
        layer(name)


def test_no_module_imports_a_higher_layer(graph: dict[str, set[str]]) -> None:
    upward = [f"{name} ({LAYERS[layer(name)][0]}) imports {target} "
              f"({LAYERS[layer(target)][0]})"
              for name, targets in sorted(graph.items()) for target in sorted(targets)
              if layer(target) > layer(name)]
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components of more than one node (an import cycle each)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.add(other)
                if other == node:
                    break
            if len(component) > 1:
                cycles.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycle_between_modules(graph: dict[str, set[str]]) -> None:
    cycles = [sorted(c) for c in strongly_connected(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert not cycles, f"import cycles: {cycles}"


def test_no_import_cycle_between_packages(graph: dict[str, set[str]]) -> None:
    """Sibling packages of one layer may use each other in one direction only."""
    def package(name: str) -> str:
        return name.split(".")[0]

    edges: dict[str, set[str]] = defaultdict(set)
    for name, targets in graph.items():
        for target in targets:
            if package(target) != package(name) and \
                    frozenset({name, target}) not in KNOWN_CYCLES:
                edges[package(name)].add(package(target))
    assert not strongly_connected(edges), f"package cycles: {strongly_connected(edges)}"


def test_the_core_never_imports_the_app() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in ("streamlit", "pages", "app")]
    assert not offenders, offenders


def test_the_check_sees_a_cycle_and_an_upward_import() -> None:
    """The rules above are not vacuous: a planted cycle and a planted upward edge are caught."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        {"a", "b", "c"}]
    assert layer("cluster.kmeans") < layer("select.stages") < layer("cli")
    assert layer("influence.gradients") < layer("influence.pipeline") < layer("influence.cli")
