"""The pickled transport that the process executors share (loky, dask).

A trial that leaves the master travels as bytes.  :func:`dump_call` pickles a
:class:`~dagexec.run.protocol.Call` with cloudpickle, or returns a failed outcome
naming the argument that does not pickle; the worker side runs it with
:func:`run_pickled`, and the outcome comes back through :func:`dump_outcome` and
:func:`load_outcome`, where a result or an exception that does not travel becomes a
failure that does (DESIGN §12) and the remote traceback is attached as the error's
``__cause__``.  Executors that send each task function once per run use
:class:`SpecPickler` in the master and :func:`load_spec` in the worker, which
rebuilds a :class:`WorkerSpec`; :func:`unpickling_error` words what did not unpickle,
on either side.  cloudpickle is imported only when something is pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from time import time
from typing import Any

from .._errors import DagexecError
from .._walk import Path, kind, replace
from ..run.protocol import O_ERROR, O_OK, O_TRACEBACK, Call, Outcome, Remote, failed_outcome
from ..run.worker import install_worker_capture, run_call
from ._byvalue import restore_files

__all__ = [
    "Blobs",
    "SpecPickler",
    "WorkerSpec",
    "dump_call",
    "dump_outcome",
    "load_outcome",
    "load_spec",
    "result_pickling_error",
    "run_pickled",
    "by_position",
    "put_back",
    "spec_fields",
    "swap_remotes",
    "unloadable",
    "unpickling_error",
]


_REMOTE = frozenset({Remote})


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
            restore_files(fn)  # where it came by value: the file its tracebacks show
            if len(_loaded_fns) >= _CACHE_SIZE:
                _loaded_fns.clear()
            _loaded_fns[fn_digest] = fn
        key, *rest = pickle.loads(spec_bytes)
        spec = WorkerSpec(key, fn, *rest)
        if len(_loaded_specs) >= _CACHE_SIZE:
            _loaded_specs.clear()
        _loaded_specs[spec_digest] = spec
    return spec


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
        if not out[O_OK]:
            # an exception can pickle and still not unpickle (an __init__ that needs
            # more than its args): find out here, where its type and message are known
            pickle.loads(data)
        return data
    except Exception as exc:
        idx, attempt, ok, value, error, tb, start, end, worker, log = out
        if ok:
            error = result_pickling_error(key, value, exc)
        else:
            from .._errors import RemoteError

            error = RemoteError(_type_name(error), str(error), tb)
        return cloudpickle.dumps((idx, attempt, False, None, error, tb, start, end, worker, log))  # type: ignore[no-any-return]


def swap_remotes(call: Call, owner: Any, stand_in: Callable[[Any], Any]) -> tuple[Any, Any, list[Path]]:
    """``call``'s arguments with each Remote that ``owner`` keeps replaced by
    ``stand_in(its ref)`` (what the backend sends in its place: a dask future, a Ray
    object ref's position), and the path of each in ``(args, kwargs)``; a container
    without one is left as it is.

    Containers are those :mod:`dagexec._walk` enters.  Members of a set cannot be told
    apart by position: values held in a set (small, hashable ones) are brought over."""

    def swapped(remote: Remote) -> Any:
        return stand_in(remote.ref) if remote.owner is owner else remote

    def fetched(remote: Remote) -> Any:
        return owner.fetch([remote])[0] if remote.owner is owner else remote

    args, kwargs = call.args, call.kwargs
    inputs: list[Path] = []
    if any(type(a) is Remote or kind(a) is not None for a in args):
        args, inputs = replace(args, swapped, paths=True, set_fn=fetched, types=_REMOTE)
    if kwargs:
        kwargs, found = replace(kwargs, swapped, paths=True, set_fn=fetched, types=_REMOTE)
        inputs += found
    return args, kwargs, inputs


class _Kept:
    """Stands in a call's arguments for the ``k``-th value sent beside it (:func:`by_position`)."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Kept, (self.k,))


def by_position(refs: list[Any]) -> Callable[[Any], Any]:
    """A ``stand_in`` for :func:`swap_remotes` that appends each ref to ``refs`` and
    leaves its position there in the arguments (a backend that resolves refs given
    beside a call, Ray, sends them so); :func:`put_back` undoes it in the worker."""

    def stand_in(ref: Any) -> _Kept:
        refs.append(ref)
        return _Kept(len(refs) - 1)

    return stand_in


def put_back(args: Any, kwargs: dict[str, Any] | None, values: list[Any]) -> tuple[Any, Any]:
    """``args`` and ``kwargs`` with each position :func:`by_position` left given its value."""
    if not values:
        return args, kwargs
    fill = lambda v: values[v.k] if type(v) is _Kept else v  # noqa: E731
    return replace(args, fill), replace(kwargs, fill) if kwargs else kwargs


def result_pickling_error(key: str, value: Any, exc: BaseException) -> BaseException:
    """The error of a trial of node ``key`` whose result ``value`` did not pickle (``exc``)."""
    return _pickling_error(f"node {key!r}: its result of type {_type_name(value)} cannot be pickled: {exc}")


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
    error = out[O_ERROR]
    if error is not None and out[O_TRACEBACK] and error.__cause__ is None:
        error.__cause__ = _RemoteTraceback(out[O_TRACEBACK])
    return out


def unpickling_error(key: str, what: str, exc: BaseException, where: str = "") -> BaseException:
    """The error of a trial whose ``what`` (``"its result"``, ``"its task"``) did not
    unpickle ``where`` (``" in its worker"``, or "" in the master), ``exc`` its cause."""
    import pickle

    error = pickle.UnpicklingError(
        f"node {key!r}: {what} cannot be unpickled{where}: {type(exc).__name__}: {exc}"
    )
    error.__cause__ = exc
    return error


def unloadable(head: tuple[int, int, str], what: str, exc: Exception, start: float, worker: str) -> bytes:
    """The outcome, as bytes, of a trial (``head``: its idx, attempt and key) whose
    ``what`` (``"its task"``, ``"its arguments"``) did not unpickle in its worker."""
    idx, attempt, key = head
    error = unpickling_error(key, what, exc, " in its worker")
    return dump_outcome(failed_outcome(Call(idx, attempt, None, (), None), error, start, worker), key)


def _pickling_error(message: str) -> BaseException:
    import pickle

    return pickle.PicklingError(message)


def run_pickled(payload: bytes) -> bytes:
    """Run a call made by :func:`dump_call` in a worker process; return its outcome as bytes."""
    import os
    import pickle

    install_worker_capture()
    call = pickle.loads(payload)
    return dump_outcome(run_call(call, f"pid:{os.getpid()}"), call.key)
