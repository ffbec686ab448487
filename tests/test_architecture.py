"""The package's structure, drawn from its imports: no cycles, and no layer reaches up.

Layers, lowest first (README, "Architecture"). A module may import its own layer and any layer
below it, never one above; imports inside functions count too, since they are dependencies all
the same.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import cxrbench

PACKAGE = Path(cxrbench.__file__).parent
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cxrbench", "cxrbench.files", "cxrbench.cores", "cxrbench.processes", "cxrbench.provenance"),
    ("cxrbench.data",),
    ("cxrbench.splits", "cxrbench.scoring"),
    ("cxrbench.plugins",),
    ("cxrbench.stats",),
    ("cxrbench.results",),
    ("cxrbench.report",),
    # Exports of a results file to other tools (MLflow): they read results and may render the
    # report, and the run layer's callers (the API, `run --mlflow`) call them.
    ("cxrbench.export",),
    ("cxrbench.run",),
    # The Python API (cxrbench.benchmark -> Benchmark) is a layer of its own, above run: it
    # builds a run's configuration, runs it and reads its results back; the CLI's `run` is a
    # thin layer over it, so it sits below cli.
    ("cxrbench.api",),
    ("cxrbench.cli", "cxrbench.__main__"),
)
# The package root hands out cxrbench.benchmark / cxrbench.Benchmark lazily, through a
# module-level __getattr__ (PEP 562) that imports cxrbench.api on first use. Importing
# `cxrbench` (as every layer does, for __version__) imports nothing above it, so this edge is
# not a dependency of the lower layers; it is the only one allowed to reach up.
LAZY_FACADE = ("cxrbench", "cxrbench.api")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the cxrbench modules it imports (at any depth of its code)."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                subs = [f"{name}.{alias.name}" for alias in node.names]
                targets = subs if all(s in modules for s in subs) else [name, *subs]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("cxrbench"):
                    found = resolve(target)
                    if found and found != module and (module, found) != LAZY_FACADE:
                        graph[module].add(found)
    return graph


def layer_of(module: str) -> int:
    best, level = -1, None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level is not None, f"{module} belongs to no layer: add it to LAYERS and the README"
    return level


def test_every_module_has_a_layer():
    for module in _modules():
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    upward = sorted(
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, targets in import_graph().items() for b in targets if layer_of(b) > layer_of(a)
    )
    assert not upward, "imports reaching up a layer:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = import_graph()
    cycles = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_graph_sees_real_imports_including_those_inside_functions():
    """Guards the checks above against passing vacuously on an empty graph."""
    graph = import_graph()
    assert "cxrbench.results.io" in graph["cxrbench.run.session"]  # module level
    assert "cxrbench.report" in graph["cxrbench.run.harness"]  # inside run_benchmark
    assert layer_of("cxrbench.run.harness") > layer_of("cxrbench.data.readers")


def test_importing_the_package_root_does_not_import_the_api():
    """What makes LAZY_FACADE's upward edge harmless: the API is imported on first use only."""
    import subprocess
    import sys

    code = ("import sys, cxrbench; assert 'cxrbench.api' not in sys.modules; "
            "assert callable(cxrbench.benchmark) and 'cxrbench.api' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
