"""How an executor words a lost trial: crash messages, refusals and exit codes.

A trial whose worker died, or that its backend refused, ends ``crashed`` with a
:class:`~dagexec.WorkerCrashed` (DESIGN §5, §12 "Executor boundary").  Its message
is built here, so that every backend says it the same way, and users and tests can
rely on the words:

- ``node 'k': its worker process (pid 123) died while running attempt 1; exit codes
  of the workers that died: {SIGKILL(-9)}`` (:func:`worker_died`, loky);
- ``node 'k': its dask worker tcp://... died while running attempt 1`` (dask);
- ``node 'k': loky's process pool refused the trial: BrokenProcessPool: ...``
  (:func:`refused` with :func:`~dagexec.run.protocol.crashed_outcome`).
"""

from __future__ import annotations

import re
from time import time

from .._errors import WorkerCrashed
from ..run.protocol import Call, Outcome

__all__ = ["LOST", "died_outcome", "exit_codes", "refused", "worker_died"]

#: what a trial's crash says when the backend lost the worker running it, unseen
LOST = "the worker running it was lost"

#: how loky's ``BrokenProcessPool`` message gives the exit codes of the dead workers
_EXIT_CODES = re.compile(r"exit codes of the workers are (\{[^}]*\})")


def refused(backend: str) -> str:
    """What a trial's crash says when ``backend`` would not take it."""
    return f"{backend} refused the trial"


def exit_codes(message: str) -> str:
    """The exit codes a broken pool's ``message`` gives (``"{SIGSEGV(-11)}"``), or ""."""
    found = _EXIT_CODES.search(message)
    return found.group(1) if found else ""


def worker_died(
    call: Call, who: str, *, pid: int | None = None, codes: str = "", worker: str | None = None
) -> WorkerCrashed:
    """The error of a trial whose worker died while it ran: ``who`` names the worker
    (``"its worker process (pid 12)"``, ``"its dask worker tcp://..."``); ``codes``
    the dead workers' exit codes, when the backend knows them."""
    message = f"node {call.key!r}: {who} died while running attempt {call.attempt}"
    if codes:
        message += f"; exit codes of the workers that died: {codes}"
    return WorkerCrashed(message, call.key, pid, codes, worker)


def died_outcome(call: Call, error: BaseException, start: float, worker: str, text: str = "") -> Outcome:
    """The outcome of a trial lost with its worker: failed with ``error``, ``text`` as
    its traceback, ending now, nothing logged (the log died with the worker)."""
    return (call.idx, call.attempt, False, None, error, text, start, time(), worker, "")
