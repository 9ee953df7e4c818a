"""``dx.cond``: branching whose branch is chosen at run time (DESIGN §10).

Both branches are traced when ``cond`` is called, so ``compile()`` checks both; each
node made in a branch waits for the predicate; the cond itself is a small node that
reads the predicate and both branches' values and returns the taken one.  When the
predicate's value is known, the engine marks the untaken branch's nodes ``skipped``
(and what only they feed), so they never run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._callsite import format_site, user_frame
from ._errors import CallError, GraphError, Problem
from ._graph import GETITEM, SELECT, TASK, Graph, Node, current_graph

__all__ = ["choose", "cond"]


def choose(pred: Any, then_value: Any, otherwise_value: Any) -> Any:
    """The function of a cond node: the taken branch's value (the other was never made)."""
    return then_value if pred else otherwise_value


def cond(pred: Node, then: Callable[[], Any], otherwise: Callable[[], Any] | None = None) -> Node:
    """A value made by one of two branches, chosen at run time by ``pred``'s truth.

    ``then`` and ``otherwise`` are called at once, without arguments, inside the
    current graph: the nodes they make are the branches.  At run time only the branch
    that ``bool(pred's value)`` selects runs; the other's nodes are ``skipped``.  The
    returned Node stands for the taken branch's value (``None`` when ``otherwise`` is
    left out and ``pred`` is false).

    Args:
        pred: a Node of the current graph (a task's value or a graph input).
        then: makes the branch taken when the predicate is true.
        otherwise: makes the branch taken when it is false.

    Raises:
        CallError: outside a graph, or when ``pred`` is not a Node of this graph.
        GraphError: when both branches return task values annotated with plain
            classes that cannot stand for each other.
    """
    site = user_frame()
    graph = current_graph()
    if graph is None:
        raise CallError(f"cond() is called inside 'with dx.Graph(...)' (called at {format_site(site)})")
    if not isinstance(pred, Node) or pred._g is not graph:
        what = f"a Node of graph {graph.name!r}" if not isinstance(pred, Node) else f"graph {graph.name!r}'s Node"
        raise CallError(f"cond(): pred must be {what}, got {pred!r} (called at {format_site(site)})")
    mark = (len(graph._keys), len(graph._sections), len(graph._outputs))
    try:
        then_value = then()
        middle = len(graph._keys)
        otherwise_value = otherwise() if otherwise is not None else None
        _check_types(graph, then_value, otherwise_value, site)
        end = len(graph._keys)
        for idx in range(mark[0], end):
            if graph._recs[idx][0] in (TASK, GETITEM):
                graph._after.setdefault(idx, []).append(pred._i)  # a branch waits for the choice
        key = graph._next_key("cond")
        args, _, deps, nested = graph._scan((pred, then_value, otherwise_value), None, key, site)
        idx = graph._append(key, SELECT, None, None, args, None, deps, nested, site, graph._scope)
    except BaseException:
        graph._rollback(*mark)
        raise
    graph._conds.append((idx, pred._i, mark[0], middle, end))
    return Node(graph, idx)


def _check_types(graph: Graph, a: Any, b: Any, site: tuple[str, int]) -> None:
    from ._typecheck import format_type, static_compatible

    ta, tb = _return_type(graph, a), _return_type(graph, b)
    if ta is None or tb is None or static_compatible(ta, tb) or static_compatible(tb, ta):
        return
    where = format_site(site)
    raise GraphError(
        Problem(
            f"cond: the branches return different types: then {format_type(ta)} "
            f"({graph._keys[a._i]!r}), otherwise {format_type(tb)} ({graph._keys[b._i]!r}) (called at {where})",
            call_site=where,
        )
    )


def _return_type(graph: Graph, value: Any) -> Any:
    if not isinstance(value, Node) or graph._recs[value._i][0] != TASK:
        return None
    task = graph._task_of(value._i)
    return task.meta.hints.get("return") if task is not None else None
