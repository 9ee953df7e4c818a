"""``ThreadExecutor``: a small pool of daemon threads.

Each submission runs in a copy of the submitting thread's ``contextvars`` context
(as ``dask.threaded`` does).  A thread cannot be stopped from outside: a trial
past its timeout is abandoned, and the pool starts one more thread so the run
keeps its capacity; the thread that ran the abandoned trial leaves when the trial
returns.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from .._engine import Executor
from .._worker import Batch, BatchDone, Call, Outcome, run_batch, run_call


class ThreadExecutor(Executor):
    """Runs trials in up to ``max_workers`` threads.

    Args:
        max_workers: number of threads (default ``min(32, cpu_count + 4)``).

    Raises:
        ValueError: when ``max_workers`` is not a positive int.
    """

    name = "threads"
    batches = True

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self._max = max_workers
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._extra = 0  # threads started to stand in for abandoned ones
        # id -> abandoned call whose thread has not returned (holding the call keeps its id unique)
        self._abandoned: dict[int, Call | Batch] = {}
        self._busy: dict[threading.Thread, int] = {}  # thread -> id of the call it runs
        self._shutdown = False
        self._counter = 0

    @property
    def capacity(self) -> int:
        """``max_workers``."""
        return self._max

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> None:
        """Queue ``call``; a worker thread posts its outcome."""
        if self._shutdown:
            raise RuntimeError("submit after ThreadExecutor.shutdown()")
        self._q.put((call, post, contextvars.copy_context()))
        if len(self._threads) < self._max + self._extra:
            self._start_thread()
        return None

    def submit_batch(self, batch: Batch, post: Callable[[BatchDone], None]) -> None:
        """Queue ``batch``: one worker thread runs its members in order (a fused chain
        costs one hand-off between threads, not one per node)."""
        self.submit(batch, post)  # type: ignore[arg-type]

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
        while True:
            item = q.get()
            if item is None:
                break
            call, post, ctx = item
            cid = id(call)
            self._busy[me] = cid
            out = ctx.run(run_batch if type(call) is Batch else run_call, call, name)
            del item, call, ctx
            post(out)
            del out
            self._busy.pop(me, None)
            if self._abandoned:
                with self._lock:
                    if self._abandoned.pop(cid, None) is not None:
                        # a stand-in took this thread's place: leave so capacity is kept
                        self._extra -= 1
                        break
        with self._lock:
            if me in self._threads:
                self._threads.remove(me)

    def abandon(self, call: Call | Batch) -> None:
        """Leave the thread running ``call`` to finish alone; start a stand-in thread."""
        with self._lock:
            self._extra += 1
            self._abandoned[id(call)] = call
        self._start_thread()

    def shutdown(self, *, cancel: bool = False) -> None:
        """Stop the threads; with ``cancel``, do not wait for running trials.

        Threads still running an abandoned (timed-out) trial are never waited for:
        they leave when their task returns.
        """
        self._shutdown = True
        with self._lock:
            threads = list(self._threads)
            stuck = {t for t, cid in self._busy.items() if cid in self._abandoned}
        for _ in threads:
            self._q.put(None)
        if not cancel:
            for t in threads:
                if t is not threading.current_thread() and t not in stuck:
                    t.join()

    def __repr__(self) -> str:
        return f"ThreadExecutor(max_workers={self._max})"
