"""Each node's and each map item's trials, and the user callbacks told about them.

A trial is announced (``on_trial_start``) when its call is submitted and recorded when
its outcome arrives (``on_trial_end``).  :class:`Trials` keeps the trials of every unit
(node or map item), one row per unit: None before the first trial, a list of
:class:`~dagexec.Trial`, or, for a first trial of a node that succeeded without
callbacks and without a log, the compact tuple ``(start, end, worker)`` that the loop
writes itself on its hot path and :func:`as_trials` makes a Trial at the end; for such
a trial run in the master (:mod:`.here`), its start alone, a float, with its end in
``ends`` (no object made per trial).  The rows
of the slots that are no node (graph inputs, constants) stay None; the loop appends a
row per map item when its map expands.

A batch member that was announced but sent back unrun waits in ``unstarted``: when it
runs again callbacks are not told twice, and when it never does it ends ``cancelled``,
so every ``on_trial_start`` has its ``on_trial_end``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._state import State, Trial
from .protocol import O_ATTEMPT, Outcome

logger = logging.getLogger("dagexec.engine")


class Callbacks:
    """Calls user callbacks; an exception in one is logged at WARNING with its
    traceback, never raised: ``SystemExit`` and ``GeneratorExit`` included.  Only
    ``KeyboardInterrupt`` goes through, to stop the run as Ctrl-C does."""

    __slots__ = ("_cbs",)

    def __init__(self, cbs: Sequence[Any]) -> None:
        self._cbs = list(cbs)

    def __bool__(self) -> bool:
        return bool(self._cbs)

    def call(self, method: str, arg: Any) -> None:
        for cb in self._cbs:
            fn = getattr(cb, method, None)
            if fn is None:
                continue
            try:
                fn(arg)
            except KeyboardInterrupt:
                raise
            except BaseException:
                logger.warning("callback %r raised in %s; the run goes on", cb, method, exc_info=True)


def as_trials(key: str, row: Any, end: float | None = None) -> list[Trial]:
    """A node's row of trials as a list: the compact tuple of a first trial that
    succeeded becomes its Trial, and so does the start of one that succeeded in the
    master (``end`` its end)."""
    if type(row) is tuple:
        return [Trial(key, 1, State.SUCCEEDED, *row)]
    if type(row) is float:
        return [Trial(key, 1, State.SUCCEEDED, row, end, "master")]
    return row or []


def end_trial(
    lst: list[Trial] | None, out: Outcome, state: State, error: BaseException | None, tb: str
) -> Trial | None:
    """The announced trial of ``out`` at the end of ``lst``, completed with it; None
    when the trial was not announced."""
    if lst and lst[-1].attempt == out[O_ATTEMPT] and lst[-1].end is None:
        trial = lst[-1]
        _, _, _, _, _, _, trial.start, trial.end, trial.worker, trial.log = out  # unpacked once
        trial.state = state
        trial.error = error
        trial.traceback = tb
        return trial
    return None


def new_trial(key: str, out: Outcome, state: State, error: BaseException | None, tb: str) -> Trial:
    """The Trial of ``out``, not announced before."""
    _, attempt, _, _, _, _, start, end, worker, log = out  # unpacked once
    return Trial(key, attempt, state, start, end, worker, error, tb, log)


class Trials:
    """Each unit's trials, one row per unit (see the module's docstring); ``item_key``
    names a unit past the plan's nodes (a map item)."""

    __slots__ = ("cb", "ends", "item_key", "keys", "rows", "unstarted", "yielded")

    def __init__(self, keys: tuple[str, ...], cb: Callbacks, n_slots: int) -> None:
        self.keys = keys
        self.cb = cb
        # per unit: None, its list of Trials, or (start, end, worker) of a first trial that
        # succeeded without callbacks and without a log (cheaper than a Trial)
        self.rows: list[Any] = [None] * n_slots
        self.ends: list[Any] = [None] * len(keys)  # per node: the end of a row that is a start
        self.unstarted: dict[int, Trial] = {}  # announced trials of batch members sent back
        self.item_key: Callable[[int], str] = str
        self.yielded: dict[int, int] | None = None  # while a pipe's outcomes are recorded: its items

    def key(self, u: int) -> str:
        """Unit ``u``'s key: a node's, or a map item's (``inv[2]``)."""
        keys = self.keys
        return keys[u] if u < len(keys) else self.item_key(u)

    def started(self, i: int, attempt: int, start: float | None = None) -> None:
        """Unit ``i``'s trial ``attempt`` is submitted (or, chained, began at ``start``)."""
        now = time.time() if start is None else start
        trial = self.unstarted.pop(i, None) if self.unstarted else None
        announce = trial is None or trial.attempt != attempt
        if announce:
            trial = Trial(self.key(i), attempt, State.RUNNING, now)
        assert trial is not None
        trial.start = now
        lst = self.rows[i]
        if lst is None:
            self.rows[i] = [trial]
        else:
            lst.append(trial)
        if announce:
            self.cb.call("on_trial_start", trial)

    def set_items(self, i: int, attempt: int, items: int) -> None:
        """Unit ``i``'s trial ``attempt`` (a stream producer's, recorded) yielded ``items``."""
        lst = self.rows[i] = as_trials(self.key(i), self.rows[i], self.ends[i] if i < len(self.ends) else None)
        for trial in lst:
            if trial.attempt == attempt:
                trial.items = items

    def record(self, i: int, out: Outcome, state: State, error: BaseException | None, tb: str) -> Trial:
        """Record unit ``i``'s trial ``out``, announced or not."""
        lst: list[Trial] | None = self.rows[i]
        trial = end_trial(lst, out, state, error, tb)
        if trial is None:
            trial = new_trial(self.key(i), out, state, error, tb)
            if lst is None:
                self.rows[i] = [trial]
            else:
                lst.append(trial)
        if self.yielded is not None and i in self.yielded:  # a stream producer's, before callbacks see it
            trial.items = self.yielded[i]
        return trial

    def unstart(self, i: int, attempt: int) -> None:
        """Unit ``i``'s trial ``attempt`` was sent back unrun: when callbacks were told it
        started, they are not told twice when it runs again."""
        lst = self.rows[i]
        if type(lst) is list and lst and lst[-1].attempt == attempt and lst[-1].end is None:
            self.unstarted[i] = lst.pop()
            if not lst:
                self.rows[i] = None

    def cancel_running(self, i: int, attempt: int, now: float, worker: str = "") -> None:
        """The run ended while unit ``i``'s trial ``attempt`` was in flight, or running
        in the master thread (``worker`` ``"master"``): the trial ends cancelled."""
        lst = self.rows[i]
        if lst and lst[-1].attempt == attempt:
            if lst[-1].end is None:
                lst[-1].state = State.CANCELLED
                lst[-1].end = now
                lst[-1].worker = lst[-1].worker or worker
        else:
            self.rows[i] = (lst or []) + [Trial(self.key(i), attempt, State.CANCELLED, now, now, worker)]

    def end_unstarted(self) -> None:
        """Trials announced to callbacks whose batch was sent back and which never ran
        again end ``cancelled``, so every on_trial_start has its on_trial_end."""
        now = time.time()
        for i, trial in self.unstarted.items():
            trial.state = State.CANCELLED
            trial.end = now
            lst = self.rows[i]
            self.rows[i] = [*(lst or []), trial]
            self.cb.call("on_trial_end", trial)
        self.unstarted.clear()
