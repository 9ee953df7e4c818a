"""Workloads: a Dag shape, its sizes, and how a runner is measured on it.

A workload's :meth:`~Workload.measure` runs in the child process and returns
``{phase: [seconds per timed repetition]}`` plus the checksum.  Every phase gets
one untimed warm-up call first; ``gc.collect()`` runs before every call (the
collector stays enabled while timing).

To add a workload, add an instance to ``WORKLOADS``: a :class:`RunWorkload` for
"time running an already built graph", a :class:`BuildWorkload` for "time
building it", or a new :class:`Workload` subclass with its own ``measure``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from runners import Runner
from shapes import SHAPES, Dag

__all__ = ["WORKLOADS", "BuildWorkload", "RunWorkload", "Workload", "time_calls"]


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
    """Base class; see the module docstring."""

    name = ""
    kind = ""
    description = ""
    #: phase of this workload -> phase of the dask runner it is compared to
    ratio_phases: dict[str, str] = {}  # noqa: RUF012

    def applies_to(self, runner: Runner) -> bool:
        """Whether ``runner`` is measured on this workload."""
        return True

    def size(self, runner: Runner, quick: bool) -> int:
        """The node count asked of the shape for ``runner``."""
        raise NotImplementedError

    def make(self, runner: Runner, quick: bool) -> Dag:
        raise NotImplementedError

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        raise NotImplementedError


class RunWorkload(Workload):
    """Time running a graph that is already built (and compiled)."""

    kind = "run"
    ratio_phases = {"run": "run"}  # noqa: RUF012

    def __init__(self, name: str, shape: str, size: int, quick_size: int, description: str) -> None:
        self.name = name
        self.shape = shape
        self._size = size
        self._quick = quick_size
        self.description = description

    def size(self, runner: Runner, quick: bool) -> int:
        return self._quick if quick else self._size

    def make(self, runner: Runner, quick: bool) -> Dag:
        return SHAPES[self.shape](self.size(runner, quick))

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        prepared = runner.prepare(dag)
        out: dict[str, list[float]] = {}
        checksum = None
        for phase, fn in runner.phases(prepared).items():
            out[phase], checksum = time_calls(fn, reps)
        return out, checksum


class BuildWorkload(Workload):
    """Time building the graph (and compiling it, for runners that compile).

    Measured once per library (on its serial runner: the executor plays no part),
    for the runner families in ``families``.  Runners with ``max_build_nodes`` are
    measured on that many nodes instead.
    """

    kind = "build"
    ratio_phases = {"build": "build", "build+compile": "build"}  # noqa: RUF012

    def __init__(
        self,
        name: str,
        shape: str,
        size: int,
        quick_size: int,
        description: str,
        families: tuple[str, ...] = ("dagexec", "dask"),
    ) -> None:
        self.name = name
        self.shape = shape
        self._size = size
        self._quick = quick_size
        self.description = description
        self.families = families

    def applies_to(self, runner: Runner) -> bool:
        return runner.family in self.families and runner.mode == "serial"

    def size(self, runner: Runner, quick: bool) -> int:
        n = self._quick if quick else self._size
        cap = runner.max_build_nodes
        if cap is not None:
            n = min(n, cap // 10 if quick else cap)
        return n

    def make(self, runner: Runner, quick: bool) -> Dag:
        return SHAPES[self.shape](self.size(runner, quick))

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        compile_ = runner.compile
        build = runner.build
        times: dict[str, list[float]] = {"build": []}
        if compile_ is not None:
            times["compile"] = []
            times["build+compile"] = []
        for rep in range(reps + 1):  # the first is the warm-up
            built = None
            gc.collect()
            t0 = time.perf_counter()
            built = build(dag)
            t1 = time.perf_counter()
            if compile_ is not None:
                compile_(built)
            t2 = time.perf_counter()
            if rep:
                times["build"].append(t1 - t0)
                if compile_ is not None:
                    times["compile"].append(t2 - t1)
                    times["build+compile"].append(t2 - t0)
            del built
        return times, len(dag)


#: every workload by name, in table order
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        RunWorkload("chain", "chain", 10_000, 1_000, "chain of inc: each node reads the one before"),
        RunWorkload("fan", "fan", 10_000, 1_000, "one source, N independent inc children, one add of all"),
        RunWorkload(
            "layered", "layered", 10_000, 1_000, "20 layers; each node adds 1-3 nodes of the layer before"
        ),
        BuildWorkload("build", "layered", 100_000, 10_000, "build (and compile) a layered DAG, not run"),
        BuildWorkload(
            "build-chain",
            "chain",
            100_000,
            10_000,
            "build and compile a chain, not run (dagexec only: a 10,000-node dask chain takes ~10 s)",
            families=("dagexec",),
        ),
    ]
}
