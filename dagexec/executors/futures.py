"""``FuturesExecutor``: any ``concurrent.futures.Executor`` as a dagexec executor.

Trials go through ``executor.submit``; a process pool gets each call as
cloudpickle bytes, so closures and ``__main__`` functions travel, and sends each
outcome back as bytes, so a result or an exception that does not pickle fails
its trial by name instead of breaking the run.  The wrapped executor belongs to
the caller: a run never shuts it down.

A backend that refuses work (``submit`` raising: a ``ProcessPoolExecutor`` broken by
a dead worker, an executor shut down) or loses it (a future failing with
``BrokenExecutor``) makes the trial ``crashed``, its error a ``WorkerCrashed`` whose
cause is the backend's error; it is retried like any crash.  A stdlib process pool
stays broken once a worker died, and fails every trial it held: the retries of a
run on it crash too, until the node fails and the run returns its result.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from time import time
from typing import Any

from ..run.protocol import Batch, Call, Executor, Outcome, crashed_outcome, failed_outcome
from ..run.worker import run_call
from ._crash import LOST, refused
from ._inflight import InFlight
from ._transport import dump_call, load_outcome, run_pickled


class FuturesExecutor(Executor):
    """Adapts a ``concurrent.futures.Executor``.

    Args:
        executor: the executor to submit to (not shut down by runs).
        max_workers: trials in flight at once (default: the executor's own
            ``_max_workers``, else 32).
    """

    name = "futures"

    def __init__(self, executor: concurrent.futures.Executor, max_workers: int | None = None) -> None:
        self._ex = executor
        self._max = max_workers or int(getattr(executor, "_max_workers", 32) or 32)
        self._pickle = isinstance(executor, concurrent.futures.ProcessPoolExecutor)
        self.needs_pickle = self._pickle
        self._inflight: InFlight[int, concurrent.futures.Future[Any]] = InFlight()  # id(call) -> future

    @property
    def capacity(self) -> int:
        """Trials in flight at once."""
        return self._max

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome | None:
        """Submit ``call``; its outcome is posted when the future completes.

        Returns:
            None, or at once the failed outcome of a call that cannot be pickled, or
            the crashed outcome of one the wrapped executor refused.
        """
        fut: concurrent.futures.Future[Any]
        start = time()
        try:
            if self._pickle:
                payload = dump_call(call)
                if not isinstance(payload, bytes):
                    return payload
                fut = self._ex.submit(run_pickled, payload)
            else:
                fut = self._ex.submit(run_call, call)
        except Exception as exc:
            return crashed_outcome(call, exc, start, refused(type(self._ex).__name__))
        self._inflight.add(id(call), call, fut)

        def done(f: concurrent.futures.Future[Any]) -> None:
            mine = self._inflight.claim(id(call)) is not None
            if f.cancelled():
                if mine:  # cancelled by someone else: the trial must still end
                    post(failed_outcome(call, concurrent.futures.CancelledError(), start, "futures"))
                return
            exc = f.exception()
            if isinstance(exc, concurrent.futures.BrokenExecutor):
                post(crashed_outcome(call, exc, start, LOST))
            elif exc is not None:
                post(failed_outcome(call, exc, start, "futures"))
            elif self._pickle:
                try:
                    out = load_outcome(f.result())
                except Exception as err:  # the trial must still end, or the run would wait forever
                    out = failed_outcome(call, err, start, "futures")
                post(out)
            else:
                post(f.result())

        fut.add_done_callback(done)
        return None

    def abandon(self, call: Call | Batch) -> None:
        """Cancel the future if it has not started."""
        fut = self._inflight.claim_unit(call)
        if fut is not None:
            fut.cancel()

    def __repr__(self) -> str:
        return f"FuturesExecutor({self._ex!r})"
