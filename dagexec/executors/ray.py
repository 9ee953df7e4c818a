"""``RayExecutor``: trials as Ray tasks, values kept in Ray's object store (DESIGN §5).

Data flow::

    master (engine)                              Ray                      a Ray worker
    submit(call) --spec, arguments, input refs--> task (no retries) ----> _trial()
                                                                          run_call()
    _done() <---- the outcome's bytes (small) --- out ref <--------------+
    Remote(value ref) ........ value stays ...... object store <---------+ the value

* A trial is one Ray task of :func:`_trial`, with Ray's own retries off (dagexec's
  apply).  It travels as cloudpickle bytes: its spec (the task function pickled once
  per run, kept by each worker, as on loky) and its arguments.  The task's module,
  where it is the user's, goes by value (Ray's workers need not find it on their
  path; its functions get their file back there, for tracebacks).  An input kept in
  the object store travels as an object ref beside the call, which Ray resolves
  before the task starts (its position stands in the arguments: ``by_position``).
* The task returns two objects: the value as cloudpickle bytes (so that a class that
  came by value comes back as itself, and a value that does not pickle fails its
  trial by name, as on loky), then the outcome without it.  The value stays in the
  object store; the engine holds it as a :class:`Remote` and passes it to the calls
  that read it; only the outputs (and what another executor needs) come over
  (:meth:`RayExecutor.fetch`).
* A linear chain (a node whose one reader reads only it, and so on) goes at once: a
  task per member, each given the object ref of the value of the member before, so
  Ray runs them in turn with no round trip through the master, and a crash is
  charged to the member whose worker died.  A member whose member before failed
  does not run.
* Task ``resources`` become Ray's: ``cpu`` (``num_cpus``, default 1), ``gpu``
  (``num_gpus``), ``memory`` (bytes), any other name a custom resource.
* A timeout, or Ctrl-C, cancels the task with ``ray.cancel(force=True)``, which kills
  its worker process; a worker that dies makes the trial ``crashed``
  (``WorkerCrashedError`` and Ray's other lost-work errors), retried like any crash.
* A trial's timeout counts from its submission (Ray does not tell when a task began).
  The executor keeps :data:`IN_FLIGHT_PER_CPU` trials in flight per CPU of the
  cluster, so that its workers stay busy while outcomes travel back; where timeouts
  must count from the start, give ``max_workers`` the number of CPUs.
* ``executor="ray"`` joins the cluster at ``address`` (``RAY_ADDRESS``, else a local
  one started on first use and kept for the process, as loky keeps its pool).
"""

from __future__ import annotations

import functools
import os
import pickle
import threading
from collections.abc import Callable
from time import time
from typing import Any

from .._interrupts import kept_handlers
from .._walk import replace
from ..run.protocol import (
    LINK,
    O_LOG,
    O_OK,
    O_START,
    O_VALUE,
    Batch,
    BatchDone,
    Call,
    Executor,
    Outcome,
    Remote,
    crashed_outcome,
    failed_outcome,
    with_value,
)
from ..run.worker import install_worker_capture, run_call
from ._byvalue import by_value
from ._inflight import InFlight
from ._transport import (
    Blobs,
    SpecPickler,
    by_position,
    dump_call,
    dump_outcome,
    load_outcome,
    load_spec,
    put_back,
    result_pickling_error,
    swap_remotes,
    unloadable,
)

__all__ = ["RayExecutor"]

IN_FLIGHT_PER_CPU = 4  # trials in flight per CPU by default: its workers busy while outcomes travel
_RESOURCES = {"cpu": "num_cpus", "gpu": "num_gpus", "memory": "memory"}  # as Ray names them
#: Ray's errors for work it lost (the trial is ``crashed``); any other error fails it
_LOST = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError", "OutOfMemoryError",
         "RaySystemError", "LocalRayletDiedError", "ActorDiedError")


