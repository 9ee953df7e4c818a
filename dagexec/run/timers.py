"""The run's two clocks: the deadlines of trials in flight, and the times at which
failed trials go again.

Both are heaps the loop looks at after each wait: its wait on the outcome queue ends at
:meth:`Timers.next_wake`, and what is due is popped in time order.  An entry may be
stale (its trial ended, or was retried, since it was pushed); the loop checks each one
against the node's state and attempt, so nothing is ever removed from the middle.
"""

from __future__ import annotations

import heapq
import time

#: seconds between looks at a trial past its deadline that has not begun to run
RECHECK_S = 0.05


class Timers:
    """The deadline heap ``(time, idx, attempt)`` and the retry heap ``(time, idx)``;
    ``idx`` is a plan index or a map item's token."""

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
