"""``dx.cond`` and ``dx.switch``: branching whose branch is chosen at run time
(DESIGN §10, §17).

A cond is a switch of two cases, chosen by a predicate's truth.  Every branch is
traced when ``cond`` or ``switch`` is called, so ``compile()`` checks them all; each
node made in a branch waits for the predicate (or selector); the cond or switch
itself is a small node that reads the predicate and every branch's value and returns
the taken one.  When the predicate's value is known, the engine marks the branches
not taken ``skipped`` (and what only they feed), so they never run
(:mod:`dagexec.run.conds`).

The graph records each call once, in ``Graph._conds``: ``(its idx, the predicate's
idx, bounds)``, the bounds being the first branch's start and each branch's end in
the graph's records; a switch's default, given or not, is its last branch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

from ._callsite import format_site, user_frame
from ._errors import CallError, GraphError, Problem
from ._graph import GETITEM, MAP, SELECT, SWITCH, TASK, Graph, Node, current_graph

__all__ = ["Cases", "choose", "choose_case", "cond", "switch"]

#: the records a branch's nodes wait for the choice in: every record that runs
_WAITS = frozenset({TASK, GETITEM, SELECT, MAP, SWITCH})


class Cases(NamedTuple):
    """A switch node's second argument: its case labels, in order, and whether a
    default follows them (a pickled name: it must never move)."""

    labels: tuple[Any, ...]
    default: bool

    def branch(self, value: Any) -> int | None:
        """The index of the branch ``value`` selects (the default's is the number of
        labels), or None when there is no case for it and no default."""
        for k, label in enumerate(self.labels):
            if label == value:
                return k
        return len(self.labels) if self.default else None


def choose(pred: Any, then_value: Any, otherwise_value: Any) -> Any:
    """The function of a cond node: the taken branch's value (the other was never made)."""
    return then_value if pred else otherwise_value


def choose_case(selector: Any, cases: Cases, *values: Any) -> Any:
    """The function of a switch node: the chosen case's value (the others were never
    made); with no case for ``selector`` and no default, a ValueError naming both."""
    k = cases.branch(selector)
    if k is None:
        known = ", ".join(map(repr, cases.labels))
        raise ValueError(f"switch: no case for {selector!r} and no default (the cases: {known})")
    return values[k]


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
    branches: list[tuple[str, Callable[[], Any] | None]] = [("then", then), ("otherwise", otherwise)]
    return _branching("cond", pred, branches, None)


def switch(
    selector: Node, cases: Mapping[Hashable, Callable[[], Any]], default: Callable[[], Any] | None = None
) -> Node:
    """A value made by one of several cases, chosen at run time by ``selector``'s value.

    Each case, and ``default``, is called at once, without arguments, inside the
    current graph: the nodes it makes are its branch (as ``dx.cond``'s).  At run time
    only the case whose label equals the selector's value runs (``default`` when none
    does); the other cases' nodes are ``skipped``.  With no case for the value and no
    default, the switch node fails naming the value and the cases, and every case is
    ``skipped``.  A selector that is a graph input is decided before anything runs.

    Args:
        selector: a Node of the current graph (a task's value or a graph input).
        cases: case label -> what makes that case's branch; the selector's value
            takes the first case whose label ``==`` it, as a dict's keys would.
        default: makes the branch taken when no label equals the selector's value.

    Raises:
        CallError: outside a graph, when ``selector`` is not a Node of this graph,
            or when ``cases`` is empty or holds something not callable.
        GraphError: when cases return task values annotated with plain classes that
            cannot stand for each other.
    """
    if not isinstance(cases, Mapping) or not cases:
        site = user_frame()
        raise CallError(f"switch(): cases must be a non-empty dict of label -> function, got {cases!r} "
                        f"(called at {format_site(site)})")
    branches: list[tuple[str, Callable[[], Any] | None]] = [(repr(label), make) for label, make in cases.items()]
    branches.append(("default", default))
    return _branching("switch", selector, branches, Cases(tuple(cases), default is not None))


def _branching(
    what: str, pred: Node, branches: list[tuple[str, Callable[[], Any] | None]], cases: Cases | None
) -> Node:
    """Trace each branch in turn and record the node that picks one: a cond's (no
    ``cases``) or a switch's."""
    site = user_frame()
    graph = current_graph()
    where = format_site(site)
    if graph is None:
        raise CallError(f"{what}() is called inside 'with dx.Graph(...)' (called at {where})")
    if not isinstance(pred, Node) or pred._g is not graph:
        expected = f"a Node of graph {graph.name!r}" if not isinstance(pred, Node) else f"graph {graph.name!r}'s Node"
        name = "pred" if cases is None else "selector"
        raise CallError(f"{what}(): {name} must be {expected}, got {pred!r} (called at {where})")
    for name, make in branches:
        if make is not None and not callable(make):
            raise CallError(f"{what}(): {name} must be a function of no argument, got {make!r} (called at {where})")
    mark = (len(graph._keys), len(graph._sections), len(graph._outputs))
    try:
        bounds, values = [mark[0]], []
        for _, make in branches:
            values.append(make() if make is not None else None)
            bounds.append(len(graph._keys))
        _check_types(graph, what, [(name, v) for (name, _), v in zip(branches, values, strict=True)], site)
        recs, after = graph._recs, graph._after
        for idx in range(mark[0], bounds[-1]):
            if recs[idx][0] in _WAITS:
                after.setdefault(idx, []).append(pred._i)  # a branch waits for the choice
        key = graph._next_key(what)
        picked = (pred, *values) if cases is None else (pred, cases, *(values if cases.default else values[:-1]))
        args, _, deps, nested = graph._scan(picked, None, key, site)
        idx = graph._append(key, SELECT if cases is None else SWITCH, None, None, args, None, deps, nested, site,
                            graph._scope)
    except BaseException:
        graph._rollback(*mark)
        raise
    graph._conds.append((idx, pred._i, tuple(bounds)))
    return Node(graph, idx)


def _check_types(graph: Graph, what: str, values: list[tuple[str, Any]], site: tuple[str, int]) -> None:
    """Each branch's return type can stand for the first typed one's, or the other way."""
    from ._typecheck import format_type, static_compatible

    typed = [(name, v, t) for name, v in values if (t := _return_type(graph, v)) is not None]
    for name, value, t in typed[1:]:
        first, fvalue, ft = typed[0]
        if static_compatible(ft, t) or static_compatible(t, ft):
            continue
        where = format_site(site)
        parts = "branches" if what == "cond" else "cases"
        raise GraphError(
            Problem(
                f"{what}: the {parts} return different types: {first} {format_type(ft)} "
                f"({graph._keys[fvalue._i]!r}), {name} {format_type(t)} ({graph._keys[value._i]!r}) (called at {where})",
                call_site=where,
            )
        )


def _return_type(graph: Graph, value: Any) -> Any:
    if not isinstance(value, Node) or graph._recs[value._i][0] != TASK:
        return None
    task = graph._task_of(value._i)
    return task.meta.hints.get("return") if task is not None else None