def _trial(
    head: tuple[int, int, str], blobs: Blobs, values: bytes, trace: str | None, *kept: bytes
) -> tuple[bytes | None, bytes]:
    """What a Ray task runs: one trial (``head``: idx, attempt, key), its arguments given
    the values Ray resolved (``kept``); returns (value bytes, outcome bytes without it)."""
    import cloudpickle

    if None in kept:  # a chain's member whose member before did not succeed: not run
        return None, b""
    install_worker_capture()
    worker, start = f"ray:pid:{os.getpid()}", time()
    try:
        spec = load_spec(*blobs)
    except Exception as exc:  # its task's module, say, not found on this worker
        return None, unloadable(head, "its task", exc, start, worker)
    try:
        args, kwargs = pickle.loads(values)
        args, kwargs = put_back(args, kwargs, [pickle.loads(v) for v in kept])
    except Exception as exc:
        return None, unloadable(head, "its arguments", exc, start, worker)
    call = Call(head[0], head[1], spec, args, kwargs, trace)
    out = run_call(call, worker)
    if not out[O_OK]:
        return None, dump_outcome(out, call.key)
    try:  # by the cloudpickle that sent the call: a class sent by value comes back as itself
        data = cloudpickle.dumps(out[O_VALUE])
    except Exception as exc:
        error = result_pickling_error(call.key, out[O_VALUE], exc)
        return None, dump_outcome(failed_outcome(call, error, out[O_START], worker, out[O_LOG]), call.key)
    return data, dump_outcome(with_value(out, None), call.key)


def _linked(value: Remote, v: Any) -> Any:
    return value if v is LINK else v


def ray_options(resources: dict[str, float] | None) -> dict[str, Any]:
    """Ray's task options for a task's ``resources``: ``cpu``, ``gpu``, ``memory``
    (any case) become ``num_cpus``, ``num_gpus``, ``memory``; other names custom."""
    options: dict[str, Any] = {"num_returns": 2, "max_retries": 0, "retry_exceptions": False}
    for name, amount in (resources or {}).items():
        known = _RESOURCES.get(name.lower())
        if known is None:
            options.setdefault("resources", {})[name] = amount
        else:
            options[known] = int(amount) if known == "memory" else amount
    return options


