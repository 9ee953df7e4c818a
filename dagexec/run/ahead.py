"""Submitting ahead: the dependents of a trial go to its executor before it has ended.

An executor with ``ahead`` (dask) keeps values where they are made and orders its work
itself: a call may read the value of a call it still has in flight, which it waits for
on its own side.  When the loop submits unit ``i`` to such an executor, the executor
*promises* its value (``Executor.promise``: a :class:`~.protocol.Remote` that stands
for the value to be), the promise goes into ``vals[i]``, and each dependent of ``i`` on
the same lane whose inputs all exist or are promised goes onto the lane's stack (once:
when the last of them is submitted), to be submitted in the same pass of the loop; the executor sends what one pass submitted at
once (``Executor.flush``).  So a plan's connected part on that executor is submitted
in one pass, and the executor, not the master, starts a dependent when its inputs
exist::

    loop pass:  submit(i) --> promise(i) into vals[i]
                   |--> dependents of i whose inputs are done or promised --> stack
                   |        --> submit(d), promise(d) ... (each reads its inputs' promises)
                flush() --> one message to the cluster for all of them

A unit submitted ahead is ``running`` from its submission; its trial record comes with
its outcome, as any other's.  A dependent is never submitted ahead when it is not a
plain node (a map, a map item), is past its first attempt, holds containers to fill
(a value in a set is fetched, which a promise cannot be), is fed a stream's list, waits on a running node it
does not read (``after()``: the executor would not wait for it), or reads a cond's
predicate not yet decided (its branch may be skipped).  When a trial does not succeed (it failed,
timed out, crashed), the units submitted ahead that wait for it are withdrawn
(:func:`withdraw_ahead`): their calls are abandoned, and they are pending again with
their attempt given back, so that a retry submits them anew, or the failure makes them
``upstream_failed`` as usual.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .protocol import Batch, Call, Executor, Remote
from .state import PENDING, PLAIN, RUNNING, SUCCEEDED

if TYPE_CHECKING:
    from .loop import Loop

__all__ = ["push_dependents", "withdraw_ahead"]

logger = logging.getLogger("dagexec.engine")


def push_dependents(loop: Loop, i: int, call: Call | Batch, ex: Executor, r: int, stack: list[int]) -> None:
    """Unit ``i`` was submitted to ``ex`` (lane ``r``) as ``call`` (or as a member of
    batch ``call``): put its promise in ``vals[i]``, and the dependents that may now be
    submitted ahead on ``stack``.  A chain's member other than its last has no promise
    (its one reader is the next member)."""
    if loop.kind[i] != PLAIN:
        return
    promise = ex.promise(call) if isinstance(call, Call) else ex.promise(call, i)
    if promise is None:
        return
    loop.vals[i] = promise
    state, route, kind, attempt, deps = loop.state, loop.route, loop.kind, loop.attempt, loop.plan._deps
    vals, conds, nested, reads, unsent = loop.vals, loop.conds, loop.nested, loop.reads, loop.unsent
    fed = loop.fed_any  # a stream's list to iterate over must exist: never ahead
    for d in loop.dependents[i]:
        if route[d] != r or state[d] != PENDING or kind[d] != PLAIN or attempt[d] or nested[d] or d in fed:
            continue
        left = unsent.get(d)
        if left is None:
            waits = [s for s in deps[d] if not _made_or_promised(loop, s, ex, vals, conds, reads[d])]
            # counted once when each input it waits for is to be promised here, so that a
            # node reading a thousand is not looked over a thousand times; else looked
            # over again with each promise
            if waits and all(
                state[s] in (PENDING, RUNNING) and route[s] == r and s in reads[d] and (conds is None or s not in conds)
                for s in waits
            ):
                unsent[d] = len(waits)
            elif not waits:
                stack.append(d)
            continue
        left -= 1  # i was one of those it waited for
        if left:
            unsent[d] = left
        else:
            del unsent[d]
            stack.append(d)


def _made_or_promised(loop: Loop, s: int, ex: Executor, vals: list[Any], conds: Any, reads: Any) -> bool:
    """Whether dependency ``s`` of a dependent reading ``reads`` lets it go ahead: it
    succeeded, or it runs on ``ex``, is read (its promise in the call, the executor
    waits for it; an ``after()`` edge carries no value to wait on) and decides no cond."""
    st = loop.state[s]
    if st == SUCCEEDED:
        return True
    if st != RUNNING or s not in reads or (conds is not None and s in conds):
        return False
    v = vals[s]
    return type(v) is Remote and v.owner is ex and s in loop.calls


def withdraw_ahead(loop: Loop, i: int) -> None:
    """Unit ``i``'s trial did not succeed: drop its promise, and take back each unit
    submitted ahead that waits for it (and what waits for those): pending again, its
    attempt given back.  A call or a chain is abandoned (a chain whole); a member of a
    group of siblings is detached, and the group runs on for the others (the member's
    outcome, should it come, is ignored)."""
    if i >= loop.n or type(loop.vals[i]) is not Remote:
        return
    loop.vals[i] = None
    todo = [i]
    unsent = loop.unsent
    while todo:
        u = todo.pop()
        for d in loop.dependents[u]:
            unsent.pop(d, None)  # counted with u's promise: counted again when it comes back
            unit = loop.calls.get(d)
            if loop.state[d] != RUNNING or loop.waiting[d] == 0 or unit is None:
                continue  # not submitted ahead: it did not wait for u
            if isinstance(unit, Batch) and not any(unit.linked):
                _detach(loop, d, unit)
                todo.append(d)
            else:
                members = _take_back(loop, unit)  # a chain sent ahead goes back whole
                todo.extend(c.idx for c in members)


def _detach(loop: Loop, d: int, group: Batch) -> None:
    """Unit ``d``, a member of ``group`` sent ahead, is pending again; the group stays
    in flight for its other members (the last one detached abandons it)."""
    loop.calls.pop(d)
    loop.vals[d] = None
    for call in group.calls:
        if call.idx == d:
            loop.unstart(call)
    if not any(loop.calls.get(c.idx) is group for c in group.calls):
        _take_back(loop, group)


def _take_back(loop: Loop, unit: Call | Batch) -> list[Call]:
    """Abandon ``unit``, sent ahead; each of its calls' units is pending again."""
    members = [unit] if isinstance(unit, Call) else unit.calls
    r = loop.route[members[0].idx]
    try:
        loop.execs[r].abandon(unit)
    except Exception:  # its outcome, should it come, is ignored all the same
        logger.warning("executor %r failed to abandon %r", loop.execs[r], unit, exc_info=True)
    loop.inflight[r] -= 1
    for c in members:
        if loop.calls.get(c.idx) is unit:
            del loop.calls[c.idx]
            loop.vals[c.idx] = None
            loop.unstart(c)
    return members
