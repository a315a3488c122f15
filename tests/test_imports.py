"""No import cycle among the product's modules: each stage imports only what comes before it.

Read from the source (ast), not by importing: a cycle hidden by a function-level import is a
cycle too (it only moves the failure to the first call). Package ``__init__`` files are left
out: they re-export their stage's modules, which is not a dependency of one module on another.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mobileprune"


def _modules(package: Path) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules ``name`` imports anywhere in its file (a name imported from a package
    counts as its submodule when it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            candidates = [f"{base}.{alias.name}" for alias in node.names]
            targets |= {c if c in modules else base for c in candidates}
        elif isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
    resolved = set()
    for target in targets:
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]
        if target in modules and target != name and modules[target].name != "__init__.py":
            resolved.add(target)
    return resolved


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = _modules(package)
    return {name: _imports(name, path, modules) for name, path in modules.items() if path.name != "__init__.py"}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected part of ``graph`` that has one (depth-first)."""
    found, done = [], set()
    for start in sorted(graph):
        stack, on_path = [(start, iter(sorted(graph[start])))], [start]
        while stack:
            node, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                stack.pop()
                on_path.pop()
                done.add(node)
            elif nxt in on_path:
                cycle = on_path[on_path.index(nxt):] + [nxt]
                if not any(set(cycle) <= set(c) for c in found):
                    found.append(cycle)
            elif nxt not in done and nxt in graph:
                stack.append((nxt, iter(sorted(graph[nxt]))))
                on_path.append(nxt)
    return found


def test_no_module_of_the_product_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_the_check_sees_a_cycle_through_a_function_level_import(tmp_path):
    """As devices/blockprobe.py imported build_all from devices/measuring.py inside a function
    while the profiler imported the probe (one of the three cycles removed on 2026-12-06)."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .measuring import run\n")  # a re-export: not an edge
    (package / "sub" / "__init__.py").write_text("")
    (package / "profiler.py").write_text("from .sub.probe import probe\n\ndef run():\n    return probe()\n")
    (package / "sub" / "probe.py").write_text("def probe():\n    from ..profiler import run\n    return run\n")
    (package / "alone.py").write_text("import pkg.profiler\n")
    graph = import_graph(package)
    assert graph == {"pkg.profiler": {"pkg.sub.probe"}, "pkg.sub.probe": {"pkg.profiler"},
                     "pkg.alone": {"pkg.profiler"}}
    assert cycles(graph) == [["pkg.profiler", "pkg.sub.probe", "pkg.profiler"]]
