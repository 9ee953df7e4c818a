"""Workloads: a Dag shape, its sizes, and how a runner is measured on it.

A workload's :meth:`~Workload.measure` runs in the child process and returns
``{phase: [seconds per timed repetition]}`` plus the checksum.  Every phase gets
one untimed warm-up call first; ``gc.collect()`` runs before every call (the
collector stays enabled while timing).

To add a workload, add an instance to ``WORKLOADS``: a :class:`RunWorkload` for
"time running an already built graph", a :class:`BuildWorkload` for "time
building it", a :class:`CpuWorkload` for "time running tasks of known length
against the ideal", a :class:`SleepWorkload` for "time tasks that wait, against
the ideal", or a new :class:`Workload` subclass (``workload_base.py``) with its own
``measure``: ``special_workloads.py`` holds save, cache, map and memory,
``bigbuild.py`` the build of a million nodes with its peak memory.  A workload whose
figures are not seconds sets ``unit`` (``MemoryWorkload``: bytes), or ``units``
for the phases that differ (``build-1m``: its peak, in bytes).  A workload with
``default = False`` runs only when named (``--workloads build-1m``).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from bigbuild import BigBuildWorkload
from runners import Runner
from shapes import SHAPES, Dag, independent, sleepers
from special_workloads import CacheWorkload, MapWorkload, MemoryWorkload, SaveWorkload
from streams import StreamWorkload
from tasks import calibrate
from workload_base import Workload, time_calls

__all__ = [
    "WORKLOADS",
    "BigBuildWorkload",
    "BuildWorkload",
    "CacheWorkload",
    "CpuWorkload",
    "MapWorkload",
    "MemoryWorkload",
    "RunWorkload",
    "SaveWorkload",
    "SleepWorkload",
    "StreamWorkload",
    "Workload",
    "time_calls",
]


class RunWorkload(Workload):
    """Time running a graph that is already built (and compiled).

    Measured on the runners whose ``mode`` is in ``modes``, and on the plain loop,
    which every run workload needs as its floor and its checksum.
    """

    kind = "run"
    ratio_phases = {"run": "run"}  # noqa: RUF012

    def __init__(
        self,
        name: str,
        shape: str,
        size: int,
        quick_size: int,
        description: str,
        modes: tuple[str, ...] = ("serial", "threads", "threads-2"),
    ) -> None:
        super().__init__(name, shape, size, quick_size, description)
        self.modes = modes

    def applies_to(self, runner: Runner) -> bool:
        return runner.family == "plain" or runner.mode in self.modes

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


class ParallelWorkload(RunWorkload):
    """Independent tasks of ``task_s`` seconds each on ``workers`` at once: the figure
    to read is ÷ideal, the median against ``size * task_s / workers``, the time the
    workers need with no overhead at all.  No per-task overhead column: a parallel run
    is not compared to a loop."""

    overhead = False
    ratio_phases = {}  # noqa: RUF012

    def __init__(
        self,
        name: str,
        shape: str,
        size: int,
        quick_size: int,
        task_s: float,
        workers: int,
        description: str,
        modes: tuple[str, ...],
    ) -> None:
        super().__init__(name, shape, size, quick_size, description, modes)
        self.task_s = task_s
        self.workers = workers

    def ideal_s(self, nodes: int) -> float | None:
        return nodes * self.task_s / self.workers


class CpuWorkload(ParallelWorkload):
    """Time ``size`` independent tasks of ``task_s`` seconds of pure-Python CPU work.

    Each process (each pair runs in its own) first calibrates ``spin``'s loop count
    to ``task_s`` seconds; the count and the time it measured are kept in the
    results.  The figure to read is ÷ideal: the median against
    ``size * task_s / workers``, the time ``workers`` cores need with no overhead at
    all.  The plain loop runs on one core, so it sits near ``workers`` times the ideal.
    """

    def __init__(
        self,
        name: str,
        size: int,
        quick_size: int,
        task_s: float,
        workers: int,
        description: str,
        modes: tuple[str, ...] = ("processes",),
    ) -> None:
        super().__init__(name, "independent", size, quick_size, task_s, workers, description, modes)
        self._info: dict[str, Any] = {}

    def make(self, runner: Runner, quick: bool) -> Dag:
        loops, took = calibrate(self.task_s)
        self._info = {
            "loops": loops,
            "task_ms_target": self.task_s * 1e3,
            "task_ms_calibrated": took * 1e3,
            "ideal_workers": self.workers,
        }
        return independent(self.size(runner, quick), loops)

    def info(self) -> dict[str, Any]:
        return self._info


class SleepWorkload(ParallelWorkload):
    """Time ``size`` independent tasks that each sleep ``task_s`` seconds.

    A sleeping task holds no core, so ``workers`` threads run ``workers`` of them at
    once: the figure to read is ÷ideal, the median against ``size * task_s /
    workers``.  It shows whether an executor that may run tiny trials in its own
    thread still hands waiting ones to its workers.  The plain loop sleeps one task
    after the other, ``workers`` times the ideal.
    """

    def __init__(
        self,
        name: str,
        size: int,
        task_s: float,
        workers: int,
        description: str,
        modes: tuple[str, ...] = ("threads",),
    ) -> None:
        super().__init__(name, "sleepers", size, size, task_s, workers, description, modes)

    def make(self, runner: Runner, quick: bool) -> Dag:
        return sleepers(self.size(runner, quick), self.task_s)

    def info(self) -> dict[str, Any]:
        return {"task_ms": self.task_s * 1e3, "ideal_workers": self.workers}


class BuildWorkload(Workload):
    """Time building the graph (and compiling it, for runners that compile).

    Measured once per library (on its serial runner: the executor plays no part),
    for the runner families in ``families``.  Runners with ``max_build_nodes`` are
    measured on that many nodes instead, and runners with ``max_build_reps`` with
    at most that many timed repetitions.
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
        families: tuple[str, ...] = ("dagexec", "dask", "hamilton"),
    ) -> None:
        super().__init__(name, shape, size, quick_size, description)
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
        source = runner.source(dag)  # untimed: what the user writes
        times: dict[str, list[float]] = {"build": []}
        if compile_ is not None:
            times["compile"] = []
            times["build+compile"] = []
        if runner.max_build_reps is not None:
            reps = min(reps, runner.max_build_reps)
        for rep in range(reps + 1):  # the first is the warm-up
            built = None
            gc.collect()
            t0 = time.perf_counter()
            built = build(source)
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
        CpuWorkload(
            "cpu200",
            200,
            20,
            0.020,
            2,
            "independent tasks of ~20 ms of pure-Python CPU work, on 2 processes (or a 2-worker cluster)",
            modes=("processes", "distributed"),
        ),
        RunWorkload(
            "fan-1k",
            "fan",
            1_000,
            200,
            "one source, 1,000 independent inc children, one add of all: per-task overhead on processes and a cluster",
            modes=("processes", "distributed", "ray"),
        ),
        RunWorkload(
            "chain-1k",
            "chain",
            1_000,
            200,
            "chain of 1,000 inc: per-task overhead on processes and a cluster",
            modes=("processes", "distributed", "ray"),
        ),
        RunWorkload(
            "layered-1k",
            "layered",
            1_000,
            200,
            "20 layers of 50 nodes, as layered: per-task overhead on processes and a cluster",
            modes=("processes", "distributed", "ray"),
        ),
        SleepWorkload("sleep100", 100, 0.010, 4, "100 independent tasks that each sleep 10 ms, on 4 threads"),
        BuildWorkload("build", "layered", 100_000, 10_000, "build (and compile) a layered DAG, not run"),
        BuildWorkload(
            "build-chain",
            "chain",
            100_000,
            10_000,
            "build and compile a chain, not run (dagexec only: a 10,000-node dask chain takes ~10 s)",
            families=("dagexec",),
        ),
        SaveWorkload(
            "save", "layered", 10_000, 1_000, "save a compiled layered plan to a file and load it back"
        ),
        MapWorkload(
            "map",
            "independent",
            10_000,
            1_000,
            "inc over 10,000 items known at run time (a map), then their sum",
        ),
        CacheWorkload(
            "cache",
            "layered",
            10_000,
            1_000,
            "a layered plan: cache keys, a run, a run filling an empty cache, a run all cached",
        ),
        MemoryWorkload(
            "memory",
            50,
            10,
            20_000_000,
            "peak memory of a chain of 20 MB values, each a copy of the one before",
        ),
        StreamWorkload(
            "stream",
            "stream",
            1_000_000,
            100_000,
            "1,000,000 records of ~100 bytes through a three-stage stream (producer, 2 stages, a fed reader)",
        ),
        BigBuildWorkload(
            "build-1m",
            "layered",
            1_000_000,
            100_000,
            "build and compile a layered DAG of 1,000,000 nodes, not run, and its peak memory (on request)",
        ),
    ]
}
