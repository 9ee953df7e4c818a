"""What ends a node without a trial, and the gated nodes that run all the same
(DESIGN §17).

When a unit fails, everything downstream of it that has not ended ends
``upstream_failed`` (:func:`fail_downstream`); when a cond or switch leaves a branch
untaken, the branch and what only it feeds end ``skipped`` (:func:`skip_downstream`).
Both walks stop at a *gated* node (``kind[u] == GATED``, ``plan._gates``), which
decides for itself by its trigger rule:

==================  =================================  ============================
rule                an upstream failed                 an upstream skipped
==================  =================================  ============================
``all_succeeded``   ``upstream_failed``                ``skipped``
``all_done``        counted as ended                   counted as ended
``none_failed``     ``skipped`` (and what it feeds)    counted as ended
==================  =================================  ============================

An upstream *counted as ended* is counted off the node's wait, as a success is: the
node runs once its last upstream has ended, given None (or an ``Outcome``) for each
without a value (:func:`.values.gated_values`).

fail_fast stops the run: a stop cancels what is ready and waiting, but never an
``all_done`` node (:func:`survives_stop`); once nothing runs any more, what has
not ended is cancelled and each ``all_done`` node whose upstreams have all ended runs
(:func:`run_after_stop`), in plan order, until none is left.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .state import CANCELLED, GATED, JOINING, MEMBER, PENDING, RUNNING, SKIPPED, UPSTREAM_FAILED

if TYPE_CHECKING:
    from .loop import Loop

__all__ = ["fail_downstream", "run_after_stop", "skip_downstream", "survives_stop"]


def fail_downstream(loop: Loop, u: int) -> None:
    """Unit ``u`` failed: what depends on it and has not ended fails upstream (a map
    item's map counts it as ended), but for what gated nodes decide."""
    state, dependents, kind, gates = loop.state, loop.dependents, loop.kind, loop.plan._gates
    stack = list(dependents[u])
    while stack:
        j = stack.pop()
        if state[j] != PENDING:
            continue
        if kind[j] == GATED:
            rule = gates[j][0]
            if rule == "all_done":
                _count_off(loop, j)
                continue
            if rule == "none_failed":
                skip_downstream(loop, [j])
                continue
        state[j] = UPSTREAM_FAILED
        loop.release_reads(j)
        if kind[j] == MEMBER:
            loop.maps.member_blocked(j)
        stack.extend(dependents[j])


def skip_downstream(loop: Loop, nodes: list[int], chooser: int = -1, ready: bool = True) -> None:
    """``nodes`` (those of them still pending) end ``skipped``, and what only they feed;
    ``chooser`` (the cond or switch whose branches they are) and a gated node with a
    rule count each as an upstream that ended.  With ``ready``, one left waiting for
    nothing goes on its lane's ready stack."""
    state, dependents, kind, gates = loop.state, loop.dependents, loop.kind, loop.plan._gates
    todo = [j for j in nodes if state[j] == PENDING]
    for j in todo:  # the branches first: a gated node inside one is skipped, not counted off
        state[j] = SKIPPED
    k = 0
    while k < len(todo):
        j = todo[k]
        k += 1
        loop.release_reads(j)
        for d in dependents[j]:
            if state[d] != PENDING:
                continue
            if d == chooser or (kind[d] == GATED and gates[d][0] != "all_succeeded"):
                _count_off(loop, d, ready)
            else:
                state[d] = SKIPPED
                todo.append(d)


def _count_off(loop: Loop, d: int, ready: bool = True) -> None:
    """One of ``d``'s upstreams ended without a value that stops it: ``d`` is ready
    once its last one has ended (on a stopped run, only an ``all_done`` node)."""
    waiting = loop.waiting
    waiting[d] -= 1
    if ready and waiting[d] == 0 and (not loop.stopping or survives_stop(loop, d)):
        loop.ready[loop.route[d]].append(d)


def survives_stop(loop: Loop, u: int) -> bool:
    """Unit ``u`` is an ``all_done`` node: fail_fast does not cancel it."""
    return loop.kind[u] == GATED and loop.plan._gates[u][0] == "all_done"


def run_after_stop(loop: Loop) -> bool:
    """fail_fast stopped the run and nothing runs any more: what has not ended is
    cancelled, but each ``all_done`` node whose upstreams have all ended is readied;
    whether one was (the loop goes on until none is left)."""
    state, gates, deps = loop.state, loop.plan._gates, loop.plan._deps
    waiting_on = {u for u, (rule, _) in gates.items() if rule == "all_done" and state[u] == PENDING}
    if not waiting_on:
        return False
    loop.maps.stopped(time.time())  # items not run are cancelled, their maps with them
    for u in range(loop.n):
        if state[u] == PENDING and u not in waiting_on:
            state[u] = CANCELLED
    readied = False
    for u in sorted(waiting_on):
        if all(state[d] not in (PENDING, RUNNING, JOINING) for d in deps[u]):
            loop.ready[loop.route[u]].append(u)
            readied = True
    return readied
