"""The executing side: run one trial of one node and report what happened.

This module is what worker threads and processes run, so it imports little.

A :class:`Call` goes to an executor; an *outcome* comes back.  An outcome is a
plain tuple, because one is made per trial on the hot path::

    (idx, attempt, ok, value, error, traceback, start, end, worker, log)

``ok`` is True when ``value`` is the task's return value; otherwise ``error`` is
the exception (or None when it could not travel) and ``traceback`` its text.
``log`` is what the task logged and printed while it ran (see :mod:`._capture`),
"" when nothing was, and for the outcomes the master makes itself.
"""

from __future__ import annotations

import threading
import traceback as _tb
from time import time
from typing import Any

from ._capture import CURRENT as _CURRENT
from ._capture import install_for_good as _install_for_good
from ._capture import log_text as _log_text
from ._errors import DagexecError
from ._interrupts import interrupt_hooks  # re-exported for executors that register a hook here
from ._proctree import stop_started_since as _stop_processes_since

__all__ = [
    "LINK",
    "Blobs",
    "SpecPickler",
    "load_spec",
    "install_worker_capture",
    "interrupt_hooks",
    "WorkerSpec",
    "spec_fields",
    "Batch",
    "Remote",
    "BatchDone",
    "Call",
    "Outcome",
    "dump_call",
    "dump_outcome",
    "failed_outcome",
    "load_outcome",
    "run_batch",
    "run_call",
    "run_pickled",
]

_set_slot = _CURRENT.set
_reset_slot = _CURRENT.reset

Outcome = tuple[int, int, bool, Any, "BaseException | None", str, float, float, str, str]

IDX, ATTEMPT, OK, VALUE, ERROR, TRACEBACK, START, END, WORKER, LOG = range(10)


class Call:
    """One trial to run: the node's spec, its attempt number and its argument values.

    Attributes:
        idx: the node's index in the plan.
        attempt: 1 for the first attempt.
        spec: the node's :class:`~dagexec._plan.NodeSpec`.
        args: positional argument values.
        kwargs: keyword argument values, or None.
    """

    __slots__ = ("args", "attempt", "idx", "kwargs", "spec")

    def __init__(self, idx: int, attempt: int, spec: Any, args: Any, kwargs: dict[str, Any] | None):
        self.idx = idx
        self.attempt = attempt
        self.spec = spec
        self.args = args
        self.kwargs = kwargs

    @property
    def key(self) -> str:
        """The node key."""
        return str(self.spec.key)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Call, (self.idx, self.attempt, self.spec, self.args, self.kwargs))

    def __repr__(self) -> str:
        return f"<Call {self.spec.key!r} attempt={self.attempt}>"


class WorkerSpec:
    """A node's spec as a worker process rebuilds it: what :func:`run_call` reads."""

    __slots__ = ("checks", "coro", "fn", "key", "ret", "timeout")

    def __init__(
        self, key: str, fn: Any, checks: Any, ret: Any, timeout: float | None = None, coro: bool = False
    ) -> None:
        self.key = key
        self.fn = fn
        self.checks = checks
        self.ret = ret
        self.timeout = timeout
        self.coro = coro


def spec_fields(spec: Any) -> tuple[Any, ...]:
    """What a worker needs of a spec besides its function: ``WorkerSpec(key, fn, *rest)``
    takes them back in this order (``rest`` = this tuple without the key)."""
    return (spec.key, spec.checks, spec.ret, spec.timeout, spec.coro)


#: what a trial sends to a worker process besides its values: function digest and
#: bytes, spec digest and bytes (see :class:`SpecPickler` and :func:`load_spec`)
Blobs = tuple[bytes, bytes, bytes, bytes]


