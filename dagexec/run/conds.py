"""``dx.cond`` and ``dx.switch`` at run time: what a predicate's value skips.

A cond or switch node (its *chooser*) waits for its predicate and for every branch's
nodes, yet runs only one branch.  When the predicate's value is known, :func:`choose`
marks each branch not taken ``skipped``, with every node only such a branch feeds, and
counts those branches off the chooser's dependencies, so that the chooser is ready once
the taken branch is done.  A cond is a switch of two branches picked by truth; a
switch's :class:`~dagexec._cond.Cases` pick by label (no branch at all when the value
has none and there is no default: the chooser then fails, naming it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._cond import Cases
from .triggers import skip_downstream
from .values import fetched

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .loop import Loop

#: one chooser: (its node, its branches' nodes, its Cases; None for a cond: by truth)
Chooser = tuple[int, tuple[tuple[int, ...], ...], Cases | None]


def conds_by_predicate(plan: CompiledGraph) -> dict[int, list[Chooser]] | None:
    """The plan's choosers under their predicate's slot; None when the plan has none."""
    if not plan._conds:
        return None
    by_slot: dict[int, list[Chooser]] = {}
    for node, slot, *branches in plan._conds:
        cases = plan._args[node][1] if plan._task_names[node] == "switch" else None
        by_slot.setdefault(slot, []).append((node, tuple(branches), cases))
    return by_slot


def choose(run: Loop, slot: int, value: Any, ready: bool = True) -> None:
    """The predicate in ``slot`` has ``value``: skip each of its choosers' branches
    not taken, and what only they feed (the chooser itself takes the one left).  With
    ``ready``, a chooser left waiting for nothing goes on its lane's ready stack."""
    value = fetched(value)
    for chooser, branches, cases in run.conds[slot] if run.conds else ():
        taken = (0 if value else 1) if cases is None else cases.branch(value)
        nodes = [j for k, branch in enumerate(branches) if k != taken for j in branch]
        skip_downstream(run, nodes, chooser, ready)
