"""Executors run trials; the engine decides what runs.

Names usable as ``run(executor=...)``: ``"serial"``, ``"threads"``, ``"loky"``.  Any
:class:`~dagexec.Executor` instance or ``concurrent.futures.Executor`` works too.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from .._engine import Executor
from .futures import FuturesExecutor
from .loky import LokyExecutor
from .serial import SerialExecutor
from .threads import ThreadExecutor

__all__ = [
    "EXECUTORS",
    "Executor",
    "FuturesExecutor",
    "LokyExecutor",
    "SerialExecutor",
    "ThreadExecutor",
    "make_executor",
]

#: executor names -> classes taking ``max_workers=``
EXECUTORS: dict[str, Any] = {
    "serial": SerialExecutor,
    "threads": ThreadExecutor,
    "loky": LokyExecutor,
}


def make_executor(spec: Any, max_workers: int | None = None) -> tuple[Executor, bool]:
    """``(executor, owned)`` for a name, an Executor or a ``concurrent.futures.Executor``.

    ``owned`` is True when the executor was made here (the run shuts it down).

    Raises:
        ValueError: for an unknown name or object, the message listing valid names.
    """
    if isinstance(spec, str):
        cls = EXECUTORS.get(spec)
        if cls is None:
            valid = ", ".join(repr(k) for k in sorted(EXECUTORS))
            raise ValueError(f"unknown executor {spec!r}; valid names: {valid}")
        return (cls() if cls is SerialExecutor else cls(max_workers=max_workers)), True
    if isinstance(spec, Executor):
        return spec, False
    if isinstance(spec, concurrent.futures.Executor):
        return FuturesExecutor(spec), False
    valid = ", ".join(repr(k) for k in sorted(EXECUTORS))
    raise ValueError(
        f"executor must be a name ({valid}), an Executor or a concurrent.futures.Executor, got {spec!r}"
    )
