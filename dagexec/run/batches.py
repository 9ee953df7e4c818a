"""Running a batch (several trials as one submission) where it is sent: a chain, tiny
siblings, a map's chunk, or a pipe (:mod:`.pipes`).

Executors call :func:`run_batch` on their side (a worker thread, a worker process, a
dask task, the master for serial); it runs each member with :func:`.worker.run_call`.
"""

from __future__ import annotations

import threading
from typing import Any

from .pipes import run_pipe
from .protocol import LINK, O_OK, O_VALUE, Batch, BatchDone, Outcome, with_value
from .worker import run_call

__all__ = ["run_batch"]


def run_batch(
    batch: Batch, worker: str | None = None, board: Any = None, slot: int = 0, post: Any = None
) -> BatchDone:
    """Run a batch's members in order; never raises for the tasks' own errors.  A pipe
    (a batch with ``feeds``) runs interleaved (:func:`dagexec.run.pipes.run_pipe`).

    A linked member runs only when the member before it succeeded.  A value is
    sent back only when the master needs it: not when the next member is linked,
    succeeded and the member is not kept, so a chain's values stay in the worker.
    With ``board``, the position of each member is written to ``board[slot]``
    before it runs (so a crash can be charged to the member that caused it).  A pipe
    with ``outlets`` posts its maps' items with ``post`` as it runs.
    """
    if batch.feeds is not None:
        return run_pipe(batch, worker, board, slot, post)
    name = worker or threading.current_thread().name
    calls, linked, keep = batch.calls, batch.linked, batch.keep
    outs: list[Outcome] = []
    prev_ok = False
    prev: Any = None
    for k, call in enumerate(calls):
        if board is not None:
            board[slot] = k
        if linked[k]:
            if not prev_ok or batch.stopped:
                prev_ok = False
                continue  # the chain broke before this member: it does not run
            args = call.args
            kwargs = call.kwargs
            if any(a is LINK for a in args):
                call.args = [prev if a is LINK else a for a in args]
            if kwargs and any(v is LINK for v in kwargs.values()):
                call.kwargs = {n: prev if v is LINK else v for n, v in kwargs.items()}
            prev = None
            out = run_call(call, name)
            call.args, call.kwargs = args, kwargs  # hold no value past its last reader
            if out[O_OK] and not keep[k - 1]:
                # consumed here, and nobody else reads it: not sent back
                outs[-1] = with_value(outs[-1], LINK)  # the master holds LINK: the value stayed here
        else:
            prev = None
            out = run_call(call, name)
        prev_ok = out[O_OK]
        prev = out[O_VALUE]
        outs.append(out)
    return BatchDone(batch, outs)
