"""The package's import graph: no cycles, and the strategy interface is a leaf.

Every import statement counts, at module level or inside a function, under
``TYPE_CHECKING`` or not: a cycle hidden in a function is still a cycle a reader must
untangle.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    """Module name -> file, from the package-dir mapping in pyproject.toml."""
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots: dict[str, str] = setup["package-dir"]
    found: dict[str, Path] = {}
    for package, folder in roots.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            # A sub-folder mapped to its own package is listed under that package.
            if not any(
                name.startswith(p + ".") or name == p for p in roots if len(p) > len(package)
            ):
                found[name] = path
    return found


def _imported(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    modules = _modules()
    return {
        name: {m for m in _imported(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_the_graph_sees_the_packages_and_their_imports() -> None:
    graph = _graph()
    assert {"codeens.solve", "codeens.sandbox.driver", "codeens.strategies.vote"} <= set(graph)
    assert "codeens.context" in graph["codeens.solve"]
    assert "codeens.storage.models" in graph["codeens.storage"]


def test_no_import_cycles() -> None:
    try:
        TopologicalSorter(_graph()).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_a_cycle_is_found_when_there_is_one() -> None:
    graph = _graph()
    graph["codeens.storage.models"] = graph["codeens.storage.models"] | {"codeens.storage"}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return
    raise AssertionError("the cycle storage -> storage.models -> storage went unseen")


def test_the_strategy_interface_imports_no_strategy() -> None:
    graph = _graph()
    assert not [m for m in graph["codeens.strategies.interface"] if ".strategies." in m]
    assert not [m for m in graph["codeens.strategies.base"] if m == "codeens.solve"]
