"""Workloads: a Dag shape, its sizes, and how a runner is measured on it.

A workload's :meth:`~Workload.measure` runs in the child process and returns
``{phase: [seconds per timed repetition]}`` plus the checksum.  Every phase gets
one untimed warm-up call first; ``gc.collect()`` runs before every call (the
collector stays enabled while timing).

To add a workload, add an instance to ``WORKLOADS``: a :class:`RunWorkload` for
"time running an already built graph", a :class:`BuildWorkload` for "time
building it", a :class:`CpuWorkload` for "time running tasks of known length
against the ideal", or a new :class:`Workload` subclass with its own ``measure``
(:class:`SaveWorkload` and :class:`MemoryWorkload` are two).  A workload whose
figures are not seconds sets ``unit`` (``MemoryWorkload``: bytes).
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from memory import MALLOC_ENV, check_supported, rss_peak, traced_peak
from runners import DagexecRunner, DaskProcessesRunner, DaskRunner, PlainRunner, Runner
from shapes import SHAPES, Dag, bigchain, independent
from tasks import calibrate

__all__ = [
    "WORKLOADS",
    "BuildWorkload",
    "CpuWorkload",
    "MemoryWorkload",
    "RunWorkload",
    "SaveWorkload",
    "Workload",
    "time_calls",
]


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
    #: run workloads: whether (median - plain loop's median) / nodes is a per-task overhead
    overhead = True
    #: what the figures of ``measure`` are: "s" (seconds) or "bytes"
    unit = "s"
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
        modes: tuple[str, ...] = ("serial", "threads"),
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


class CpuWorkload(RunWorkload):
    """Time ``size`` independent tasks of ``task_s`` seconds of pure-Python CPU work.

    Each process (each pair runs in its own) first calibrates ``spin``'s loop count
    to ``task_s`` seconds; the count and the time it measured are kept in the
    results.  The figure to read is ÷ideal: the median against
    ``size * task_s / workers``, the time ``workers`` cores need with no overhead at
    all.  The plain loop runs on one core, so it sits near ``workers`` times the ideal.
    There is no per-task overhead column: a parallel run is not compared to a loop.
    """

    overhead = False
    ratio_phases = {}  # noqa: RUF012

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
        super().__init__(name, "independent", size, quick_size, description, modes)
        self.task_s = task_s
        self.workers = workers
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

    def ideal_s(self, nodes: int) -> float | None:
        return nodes * self.task_s / self.workers


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


class PlanWorkload(Workload):
    """A workload on a compiled dagexec plan of a shape: dagexec's serial runner only."""

    def applies_to(self, runner: Runner) -> bool:
        return runner.family == "dagexec" and runner.mode == "serial"

    def size(self, runner: Runner, quick: bool) -> int:
        return self._quick if quick else self._size

    def make(self, runner: Runner, quick: bool) -> Dag:
        return SHAPES[self.shape](self.size(runner, quick))


class SaveWorkload(PlanWorkload):
    """Time ``plan.save(path)`` and ``dagexec.load(path)`` of a compiled plan.

    The graph is built and compiled untimed; each repetition saves the plan to a
    file in a temporary directory (removed at the end) and loads it back, timed as
    ``save``, ``load`` and ``save+load``.  A loaded plan must have as many nodes as
    the saved one; that count is the checksum.  dagexec only (on its serial runner).
    """

    kind = "save"

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        import dagexec

        plan = runner.prepare(dag)
        times: dict[str, list[float]] = {"save": [], "load": [], "save+load": []}
        with tempfile.TemporaryDirectory(prefix="dagexec-bench-") as tmp:
            path = os.path.join(tmp, "plan.dagx")
            for rep in range(reps + 1):  # the first is the warm-up
                gc.collect()
                t0 = time.perf_counter()
                plan.save(path)
                t1 = time.perf_counter()
                loaded = dagexec.load(path)
                t2 = time.perf_counter()
                if len(loaded) != len(plan):
                    raise RuntimeError(f"loaded plan has {len(loaded)} nodes, saved one {len(plan)}")
                del loaded
                os.remove(path)
                if rep:
                    times["save"].append(t1 - t0)
                    times["load"].append(t2 - t1)
                    times["save+load"].append(t2 - t0)
        return times, len(plan)


