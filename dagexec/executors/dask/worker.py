"""The worker side of :class:`~dagexec.executors.dask.DaskExecutor`: what a dask task runs.

:func:`_run_trial` (one trial), :func:`_run_batch` (a chain) and :func:`_run_group`
(siblings) are submitted by reference, so dask workers import this module
(dagexec must be installed where they run) but never the master's state.  It sends
the trial's "started" and "ended" events on the executor's topic and returns the
task's value, which stays on the worker; a failed trial's task returns
:data:`_FAILED`, a marker no consumer is ever given.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..._walk import Path, at
from ...run.batches import run_batch
from ...run.pipes import STOP_MARK
from ...run.protocol import (
    O_ATTEMPT,
    O_END,
    O_ERROR,
    O_IDX,
    O_LOG,
    O_OK,
    O_START,
    O_VALUE,
    Batch,
    BatchDone,
    Call,
    Marker,
    Outcome,
    failed_outcome,
)
from ...run.worker import install_worker_capture, run_call
from .._transport import Blobs, _type_name, dump_outcome, load_spec, unpickling_error
from .outlets import connect, finish

logger = logging.getLogger("dagexec.executors.dask")


class _Failed(Marker):
    """The result of a failed trial's dask task: never given to a consumer."""

    __slots__ = ()
    NAME = "_FAILED"
    TEXT = "<failed trial>"


_FAILED: Any = _Failed()


class _Discard:
    """A file that forgets what is written: pickling to it checks that a value pickles."""

    __slots__ = ()

    def write(self, data: Any) -> int:
        return len(data)


_DISCARD = _Discard()
_PLAIN = (int, float, str, bytes, bool, type(None))


def _out_of_band(buffer: Any) -> None:
    return None  # a buffer (a NumPy array's data) is not copied to check it


def _pickle_problem(value: Any) -> Exception | None:
    """None when ``value`` pickles (as dask will pickle it to move it), else the error."""
    if type(value) in _PLAIN:
        return None
    try:
        pickle.Pickler(_DISCARD, protocol=5, buffer_callback=_out_of_band).dump(value)
        return None
    except Exception:
        pass
    import cloudpickle

    try:
        cloudpickle.CloudPickler(_DISCARD, protocol=5, buffer_callback=_out_of_band).dump(value)
    except Exception as exc:
        return exc
    return None


def _run_trial(
    topic: str,
    dkey: str,
    head: tuple[int, int, str],
    blobs: Blobs,
    args: Any,
    kwargs: dict[str, Any] | None,
    inputs: list[Path],
) -> Any:
    """Run one trial in a dask worker; its outcome goes out as events, its value stays.

    ``inputs`` are the places in ``args`` (a path that starts with a position) or
    ``kwargs`` (one that starts with a name) where dask put upstream values.
    """
    from distributed import get_worker

    worker = get_worker()
    install_worker_capture()
    where = str(worker.address)
    key = head[2]

    def began(spec: Any) -> None:  # a trial with a timeout says at once that it started
        _REPORTS.began(worker, topic, dkey, now=spec.timeout is not None)

    out = _one_trial(head, blobs, args, kwargs, inputs, where, began)
    _REPORTS.ended(dkey)
    out = _pickled_or_failed(out, key, where)
    if out[O_OK]:
        event = {"k": dkey, "t": [out[O_START], out[O_END]], "w": where}
        if out[O_LOG]:
            event["l"] = out[O_LOG]
        _REPORTS.succeeded(worker, topic, event)
        return out[O_VALUE]
    _drop_tracebacks(out[O_ERROR])
    worker.log_event(topic, {"k": dkey, "e": dump_outcome(out, key)})
    return _FAILED