class SpecPickler:
    """The master side of sending specs to worker processes: each task function is
    pickled with cloudpickle once per run (through its ``Task``, so that a module's
    function travels by reference, DESIGN §11), each spec's other fields once; both
    with a digest by which workers keep what they have unpickled (:func:`load_spec`).
    """

    def __init__(self) -> None:
        self._fns: dict[int, tuple[Any, bytes, bytes]] = {}  # id(task or fn) -> (it, digest, bytes)
        self._specs: dict[int, tuple[Any, Blobs]] = {}  # id(spec) -> (spec, blobs)

    def blobs(self, spec: Any) -> Blobs:
        """``(function digest, function bytes, spec digest, spec bytes)`` of ``spec``.

        Raises:
            Exception: whatever cloudpickle raises for what does not pickle.
        """
        hit = self._specs.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        import hashlib

        import cloudpickle

        obj = spec.task if spec.task is not None else spec.fn
        fn = self._fns.get(id(obj))
        if fn is None or fn[0] is not obj:
            data = cloudpickle.dumps((spec.task is not None, obj))
            fn = (obj, hashlib.sha1(data).digest(), data)
            self._fns[id(obj)] = fn
        rest = cloudpickle.dumps(spec_fields(spec))
        blobs = (fn[1], fn[2], hashlib.sha1(fn[1] + rest).digest(), rest)
        self._specs[id(spec)] = (spec, blobs)
        return blobs

    def clear(self) -> None:
        """Forget what was pickled (a run ended: the next sees changed globals)."""
        self._fns.clear()
        self._specs.clear()


_CACHE_SIZE = 4096
_loaded_fns: dict[bytes, Any] = {}  # function digest -> function, in this worker process
_loaded_specs: dict[bytes, WorkerSpec] = {}  # spec digest -> spec, in this worker process


def load_spec(fn_digest: bytes, fn_bytes: bytes, spec_digest: bytes, spec_bytes: bytes) -> WorkerSpec:
    """The worker side of :class:`SpecPickler`: a spec, unpickled the first time its
    digest is seen and kept (up to 4,096 functions and specs, then started over)."""
    import pickle

    spec = _loaded_specs.get(spec_digest)
    if spec is None:
        fn = _loaded_fns.get(fn_digest)
        if fn is None:
            unwrap, obj = pickle.loads(fn_bytes)
            fn = obj.__wrapped__ if unwrap else obj
            if len(_loaded_fns) >= _CACHE_SIZE:
                _loaded_fns.clear()
            _loaded_fns[fn_digest] = fn
        key, *rest = pickle.loads(spec_bytes)
        spec = WorkerSpec(key, fn, *rest)
        if len(_loaded_specs) >= _CACHE_SIZE:
            _loaded_specs.clear()
        _loaded_specs[spec_digest] = spec
    return spec


class Remote:
    """A value kept where it was made (e.g. in a cluster worker's memory).

    An executor with ``keeps_values`` returns one as a trial's value.  The engine
    holds it like any value (and drops it when the value is released), passes it
    as it is to calls on the same executor, and asks the executor for the value
    itself (``owner.fetch([...])``) only where it is needed elsewhere: in a call on
    another executor, or as an output or ``keep=`` value of the run.

    Attributes:
        owner: the executor that keeps the value.
        ref: the executor's handle on it (e.g. a ``distributed.Future``).
    """

    __slots__ = ("owner", "ref")

    def __init__(self, owner: Any, ref: Any) -> None:
        self.owner = owner
        self.ref = ref

    def __repr__(self) -> str:
        return f"<Remote {self.ref!r} on {self.owner!r}>"


