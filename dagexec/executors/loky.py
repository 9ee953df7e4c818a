"""``LokyExecutor``: trials in worker processes, on loky's reusable executor.

Data flow::

    master (engine)                     loky pool                 worker process
    submit(call) --payload bytes------> future -----------------> _run_in_worker()
                                                                    reports (sid, pid) first
    _Reports thread <----------------- one shared SimpleQueue <----+
    _done(sid) <----- outcome bytes --- future <-------------------+ outcome bytes

* A trial travels as bytes: the node's spec (function, type checks) pickled with
  cloudpickle once per node and run, plus the argument values.  Workers keep the
  specs they have unpickled, keyed by digest, so a function is unpickled once per
  worker, not once per trial.
* Every trial reports ``(sid, pid)`` when it starts, through one queue shared by
  all workers (given to them by loky's ``initializer``).  That is how a crash is
  attributed: when loky reports a dead worker it fails every future in flight;
  in the done-callback (which loky runs before it kills the surviving workers) a
  trial whose worker is no longer alive crashed, and any other was a bystander,
  resubmitted to a fresh pool without using an attempt.
* A task with a ``timeout`` is interrupted inside its worker by ``SIGALRM`` (a
  ``TaskTimeout`` raised in the task, where Python code runs).  The engine marks
  the trial ``timed_out`` at the deadline and abandons it; if the worker is still
  busy ``grace`` seconds later it is killed, and the pool replaced as for a crash.
* Ctrl-C: the engine abandons what is in flight and shuts down an executor it
  made with ``cancel=True``, which kills the workers at once.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .._engine import Executor
from .._errors import TaskTimeout, WorkerCrashed
from .._worker import Call, Outcome, dump_call, dump_outcome, failed_outcome, load_outcome, run_call

logger = logging.getLogger("dagexec.executors.loky")

__all__ = ["LokyExecutor"]

# -- the worker side ----------------------------------------------------------------

_reports: Any = None  # the queue trials report their pid on, set by _init_worker
_specs: dict[bytes, Any] = {}  # spec digest -> NodeSpec, in this worker
_SPEC_CACHE_SIZE = 4096


def _init_worker(reports: Any) -> None:
    global _reports
    _reports = reports


def _alarm(key: str, timeout: float) -> Callable[[int, Any], None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise TaskTimeout(f"node {key!r} timed out after {timeout:g} s", key, timeout)

    return on_alarm


def _run_in_worker(sid: int, digest: bytes, spec_bytes: bytes, values: bytes) -> bytes:
    """Run one trial in a worker process; the outcome comes back as bytes."""
    import pickle

    pid = os.getpid()
    if _reports is not None:
        _reports.put((sid, pid))
    spec = _specs.get(digest)
    if spec is None:
        spec = pickle.loads(spec_bytes)
        if len(_specs) >= _SPEC_CACHE_SIZE:
            _specs.clear()
        _specs[digest] = spec
    idx, attempt, args, kwargs = pickle.loads(values)
    call = Call(idx, attempt, spec, args, kwargs)
    timeout = spec.timeout
    if timeout is None:
        return dump_outcome(run_call(call, f"pid:{pid}"), spec.key)
    previous = signal.signal(signal.SIGALRM, _alarm(spec.key, timeout))
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        out = run_call(call, f"pid:{pid}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return dump_outcome(out, spec.key)


# -- the master side -----------------------------------------------------------------


class _Reports:
    """The one queue of ``(sid, pid)`` start reports, and the thread that reads it."""

    def __init__(self) -> None:
        from loky.backend.context import get_context

        self.queue = get_context("loky").SimpleQueue()
        self.pids: dict[int, int] = {}
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="dagexec-loky-reports", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        get = self.queue.get
        while True:
            try:
                item = get()
            except (EOFError, OSError):
                return
            with self.cond:
                self.pids[item[0]] = item[1]
                self.cond.notify_all()

    def pid_of(self, sid: int, wait: float) -> int | None:
        """The pid trial ``sid`` reported, waiting up to ``wait`` s for the report."""
        deadline = time.monotonic() + wait
        with self.cond:
            while sid not in self.pids:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.pids[sid]

    def forget(self, sid: int) -> None:
        with self.cond:
            self.pids.pop(sid, None)


# submission ids, unique in the process: every LokyExecutor shares one report queue
_sids = itertools.count(1)

_shared_reports: _Reports | None = None
_shared_lock = threading.Lock()


def _get_reports() -> _Reports:
    # one queue for the process, so every LokyExecutor passes loky the same
    # initializer arguments and loky keeps reusing one pool
    global _shared_reports
    with _shared_lock:
        if _shared_reports is None:
            _shared_reports = _Reports()
        return _shared_reports


def _alive(pid: int) -> bool:
    """False for a process that is gone or a zombie (dead but not reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


_EXITCODES = re.compile(r"exit codes of the workers are (\{[^}]*\})")


class _Sub:
    """One submission: a trial handed to loky."""

    __slots__ = ("abandoned", "call", "free_resubmits", "future", "post", "sid", "start")

    def __init__(self, sid: int, call: Call, post: Callable[[Outcome], None]) -> None:
        self.sid = sid
        self.call = call
        self.post = post
        self.future: Future[bytes] | None = None
        self.abandoned = False
        self.free_resubmits = 0
        self.start = time.time()


class LokyExecutor(Executor):
    """Runs trials in worker processes that survive crashes, timeouts and Ctrl-C.

    Args:
        max_workers: worker processes (default: the number of CPUs).
        grace: seconds a timed-out task gets to stop after its ``TaskTimeout``
            before its worker is killed.
        idle_timeout: seconds an idle worker lives before loky stops it.

    Raises:
        ValueError: for a ``max_workers`` or ``grace`` that is not positive.
    """

    name = "loky"
    needs_pickle = True

    #: how many times a trial is resubmitted for free after crashes it did not
    #: cause, before it is counted as crashed itself
    MAX_FREE_RESUBMITS = 3

    def __init__(self, max_workers: int | None = None, *, grace: float = 1.0, idle_timeout: float = 300.0):
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        if not grace > 0:
            raise ValueError(f"grace must be a number > 0, got {grace!r}")
        self._max = max_workers
        self._grace = float(grace)
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._subs: dict[int, _Sub] = {}  # sid -> submission in flight
        self._by_call: dict[int, int] = {}  # id(call) -> sid
        self._blobs: dict[int, tuple[Any, bytes, bytes]] = {}  # id(spec) -> (spec, digest, bytes)
        self._last_pool: Any = None

    @property
    def capacity(self) -> int:
        """``max_workers``."""
        return self._max

    def _pool(self) -> Any:
        from loky import get_reusable_executor

        reports = _get_reports()
        pool = get_reusable_executor(
            max_workers=self._max,
            timeout=self._idle_timeout,
            initializer=_init_worker,
            initargs=(reports.queue,),
        )
        self._last_pool = pool
        return pool

    def _spec_blob(self, spec: Any) -> tuple[bytes, bytes]:
        hit = self._blobs.get(id(spec))
        if hit is None or hit[0] is not spec:
            import cloudpickle

            data = cloudpickle.dumps(spec)
            hit = (spec, hashlib.sha1(data).digest(), data)
            self._blobs[id(spec)] = hit
        return hit[1], hit[2]

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome | None:
        """Send ``call`` to a worker; a failed outcome at once when it does not pickle."""
        try:
            digest, spec_bytes = self._spec_blob(call.spec)
        except Exception as exc:
            return failed_outcome(call, exc, time.time(), "master")
        values = dump_call(call, (call.idx, call.attempt, call.args, call.kwargs))
        if not isinstance(values, bytes):
            return values
        with self._lock:
            sub = _Sub(next(_sids), call, post)
            self._subs[sub.sid] = sub
            self._by_call[id(call)] = sub.sid
        self._send(sub, digest, spec_bytes, values)
        return None

    def _send(self, sub: _Sub, digest: bytes, spec_bytes: bytes, values: bytes) -> None:
        payload = (digest, spec_bytes, values)
        for _ in range(3):
            try:
                fut = self._pool().submit(_run_in_worker, sub.sid, *payload)
                break
            except (BrokenProcessPool, RuntimeError):
                # the pool broke between get_reusable_executor() and submit: take a new one
                time.sleep(0.05)
        else:
            fut = self._pool().submit(_run_in_worker, sub.sid, *payload)
        sub.future = fut
        fut.add_done_callback(lambda f, sub=sub, payload=payload: self._done(sub, f, payload))

    # -- completions (in loky's threads) ---------------------------------------------
    def _done(self, sub: _Sub, fut: Future[bytes], payload: tuple[bytes, bytes, bytes]) -> None:
        if sub.abandoned:
            self._forget(sub)
            return
        if fut.cancelled():
            self._forget(sub)
            sub.post(failed_outcome(sub.call, RuntimeError("the trial's future was cancelled"), sub.start))
            return
        exc = fut.exception()
        if exc is None:
            self._forget(sub)
            try:
                out = load_outcome(fut.result())
            except Exception as load_exc:
                out = failed_outcome(sub.call, load_exc, sub.start, "master")
            sub.post(out)
        elif isinstance(exc, BrokenProcessPool):
            self._broken(sub, exc, payload)
        else:  # an error of the worker machinery itself, e.g. a spec that does not unpickle
            self._forget(sub)
            sub.post(failed_outcome(sub.call, exc, sub.start, "master"))

    def _broken(self, sub: _Sub, exc: BaseException, payload: tuple[bytes, bytes, bytes]) -> None:
        """The pool broke with ``sub`` in flight: it crashed, or it was a bystander."""
        reports = _get_reports()
        pid = reports.pid_of(sub.sid, wait=0.5)
        if pid is None or _alive(pid):
            if sub.free_resubmits < self.MAX_FREE_RESUBMITS:
                sub.free_resubmits += 1
                if pid is not None:
                    reports.forget(sub.sid)
                logger.info(
                    "node %r: resubmitted after another worker died (attempt %d is not charged)",
                    sub.call.key,
                    sub.call.attempt,
                )
                # resubmit from another thread: this one belongs to the broken pool
                threading.Thread(target=self._send, args=(sub, *payload), daemon=True).start()
                return
        self._forget(sub)
        found = _EXITCODES.search(str(exc))
        codes = found.group(1) if found else ""
        who = f"its worker process (pid {pid})" if pid is not None else "its worker process"
        error = WorkerCrashed(
            f"node {sub.call.key!r}: {who} died while running attempt {sub.call.attempt}"
            + (f"; exit codes of the workers that died: {codes}" if codes else ""),
            sub.call.key,
            pid,
            codes,
        )
        start = sub.start
        sub.post(
            (sub.call.idx, sub.call.attempt, False, None, error, str(exc), start, time.time(),
             f"pid:{pid}" if pid is not None else "loky")
        )  # fmt: skip

    def _forget(self, sub: _Sub) -> None:
        with self._lock:
            self._subs.pop(sub.sid, None)
            self._by_call.pop(id(sub.call), None)
        _get_reports().forget(sub.sid)

    # -- timeouts and cancellation -------------------------------------------------------
    def abandon(self, call: Call) -> None:
        """The trial is past its timeout (or the run was interrupted): its outcome is
        ignored, and its worker is killed if it is still busy after ``grace`` s."""
        with self._lock:
            sid = self._by_call.get(id(call))
            sub = self._subs.get(sid) if sid is not None else None
        if sub is None:
            return
        sub.abandoned = True
        timer = threading.Timer(self._grace, self._kill_if_busy, args=(sub,))
        timer.daemon = True
        timer.start()

    def _kill_if_busy(self, sub: _Sub) -> None:
        fut = sub.future
        if fut is None or fut.done():
            return
        pid = _get_reports().pid_of(sub.sid, wait=0)
        if pid is None:
            fut.cancel()
            return
        logger.warning(
            "node %r: worker pid %d still busy %g s after its timeout; killing it",
            sub.call.key,
            pid,
            self._grace,
        )
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def shutdown(self, *, cancel: bool = False) -> None:
        """With ``cancel``, kill the workers at once (Ctrl-C); otherwise leave loky's
        reusable pool to the next run (idle workers leave after ``idle_timeout``)."""
        with self._lock:
            subs = list(self._subs.values())
        if cancel:
            for sub in subs:
                sub.abandoned = True
            pool = self._last_pool
            try:
                if pool is not None:
                    pool.shutdown(wait=True, kill_workers=True)
            except Exception:
                logger.warning("shutting down loky's executor failed", exc_info=True)
        self._blobs.clear()

    def run_ended(self) -> None:
        """Forget the pickled specs: the next run pickles its functions afresh, so a
        changed global of ``__main__`` is seen."""
        self._blobs.clear()

    def __repr__(self) -> str:
        return f"LokyExecutor(max_workers={self._max})"
