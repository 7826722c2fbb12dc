"""The shape of the house, checked: layers import downwards only, no import cycles (also
through functions, TYPE_CHECKING or importlib), no plugin discovery, no oversized module.

::

    gridlink (composition root)  ->  gateway, authz, transactions, commands  ->  services
    simulator, an independent program, imports none of them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "services"
COMPONENTS = ("gateway", "authz", "transactions", "commands", "api")
ROOT_PACKAGE = "gridlink"
SIMULATOR = "simulator"
PACKAGES = (ROOT_PACKAGE, KERNEL, *COMPONENTS, SIMULATOR)
MAX_LINES = 400
LONG_REASON = "Long on purpose:"  # what a module over MAX_LINES says at its top


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports anywhere in it (functions and TYPE_CHECKING included)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in MODULES else base), node.lineno


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_kernel_imports_no_component_and_no_composition_root() -> None:
    bad = [(module, imported, line) for module, path in MODULES.items()
           if top(module) == KERNEL for imported, line in imports(path)
           if top(imported) in (*COMPONENTS, ROOT_PACKAGE, SIMULATOR)]
    assert bad == []


def test_components_import_the_kernel_but_never_each_other() -> None:
    bad = [(module, imported, line) for module, path in MODULES.items()
           if top(module) in COMPONENTS for imported, line in imports(path)
           if top(imported) in (*COMPONENTS, ROOT_PACKAGE, SIMULATOR)
           and top(imported) != top(module)]
    assert bad == []


def test_the_simulator_imports_nothing_of_gridlink() -> None:
    bad = [(module, imported, line) for module, path in MODULES.items()
           if top(module) == SIMULATOR for imported, line in imports(path)
           if top(imported) in (KERNEL, *COMPONENTS, ROOT_PACKAGE)]
    assert bad == []


def test_nothing_imports_the_composition_root() -> None:
    bad = [(module, imported, line) for module, path in MODULES.items()
           if top(module) != ROOT_PACKAGE for imported, line in imports(path)
           if top(imported) == ROOT_PACKAGE]
    assert bad == []


def test_no_plugin_discovery() -> None:
    """Ordered tuples, not pkgutil/importlib: discovery hides order and cycles."""
    bad = [(module, imported) for module, path in MODULES.items()
           for imported, _ in imports(path) if top(imported) in ("importlib", "pkgutil")]
    assert bad == []


def test_no_import_cycles() -> None:
    graph = {module: {imported for imported, _ in imports(path) if imported in MODULES
                      and imported != module}
             for module, path in MODULES.items()}
    cycles = [component for component in strongly_connected(graph) if len(component) > 1]
    assert cycles == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"], ["d"]]


def python_files() -> list[Path]:
    skip = {".venv", ".git", "build", ".gridlink"}
    return sorted(p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts))


@pytest.mark.parametrize("path", [p for p in python_files()
                                  if len(p.read_text().splitlines()) > MAX_LINES],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_a_long_module_says_why(path: Path) -> None:
    head = "\n".join(path.read_text().splitlines()[:40])
    assert LONG_REASON in head, (
        f"{path.relative_to(ROOT)} has more than {MAX_LINES} lines: split it by concern, or "
        f"say at its top why it is one piece ('{LONG_REASON} ...')")
