"""The run's two clocks: the deadlines of trials in flight, and the times at which
failed trials go again.

Both are heaps the loop looks at after each wait: its wait on the outcome queue ends at
:meth:`Timers.next_wake`, and what is due is popped in time order.  An entry may be
stale (its trial ended, or was retried, since it was pushed); :func:`expire` checks each
one against the node's state and attempt, so nothing is ever removed from the middle.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from typing import TYPE_CHECKING

from .._errors import TaskTimeout
from .._state import State
from .policy import timeout_error
from .protocol import Call, Outcome
from .state import PENDING, RUNNING

if TYPE_CHECKING:
    from .loop import Loop

logger = logging.getLogger("dagexec.engine")

#: seconds between looks at a trial past its deadline that has not begun to run
RECHECK_S = 0.05


class Timers:
    """The deadline heap ``(time, idx, attempt)`` and the retry heap ``(time, idx)``;
    ``idx`` is a unit: a plan index or a map item's."""

    __slots__ = ("deadlines", "retries")

    def __init__(self) -> None:
        self.deadlines: list[tuple[float, int, int]] = []
        self.retries: list[tuple[float, int]] = []

    def deadline(self, at: float, i: int, attempt: int) -> None:
        """Trial ``attempt`` of ``i`` is to be looked at, at time ``at``."""
        heapq.heappush(self.deadlines, (at, i, attempt))

    def retry(self, at: float, i: int) -> None:
        """``i`` is to be ready again at time ``at``."""
        heapq.heappush(self.retries, (at, i))

    def next_wake(self) -> float | None:
        """Seconds until the nearest deadline or retry (0 when past); None when none."""
        t = None
        if self.deadlines:
            t = self.deadlines[0][0]
        if self.retries:
            r = self.retries[0][0]
            t = r if t is None or r < t else t
        return None if t is None else max(0.0, t - time.time())

    def due_deadlines(self, now: float) -> list[tuple[int, int]]:
        """The ``(idx, attempt)`` whose deadline is at or before ``now``, in time order."""
        deadlines = self.deadlines
        due = []
        while deadlines and deadlines[0][0] <= now:
            _, i, attempt = heapq.heappop(deadlines)
            due.append((i, attempt))
        return due

    def due_retries(self, now: float) -> list[int]:
        """The indices whose retry time is at or before ``now``, in time order."""
        retries = self.retries
        due = []
        while retries and retries[0][0] <= now:
            due.append(heapq.heappop(retries)[1])
        return due

    def cancel_retries(self) -> list[int]:
        """Drop every retry to come (the run stops); the indices that waited."""
        waited = [i for _, i in self.retries]
        self.retries.clear()
        return waited


def _stop_if_past(loop: Loop, i: int, attempt: int, now: float) -> TaskTimeout | None:
    """Trial ``i`` (a node, or a map item) reached its deadline: its TaskTimeout,
    once it is taken from its executor (abandoned); None when it is not past its
    timeout after all (it started after its submission, or still waits in the
    executor's queue: looked at again then), or no longer in flight."""
    call = loop.calls.get(i)
    if call is None:
        return None
    assert isinstance(call, Call)  # batch members have no timeout
    r = loop.route[i]
    timeout: float = call.spec.timeout
    try:
        began = loop.execs[r].started_at(call)
    except Exception:
        logger.warning("executor %r raised in started_at", loop.execs[r], exc_info=True)
        began = None
    if began is not None and began + timeout > now:
        loop.timers.deadline(now + RECHECK_S if began == math.inf else began + timeout, i, attempt)
        return None
    del loop.calls[i]
    loop.inflight[r] -= 1
    try:
        loop.execs[r].abandon(call)
    except Exception:
        logger.warning("executor %r failed to abandon %r", loop.execs[r], call, exc_info=True)
    return timeout_error(call.key, timeout)


def expire(loop: Loop) -> None:
    """What is due: a trial past its deadline fails timed out (once taken from its
    executor), and a node or item whose retry time came is ready again."""
    now = time.time()
    deadlines, retries = loop.timers.deadlines, loop.timers.retries
    if not (deadlines and deadlines[0][0] <= now) and not (retries and retries[0][0] <= now):
        return  # the common case, after each wait of the loop: nothing is due
    state, attempts, rows = loop.state, loop.attempt, loop.rows
    for i, attempt in loop.timers.due_deadlines(now):
        if state[i] != RUNNING or attempts[i] != attempt:
            continue
        trials = rows[i]
        exc = _stop_if_past(loop, i, attempt, now)
        if exc is None:
            continue
        start = now - (exc.timeout or 0.0)
        if type(trials) is list and trials and trials[-1].attempt == attempt:
            start = trials[-1].start
        out: Outcome = (i, attempt, False, None, exc, "", start, now, "", "")
        loop.failed(i, out, State.TIMED_OUT, exc, "")
    for i in loop.timers.due_retries(now):
        if state[i] == PENDING and loop.waiting[i] == 0:
            loop.ready[loop.route[i]].append(i)