class _Link:
    """Stands in a batch member's arguments for the value of the member before it."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "LINK"

    def __repr__(self) -> str:
        return "LINK"


#: where a chained member of a :class:`Batch` takes the value of the member before it
LINK: Any = _Link()


class Batch:
    """Trials an executor runs as one submission, in order, on one worker.

    A batch holds one or more *segments*: a linear chain of nodes (each reading the
    one before, fused so the value never leaves the worker), or a tiny trial on its
    own.  Every member keeps its own trial: its own attempt, start, end and outcome.

    Attributes:
        calls: the members' calls, in the order they run.
        linked: per member, True when it continues the member before it: it runs only
            if that one succeeded, and takes its value where ``LINK`` stands in its
            arguments.
        keep: per member, True when the master needs its value even when the next,
            linked member consumed it (an output, or a ``keep=`` key).
    """

    __slots__ = ("calls", "keep", "linked", "stopped")

    def __init__(self, calls: list[Call], linked: list[bool], keep: list[bool]) -> None:
        self.calls = calls
        self.linked = linked
        self.keep = keep
        #: set by the engine when fail_fast stops the run: no further chained member starts
        self.stopped = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (Batch, (self.calls, self.linked, self.keep))

    def __repr__(self) -> str:
        return f"<Batch of {len(self.calls)}: {self.calls[0].key!r} ...>"


class BatchDone:
    """What an executor posts when a batch ends.

    Attributes:
        batch: the batch.
        outcomes: the outcomes of the members that ran, in order; a member whose
            chain broke before it did not run and has none.
        split: True when the batch could not run as one (its worker died, or it
            did not pickle): the engine runs its members again, one by one,
            without using an attempt.
    """

    __slots__ = ("batch", "outcomes", "split")

    def __init__(self, batch: Batch, outcomes: list[Outcome], split: bool = False) -> None:
        self.batch = batch
        self.outcomes = outcomes
        self.split = split


def run_batch(batch: Batch, worker: str | None = None, board: Any = None, slot: int = 0) -> BatchDone:
    """Run a batch's members in order; never raises for the tasks' own errors.

    A linked member runs only when the member before it succeeded.  A value is
    sent back only when the master needs it: not when the next member is linked,
    succeeded and the member is not kept, so a chain's values stay in the worker.
    With ``board``, the position of each member is written to ``board[slot]``
    before it runs (so a crash can be charged to the member that caused it).
    """
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
            if out[2] and not keep[k - 1]:
                # consumed here, and nobody else reads it: not sent back
                i, attempt, _, _, _, _, start, end, where, log = outs[-1]
                outs[-1] = (i, attempt, True, None, None, "", start, end, where, log)
        else:
            prev = None
            out = run_call(call, name)
        prev_ok = out[2]
        prev = out[3]
        outs.append(out)
    return BatchDone(batch, outs)


def _check(spec: Any, args: Any, kwargs: dict[str, Any] | None) -> None:
    from ._errors import TypeCheckError
    from ._typecheck import describe_mismatch

    for where, pname, ann in spec.checks:
        value = args[where] if isinstance(where, int) else (kwargs or {})[where]
        msg = describe_mismatch(value, ann)
        if msg is not None:
            raise TypeCheckError(f"node {spec.key!r}: parameter {pname!r} {msg}", spec.key, pname)


def _check_return(spec: Any, value: Any) -> None:
    from ._errors import TypeCheckError
    from ._typecheck import describe_mismatch

    msg = describe_mismatch(value, spec.ret)
    if msg is not None:
        raise TypeCheckError(f"node {spec.key!r}: return value {msg}", spec.key, None)


def run_call(call: Call, worker: str | None = None, reraise_interrupt: bool = False) -> Outcome:
    """Run one trial and return its outcome; never raises for the task's own errors.

    Args:
        call: what to run.
        worker: the name to record; default the current thread's name.
        reraise_interrupt: let ``KeyboardInterrupt`` propagate (when running in the
            master thread, where it is the user's Ctrl-C), once the processes
            the trial started (the master's children started since) are killed.

    Returns:
        The outcome tuple.
    """
    spec = call.spec
    args = call.args
    kwargs = call.kwargs
    buf: list[Any] = []  # what the task logs and prints
    start = time()
    try:
        if spec.checks:
            _check(spec, args, kwargs)
        slot: list[Any] = [buf]  # this trial's own (see _capture)
        token = _set_slot(slot)
        try:
            value = spec.fn(*args, **kwargs) if kwargs else spec.fn(*args)
            if spec.coro:
                value = _run_coroutine(_awaited(spec, value))
        finally:
            slot[0] = None  # closed: what the task's threads write from now on is no trial's
            _reset_slot(token)  # a trial that runs this one (a nested run) gets its slot back
        if spec.ret is not None:
            _check_return(spec, value)
    except KeyboardInterrupt as exc:
        if reraise_interrupt:
            _stop_processes_since(start)  # what this trial started in the master
            raise
        return failed_outcome(call, _from_task(exc, spec.fn), start, worker, _log_text(buf))
    except BaseException as exc:
        return failed_outcome(call, _from_task(exc, spec.fn), start, worker, _log_text(buf))
    return (
        call.idx,
        call.attempt,
        True,
        value,
        None,
        "",
        start,
        time(),
        worker or threading.current_thread().name,
        _log_text(buf) if buf else "",
    )


def _code_of(fn: Any) -> Any:
    """The code object a call of ``fn`` runs first, or None (a builtin)."""
    import functools

    for _ in range(8):  # a partial of a bound method of ...: a few layers at most
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif hasattr(fn, "__func__"):  # a bound method
            fn = fn.__func__
        else:
            break
    code = getattr(fn, "__code__", None)
    if code is None:  # an object with a __call__ method
        call = type(fn).__dict__.get("__call__") if callable(fn) else None
        code = getattr(call, "__code__", None)
    return code


def _from_task(exc: BaseException, fn: Any) -> BaseException:
    """``exc`` with its traceback starting at the task function's own frame: the
    frames of the trial machinery above it (:func:`run_call`, an event loop) are
    left out, the task's own calls below it kept.  Where no frame is the task's (a
    failed type check, a builtin), this module's frames at the top are left out.
    """
    tb = exc.__traceback__
    code = _code_of(fn)
    at = tb
    while at is not None and at.tb_frame.f_code is not code:
        at = at.tb_next
    if at is None:
        at = tb
        while at is not None and at.tb_frame.f_code.co_filename == __file__:
            at = at.tb_next
    return exc.with_traceback(at)


async def run_call_async(call: Call, worker: str) -> Outcome:
    """:func:`run_call` for an ``async def`` task, on the running event loop: awaits
    the coroutine (with the task's timeout) without blocking the loop's other trials."""
    spec = call.spec
    args = call.args
    kwargs = call.kwargs
    buf: list[Any] = []  # this coroutine's own: each asyncio task runs in a context of its own
    start = time()
    try:
        if spec.checks:
            _check(spec, args, kwargs)
        slot: list[Any] = [buf]
        token = _CURRENT.set(slot)
        try:
            value = await _awaited(spec, spec.fn(*args, **kwargs) if kwargs else spec.fn(*args))
        finally:
            slot[0] = None
            _CURRENT.reset(token)
        if spec.ret is not None:
            _check_return(spec, value)
    except BaseException as exc:
        return failed_outcome(call, _from_task(exc, spec.fn), start, worker, _log_text(buf))
    log = _log_text(buf) if buf else ""
    return (call.idx, call.attempt, True, value, None, "", start, time(), worker, log)


async def _awaited(spec: Any, coro: Any) -> Any:
    """Await an async task's coroutine; past the task's timeout, cancel it (its
    ``finally`` blocks run) and raise :class:`~dagexec.TaskTimeout`."""
    if spec.timeout is None:
        return await coro
    import asyncio

    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait((task,), timeout=spec.timeout)
    except asyncio.CancelledError:  # abandoned (the engine's deadline, Ctrl-C): cancel it too
        await _cancel(task)
        raise
    if not done:
        await _cancel(task)
        from ._errors import TaskTimeout

        raise TaskTimeout(f"node {spec.key!r} timed out after {spec.timeout:g} s", spec.key, spec.timeout)
    return task.result()


async def _cancel(task: Any) -> None:
    """Cancel ``task`` and wait until its cleanup (``finally`` blocks) has run."""
    import asyncio

    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass  # its cancellation, or what its cleanup raised: the caller has the error


_local = threading.local()  # .loop: the event loop of this thread's async trials
_background: list[Any] = []  # [loop] of the thread that runs coroutines for threads that have a loop running
_background_lock = threading.Lock()


def _run_coroutine(coro: Any) -> Any:
    """Run ``coro`` to its end from synchronous code: on this thread's own event loop
    (one per thread, kept between trials), or, when a loop already runs in this thread
    (a notebook), on a loop thread of dagexec's."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # none: run it here, outside this handler (the task's errors get no context of ours)
    else:
        return asyncio.run_coroutine_threadsafe(coro, background_loop()).result()
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


def background_loop() -> Any:
    """dagexec's event loop thread of this process, started on first use."""
    with _background_lock:
        if not _background:
            import asyncio

            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="dagexec-async", daemon=True).start()
            _background.append(loop)
        return _background[0]


def failed_outcome(
    call: Call, exc: BaseException, start: float, worker: str | None = None, log: str = ""
) -> Outcome:
    """The outcome of a trial that raised ``exc``, with what it logged and printed."""
    text = "".join(_tb.format_exception(type(exc), exc, exc.__traceback__))
    return (
        call.idx,
        call.attempt,
        False,
        None,
        exc,
        text,
        start,
        time(),
        worker or threading.current_thread().name,
        log,
    )


# -- trials that travel to other processes as bytes -------------------------------------


def _type_name(obj: Any) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def dump_call(call: Call, what: Any = None) -> bytes | Outcome:
    """``what`` (default: the whole ``call``) pickled with cloudpickle, or a failed
    outcome of ``call`` naming the argument that does not pickle."""
    import cloudpickle

    start = time()
    try:
        return cloudpickle.dumps(call if what is None else what)  # type: ignore[no-any-return]
    except Exception as exc:
        values = list(call.args) + list((call.kwargs or {}).values())
        culprit = "its call"
        for value in values:
            try:
                cloudpickle.dumps(value)
            except Exception:
                culprit = f"an argument of type {_type_name(value)}"
                break
        error = _pickling_error(
            f"node {call.key!r}: {culprit} cannot be pickled to send it to a process: {exc}"
        )
        return failed_outcome(call, error, start, "master")


def dump_outcome(out: Outcome, key: str) -> bytes:
    """The outcome pickled with cloudpickle; a result or an exception that does not
    pickle becomes a failure that does (DESIGN §12)."""
    import pickle

    import cloudpickle

    try:
        data: bytes = cloudpickle.dumps(out)
        if not out[2]:
            # an exception can pickle and still not unpickle (an __init__ that needs
            # more than its args): find out here, where its type and message are known
            pickle.loads(data)
        return data
    except Exception as exc:
        idx, attempt, ok, value, error, tb, start, end, worker, log = out
        if ok:
            error = _pickling_error(
                f"node {key!r}: its result of type {_type_name(value)} cannot be pickled: {exc}"
            )
        else:
            from ._errors import RemoteError

            error = RemoteError(_type_name(error), str(error), tb)
        return cloudpickle.dumps((idx, attempt, False, None, error, tb, start, end, worker, log))  # type: ignore[no-any-return]


class _RemoteTraceback(DagexecError):
    """Stands as ``__cause__`` of an exception raised in another process: its traceback."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb.rstrip()}\n"""'


def load_outcome(data: bytes) -> Outcome:
    """An outcome made by :func:`dump_outcome`, with the remote traceback attached to
    the task's exception as its ``__cause__`` (as ``concurrent.futures`` does)."""
    import pickle

    out: Outcome = pickle.loads(data)
    error = out[4]
    if error is not None and out[5] and error.__cause__ is None:
        error.__cause__ = _RemoteTraceback(out[5])
    return out


def _pickling_error(message: str) -> BaseException:
    import pickle

    return pickle.PicklingError(message)


#: a worker process's capture of trial logs, installed for its lifetime (before its first trial)
install_worker_capture = _install_for_good


def run_pickled(payload: bytes) -> bytes:
    """Run a call made by :func:`dump_call` in a worker process; return its outcome as bytes."""
    import os
    import pickle

    _install_for_good()
    call = pickle.loads(payload)
    return dump_outcome(run_call(call, f"pid:{os.getpid()}"), call.key)