def _run_batch(
    topic: str,
    dkey: str,
    heads: list[tuple[int, int, str]],
    blobs: list[Blobs],
    swapped: list[tuple[Any, dict[str, Any] | None, list[Path]]],
    linked: list[bool],
) -> Any:
    """Run a linear chain of trials in a dask worker, each member reading the value of
    the one before in the worker (``run_batch``); one "started" and one "ended" event
    for the whole chain, with each member's record (a failed member's outcome pickled).
    The task's value is the last member's; :data:`_FAILED` when it did not succeed.
    A member whose task cannot be loaded makes the master run them one by one."""
    worker, calls = _batch_calls(topic, dkey, heads, blobs, swapped)
    if calls is None:
        return _FAILED
    where = str(worker.address)
    first = calls[0]
    lost = _lost_input(first.key, first.args, first.kwargs, swapped[0][2])
    if lost is not None:
        outs = [failed_outcome(first, lost, time.time(), where)]
    else:
        outs = run_batch(Batch(calls, linked, [False] * len(calls)), where, _Board(dkey)).outcomes
    del calls, first
    _REPORTS.ended(dkey)
    value = _FAILED
    last, key_of = heads[-1][0], {h[0]: h[2] for h in heads}
    entries: list[Any] = []
    for out in outs:
        if out[O_OK] and out[O_IDX] == last:  # its value is the task's: it must pickle
            out = _pickled_or_failed(out, key_of[last], where)
            if out[O_OK]:
                value = out[O_VALUE]
        entries.append(_entry(out, key_of[out[O_IDX]]))
    _REPORTS.batch_ended(worker, topic, {"k": dkey, "b": entries, "w": where})
    return value


def _run_group(
    topic: str,
    dkey: str,
    heads: list[tuple[int, int, str]],
    blobs: list[Blobs],
    swapped: list[tuple[Any, dict[str, Any] | None, list[Path]]],
) -> tuple[Any, ...]:
    """Run a group of siblings (independent trials) in a dask worker, one after the
    other; one "ended" event with each member's record.  The task's value is the tuple
    of the members' values (:data:`_FAILED` for one that did not succeed); a reader of
    a member takes its element."""
    from distributed import get_worker

    worker = get_worker()
    install_worker_capture()
    where = str(worker.address)
    _REPORTS.began(worker, topic, dkey)
    outs: list[Outcome] = []
    for k, (head, blob, (args, kwargs, inputs)) in enumerate(zip(heads, blobs, swapped, strict=True)):
        _REPORTS.member(dkey, k)
        outs.append(_one_trial(head, blob, args, kwargs, inputs, where))
    _REPORTS.ended(dkey)
    values, entries = _members_value(outs, heads, where)
    _REPORTS.batch_ended(worker, topic, {"k": dkey, "b": entries, "w": where})
    return values


def _run_pipe(
    topic: str,
    dkey: str,
    heads: list[tuple[int, int, str]],
    blobs: list[Blobs],
    swapped: list[tuple[Any, dict[str, Any] | None, list[Path]]],
    linked: list[bool],
    keep: list[bool],
    feeds: list[Any],
    outlets: dict[int, int] | None = None,
) -> tuple[Any, ...]:
    """Run a pipe (stream producers and what they feed, :mod:`dagexec.run.pipes`) in a
    dask worker, interleaved; one "ended" event with each member's record and each
    producer's items.  The task's value is the tuple of the members' values (a
    producer's: its list, when kept), as a group's.  A pipe with ``outlets`` sends a
    map's items to the master while it runs (:mod:`.outlets`)."""
    worker, calls = _batch_calls(topic, dkey, heads, blobs, swapped)
    if calls is None:
        return (_FAILED,) * len(heads)
    where = str(worker.address)
    for call, (args, kwargs, inputs) in zip(calls, swapped, strict=True):
        lost = _lost_input(call.key, args, kwargs, inputs)
        if lost is not None:  # the pipe does not run: this member fails, the others go again
            done = BatchDone(Batch(calls, linked, keep), [failed_outcome(call, lost, time.time(), where)])
            break
    else:
        batch, board = Batch(calls, linked, keep, feeds), _StopBoard(dkey)
        post = None if outlets is None else connect(worker, topic, dkey, batch, outlets, board)
        done = run_batch(batch, where, board, 0, post)
        if post is not None:
            finish(batch)  # its last items taken before its end is told
    _REPORTS.ended(dkey)
    values, entries = _members_value(done.outcomes, heads, where)
    report = {"k": dkey, "b": entries, "w": where, "i": [[idx, n] for idx, n in (done.items or {}).items()]}
    _REPORTS.batch_ended(worker, topic, report)
    return values


