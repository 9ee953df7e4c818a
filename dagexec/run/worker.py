"""The executing side: run one trial and report what happened.

This is what worker threads and processes run, so it imports little: the
protocol (:mod:`dagexec.run.protocol`) and leaf modules.  :func:`run_call` runs one
:class:`~dagexec.run.protocol.Call` and returns its outcome tuple, never raising for
the task's own errors: it checks argument and return types where the plan asks,
runs an ``async def`` task's coroutine to its end (:func:`run_call_async` awaits it
on a running event loop instead), and captures what the trial logs and prints in a
slot of its own (see :mod:`dagexec._capture`); :mod:`.batches` runs a batch's members
with it.  A failed trial's
traceback starts at the task function's own frame: the frames of this module are
left out.
"""

from __future__ import annotations

import threading
import types
from time import time
from typing import Any

from .._capture import CURRENT as _CURRENT
from .._capture import install_for_good as _install_for_good
from .._capture import log_text as _log_text
from .._errors import TaskTimeout, TypeCheckError
from .._proctree import stop_started_since as _stop_processes_since
from .._tracectx import TRACEPARENT as _TRACEPARENT
from .._tracectx import entered as _entered
from .._typecheck import describe_mismatch
from .protocol import Call, Outcome, failed_outcome

__all__ = [
    "background_loop",
    "install_worker_capture",
    "run_call",
    "run_call_async",
]

_GENERATOR = types.GeneratorType
_GENERATORS = (types.GeneratorType, types.AsyncGeneratorType)
_set_slot = _CURRENT.set
_reset_slot = _CURRENT.reset

#: a worker process's capture of trial logs, installed for its lifetime (before its first trial)
install_worker_capture = _install_for_good


def check_arguments(call: Call) -> None:
    """Type-check ``call``'s arguments against its task's annotations (where it has
    checks); raises :class:`~dagexec.TypeCheckError`."""
    if call.spec.checks:
        _check(call.spec, call.args, call.kwargs)


def _check(spec: Any, args: Any, kwargs: dict[str, Any] | None) -> None:
    for where, pname, ann in spec.checks:
        value = args[where] if isinstance(where, int) else (kwargs or {})[where]
        msg = describe_mismatch(value, ann)
        if msg is not None:
            raise TypeCheckError(f"node {spec.key!r}: parameter {pname!r} {msg}", spec.key, pname)


def _check_return(spec: Any, value: Any) -> None:
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
    if call.trace is not None and _TRACEPARENT.get() != call.trace:  # a traced run's trial
        with _entered(call.trace):
            return run_call(call, worker, reraise_interrupt)
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
                value = run_coroutine(_awaited(spec, value))
            elif type(value) in _GENERATORS:  # a stream producer run on its own: its items
                if spec.ret is not None:
                    _check_return(spec, value)  # the generator against its Iterator[...]
                if type(value) is not _GENERATOR:
                    value = run_coroutine(_listed(value))
                else:
                    value = list(value) if spec.timeout is None else _listed_within(value, spec, start)
                return _succeeded(call, start, value, worker, buf)
        finally:
            slot[0] = None  # closed: what the task's threads write from now on is no trial's
            _reset_slot(token)  # a trial that runs this one (a nested run) gets its slot back
        if spec.ret is not None:
            _check_return(spec, value)
    except KeyboardInterrupt as exc:
        if reraise_interrupt:
            _stop_processes_since(start)  # what this trial started in the master
            raise
        return failed_outcome(call, from_task(exc, spec.fn), start, worker, _log_text(buf))
    except BaseException as exc:
        return failed_outcome(call, from_task(exc, spec.fn), start, worker, _log_text(buf))
    return _succeeded(call, start, value, worker, buf)


def _succeeded(call: Call, start: float, value: Any, worker: str | None, buf: list[Any]) -> Outcome:
    """The outcome of ``call``, which returned ``value`` and logged ``buf``."""
    name = worker or threading.current_thread().name
    return (call.idx, call.attempt, True, value, None, "", start, time(), name, _log_text(buf) if buf else "")


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


def from_task(exc: BaseException, fn: Any) -> BaseException:
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
    try:  # travels with the exception (pickled with its __dict__): a bundle's .locals
        exc.__dagexec_locals__ = failing_locals(at)  # type: ignore[attr-defined]
    except Exception:
        pass
    return exc.with_traceback(at)


#: bounds of :func:`failing_locals` (docs/debugging.md): frames, names per frame, repr
LOCALS_FRAMES, LOCALS_NAMES, LOCALS_REPR = 10, 40, 200


def failing_locals(tb: Any) -> dict[str, dict[str, str]]:
    """Each frame of traceback ``tb`` (the innermost :data:`LOCALS_FRAMES`, outermost
    first) as ``"file:line function"``, with its local variables as reprs cut to
    :data:`LOCALS_REPR` characters (at most :data:`LOCALS_NAMES` of them)."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = LOCALS_REPR
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    out: dict[str, dict[str, str]] = {}
    for t in frames[-LOCALS_FRAMES:]:
        code = t.tb_frame.f_code
        where = f"{code.co_filename}:{t.tb_lineno} {code.co_name}"
        while where in out:  # recursion: the same line again
            where += "'"
        names: dict[str, str] = {}
        found = t.tb_frame.f_locals
        for k, (name, value) in enumerate(found.items()):
            if k == LOCALS_NAMES:
                names["..."] = f"{len(found) - LOCALS_NAMES} more"
                break
            try:
                text = short.repr(value)
            except Exception as exc:
                text = f"<repr failed: {type(exc).__name__}>"
            names[str(name)] = text[:LOCALS_REPR]
        out[where] = names
    return out


async def run_call_async(call: Call, worker: str) -> Outcome:
    """:func:`run_call` for an ``async def`` task, on the running event loop: awaits
    the coroutine (with the task's timeout) without blocking the loop's other trials."""
    if call.trace is not None and _TRACEPARENT.get() != call.trace:  # a traced run's trial
        with _entered(call.trace):
            return await run_call_async(call, worker)
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
        return failed_outcome(call, from_task(exc, spec.fn), start, worker, _log_text(buf))
    log = _log_text(buf) if buf else ""
    return (call.idx, call.attempt, True, value, None, "", start, time(), worker, log)


def _listed_within(gen: Any, spec: Any, start: float) -> list[Any]:
    """The items of a generator whose task has a timeout: past it, at its next item,
    the generator is closed (its ``finally`` runs) and :class:`~dagexec.TaskTimeout`
    raised, on executors that cannot interrupt it (a thread)."""
    deadline = start + spec.timeout
    items = []
    for item in gen:
        items.append(item)
        if time() > deadline:
            gen.close()
            raise TaskTimeout(f"node {spec.key!r} timed out after {spec.timeout:g} s", spec.key, spec.timeout)
    return items


async def _listed(agen: Any) -> list[Any]:
    """The items of an async generator (a stream producer run on its own)."""
    return [item async for item in agen]


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


def run_coroutine(coro: Any) -> Any:
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
