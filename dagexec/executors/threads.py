"""``ThreadExecutor``: a small pool of daemon threads.

Each submission runs in a copy of the submitting thread's ``contextvars`` context
(as ``dask.threaded`` does).  As many trials as threads wait in the queue besides
those that run (``queue_ahead``), so a thread that ends a trial takes the next at
once; a trial's timeout counts from when a thread took it (``started_at``), and a
fail_fast stop takes back what still waits (``withdraw``).  A thread cannot be stopped from outside: a trial
past its timeout is abandoned, and the pool starts one more thread so the run
keeps its capacity; the thread that ran the abandoned trial leaves when the trial
returns.

On Ctrl-C the processes that running trials started are killed (the master's
children started since the oldest of those trials began, see
:mod:`dagexec._proctree`); a trial abandoned at its timeout keeps its processes,
since which of the master's children are its own cannot be told while other
trials run.  From its first trial to its end, a run watches the processes its
trials start, so that they die with a killed master
(:func:`~dagexec._proctree.watch_children`).

Trials of ``async def`` tasks do not take a thread: they run as tasks on one event
loop, in a thread of the executor's own, up to ``max_async`` at once; a timeout or
Ctrl-C cancels the coroutine.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import queue
import threading
from collections.abc import Callable
from time import time
from typing import Any

from .._interrupts import interrupt_hooks
from .._proctree import RUNNING, stop_interrupted
from ..run.batches import run_batch
from ..run.protocol import Batch, BatchDone, Call, Executor, Outcome, crashed_outcome
from ..run.worker import run_call, run_call_async
from ._crash import refused
from ._inflight import InFlight

logger = logging.getLogger("dagexec.executors.threads")

#: seconds shutdown waits for cancelled coroutines to finish their cleanup
_LOOP_GRACE_S = 10.0


class ThreadExecutor(Executor):
    """Runs trials in up to ``max_workers`` threads.

    Args:
        max_workers: number of threads (default ``min(32, cpu_count + 4)``).
        max_async: trials of ``async def`` tasks running at once on the executor's
            event loop, besides the threads (default 256).
        inline: let the engine run trials it has measured tiny in the master thread
            (``Trial.worker`` ``"master"``), where a hand-off to a thread would cost
            more than the trial (default True); see docs/executors.md.

    Raises:
        ValueError: when ``max_workers`` or ``max_async`` is not a positive int.
        TypeError: when ``inline`` is not a bool.
    """

    name = "threads"
    batches = True
    outlets = True

    def __init__(self, max_workers: int | None = None, max_async: int = 256, inline: bool = True) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        for name, value in (("max_workers", max_workers), ("max_async", max_async)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(inline, bool):
            raise TypeError(f"inline must be True or False, got {inline!r}")
        self.inline_tiny = inline
        self._max = max_workers
        self._max_async = max_async
        self._loop: Any = None  # the event loop of async trials, in a thread of its own
        self._loop_thread: threading.Thread | None = None
        self._tasks: dict[int, Any] = {}  # id(call) -> its asyncio task, while it runs
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._extra = 0  # threads started to stand in for abandoned ones
        # abandoned calls whose thread has not returned (holding the call keeps its id unique):
        # the thread that claims one on its return leaves, so capacity is kept
        self._abandoned: InFlight[int, Call | Batch] = InFlight()
        self._busy: dict[threading.Thread, int] = {}  # thread -> id of the call it runs
        # id(call) -> the call, from its submission until a thread takes it (or it is
        # withdrawn); id(call) -> when it began to run, until it ended
        self._waiting: dict[int, Call | Batch] = {}
        self._began: dict[int, float] = {}
        self._shutdown = False
        self._counter = 0
        self._watch: float | None = None  # the watch over the processes of the run in progress

    @property
    def capacity(self) -> int:
        """``max_workers``."""
        return self._max

    @property
    def queue_ahead(self) -> int:  # type: ignore[override]
        """``max_workers``: as many trials wait in the queue as threads run, so a thread
        that ends a trial starts the next at once, without a round trip through the
        master."""
        return self._max

    @property
    def async_capacity(self) -> int:  # type: ignore[override]
        """``max_async``: async trials run on the event loop besides the threads."""
        return self._max_async

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome | None:
        """Queue ``call``; a worker thread posts its outcome (the event loop, for an
        ``async def`` task).  After :meth:`shutdown` the trial is refused: ``crashed``."""
        if self._shutdown:
            return self._refuse(call)
        if self._watch is None:  # the run's first trial
            from .._proctree import watch_children

            self._watch = watch_children()
        if type(call) is Call and call.spec.coro:
            self._submit_async(call, post)
            return None
        cid = id(call)
        self._waiting[cid] = call  # (holding the call keeps its id unique)
        self._q.put((call, post, contextvars.copy_context()))
        if len(self._threads) < self._max + self._extra:
            self._start_thread()
        return None

    def submit_batch(self, batch: Batch, post: Callable[[BatchDone], None]) -> BatchDone | None:
        """Queue ``batch``: one worker thread runs its members in order (a fused chain
        costs one hand-off between threads, not one per node).  After :meth:`shutdown`
        its first member is ``crashed`` and the others run again elsewhere."""
        if self._shutdown:
            return BatchDone(batch, [self._refuse(batch.calls[0])])
        self.submit(batch, post)  # type: ignore[arg-type]
        return None

    def _refuse(self, call: Call) -> Outcome:
        error = RuntimeError("submit after ThreadExecutor.shutdown()")
        return crashed_outcome(call, error, time(), refused("ThreadExecutor"))

    def _start_thread(self) -> None:
        with self._lock:
            self._counter += 1
            t = threading.Thread(target=self._work, name=f"dagexec-{self._counter}", daemon=True)
            self._threads.append(t)
        t.start()

    def _work(self) -> None:
        q = self._q
        me = threading.current_thread()
        name = me.name
        ident = threading.get_ident()
        while True:
            item = q.get()
            if item is None:
                break
            call, post, ctx = item
            cid = id(call)
            with self._lock:  # taken from the queue, unless withdrawn
                if self._waiting.pop(cid, None) is None:
                    continue
                self._busy[me] = cid
                self._began[cid] = RUNNING[ident] = time()
            if type(call) is Batch:
                out = ctx.run(run_batch, call, name, None, 0, post)
            else:
                out = ctx.run(run_call, call, name)
            RUNNING.pop(ident, None)
            del item, call, ctx
            post(out)
            del out
            self._began.pop(cid, None)
            self._busy.pop(me, None)
            if self._abandoned and self._abandoned.claim(cid) is not None:
                # a stand-in took this thread's place: leave so capacity is kept
                with self._lock:
                    self._extra -= 1
                break
        with self._lock:
            if me in self._threads:
                self._threads.remove(me)

    def _submit_async(self, call: Call, post: Callable[[Outcome], None]) -> None:
        import asyncio

        with self._lock:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.new_event_loop()
                self._counter += 1
                name = f"dagexec-async-{self._counter}"
                t = self._loop_thread = threading.Thread(
                    target=_run_loop, args=(loop,), name=name, daemon=True
                )
                t.start()
        ctx = contextvars.copy_context()
        cid = id(call)

        def start() -> None:
            task = ctx.run(loop.create_task, run_call_async(call, threading.current_thread().name))
            self._tasks[cid] = task

            def done(t: Any) -> None:
                self._tasks.pop(cid, None)
                if not t.cancelled():
                    post(t.result())

            task.add_done_callback(done)

        loop.call_soon_threadsafe(start)

    def started_at(self, call: Call) -> float | None:
        """When a thread began ``call``; ``math.inf`` while it waits in the queue."""
        with self._lock:
            began = self._began.get(id(call))
            if began is not None:
                return began
            return math.inf if id(call) in self._waiting else None

    def withdraw(self, call: Call | Batch) -> bool:
        """Take ``call`` out of the queue if no thread has taken it yet."""
        with self._lock:
            return self._waiting.pop(id(call), None) is not None

    def abandon(self, call: Call | Batch) -> None:
        """Leave the thread running ``call`` to finish alone; start a stand-in thread.
        A call still in the queue is withdrawn; an async trial's coroutine is
        cancelled."""
        if type(call) is Call and call.spec.coro:
            loop = self._loop
            if loop is not None:
                loop.call_soon_threadsafe(lambda: (t := self._tasks.get(id(call))) is not None and t.cancel())
            return
        if self.withdraw(call):
            return
        with self._lock:
            self._extra += 1
        self._abandoned.add(id(call), call, call)
        self._start_thread()

    def run_ended(self) -> None:
        """The run's processes are no longer watched."""
        watch, self._watch = self._watch, None
        if watch is not None:
            from .._proctree import unwatch_children

            unwatch_children(watch)

    def shutdown(self, *, cancel: bool = False) -> None:
        """Stop the threads; with ``cancel``, do not wait for running trials.

        Threads still running an abandoned (timed-out) trial are never waited for:
        they leave when their task returns.
        """
        self._shutdown = True
        loop, self._loop = self._loop, None
        if loop is not None:

            def stop() -> None:
                import asyncio

                tasks = list(self._tasks.values())
                for task in tasks:
                    task.cancel()
                if not tasks:
                    loop.stop()
                    return
                # stop once the cancelled coroutines have run their cleanup
                asyncio.gather(*tasks, return_exceptions=True).add_done_callback(lambda _: loop.stop())

            loop.call_soon_threadsafe(stop)
            # the cancelled coroutines' cleanup runs before the run returns (bounded:
            # a coroutine that ignores its cancellation is left to its daemon thread)
            if self._loop_thread is not None:
                self._loop_thread.join(_LOOP_GRACE_S)
                if self._loop_thread.is_alive():
                    logger.warning("async tasks still ran %g s after their cancellation", _LOOP_GRACE_S)
                self._loop_thread = None
        with self._lock:
            threads = list(self._threads)
            busy = list(self._busy.items())
        stuck = {t for t, cid in busy if self._abandoned.get(cid) is not None}
        for _ in threads:
            self._q.put(None)
        if not cancel:
            for t in threads:
                if t is not threading.current_thread() and t not in stuck:
                    t.join()

    def __repr__(self) -> str:
        inline = "" if self.inline_tiny else ", inline=False"
        return f"ThreadExecutor(max_workers={self._max}{inline})"


if stop_interrupted not in interrupt_hooks:
    interrupt_hooks.append(stop_interrupted)  # after dx.shell's, which gives commands a grace period


def _run_loop(loop: Any) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()