#: seconds between two looks of a running pipe at its stop event (each a scheduler round trip)
STOP_LOOK_S = 0.05


class _StopBoard:
    """A pipe's stop, read as a board slot (``board[slot] == STOP_MARK``): the master
    sets the ``distributed.Event`` named after the pipe's dask key when fail_fast stops
    the run (``DaskExecutor.stop_batch``); the pipe looks at it at most every
    :data:`STOP_LOOK_S`."""

    __slots__ = ("event", "name", "next", "stopped")

    def __init__(self, dkey: str) -> None:
        self.name = stop_event_name(dkey)
        self.event: Any = None
        self.next = time.monotonic() + STOP_LOOK_S
        self.stopped = False

    def __getitem__(self, slot: int) -> int:
        now = time.monotonic()
        if not self.stopped and now >= self.next:
            self.next = now + STOP_LOOK_S
            try:
                if self.event is None:
                    from distributed import Event

                    event: Any = Event
                    self.event = event(self.name)
                self.stopped = bool(self.event.is_set())
            except Exception:  # no scheduler to ask (closing): the pipe goes on
                logger.debug("the stop of %s could not be read", self.name, exc_info=True)
        return STOP_MARK if self.stopped else -1


def stop_event_name(dkey: str) -> str:
    """The name of the ``distributed.Event`` that stops the pipe running as ``dkey``."""
    return f"dagexec-stop-{dkey}"


def stop_pipe(client: Any, dkey: str) -> None:
    """Set the event the pipe running as ``dkey`` reads (in the master; a failure is
    logged: the pipe then runs to its end)."""
    from distributed import Event

    event: Any = Event
    try:
        event(stop_event_name(dkey), client=client).set()
    except Exception:
        logger.info("the stop of pipe %r could not be told", dkey, exc_info=True)


def _batch_calls(
    topic: str,
    dkey: str,
    heads: list[tuple[int, int, str]],
    blobs: list[Blobs],
    swapped: list[tuple[Any, dict[str, Any] | None, list[Path]]],
) -> tuple[Any, list[Call] | None]:
    """This worker (its capture installed, the task's start reported) and the calls of
    a chain's or a pipe's members; None for the calls when a member's task cannot be
    loaded (the master is told to run them one by one)."""
    from distributed import get_worker

    worker = get_worker()
    install_worker_capture()
    _REPORTS.began(worker, topic, dkey)
    try:
        specs = [load_spec(*b) for b in blobs]
    except Exception:
        _REPORTS.ended(dkey)
        worker.log_event(topic, {"k": dkey, "split": 1})
        return worker, None
    calls = [
        Call(h[0], h[1], spec, args, kwargs, h[3] if len(h) > 3 else None)
        for h, spec, (args, kwargs, _) in zip(heads, specs, swapped, strict=True)
    ]
    return worker, calls


def _one_trial(
    head: tuple[int, int, str],
    blob: Blobs,
    args: Any,
    kwargs: dict[str, Any] | None,
    inputs: list[Path],
    where: str,
    began: Callable[[Any], None] | None = None,
) -> Outcome:
    """The outcome of one trial run here (a single task's, or a group's member): its
    task loaded (``began(spec)`` then), unless an input was lost with a worker."""
    idx, attempt, key = head[:3]  # (and, in a traced run, the trace context it runs in)
    start = time.time()
    try:
        spec = load_spec(*blob)
    except Exception as exc:
        unloadable = unpickling_error(key, "its task", exc, " in its worker")
        return failed_outcome(Call(idx, attempt, None, (), None), unloadable, start, where)
    if began is not None:
        began(spec)
    call = Call(idx, attempt, spec, args, kwargs, head[3] if len(head) > 3 else None)
    lost = _lost_input(key, args, kwargs, inputs)
    return run_call(call, where) if lost is None else failed_outcome(call, lost, start, where)


