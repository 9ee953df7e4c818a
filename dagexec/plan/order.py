"""The order of a plan's nodes: which runnable nodes each waits for, a topological
order, and, when there is none, the cycle and the ``after()`` calls that closed it.

Creation order is already topological unless ``node.after(other)`` points forward;
then :func:`_kahn` orders the nodes, stable on creation order (smallest graph idx
first), so a plan's order, and with it its fingerprint, is the same on every compile.
These helpers are cut out of ``compile`` because they read only the graph and the
resolution of its markers, never the plan being laid out.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from typing import Any

from .. import _graph as G
from .._callsite import format_site
from .._errors import Problem
from .checks import NODE, TPL

_NODE, _TPL = NODE, TPL


def _runnable_deps(gdeps: tuple[int, ...], res: Sequence[tuple[int, Any]]) -> dict[int, None]:
    """The runnable nodes behind graph nodes ``gdeps`` (through section parameters
    given containers of Nodes), in order and without repeats."""
    out: dict[int, None] = {}
    for d in gdeps:
        r = res[d]
        if r[0] == _NODE:
            out[r[1]] = None
        elif r[0] == _TPL:
            out.update(dict.fromkeys(r[1][1]))
    return out


def _kahn(
    g: G.Graph,
    runnable: list[int],
    deps: Sequence[tuple[int, ...]],
    problems: list[Problem],
    res: Sequence[tuple[int, Any]],
) -> list[int] | None:
    """Stable topological order (smallest creation idx first), or None on a cycle."""
    waiting = {i: len(deps[i]) for i in runnable}
    users: dict[int, list[int]] = {i: [] for i in runnable}
    for i in runnable:
        for d in deps[i]:
            users[d].append(i)
    heap = [i for i in runnable if waiting[i] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(heap, u)
    if len(order) == len(runnable):
        return order
    left = {i for i in runnable if waiting[i] > 0}
    cycle = _find_cycle(left, deps)
    text = " -> ".join(repr(g._keys[i]) for i in cycle)
    closing = _after_calls(g, cycle, runnable, res)
    if closing:
        key, where = closing[0][0], closing[0][2]
        how = ", ".join(f"{k!r}.after({o!r}) called at {w}" for k, o, w in closing)
        problems.append(Problem(f"cycle: {text} (closed by {how})", key=key, call_site=where))
    else:  # pragma: no cover - after() is the one way to make a cycle (DESIGN §12)
        first = cycle[0]
        where = format_site(g._recs[first][G.R_SITE])
        problems.append(
            Problem(f"cycle: {text} (node {g._keys[first]!r} called at {where})", key=g._keys[first],
                    call_site=where)
        )  # fmt: skip
    return None


def _after_calls(
    g: G.Graph, cycle: list[int], runnable: list[int], res: Sequence[tuple[int, Any]]
) -> list[tuple[str, str, str]]:
    """The ``node.after(other)`` calls that make edges of ``cycle`` (in data-flow
    order), as ``(node key, other key, call site)``: where the user closed the cycle.
    ``other`` stands for what :meth:`_Compiler.dependencies` made of it: a section's
    nodes, or the node a marker resolves to."""
    members = _section_members(g, runnable) if g._sections else {}
    out: list[tuple[str, str, str]] = []
    for upstream, waiting in itertools.pairwise(cycle):
        for other in g._after.get(waiting, ()):
            r = res[other]
            if g._recs[other][G.R_KIND] == G.FINISH:
                targets = members.get(other, [])
            else:
                targets = [r[1]] if r[0] == _NODE else list(r[1][1]) if r[0] == _TPL else []
            if upstream in targets:
                site = g._after_sites.get((waiting, other))
                if site is not None:
                    out.append((g._keys[waiting], g._keys[other], format_site(site)))
                    break
    return out


def _find_cycle(left: set[int], deps: Sequence[tuple[int, ...]]) -> list[int]:
    """A cycle among ``left`` in data-flow order, first node repeated last."""
    start = min(left)
    path: list[int] = []
    seen: dict[int, int] = {}
    i = start
    while i not in seen:
        seen[i] = len(path)
        path.append(i)
        i = next(d for d in deps[i] if d in left)
    cycle = [*path[seen[i] :], i]
    cycle.reverse()  # deps point upstream; show the flow downstream
    return cycle


def _section_members(g: G.Graph, runnable: list[int]) -> dict[int, list[int]]:
    """FINISH idx -> the runnable nodes inside that section (nested ones included)."""
    out: dict[int, list[int]] = {s.finish: [] for s in g._sections}
    for i in runnable:
        scope = g._forms[g._recs[i][G.R_FORM]][2]
        while scope is not None:
            out[scope.finish].append(i)
            scope = scope.parent
    return out
