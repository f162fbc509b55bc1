"""The layout docs/ARCHITECTURE.md describes, kept true: SQL is written only in the store
package, and no two modules import each other, directly or around a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "alpha12"
SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b")


def _sources() -> dict[str, Path]:
    """Every module of alpha12, and the app and its pages, by dotted name."""
    files = [*PACKAGE.rglob("*.py"), REPO / "app.py", *(REPO / "pages").glob("*.py")]
    return {_name(path): path for path in files}


def _name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def _imports(path: Path, known: set[str]) -> set[str]:
    """The alpha12 modules `path` imports (at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known}


def test_only_the_store_writes_sql():
    outside = [
        f"{path.relative_to(REPO)}:{line}"
        for name, path in _sources().items()
        if not name.startswith("alpha12.store")
        for line, text in _strings(path)
        if SQL.search(text)
    ]
    assert not outside, "SQL outside alpha12/store: " + ", ".join(outside)


def test_the_scan_finds_the_stores_sql():
    store = [path for name, path in _sources().items() if name.startswith("alpha12.store")]
    assert sum(bool(SQL.search(text)) for path in store for _, text in _strings(path)) > 20


def test_no_import_circle():
    sources = _sources()
    graph = {name: _imports(path, set(sources)) - {name} for name, path in sources.items()}
    # A package's face (its __init__) importing its own modules is how a package is built,
    # not a circle between two ideas.
    for name in graph:
        graph[name] = {m for m in graph[name] if not (m.startswith(name + ".") and name in graph)}
    circles = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles: " + "; ".join(circles)