def _members_value(
    outs: list[Outcome], heads: list[tuple[int, int, str]], where: str
) -> tuple[tuple[Any, ...], list[Any]]:
    """A group's or a pipe's task value (each member's value, :data:`_FAILED` for one
    that did not succeed or did not run) and its report's entries, each value checked
    to pickle (dask may move it)."""
    key_of = {h[0]: h[2] for h in heads}
    by_idx: dict[int, Any] = {}
    entries: list[Any] = []
    for out in outs:
        out = _pickled_or_failed(out, key_of[out[O_IDX]], where)
        by_idx[out[O_IDX]] = out[O_VALUE] if out[O_OK] else _FAILED
        entries.append(_entry(out, key_of[out[O_IDX]]))
    return tuple(by_idx.get(h[0], _FAILED) for h in heads), entries


def _entry(out: Outcome, key: str) -> list[Any]:
    """A member's record in a batch's or a group's "ended" event: attempt, start, end
    and log; or its outcome pickled, when it did not succeed."""
    if out[O_OK]:
        return [out[O_IDX], out[O_ATTEMPT], out[O_START], out[O_END], out[O_LOG]]
    _drop_tracebacks(out[O_ERROR])
    return [out[O_IDX], out[O_ATTEMPT], dump_outcome(out, key)]


def _pickled_or_failed(out: Outcome, key: str, where: str) -> Outcome:
    """``out``, or when its value will not pickle (as dask will pickle it to move it),
    its trial failed naming the value's type."""
    if not out[O_OK]:
        return out
    problem = _pickle_problem(out[O_VALUE])
    if problem is None:
        return out
    name = _type_name(out[O_VALUE])
    error = pickle.PicklingError(f"node {key!r}: its result of type {name} cannot be pickled: {problem}")
    return (out[O_IDX], out[O_ATTEMPT], False, None, error, "", out[O_START], out[O_END], where, out[O_LOG])


#: a task still running this long after it began tells the master it has started; a
#: success is told at most this long after it ended, with the others of that time
STARTED_AFTER_S = 0.01


