"""``build-1m``: build and compile a graph of a million nodes, timed, with its peak memory.

DESIGN §9b asks that 1,000,000 nodes build and compile in ≤ 8 s with ≤ 2 GB peak.
One repetition takes seconds and the graph's description alone (the Dag, made
before anything is measured) holds hundreds of MB, so this workload runs only
when named (``--workloads build-1m``), never in the default run.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from memory import MALLOC_ENV, check_supported, rss_peak
from runner_base import Runner
from shapes import Dag
from special_workloads import PlanWorkload

__all__ = ["BigBuildWorkload"]


class BigBuildWorkload(PlanWorkload):
    """Time building and compiling a large graph, and measure the memory it takes.

    dagexec only (its serial runner; executors play no part).  After an untimed
    warm-up, each repetition (at most ``max_reps``) builds and compiles the graph
    once, timed as ``build``, ``compile`` and ``build+compile``, and measures the
    peak resident memory of this process during it, above its resident size right
    before (phase ``peak``, bytes; :func:`memory.rss_peak`): the graph and the
    plan, both alive at the end, and whatever building them used on the way.  The
    Dag the graph is built from is made before and is not counted.  Each
    repetition's baseline is kept with its peak (``info()["memory"]``): baselines
    that stay level show that each repetition's memory went back to the system,
    so no repetition reused memory an earlier one left behind.  (tracemalloc is
    not used: it makes a million-node build many times slower.)  The
    checksum is the plan's node count.
    """

    kind = "build"
    default = False
    units = {"peak": "bytes"}  # noqa: RUF012
    main_phase = "build+compile"
    env = MALLOC_ENV
    max_reps = 2
    min_timeout_s = 1200.0

    def __init__(self, name: str, shape: str, size: int, quick_size: int, description: str) -> None:
        super().__init__(name, shape, size, quick_size, description)
        self._info: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        return self._info

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        check_supported()
        compile_ = runner.compile
        if compile_ is None:
            raise TypeError(f"{runner.name} has no compile step")
        source = runner.source(dag)
        stamps: list[float] = []
        nodes: list[int] = []

        def build_and_compile() -> None:
            t0 = time.perf_counter()
            built = runner.build(source)
            t1 = time.perf_counter()
            plan = compile_(built)
            t2 = time.perf_counter()
            stamps[:] = (t0, t1, t2)
            nodes.append(len(plan))

        figures: dict[str, list[float]] = {"build": [], "compile": [], "build+compile": [], "peak": []}
        memory = []
        for rep in range(min(reps, self.max_reps) + 1):  # the first is the warm-up
            gc.collect()
            _, procs = rss_peak(build_and_compile)
            main = procs[0]
            memory.append({"warm_up": rep == 0, **main})
            if rep:
                t0, t1, t2 = stamps
                figures["build"].append(t1 - t0)
                figures["compile"].append(t2 - t1)
                figures["build+compile"].append(t2 - t0)
                figures["peak"].append(main["peak_bytes"])
        if set(nodes) != {len(dag)}:
            raise RuntimeError(f"plans of {sorted(set(nodes))} nodes from a graph of {len(dag)}")
        self._info = {
            "environment": {k: os.environ.get(k) for k in self.env},
            "memory": memory,  # every repetition's baseline and peak above it, warm-up included
        }
        return figures, len(dag)
