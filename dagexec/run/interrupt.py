"""What an interrupted run does before the interrupt goes on up, and what a stopped
run takes back.

When Ctrl-C (or SIGTERM, made an interrupt while a run lasts) reaches the master, the
loop stops where it is and :func:`cancel_all` settles the run state, so that the
result the run's callbacks receive is whole: the interrupt hooks stop what trials
started in this process (shell commands, their process groups), the calls waiting in
an executor's queue are taken back (:func:`withdraw_waiting`), every call in flight
is abandoned through its executor (once per batch), each unit that had not ended ends
``cancelled`` (a map whose items ran: ``failed`` when one had failed), and each trial
announced and not ended ends ``cancelled``.

A run that fail_fast stops lets what runs finish, and :func:`withdraw_waiting` takes
back, there too, from executors that queue ahead (``Executor.queue_ahead``) or are
submitted ahead to (``Executor.ahead``) the calls that have not begun: their units end
``cancelled``, as the ready ones do.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .._interrupts import interrupt_hooks
from .protocol import Batch, Call
from .state import CANCELLED, FAILED, JOINING, PENDING, RUNNING

if TYPE_CHECKING:
    from .loop import Loop

logger = logging.getLogger("dagexec.engine")


def cancel_all(loop: Loop) -> None:
    """The run was interrupted: what is in flight is abandoned, what has not ended
    is cancelled, and each trial announced and not ended ends cancelled."""
    for hook in interrupt_hooks:  # commands run by trials in this process's threads
        try:
            hook()
        except Exception:
            logger.warning("an interrupt hook %r failed", hook, exc_info=True)
    now = time.time()
    withdraw_waiting(loop)  # what waits in an executor's queue never started: no trial
    in_flight = set(loop.calls)  # a running unit not in flight was running in the master
    _abandon_in_flight(loop)
    state, attempt = loop.state, loop.attempt
    for i in range(len(state)):  # every unit: nodes, inputs (done), map items
        if state[i] == JOINING:
            state[i] = FAILED if loop.map_runs[i].failed else CANCELLED
        elif state[i] == RUNNING:  # its trial ends cancelled
            loop.trials.cancel_running(i, attempt[i], now, "" if i in in_flight else "master")
        if state[i] in (PENDING, RUNNING):
            state[i] = CANCELLED
    loop.trials.end_unstarted()


def _abandon_in_flight(loop: Loop) -> None:
    """Abandon each call in flight through its executor, a batch once; a batch's
    members after the first did not run (which one was running is not known)."""
    seen: set[int] = set()
    for i, call in list(loop.calls.items()):
        if id(call) in seen:
            continue
        seen.add(id(call))
        ex = loop.execs[loop.route[i]]
        if type(call) is Batch:
            call.stopped = True  # a pipe left running gives no more items, waits for nothing
        try:
            ex.abandon(call)
        except Exception:
            logger.warning("executor %r failed to abandon %r", ex, call, exc_info=True)
        if type(call) is Batch:
            for member in call.calls[1:]:
                loop.unstart(member)
    loop.calls.clear()


def stop_batches(loop: Loop) -> None:
    """fail_fast stopped the run: each batch in flight is ``stopped`` (a thread running
    it starts no further member; a pipe gives no more items), and its executor is told
    (one that runs it in another process passes it on)."""
    for i, call in list(loop.calls.items()):
        if type(call) is Batch and not call.stopped:
            call.stopped = True
            ex = loop.execs[loop.route[i]]
            try:
                ex.stop_batch(call)
            except Exception:
                logger.warning("executor %r failed to stop %r", ex, call, exc_info=True)


def withdraw_waiting(loop: Loop) -> None:
    """fail_fast stopped the run: each call in flight that has not begun to run is
    taken back from its executor (a batch whole), and its units are cancelled."""
    seen: set[int] = set()
    for i, call in list(loop.calls.items()):
        r = loop.route[i]
        ex = loop.execs[r]
        if not (ex.queue_ahead or ex.ahead) or id(call) in seen:
            continue
        seen.add(id(call))
        try:
            taken = ex.withdraw(call)
        except Exception:
            logger.warning("executor %r failed to withdraw %r", ex, call, exc_info=True)
            taken = False
        if not taken:
            continue
        loop.inflight[r] -= 1
        for member in [call] if isinstance(call, Call) else call.calls:
            if loop.calls.get(member.idx) is call:  # not a member detached from its group
                del loop.calls[member.idx]
                loop.unstart(member)
                loop.cancel(member.idx)
