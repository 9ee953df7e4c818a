"""Executors run trials; the run loop decides what runs.  This is the executor protocol's public home.

Names usable as ``run(executor=...)``: ``"serial"``, ``"threads"``, ``"loky"``,
``"dask"``, ``"ray"``.  Any :class:`Executor` instance or ``concurrent.futures.Executor``
works too.  The executor classes are loaded when first named (``from dagexec.executors
import LokyExecutor``, or :func:`make_executor`): importing this package loads neither
loky's, dask's nor Ray's code, and ``distributed`` (``ray``) is imported only when a
``DaskExecutor`` (``RayExecutor``) is made.

**Writing a backend** (docs/executors.md).  Subclass :class:`Executor`; a backend
*must* implement:

- :attr:`~Executor.capacity`: how many trials the loop may have in flight on it;
- :meth:`~Executor.submit` ``(call, post)``: start one :class:`Call`; return its
  outcome now, or None and ``post`` it later, from any thread, exactly once.  It never
  raises: work the backend refuses ends as :func:`crashed_outcome`.

The executing side runs :func:`run_call` (or :func:`run_batch`) where the trial
executes and gets back the outcome tuple, read by the ``O_*`` constants of
:mod:`dagexec.run.protocol`.  Optional:

- batches (:attr:`~Executor.batches`, :attr:`~Executor.batch_tiny`,
  :meth:`~Executor.submit_batch` returning a :class:`BatchDone`);
- values kept remote (:attr:`~Executor.keeps_values`, :class:`Remote` values,
  :meth:`~Executor.fetch`);
- start times (:meth:`~Executor.started_at`: a timeout counts from the start, not
  from the submission, for a backend with queues of its own);
- :meth:`~Executor.abandon` (timeouts, Ctrl-C), :meth:`~Executor.run_ended`,
  :meth:`~Executor.shutdown`, :attr:`~Executor.async_capacity`,
  :attr:`~Executor.needs_pickle`.

Helpers the process and cluster backends share: :mod:`dagexec.executors._transport`
(a call and its outcome as cloudpickle bytes, task functions sent once per run),
:mod:`dagexec.executors._inflight` (the submissions in flight, each outcome posted
once) and :mod:`dagexec.executors._crash` (the words of a crash).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..run.batches import run_batch
from ..run.protocol import Batch, BatchDone, Call, Executor, Outcome, Remote, crashed_outcome, failed_outcome
from ..run.worker import run_call, run_call_async

if TYPE_CHECKING:
    from .dask import DaskExecutor
    from .futures import FuturesExecutor
    from .loky import LokyExecutor
    from .ray import RayExecutor
    from .serial import SerialExecutor
    from .threads import ThreadExecutor

__all__ = [
    "EXECUTORS",
    "Batch",
    "BatchDone",
    "Call",
    "DaskExecutor",
    "Executor",
    "FuturesExecutor",
    "LokyExecutor",
    "Outcome",
    "RayExecutor",
    "Remote",
    "SerialExecutor",
    "ThreadExecutor",
    "crashed_outcome",
    "failed_outcome",
    "make_executor",
    "run_batch",
    "run_call",
    "run_call_async",
]

#: the module of each executor class, loaded on first use
_HOMES = {
    "SerialExecutor": ".serial",
    "ThreadExecutor": ".threads",
    "FuturesExecutor": ".futures",
    "LokyExecutor": ".loky",
    "DaskExecutor": ".dask",
    "RayExecutor": ".ray",
}

#: executor names -> the names of their classes (:data:`EXECUTORS` gives the classes)
_NAMES = {
    "serial": "SerialExecutor",
    "threads": "ThreadExecutor",
    "loky": "LokyExecutor",
    "dask": "DaskExecutor",
    "ray": "RayExecutor",
}


def __getattr__(name: str) -> Any:
    """An executor class, imported when first asked for; ``EXECUTORS``, the name ->
    class mapping, which imports them all."""
    home = _HOMES.get(name)
    if home is not None:
        cls = getattr(importlib.import_module(home, __name__), name)
        globals()[name] = cls
        return cls
    if name == "EXECUTORS":
        return {key: __getattr__(cls_name) for key, cls_name in _NAMES.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def make_executor(
    spec: Any, max_workers: int | None = None, scheduler: str | None = None
) -> tuple[Executor, bool]:
    """``(executor, owned)`` for a name, an Executor or a ``concurrent.futures.Executor``.

    ``owned`` is True when the executor was made here (the run shuts it down).
    ``max_workers`` sizes an executor made from a name (for ``"dask"``: the trials
    in flight); ``scheduler`` is the address ``"dask"`` connects to (default: the
    current client).

    Raises:
        ValueError: for an unknown name or object, the message listing valid names;
            for ``"dask"`` without a client or a reachable scheduler, saying how to
            make one.
    """
    if isinstance(spec, str):
        cls_name = _NAMES.get(spec)
        if cls_name is None:
            valid = ", ".join(repr(k) for k in sorted(_NAMES))
            raise ValueError(f"unknown executor {spec!r}; valid names: {valid}")
        if spec == "dask":
            return _make_dask(scheduler, max_workers), True
        cls = __getattr__(cls_name)
        try:
            return (cls() if spec == "serial" else cls(max_workers=max_workers)), True
        except ImportError as exc:  # an optional backend not installed: how to install it
            raise ValueError(str(exc)) from None
    if isinstance(spec, Executor):
        return spec, False
    import concurrent.futures

    if isinstance(spec, concurrent.futures.Executor):
        return __getattr__("FuturesExecutor")(spec), False
    valid = ", ".join(repr(k) for k in sorted(_NAMES))
    raise ValueError(
        f"executor must be a name ({valid}), an Executor or a concurrent.futures.Executor, got {spec!r}"
    )


def _make_dask(scheduler: str | None, max_workers: int | None) -> Executor:
    try:
        return __getattr__("DaskExecutor")(scheduler, max_in_flight=max_workers)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise ValueError(
            f"executor 'dask' needs the distributed package ({exc}); install it with pip install 'dagexec[dask]'"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"executor 'dask' cannot reach the scheduler at {scheduler!r}: {exc}") from None