class _Reports:
    """What this worker process tells the master of its trials, and when.

    A failure is told at once (its own event): the master retries it, or stops the
    run.  A success is told with the others of the same few milliseconds, in one
    event (``{"r": [report, ...]}``) sent by one thread per process every
    ``STARTED_AFTER_S / 2``: a worker running a thousand tiny trials sends tens of
    events, not a thousand.  The master learns from dask that the task finished; the
    report brings its record (start, end, worker, log).

    A trial whose task has a timeout says at once that it started (its timeout counts
    from then).  Any other says so only once it has run :data:`STARTED_AFTER_S`: a
    tiny trial's only report is then its end, which carries its start.  A chain or a
    group says which member runs (``"m"``: its position) when it says it started,
    and again whenever another member has run that long.  The master reads "started"
    to tell a trial that was running when its worker died (``crashed``: in a batch,
    the member told, else its first) from one that waited there (dask runs it
    elsewhere), and which trials a fail_fast stop takes back.
    """

    def __init__(self) -> None:
        self.lock = threading.Condition()
        # dask key -> [worker, topic, when it began, when its member began, the member's
        # position (None: no batch), the position told (None: nothing told yet; -1: no batch)]
        self.running: dict[str, list[Any]] = {}
        self.told: dict[tuple[int, str], tuple[Any, str, list[Any]]] = {}  # reports to send
        self.thread: threading.Thread | None = None

    def began(self, worker: Any, topic: str, dkey: str, now: bool = False) -> None:
        if now:
            worker.log_event(topic, {"k": dkey, "s": 1})
        with self.lock:
            began = time.monotonic()
            self.running[dkey] = [worker, topic, began, began, None, -1 if now else None]
            self._wake()

    def member(self, dkey: str, k: int) -> None:
        """Member ``k`` (a position) of the batch running as ``dkey`` begins."""
        with self.lock:
            entry = self.running.get(dkey)
            if entry is not None:
                entry[3:5] = [time.monotonic(), k]

    def ended(self, dkey: str) -> None:
        with self.lock:
            self.running.pop(dkey, None)

    def succeeded(self, worker: Any, topic: str, report: dict[str, Any]) -> None:
        """Tell ``report`` (a success) with the next reports of this process."""
        with self.lock:
            self._add(worker, topic, report)
            self._wake()

    def batch_ended(self, worker: Any, topic: str, report: dict[str, Any]) -> None:
        """Tell a chain's or a group's ``report``: at once when a member failed."""
        if all(len(entry) == 5 for entry in report["b"]):
            self.succeeded(worker, topic, report)
        else:
            worker.log_event(topic, report)

    def _add(self, worker: Any, topic: str, report: dict[str, Any]) -> None:
        entry = self.told.get((id(worker), topic))
        if entry is None:
            entry = self.told[(id(worker), topic)] = (worker, topic, [])
        entry[2].append(report)

    def _wake(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._tell, name="dagexec-reports", daemon=True)
            self.thread.start()
        self.lock.notify()

    def _tell(self) -> None:
        while True:
            with self.lock:
                while not self.running and not self.told:
                    self.lock.wait()
                now = time.monotonic()
                for dkey, entry in self.running.items():
                    worker, topic, began, member_began, member, told = entry
                    if (told is None and now - began >= STARTED_AFTER_S) or (
                        told is not None and told != -1 and member != told and now - member_began >= STARTED_AFTER_S
                    ):
                        entry[5] = -1 if member is None else member
                        event = {"k": dkey, "s": 1} if member is None else {"k": dkey, "s": 1, "m": member}
                        self._add(worker, topic, event)
                due, self.told = list(self.told.values()), {}
            for worker, topic, reports in due:
                try:
                    worker.log_event(topic, {"r": reports})
                except Exception:  # a worker closing: its trials' fate is told otherwise
                    logger.debug("%d reports could not be told", len(reports), exc_info=True)
            time.sleep(STARTED_AFTER_S / 2)


class _Board:
    """What ``run_batch`` writes the running member's position to (``board[slot] = k``):
    here, :meth:`_Reports.member` of the batch's task."""

    __slots__ = ("dkey",)

    def __init__(self, dkey: str) -> None:
        self.dkey = dkey

    def __setitem__(self, slot: int, k: int) -> None:
        _REPORTS.member(self.dkey, k)


_REPORTS = _Reports()


def _drop_tracebacks(error: BaseException | None, clear: bool = False) -> None:
    """Forget the traceback objects of ``error`` and its chain (their text travels);
    with ``clear``, clear the local variables of their finished frames first.

    distributed makes tracebacks picklable (tblib); rebuilt in the master, their
    frames would hang on to whatever the master was doing, trials' futures included.
    """
    stack = [error]
    seen: set[int] = set()
    while stack:
        exc = stack.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if clear:
            traceback.clear_frames(exc.__traceback__)
        exc.__traceback__ = None
        stack += [exc.__cause__, exc.__context__]


def _lost_input(key: str, args: Any, kwargs: Any, inputs: list[Path]) -> Exception | None:
    if any(at(kwargs if isinstance(path[0], str) else args, path) is _FAILED for path in inputs):
        return RuntimeError(
            f"node {key!r}: an input was lost with a dask worker, and dask's recomputation of it failed"
        )
    return None
