"""The base class of every workload, and the timing loop most of them use.

See workloads.py for what a workload is and how to add one.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from runner_base import Runner
from shapes import Dag

__all__ = ["Workload", "time_calls"]


def time_calls(fn: Callable[[], Any], reps: int) -> tuple[list[float], Any]:
    """One warm-up call, then ``reps`` timed calls: (seconds each, last return value)."""
    gc.collect()
    value = fn()
    times = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return times, value


class Workload:
    """Base class; see the docstring of workloads.py."""

    name = ""
    kind = ""
    description = ""
    #: phase of this workload -> phase of the dask runner it is compared to
    ratio_phases: dict[str, str] = {}  # noqa: RUF012
    #: run workloads: whether (median - plain loop's median) / nodes is a per-task overhead
    overhead = True
    #: what the figures of ``measure`` are: "s" (seconds) or "bytes"
    unit = "s"
    #: phases whose figures are in another unit than ``unit``
    units: dict[str, str] = {}  # noqa: RUF012
    #: whether a run without ``--workloads`` measures it
    default = True
    #: the least time (seconds) a pair of this workload is given, whatever ``--timeout`` says
    min_timeout_s = 0.0
    #: the phase shown in the table under the runner's name alone
    main_phase = "run"
    #: environment variables the measuring process must have (run.py sets them)
    env: dict[str, str] = {}  # noqa: RUF012

    def __init__(self, name: str, shape: str, size: int, quick_size: int, description: str) -> None:
        self.name = name
        self.shape = shape
        self._size = size
        self._quick = quick_size
        self.description = description

    def applies_to(self, runner: Runner) -> bool:
        """Whether ``runner`` is measured on this workload."""
        return True

    def unit_of(self, phase: str) -> str:
        """The unit of ``phase``'s figures."""
        return self.units.get(phase, self.unit)

    def info(self) -> dict[str, Any]:
        """Facts about the graph :meth:`make` made in this process, kept in the results."""
        return {}

    def ideal_s(self, nodes: int) -> float | None:
        """The shortest possible run of ``nodes`` nodes, for the ÷ideal column (None: none)."""
        return None

    def size(self, runner: Runner, quick: bool) -> int:
        """The node count asked of the shape for ``runner``."""
        raise NotImplementedError

    def make(self, runner: Runner, quick: bool) -> Dag:
        raise NotImplementedError

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        """``({phase: [figure per timed repetition]}, checksum)``."""
        raise NotImplementedError
