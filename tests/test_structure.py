"""The shape of ``dagexec/``, checked on its source: no import cycle, and sizes a reader
can hold.

The imports are those ``tests/test_layers.py`` finds (function-local ones included,
``if TYPE_CHECKING:`` left out).  A facade method (``FACADES`` there) imports upward
only when called, to reach the code that draws, saves or runs its object; its imports
are left out of the cycle check, as DESIGN §18 allows.

The size limits are the project's: a module over ``MODULE_LINES`` lines, a class over
``CLASS_LINES`` or a function over ``FUNCTION_LINES`` (docstrings and comments
counted) is split.  ``OVERSIZE`` lists what is over a limit today; an entry that no
longer is fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

from test_layers import FACADES, ROOT, scan

MODULE_LINES = 600
CLASS_LINES = 450
FUNCTION_LINES = 90

# Today's oversize modules, classes and functions, as (path, name or "<module>").
OVERSIZE: frozenset[tuple[str, str]] = frozenset()


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in scan(ROOT).modules}
    for imp in scan(ROOT).imports:
        if (imp.importer, imp.function) not in FACADES:
            graph[imp.importer].add(imp.imported)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_cycles_finds_a_loop_and_ignores_a_line() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_outside_the_facades() -> None:
    found = cycles(_import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(group) for group in found)


def oversize(root: Path) -> dict[tuple[str, str], int]:
    """Every module, class and function of the package over its limit, with its lines."""
    found: dict[tuple[str, str], int] = {}
    for path in sorted((root / "dagexec").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = path.relative_to(root).as_posix()
        if len(source.splitlines()) > MODULE_LINES:
            found[(name, "<module>")] = len(source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                limit = CLASS_LINES
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                limit = FUNCTION_LINES
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found[(name, node.name)] = lines
    return found


def test_no_module_class_or_function_over_its_limit() -> None:
    new = {entry: lines for entry, lines in oversize(ROOT).items() if entry not in OVERSIZE}
    assert new == {}, "\n".join(f"{path}: {name} has {lines} lines" for (path, name), lines in new.items())


def test_oversize_entries_still_occur() -> None:
    gone = sorted(OVERSIZE - set(oversize(ROOT)))
    assert gone == [], f"no longer oversize, delete from OVERSIZE: {gone}"
