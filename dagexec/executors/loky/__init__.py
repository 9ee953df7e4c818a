"""``LokyExecutor``: trials in worker processes, on loky's reusable executor.

Data flow::

    master (engine)                        loky pool                worker process
    submit(call) --task, spec, values----> future ----------------> _run_in_worker()
                                                                      reports (sid, pid) first
    _Reports thread <------ one shared pipe, one write per report <---+
    _done(sid) <---- (ok, outcome bytes) -- future <------------------+ outcome bytes

* A trial travels as bytes, pickled with cloudpickle: the task function, once per
  run however many nodes call it; the node's key and type checks, once per node
  and run; the argument values, once per trial.  Workers keep the functions and
  specs they have unpickled, keyed by digest, so a function is unpickled once per
  worker, not once per node or trial.
* What does not unpickle fails its trial with a message naming the node: the task
  or the arguments (in the worker), the result (in the master).  ``dump_outcome``
  makes an exception that would not unpickle a ``RemoteError``.
* loky keeps one reusable executor per thread.  Every pool is asked for from one
  long-lived thread (``_Keeper``), so the master and the threads that resubmit
  trials after a crash share one pool, and runs reuse it.
* Every trial reports ``(sid, pid)`` when it starts, in one write of 16 bytes on a
  pipe shared by all workers (given to them by loky's ``initializer``).  A pipe
  write that short is atomic and takes no lock, so a worker killed at any moment
  cannot leave the pipe unusable for the others.  That is how a crash is
  attributed: when loky reports a dead worker it fails every future in flight; in
  the done-callback (which loky runs before it kills the surviving workers) a
  trial whose worker is no longer alive crashed, and any other was a bystander,
  resubmitted to a fresh pool without using an attempt.
* A task with a ``timeout`` is interrupted inside its worker by ``SIGALRM`` (a
  ``TaskTimeout`` raised in the task, where Python code runs); just before, the
  processes the trial started (the worker's children since the trial began) are
  killed with what they started.  The engine marks the trial ``timed_out`` at the
  deadline and abandons it; if the worker is still busy with it ``grace`` seconds
  later it is killed, its processes with it, and the pool replaced as for a crash.
  The deadline counts from the trial's start report (``started_at``), not from its
  submission: a fresh worker takes about half a second to start, more on a loaded
  machine, and a trial waiting for one must neither time out nor have its worker
  killed before its task began.
* A pool that refuses a trial (broken or shut down since loky handed it out) is
  asked for afresh, up to five times; then the trial is ``crashed``, its
  ``WorkerCrashed`` naming loky's error (DESIGN §12, "Executor boundary").
* Ctrl-C: the engine abandons what is in flight and shuts down an executor it
  made with ``cancel=True``, which kills the workers at once.

The package: this module holds the executor (the master side; its submissions in
an :class:`~dagexec.executors._inflight.InFlight` by ``sid``, crashes worded by
:mod:`dagexec.executors._crash`); :mod:`.worker` what loky runs in its worker
processes, sent there by reference; :mod:`.shared` the pipe, the board and the pool
keeper that every ``LokyExecutor`` of the process shares; :mod:`.outlets` the
connection over which a pipe in a worker sends a map's items while it runs.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..._proctree import kill_trees
from ...run.pipes import STOP_MARK
from ...run.protocol import Batch, BatchDone, Call, Executor, Outcome, crashed_outcome, failed_outcome
from .._crash import died_outcome, exit_codes, refused, worker_died
from .._inflight import InFlight, Submission
from .._transport import SpecPickler, dump_call, load_outcome, unpickling_error
from .outlets import get_hub
from .shared import _alive, _get_reports, _get_shared, _sids
from .worker import _init_worker, _run_batch_in_worker, _run_in_worker

logger = logging.getLogger("dagexec.executors.loky")

__all__ = ["LokyExecutor"]


class _Sub(Submission):
    """One submission: a trial (or batch) handed to loky, under its id ``sid``."""

    __slots__ = ("abandoned", "free_resubmits", "sid")

    def __init__(self, sid: int, call: Call, post: Callable[[Any], None], batch: Batch | None = None) -> None:
        super().__init__(call, post, batch)
        self.sid = sid
        self.abandoned = False
        self.free_resubmits = 0


_Payload = tuple[Any, ...]

#: what a trial's WorkerCrashed says when no pool took it (five fresh ones refused it)
_REFUSED = refused("loky's process pool")


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
    batches = True
    outlets = True
    batch_tiny = True

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
        self._inflight: InFlight[int, _Sub] = InFlight()  # sid -> submission in flight
        # pickled this run: id(task or function) -> (it, digest, bytes), id(spec) -> (spec, blobs)
        self._pickler = SpecPickler()  # task functions and specs, pickled once per run
        self._current: Any = None  # the loky pool submissions go to

    @property
    def capacity(self) -> int:
        """``max_workers``."""
        return self._max

    def _pool(self, fresh: bool = False) -> Any:
        """The pool to submit to; with ``fresh``, ask loky again (the last one broke)."""
        pool = self._current
        if pool is None or fresh:
            reports, keeper, board = _get_shared()
            pool = keeper.pool(
                max_workers=self._max,
                timeout=self._idle_timeout,
                initializer=_init_worker,
                initargs=(reports.writer, board.path),
            )
            self._current = pool
        return pool

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome | None:
        """Send ``call`` to a worker; a failed outcome at once when it does not pickle."""
        try:
            blobs = self._pickler.blobs(call.spec)
        except Exception as exc:
            return failed_outcome(call, exc, time.time(), "master")
        values = dump_call(call, (call.args, call.kwargs))
        if not isinstance(values, bytes):
            return values
        sub = _Sub(next(_sids), call, post)
        self._inflight.add(sub.sid, call, sub)
        payload: tuple[Any, ...] = ((call.idx, call.attempt, call.key), blobs, values)
        error = self._send(sub, payload if call.trace is None else (*payload, call.trace))
        if error is not None:
            self._forget(sub)
            return crashed_outcome(call, error, sub.start, _REFUSED)
        return None

    def submit_batch(self, batch: Batch, post: Callable[[BatchDone], None]) -> BatchDone | None:
        """Send ``batch`` to one worker as one submission: each function and spec once,
        the argument values in one pickle; split at once when they do not pickle."""
        calls = batch.calls
        try:
            fns: dict[bytes, bytes] = {}
            specs = []
            for call in calls:
                fd, fb, sd, sb = self._pickler.blobs(call.spec)
                fns[fd] = fb
                specs.append((fd, sd, sb))
            import cloudpickle

            values = cloudpickle.dumps([(call.args, call.kwargs) for call in calls])
        except Exception:
            return BatchDone(batch, [], split=True)
        heads = [(call.idx, call.attempt, call.key) for call in calls]
        sub = _Sub(next(_sids), calls[0], post, batch)
        self._inflight.add(sub.sid, batch, sub)
        _get_shared()[2].clear(sub.sid)
        outlet = None
        if batch.outlets:  # a map's items come through the master while the pipe runs
            outlet = (batch.outlets, *get_hub().expect(sub.sid, batch, post))
        traces = [call.trace for call in calls] if calls[0].trace is not None else None
        error = self._send(sub, (heads, fns, specs, batch.linked, batch.keep, values, batch.feeds, outlet, traces))
        if error is not None:
            self._forget(sub)
            return BatchDone(batch, [], split=True)
        return None

    def _send(self, sub: _Sub, payload: _Payload) -> BaseException | None:
        """Hand ``sub`` to the pool; the error when no pool would take it (the
        trial then ``crashed``, DESIGN §12 "Executor boundary")."""
        error: BaseException | None = None
        fn = _run_in_worker if sub.batch is None else _run_batch_in_worker
        for tries in range(5):
            try:
                fut = self._pool(fresh=tries > 0).submit(fn, sub.sid, *payload)
            except (BrokenProcessPool, RuntimeError) as exc:
                # the pool broke or was shut down since loky handed it out: ask again
                error = exc
                continue
            sub.future = fut
            fut.add_done_callback(lambda f, sub=sub, payload=payload: self._done(sub, f, payload))
            return None
        return error

    def _resend(self, sub: _Sub, payload: _Payload) -> None:
        error = self._send(sub, payload)
        if error is not None:
            self._forget(sub)
            if sub.batch is not None:
                sub.post(BatchDone(sub.batch, [], split=True))
            else:
                sub.post(crashed_outcome(sub.call, error, sub.start, _REFUSED))

    # -- completions (in loky's threads) ---------------------------------------------
    def _done(self, sub: _Sub, fut: Future[tuple[bool, bytes]], payload: _Payload) -> None:
        from loky.process_executor import ShutdownExecutorError

        if sub.abandoned:
            self._forget(sub)
            return
        if fut.cancelled():
            self._forget(sub)
            if sub.batch is not None:
                sub.post(BatchDone(sub.batch, [], split=True))
            else:
                sub.post(
                    failed_outcome(sub.call, RuntimeError("the trial's future was cancelled"), sub.start)
                )
            return
        exc = fut.exception()
        if exc is None and sub.batch is not None:
            self._forget(sub)
            sub.post(self._batch_done(sub, *fut.result()))
        elif exc is None:
            ok, data = fut.result()
            try:
                out = load_outcome(data)
            except Exception as load_exc:
                error = unpickling_error(sub.call.key, "its result" if ok else "its exception", load_exc)
                pid = _get_reports().pid_of(sub.sid, wait=0.5)
                out = failed_outcome(sub.call, error, sub.start, "loky" if pid is None else f"pid:{pid}")
            self._forget(sub)
            sub.post(out)
        elif isinstance(exc, (BrokenProcessPool, ShutdownExecutorError)):
            # a dead worker broke the pool, or another executor killed it (Ctrl-C)
            self._broken(sub, exc, payload)
        else:  # an error of the worker machinery itself
            self._forget(sub)
            if sub.batch is not None:
                sub.post(BatchDone(sub.batch, [], split=True))
            else:
                sub.post(failed_outcome(sub.call, exc, sub.start, "master"))

    def _batch_done(self, sub: _Sub, ran: bool, data: Any, items: dict[int, int] | None = None) -> BatchDone:
        batch = sub.batch
        assert batch is not None
        if not ran:
            logger.info("a batch from node %r could not be loaded in its worker (%s)", sub.call.key, data)
            return BatchDone(batch, [], split=True)
        try:
            if isinstance(data, bytes):
                outs: list[Outcome] = pickle.loads(data)
            else:
                outs = [load_outcome(item) for item in data]
        except Exception:
            logger.info("the outcomes of a batch from node %r did not unpickle", sub.call.key, exc_info=True)
            return BatchDone(batch, [], split=True)
        return BatchDone(batch, outs, items=items)

    def _broken(self, sub: _Sub, exc: BaseException, payload: _Payload) -> None:
        """The pool broke with ``sub`` in flight: it crashed, or it was a bystander."""
        reports = _get_reports()
        pid = reports.pid_of(sub.sid, wait=0.5)
        # a pipe whose items went to a map cannot run again: charge its producer
        gone = sub.batch is not None and bool(sub.batch.outlets) and get_hub().sent_any(sub.batch)
        if (pid is None or _alive(pid)) and not gone:
            if sub.free_resubmits < self.MAX_FREE_RESUBMITS:
                sub.free_resubmits += 1
                if pid is not None:
                    reports.forget(sub.sid)
                logger.info(
                    "node %r: resubmitted after another worker died (attempt %d is not charged)",
                    sub.call.key,
                    sub.call.attempt,
                )
                # resubmit from another thread: this one belongs to the broken pool,
                # which the request for a new pool waits to see ended
                threading.Thread(target=self._resend, args=(sub, payload), daemon=True).start()
                return
        self._forget(sub)
        call = sub.call
        if sub.batch is not None:
            k = min(sub.batch.outlets) if gone else _get_shared()[2].running(sub.sid)  # type: ignore[arg-type]
            if k < 0:
                # it died before the batch's first member started: charge none of them
                sub.post(BatchDone(sub.batch, [], split=True))
                return
            call = sub.batch.calls[k]  # the one it was running; the others run again, free
        who = f"its worker process (pid {pid})" if pid is not None else "its worker process"
        error = worker_died(call, who, pid=pid, codes=exit_codes(str(exc)))
        out = died_outcome(call, error, sub.start, "loky" if pid is None else f"pid:{pid}", str(exc))
        if sub.batch is None:
            sub.post(out)
        elif k == 0 or sub.batch.feeds is not None:  # a pipe's other members run again, free
            sub.post(BatchDone(sub.batch, [out]))
        else:
            # the members before it ran, but their outcomes died with the worker: run
            # them again (free) and report them before the crash, as they happened
            threading.Thread(target=self._rerun_head, args=(sub, k, out), daemon=True).start()

    def _rerun_head(self, sub: _Sub, k: int, crash: Outcome) -> None:
        batch = sub.batch
        assert batch is not None
        keep = list(batch.keep[:k])
        if batch.linked[k]:
            keep[k - 1] = True  # the crashed member's input: needed to retry it
        head = Batch(batch.calls[:k], batch.linked[:k], keep)

        def done(ran: BatchDone) -> None:
            self._inflight.drop_alias(batch)
            if ran.split:
                sub.post(BatchDone(batch, [], split=True))
            else:
                sub.post(BatchDone(batch, [*ran.outcomes, crash]))

        now = self.submit_batch(head, done)
        if now is not None:
            done(now)
            return
        sid = self._inflight.token_of(head)
        if sid is not None:
            self._inflight.alias(batch, sid)  # so that abandon(batch) reaches the rerun

    def _forget(self, sub: _Sub) -> None:
        self._inflight.claim(sub.sid)
        _get_reports().forget(sub.sid)
        if sub.batch is not None and sub.batch.outlets:
            get_hub().forget(sub.sid, sub.batch)

    def more(self, batch: Batch) -> None:
        """The engine took a pipe's items: its worker is told (:mod:`.outlets`)."""
        get_hub().more(batch)

    # -- timeouts and cancellation -------------------------------------------------------
    def started_at(self, call: Call) -> float | None:
        """When ``call``'s trial reported its start from its worker (``math.inf`` until
        then): a timeout counts from there, not from the submission, so a trial waiting
        for a worker to start (a fresh pool takes about half a second, more on a
        loaded machine) or to come free does not use up its timeout."""
        sid = self._inflight.token_of(call)
        return None if sid is None else _get_reports().began_at(sid)

    def stop_batch(self, batch: Batch) -> None:
        """fail_fast stopped the run: a pipe running in a worker reads it on its board
        (:data:`~dagexec.run.pipes.STOP_MARK`) and gives no more items."""
        sub = self._inflight.find(batch)
        if sub is not None and batch.feeds is not None:
            _get_shared()[2].mark(sub.sid, STOP_MARK)

    def abandon(self, call: Call | Batch) -> None:
        """The trial is past its timeout (or the run was interrupted): its outcome is
        ignored, and its worker is killed if it is still busy after ``grace`` s."""
        sub = self._inflight.find(call)
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
        reports = _get_reports()
        pid = reports.pid_of(sub.sid, wait=0)
        if pid is None:
            fut.cancel()
            return
        if reports.running_sid(pid) != sub.sid:
            return  # the worker finished it and started another trial: not ours to stop
        logger.warning(
            "node %r: worker pid %d still busy %g s after its timeout; killing it",
            sub.call.key,
            pid,
            self._grace,
        )
        kill_trees([pid])  # the worker and the processes its trial started

    def run_ended(self) -> None:
        """Forget what was pickled: the next run pickles its functions afresh, so a
        changed global of ``__main__`` is seen."""
        self._pickler.clear()

    def shutdown(self, *, cancel: bool = False) -> None:
        """With ``cancel``, kill the workers at once (Ctrl-C); otherwise leave loky's
        reusable pool to the next run (idle workers leave after ``idle_timeout``)."""
        if cancel:
            for sub in self._inflight.pending():
                sub.abandoned = True
            pool = self._current
            try:
                if pool is not None:
                    pool.shutdown(wait=True, kill_workers=True)
            except Exception:
                logger.warning("shutting down loky's executor failed", exc_info=True)
        self.run_ended()

    def __repr__(self) -> str:
        return f"LokyExecutor(max_workers={self._max})"
