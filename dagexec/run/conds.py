"""``dx.cond`` at run time: what a predicate's value skips.

A cond node waits for its predicate and for both branches' nodes, yet runs only one
branch.  When the predicate's value is known, :func:`choose` marks the branch not taken
``skipped``, with every node only that branch feeds, and counts the branch off the cond's
dependencies, so that the cond is ready once the taken branch is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .protocol import Remote
from .state import PENDING, SKIPPED

if TYPE_CHECKING:
    from .loop import Loop

#: one cond: (its node, the predicate's slot, the then-branch's nodes, the otherwise-branch's)
Cond = tuple[int, int, tuple[int, ...], tuple[int, ...]]


def conds_by_predicate(conds: tuple[Cond, ...]) -> dict[int, list[Cond]] | None:
    """The plan's conds under their predicate's slot; None when the plan has none."""
    if not conds:
        return None
    by_slot: dict[int, list[Cond]] = {}
    for c in conds:
        by_slot.setdefault(c[1], []).append(c)
    return by_slot


def choose(run: Loop, slot: int, value: Any, ready: bool = True) -> None:
    """The predicate in ``slot`` has ``value``: skip each of its conds' untaken
    branch, and what only that branch feeds (the cond itself takes the other).  With
    ``ready``, a cond left waiting for nothing goes on its lane's ready stack."""
    if type(value) is Remote:
        value = value.owner.fetch([value])[0]
    state, waiting, dependents = run.state, run.waiting, run.dependents
    for chooser, _, then_nodes, otherwise_nodes in run.conds[slot] if run.conds else ():
        stack = list(reversed(otherwise_nodes if value else then_nodes))
        while stack:
            j = stack.pop()
            if state[j] != PENDING:
                continue
            state[j] = SKIPPED
            run.release_reads(j)
            for d in dependents[j]:
                if d == chooser:
                    waiting[d] -= 1
                    if ready and waiting[d] == 0 and state[d] == PENDING:
                        run.ready[run.route[d]].append(d)
                else:
                    stack.append(d)
