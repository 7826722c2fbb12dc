"""The simulator package stands alone: it imports nothing of GridLink and has no import cycle.

Every import statement counts, also those under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import simulator

PACKAGE = Path(simulator.__file__).parent
GRIDLINK_PACKAGES = {"services", "gateway", "authz", "transactions", "commands", "gridlink"}
THIRD_PARTY = {"ocpp", "websockets", "jsonschema", "cryptography", "uvloop"}  # uvloop: optional


def _module_name(path: Path) -> str:
    return "simulator" if path.name == "__init__.py" else f"simulator.{path.stem}"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports; ``from simulator import x`` is ``simulator.x`` if a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = base == "simulator" and (PACKAGE / f"{alias.name}.py").exists()
                names.add(candidate if is_module else base)
    return names


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.glob("*.py"))}


def test_imports_nothing_of_gridlink_only_stdlib_and_its_libraries() -> None:
    allowed = set(sys.stdlib_module_names) | THIRD_PARTY | {"simulator"}
    for module, imported in _graph().items():
        roots = {name.split(".")[0] for name in imported}
        assert not roots & GRIDLINK_PACKAGES, (module, roots & GRIDLINK_PACKAGES)
        assert roots <= allowed, (module, roots - allowed)


def test_no_import_cycles_inside_the_package() -> None:
    graph = _graph()
    edges = {m: {n for n in imported if n in graph} for m, imported in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for target in sorted(edges[module]):
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(edges):
        visit(module, ())


def test_public_names_are_re_exported() -> None:
    for name in simulator.__all__:
        assert getattr(simulator, name) is not None, name
