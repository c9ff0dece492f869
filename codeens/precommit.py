"""Pre-commit suggestions: which tests exercise a stub, and the diff of a suggestion.

The repository's test files are found with tree-sitter: a test file is used for a problem
file when it imports that module (``import m``, ``from m import f``, ``from pkg.m import
f``) or calls one of its stubs by name. ``load_problem`` then keeps, per stub, the tests
that mention it.
"""

from __future__ import annotations

import difflib
import subprocess
from collections.abc import Iterable
from pathlib import Path

from codeens import pysyntax


def repo_root(path: Path) -> Path:
    """The git work tree holding ``path``, or its folder outside git."""
    folder = path.resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return folder
    return Path(out) if out else folder


def python_files(root: Path) -> list[Path]:
    """Tracked, staged and untracked-but-not-ignored Python files under ``root``."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.py"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return sorted(root.rglob("*.py"))
    return sorted({root / line for line in out.splitlines() if line})


def is_test_file(path: Path) -> bool:
    return path.name.startswith("test_") or path.name.endswith("_test.py")


def _uses(source: bytes, module: str, names: set[str]) -> bool:
    tree = pysyntax.parse(source)
    for node in pysyntax.walk(tree.root_node):
        if node.type == "import_from_statement":
            target = node.child_by_field_name("module_name")
            if target is not None and pysyntax.text(target).rsplit(".", 1)[-1] == module:
                return True
        elif node.type == "import_statement":
            for name in node.children_by_field_name("name"):
                dotted = name.child_by_field_name("name") if name.type == "aliased_import" else name
                if dotted is not None and pysyntax.text(dotted).rsplit(".", 1)[-1] == module:
                    return True
        elif node.type == "call":
            function = node.child_by_field_name("function")
            if (
                function is not None
                and function.type == "identifier"
                and pysyntax.text(function) in names
            ):
                return True
    return False


def related_tests(problem_path: Path, stub_names: Iterable[str]) -> list[Path]:
    """Test files of the repository that import the problem's module or call its stubs.

    The sibling ``test_<stem>.py`` is left out: ``load_problem`` adds it by itself.
    """
    problem_path = problem_path.resolve()
    module = problem_path.stem
    names = set(stub_names)
    sibling = problem_path.with_name(f"test_{module}.py")
    found = []
    for path in python_files(repo_root(problem_path)):
        if path in (problem_path, sibling) or not is_test_file(path):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if _uses(data, module, names):
            found.append(path)
    return found


def unified_diff(path: Path, before: str, after: str) -> str:
    """A ``git diff``-style patch of one file."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )
