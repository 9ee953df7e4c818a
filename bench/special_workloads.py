"""Workloads with a measuring loop of their own: save, cache, map, memory.

Each measures something other than one timed call of a runner's phases: saving
and loading a plan, the cache's costs, a map over items known at run time, peak
memory.  See workloads.py for the registry and bench/README.md for what each one
times.
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
from workload_base import Workload, time_calls

__all__ = ["CacheWorkload", "MapWorkload", "MemoryWorkload", "PlanWorkload", "SaveWorkload"]


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
        families, modes = ("plain", "dagexec", "dask"), ("serial", "threads", "processes")
        return runner.family in families and runner.mode in modes

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