class CacheWorkload(PlanWorkload):
    """The cache's costs on a compiled plan: keys, and runs with and without a cache.

    Phases, each repetition on the serial executor: ``keys`` (every node's cache key,
    ``plan.cache_keys()``: code digests are memoized per process, so this is the cost
    in a process that already hashed the functions, as every run after the first);
    ``run`` (no cache); ``run, filling`` (a run with an empty cache folder: every
    value written); ``run, all cached`` (the same run again: every node cached, the
    sinks' values loaded).  The checksum is the sum of the sinks, the same for all
    three runs.  dagexec only.
    """

    kind = "cache"
    main_phase = "run"

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        plan = runner.prepare(dag)
        times: dict[str, list[float]] = {"keys": [], "run": [], "run, filling": [], "run, all cached": []}
        sums = set()
        for rep in range(reps + 1):  # the first is the warm-up
            with tempfile.TemporaryDirectory(prefix="dagexec-bench-cache-") as tmp:
                gc.collect()
                t0 = time.perf_counter()
                plan.cache_keys()
                t1 = time.perf_counter()
                plain = plan.run(executor="serial")
                t2 = time.perf_counter()
                filled = plan.run(executor="serial", cache=tmp)
                t3 = time.perf_counter()
                cached = plan.run(executor="serial", cache=tmp)
                t4 = time.perf_counter()
            if set(cached.states.values()) != {"cached"}:
                raise RuntimeError("the second run with a cache ran nodes")
            sums |= {sum(r.outputs.values()) for r in (plain, filled, cached)}
            if rep:
                for phase, t in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    times[phase].append(t)
        if len(sums) != 1:
            raise RuntimeError(f"runs with and without a cache disagree: {sorted(sums)}")
        return times, sums.pop()


class MapWorkload(Workload):
    """``inc`` over a list of ``size`` ints known only at run time, then their sum.

    dagexec: ``total(inc.map(span(n)))``, one trial per item; on loky three phases:
    ``run`` (tiny items chunked by themselves), ``run, chunksize=1`` (no chunks) and
    ``run, chunksize=100``.  dask: ``dask.bag.from_sequence(range(n)).map(inc).sum()``
    on the runner's scheduler (its default partitions).  plain: ``sum(inc(x) for x in
    range(n))``.  µs/task is per item, over the plain loop.
    """

    kind = "run"
    ratio_phases = {"run": "run"}  # noqa: RUF012

    def applies_to(self, runner: Runner) -> bool:
        return runner.name in (
            "plain", "dagexec-serial", "dagexec-threads", "dagexec-loky", "dask-sync", "dask-threads",
            "dask-processes",
        )  # fmt: skip

    def size(self, runner: Runner, quick: bool) -> int:
        return self._quick if quick else self._size

    def make(self, runner: Runner, quick: bool) -> Dag:
        return independent(self.size(runner, quick), 0)  # only its length is used

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        from tasks import inc, span, total

        n = len(dag)
        phases: dict[str, Callable[[], Any]]
        if runner.family == "plain":
            fn = inc.__wrapped__
            phases = {"run": lambda: sum(fn(x) for x in range(n))}
        elif runner.family == "dagexec":
            import dagexec as dx

            assert isinstance(runner, DagexecRunner)
            ex, workers = runner.executor, runner.max_workers

            def plan(chunksize: int | None) -> Any:
                with dx.Graph("map") as g:
                    task = inc.options(chunksize=chunksize) if chunksize else inc
                    g.output(total(task.map(span(n))), name="total")
                return g.compile()

            def timed(p: Any) -> Callable[[], Any]:
                return lambda: p.run(executor=ex, max_workers=workers).output

            phases = {"run": timed(plan(None))}
            if ex == "loky":
                phases["run, chunksize=1"] = timed(plan(1))
                phases["run, chunksize=100"] = timed(plan(100))
        else:
            import dask
            import dask.bag as db

            assert isinstance(runner, DaskRunner)
            kw: dict[str, Any] = {"scheduler": runner.scheduler}
            if runner.num_workers is not None:
                kw["num_workers"] = runner.num_workers
            if isinstance(runner, DaskProcessesRunner):
                kw["pool"] = runner.prepare(dag)[1]["pool"]
            fn = inc.__wrapped__
            bag = db.from_sequence(range(n)).map(fn).sum()
            phases = {"run": lambda: dask.compute(bag, **kw)[0]}
        out: dict[str, list[float]] = {}
        checksum = None
        for phase, call in phases.items():
            out[phase], checksum = time_calls(call, reps)
        return out, checksum


