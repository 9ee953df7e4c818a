"""What a trial's end means for its node: the trial's state, whether and when the node
is tried again, and the error of a trial past its timeout.

The loop asks these questions of every failed trial, of nodes and map items alike, so
the answers live in one place: ``next_wait`` is the only retry wait, and
``timeout_error`` makes both timeout messages (a trial stopped at its deadline, and one
an executor could not stop that ran past it); ``refused`` is the outcome of a trial whose
executor raised in ``submit``.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from .._errors import MutationError, TaskTimeout, TypeCheckError, WorkerCrashed
from .._state import State
from .protocol import Call, Executor, Outcome, crashed_outcome

logger = logging.getLogger("dagexec.engine")


def trial_state(err: BaseException | None) -> State:
    """The state of a trial that ended with ``err``."""
    if isinstance(err, TaskTimeout):
        return State.TIMED_OUT
    if isinstance(err, WorkerCrashed):
        return State.CRASHED
    return State.FAILED


def retry_wait(opts: Any, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` (``attempt`` failed)."""
    delay = opts.retry_delay
    if isinstance(delay, tuple):
        wait = delay[min(attempt - 1, len(delay) - 1)] if delay else 0.0
    else:
        wait = delay * opts.retry_backoff ** (attempt - 1)
    if opts.retry_jitter:
        wait += wait * opts.retry_jitter * random.random()
    return float(wait)


def should_retry(opts: Any, exc: BaseException | None) -> bool:
    """Whether ``opts.retry_on`` retries ``exc`` (a type or mutation error never is)."""
    if exc is None or isinstance(exc, (TypeCheckError, MutationError)):
        return exc is None
    retry_on = opts.retry_on
    if isinstance(retry_on, tuple):
        return isinstance(exc, retry_on)
    try:
        return bool(retry_on(exc))
    except Exception:
        logger.warning("retry_on predicate %r raised; not retrying", retry_on, exc_info=True)
        return False


def next_wait(
    opts: Any, attempt: int, exc: BaseException | None, tstate: State, key: str, stopping: bool
) -> float | None:
    """Seconds before ``key`` (a node, or a map's item) is tried again after its trial
    ``attempt`` ended ``tstate`` with ``exc``; None when its retries are spent, its error
    is not retried, or the run is stopping."""
    if opts is None or attempt > opts.retries or stopping or not should_retry(opts, exc):
        return None
    wait = retry_wait(opts, attempt)
    logger.info("node %r: attempt %d %s (%s); retrying in %.3g s", key, attempt, tstate.value, exc, wait)
    return wait


def timeout_error(key: str, timeout: float, ran: float | None = None) -> TaskTimeout:
    """The TaskTimeout of ``key``: stopped at its deadline, or (``ran`` seconds) let run
    past it by an executor that cannot stop a trial."""
    if ran is None:
        return TaskTimeout(f"node {key!r} timed out after {timeout:g} s", key, timeout)
    return TaskTimeout(f"node {key!r} ran {ran:.2f} s, past its timeout of {timeout:g} s", key, timeout)


def refused(call: Call, ex: Executor, error: Exception) -> Outcome:
    """The outcome of a trial that ``ex.submit`` raised for: a crash of the executor."""
    logger.warning("executor %r raised in submit for node %r", ex, call.key, exc_info=error)
    return crashed_outcome(call, error, time.time(), f"executor {ex.name!r} refused the trial")