class RayExecutor(Executor):
    """Runs trials as tasks on a Ray cluster, values kept in its object store.

    Args:
        address: the cluster to join (``ray.init(address=...)``); default
            ``RAY_ADDRESS``, else a local cluster started on first use. Ignored when
            Ray is already initialised in this process.
        max_workers: trials in flight at once (default: 4 per CPU of the cluster).
        init: more keyword arguments for ``ray.init`` when this executor starts Ray.
    """

    name = "ray"
    needs_pickle = True
    keeps_values = True
    batches = True  # a linear chain goes at once, a task per member (submit_batch)

    def __init__(self, address: str | None = None, max_workers: int | None = None, **init: Any) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ImportError(f"executor 'ray' needs the ray package ({exc}); pip install 'dagexec[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            with kept_handlers():  # ray.init takes SIGTERM: a run's own handling must stay
                ray.init(address=address or os.environ.get("RAY_ADDRESS"), **{"log_to_driver": False, **init})
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        self._max = max_workers or max(1, IN_FLIGHT_PER_CPU * cpus)
        self._remote: Any = ray.remote(_trial)
        self._tasks: dict[tuple[Any, ...], Any] = {}  # resources -> the Ray task with their options
        self._pickler = SpecPickler()  # task functions and specs, pickled once per run
        self._inflight: InFlight[int, Any] = InFlight()  # id(call or batch) -> its tasks' out refs

    @property
    def capacity(self) -> int:
        """Trials in flight at once."""
        return self._max

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome | None:
        """Start ``call`` as a Ray task; its outcome is posted when the task ends (at once
        for a call that does not pickle, failed, or one Ray refused, crashed)."""
        return self._send([call], None, post)  # type: ignore[no-any-return]

    def submit_batch(self, batch: Batch, post: Callable[[Any], None]) -> BatchDone | None:
        """Start a linear chain, one Ray task per member, each reading the object ref of
        the value of the member before: Ray runs them in turn with no round trip through
        the master.  Any other batch (a stream's pipe, a chain whose other values are
        kept) goes one by one."""
        if batch.feeds is not None or not all(batch.linked[1:]) or any(batch.keep[:-1]):
            return BatchDone(batch, [], split=True)
        return self._send(batch.calls, batch, post)  # type: ignore[no-any-return]

    def _send(self, calls: list[Call], batch: Batch | None, post: Callable[[Any], None]) -> Any:
        """Send ``calls`` (a trial, or ``batch``'s members), a Ray task each; what to
        return at once where they cannot go: a trial's outcome, or a split batch."""
        start, refs, link = time(), [], None
        for call in calls:
            kept: list[Any] = []  # the object refs of the values it reads that stay in the store
            with by_value(call.spec.fn):
                try:
                    blobs = self._pickler.blobs(call.spec)
                    if link is not None:  # a chain's member: the value of the one before for LINK
                        linked = functools.partial(_linked, Remote(self, link))
                        call = Call(call.idx, call.attempt, call.spec, replace(call.args, linked), call.kwargs, call.trace)
                    args, kwargs, _ = swap_remotes(call, self, by_position(kept))
                except Exception as exc:
                    return failed_outcome(call, exc, start, "master") if batch is None else BatchDone(batch, [], True)
                values = dump_call(call, (args, kwargs))
            if not isinstance(values, bytes):
                return values if batch is None else BatchDone(batch, [], split=True)  # each says what
            try:
                head = (call.idx, call.attempt, call.key)
                link, out_ref = self._task(call.spec.resources).remote(head, blobs, values, call.trace, *kept)
            except Exception as exc:
                out = crashed_outcome(call, exc, start, "Ray refused the trial")
                return out if batch is None else BatchDone(batch, [], split=True)
            refs.append(out_ref)
        unit = calls[0] if batch is None else batch
        self._inflight.add(id(unit), unit, refs)
        futures = [ref.future() for ref in refs]  # the last ends after the others (it reads them)
        futures[-1].add_done_callback(lambda _: self._done(unit, calls, futures, link, start, post))
        return None

    def _task(self, resources: dict[str, float] | None) -> Any:
        """The Ray task of :func:`_trial` with the options of ``resources``, made once."""
        key = tuple(sorted(resources.items())) if resources else ()
        if key not in self._tasks:
            self._tasks[key] = self._remote.options(**ray_options(resources))
        return self._tasks[key]

    def _done(self, unit: Call | Batch, calls: list[Call], futures: list[Any], value_ref: Any, start: float, post: Any) -> None:
        """Every task of ``unit`` ended: the outcomes of the members that ran, in order,
        the last one's value a Remote on ``value_ref``."""
        if self._inflight.claim(id(unit)) is None:
            return  # abandoned: its outcome is not awaited
        outs: list[Outcome] = []
        for call, future in zip(calls, futures, strict=True):
            try:
                data = future.result()
            except Exception as exc:  # the task did not end as _trial ends: Ray lost it
                lost = any(c.__name__ in _LOST for c in type(exc).__mro__)
                outs.append(crashed_outcome(call, exc, start, "its Ray worker died or was lost") if lost
                            else failed_outcome(call, exc, start, "ray"))
                break
            if not data:
                break  # not run: the member before it did not succeed
            out = load_outcome(data)
            outs.append(with_value(out, Remote(self, value_ref)) if out[O_OK] and call is calls[-1] else out)
            if not out[O_OK]:
                break  # the members after it did not run
        post(BatchDone(unit, outs) if type(unit) is Batch else outs[0])

    def fetch(self, remotes: list[Remote]) -> list[Any]:
        """The values of ``remotes``, from the object store."""
        return [pickle.loads(data) for data in self._ray.get([r.ref for r in remotes])]

    def abandon(self, call: Call | Batch) -> None:
        """Stop the task (a timeout, Ctrl-C): ``ray.cancel(force=True)`` kills its worker."""
        refs = self._inflight.claim_unit(call)
        if refs is not None:
            threading.Thread(target=self._cancel, args=(refs,), daemon=True).start()

    def _cancel(self, refs: list[Any]) -> None:
        for ref in refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already ended, or Ray is going away
                pass

    def run_ended(self) -> None:
        """Forget the functions pickled: the next run sees changed globals."""
        self._pickler.clear()

    def shutdown(self, *, cancel: bool = False) -> None:
        """With ``cancel``, stop every task in flight; Ray itself goes on for the process."""
        for refs in self._inflight.clear():
            if cancel:
                self._cancel(refs)

    def __repr__(self) -> str:
        return f"RayExecutor(capacity={self._max})"
