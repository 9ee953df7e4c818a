"""Each node's and each map item's trials, and the user callbacks told about them.

A trial is announced (``on_trial_start``) when its call is submitted and recorded when
its outcome arrives (``on_trial_end``).  :class:`Trials` keeps the nodes' trials, one
row per plan index: None before the first trial, a list of :class:`~dagexec.Trial`, or,
for a first trial that succeeded without callbacks and without a log, the compact tuple
``(start, end, worker)`` that the loop writes itself on its hot path and
:func:`as_trials` makes a Trial at the end.  A map item's trials are a plain list in its
map's expansion; the functions below them record and cancel them the same way.

A batch member that was announced but sent back unrun waits in ``unstarted``: when it
runs again callbacks are not told twice, and when it never does it ends ``cancelled``,
so every ``on_trial_start`` has its ``on_trial_end``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

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


def as_trials(key: str, row: Any) -> list[Trial]:
    """A node's row of trials as a list: the compact tuple of a first trial that
    succeeded becomes its Trial."""
    if type(row) is tuple:
        return [Trial(key, 1, State.SUCCEEDED, *row)]
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


class _Items(Protocol):
    trials: list[list[Trial]]

    def item_key(self, j: int) -> str: ...


def record_item(
    items: _Items, j: int, out: Outcome, state: State, error: BaseException | None, tb: str
) -> Trial:
    """Record the trial ``out`` of item ``j`` of a map's ``items``."""
    lst = items.trials[j]
    trial = end_trial(lst, out, state, error, tb)
    if trial is None:
        trial = new_trial(items.item_key(j), out, state, error, tb)
        lst.append(trial)
    return trial


def unstart_item(lst: list[Trial], attempt: int, cb: Callbacks) -> None:
    """A map item's trial ``attempt`` was sent back unrun: its announced trial ends."""
    if lst and lst[-1].attempt == attempt and lst[-1].end is None:
        trial = lst.pop()
        trial.state, trial.end = State.CANCELLED, time.time()
        cb.call("on_trial_end", trial)


def cancel_item(lst: list[Trial], key: str, attempt: int, now: float) -> None:
    """The run ended while a map item's trial ``attempt`` ran: it ends cancelled."""
    if lst and lst[-1].end is None:
        lst[-1].state, lst[-1].end = State.CANCELLED, now
    else:
        lst.append(Trial(key, attempt, State.CANCELLED, now, now))


class Trials:
    """The nodes' trials, one row per plan index (see the module's docstring)."""

    __slots__ = ("cb", "keys", "rows", "unstarted")

    def __init__(self, keys: tuple[str, ...], cb: Callbacks) -> None:
        self.keys = keys
        self.cb = cb
        # per node: None, its list of Trials, or (start, end, worker) of a first trial that
        # succeeded without callbacks and without a log (cheaper than a Trial)
        self.rows: list[Any] = [None] * len(keys)
        self.unstarted: dict[int, Trial] = {}  # announced trials of batch members sent back

    def started(self, i: int, attempt: int, start: float | None = None) -> None:
        """Node ``i``'s trial ``attempt`` is submitted (or, chained, began at ``start``)."""
        now = time.time() if start is None else start
        trial = self.unstarted.pop(i, None) if self.unstarted else None
        announce = trial is None or trial.attempt != attempt
        if announce:
            trial = Trial(self.keys[i], attempt, State.RUNNING, now)
        assert trial is not None
        trial.start = now
        lst = self.rows[i]
        if lst is None:
            self.rows[i] = [trial]
        else:
            lst.append(trial)
        if announce:
            self.cb.call("on_trial_start", trial)

    def record(self, i: int, out: Outcome, state: State, error: BaseException | None, tb: str) -> Trial:
        """Record node ``i``'s trial ``out``, announced or not."""
        lst: list[Trial] | None = self.rows[i]
        trial = end_trial(lst, out, state, error, tb)
        if trial is None:
            trial = new_trial(self.keys[i], out, state, error, tb)
            if lst is None:
                self.rows[i] = [trial]
            else:
                lst.append(trial)
        return trial

    def unstart(self, i: int, attempt: int) -> None:
        """Node ``i``'s trial ``attempt`` was sent back unrun: when callbacks were told it
        started, they are not told twice when it runs again."""
        lst = self.rows[i]
        if type(lst) is list and lst and lst[-1].attempt == attempt and lst[-1].end is None:
            self.unstarted[i] = lst.pop()
            if not lst:
                self.rows[i] = None

    def cancel_running(self, i: int, attempt: int, now: float) -> None:
        """The run ended while node ``i``'s trial ``attempt`` was in flight (or running in
        the master thread): the trial ends cancelled."""
        lst = self.rows[i]
        if lst and lst[-1].attempt == attempt:
            if lst[-1].end is None:
                lst[-1].state = State.CANCELLED
                lst[-1].end = now
        else:
            self.rows[i] = (lst or []) + [Trial(self.keys[i], attempt, State.CANCELLED, now, now)]

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