class MemoryWorkload(Workload):
    """Peak memory of running a chain of big values, above the memory in use before.

    The chain (shape ``bigchain``): ``make`` a bytearray of ``nbytes``, ``link``
    copies of it, each from the one before, then ``check`` the last one (an int:
    its length plus its first byte, the checksum).  A run that frees each value
    once the next link has been made holds two values at its peak (DESIGN §5).
    The plain loop is ``x = link(x)``, which keeps only the current value
    (:meth:`runners.PlainRunner.chain_loop`).

    After an untimed warm-up run (which starts worker processes), each repetition
    measures, phase ``peak``, the peak resident memory above each process's
    baseline taken right before the run, summed over this process and its
    descendants (:func:`memory.rss_peak`); for process runners ``peak, main
    process`` is this process's share alone.  Then as many repetitions measure
    ``tracemalloc``, the peak traced in this process (:func:`memory.traced_peak`).
    The figures are bytes.  At most ``max_reps`` repetitions per phase: the peaks
    differ by well under 1% between repetitions, and one run through dask's
    process scheduler takes seconds.
    """

    kind = "memory"
    unit = "bytes"

    def applies_to(self, runner: Runner) -> bool:
        # not on a cluster: dask's workers keep and spill values by their own memory rules
        return runner.mode != "distributed"

    main_phase = "peak"
    env = MALLOC_ENV
    max_reps = 3

    def __init__(self, name: str, values: int, quick_values: int, nbytes: int, description: str) -> None:
        super().__init__(name, "bigchain", values, quick_values, description)
        self.nbytes = nbytes
        self._info: dict[str, Any] = {}

    def size(self, runner: Runner, quick: bool) -> int:
        return self._quick if quick else self._size

    def make(self, runner: Runner, quick: bool) -> Dag:
        return bigchain(self.size(runner, quick), self.nbytes)

    def info(self) -> dict[str, Any]:
        return self._info

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        check_supported()
        reps = min(reps, self.max_reps)
        if isinstance(runner, PlainRunner):
            fn = runner.chain_loop(dag)
        else:
            fn = runner.phases(runner.prepare(dag))["run"]
        gc.collect()
        checksum = fn()  # warm-up: worker processes start here, before any baseline
        peaks: dict[str, list[float]] = {"peak": []}
        if runner.mode == "processes":
            peaks["peak, main process"] = []
        processes = []
        for _ in range(reps):
            gc.collect()
            checksum, procs = rss_peak(fn)
            peaks["peak"].append(sum(p["peak_bytes"] or 0 for p in procs))
            if "peak, main process" in peaks:
                peaks["peak, main process"].append(procs[0]["peak_bytes"])
            processes.append(procs)
        peaks["tracemalloc"] = []
        for _ in range(reps):
            gc.collect()
            checksum, traced = traced_peak(fn)
            peaks["tracemalloc"].append(traced)
        self._info = {
            "value_bytes": self.nbytes,
            "values": len(dag) - 1,
            "environment": {k: os.environ.get(k) for k in self.env},
            "processes": processes,
        }
        return peaks, checksum


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
            "cpu200", 200, 20, 0.020, 2, "independent tasks of ~20 ms of pure-Python CPU work, on 2 processes"
        ),
        RunWorkload(
            "fan-1k",
            "fan",
            1_000,
            200,
            "one source, 1,000 independent inc children, one add of all: per-task overhead on processes and a cluster",
            modes=("processes", "distributed"),
        ),
        RunWorkload(
            "chain-1k",
            "chain",
            1_000,
            200,
            "chain of 1,000 inc: per-task overhead on processes and a cluster",
            modes=("processes", "distributed"),
        ),
        RunWorkload(
            "layered-1k",
            "layered",
            1_000,
            200,
            "20 layers of 50 nodes, as layered: per-task overhead on processes and a cluster",
            modes=("processes", "distributed"),
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
    ]
}
