"""Executors run trials; the engine decides what runs.

Names usable as ``run(executor=...)``: ``"serial"``, ``"threads"``, ``"loky"``,
``"dask"``.  Any :class:`~dagexec.Executor` instance or ``concurrent.futures.Executor``
works too.  ``distributed`` is imported only when a ``DaskExecutor`` is made.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from ..run.protocol import Executor
from .dask import DaskExecutor
from .futures import FuturesExecutor
from .loky import LokyExecutor
from .serial import SerialExecutor
from .threads import ThreadExecutor

__all__ = [
    "EXECUTORS",
    "DaskExecutor",
    "Executor",
    "FuturesExecutor",
    "LokyExecutor",
    "SerialExecutor",
    "ThreadExecutor",
    "make_executor",
]

#: executor names -> classes
EXECUTORS: dict[str, Any] = {
    "serial": SerialExecutor,
    "threads": ThreadExecutor,
    "loky": LokyExecutor,
    "dask": DaskExecutor,
}


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
        cls = EXECUTORS.get(spec)
        if cls is None:
            valid = ", ".join(repr(k) for k in sorted(EXECUTORS))
            raise ValueError(f"unknown executor {spec!r}; valid names: {valid}")
        if cls is DaskExecutor:
            return _make_dask(scheduler, max_workers), True
        return (cls() if cls is SerialExecutor else cls(max_workers=max_workers)), True
    if isinstance(spec, Executor):
        return spec, False
    if isinstance(spec, concurrent.futures.Executor):
        return FuturesExecutor(spec), False
    valid = ", ".join(repr(k) for k in sorted(EXECUTORS))
    raise ValueError(
        f"executor must be a name ({valid}), an Executor or a concurrent.futures.Executor, got {spec!r}"
    )


def _make_dask(scheduler: str | None, max_workers: int | None) -> Executor:
    try:
        return DaskExecutor(scheduler, max_in_flight=max_workers)
    except ImportError as exc:
        raise ValueError(
            f"executor 'dask' needs the distributed package ({exc}); install it with pip install 'dagexec[dask]'"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"executor 'dask' cannot reach the scheduler at {scheduler!r}: {exc}") from None
