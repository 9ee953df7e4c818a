"""The tasks every workload is made of.

They are unannotated, so dagexec compiles no type checks for them.  The plain
loop and dask call the undecorated functions (``inc.__wrapped__``): the very
function objects dagexec calls.

``inc`` and ``add`` are no-ops, for measuring per-task overhead.  ``spin`` is
pure-Python CPU work whose length is set by its loop count; :func:`calibrate`
finds the count that makes one call last a given time on this machine.  ``nap``
sleeps, holding no core and releasing the GIL: tasks that wait (on I/O, say).
``make``, ``link`` and ``check`` make a chain of big values, for measuring peak
memory: each ``link`` returns a fresh copy of its argument, so while it runs the
argument and its copy are both alive.
"""

from __future__ import annotations

import statistics
import time

import dagexec as dx


@dx.task
def inc(x):
    return x + 1


@dx.task
def add(*xs):
    return sum(xs)


@dx.task
def span(n):
    return list(range(n))


@dx.task
def total(xs):
    return sum(xs)


@dx.task
def spin(x, loops):
    # CPython does not optimise the loop away, so its result can be dropped
    acc = 0
    for k in range(loops):
        acc ^= k
    return x + 1


@dx.task
def nap(x, seconds):
    time.sleep(seconds)
    return x + 1


@dx.task
def make(nbytes):
    return bytearray(nbytes)


@dx.task
def link(prev):
    # a copy, not an in-place change: two links are alive while this runs
    out = bytearray(prev)
    out[0] = (out[0] + 1) % 256
    return out


@dx.task
def check(last):
    return len(last) + last[0]


def calibrate(target_s: float, probe_loops: int = 200_000, probes: int = 5) -> tuple[int, float]:
    """``(loops, seconds)``: the loop count that makes ``spin`` last ``target_s`` here,
    and the median time of a few calls with that count."""
    fn = spin.__wrapped__
    fn(0, probe_loops)  # warm up
    per_loop = []
    for _ in range(probes):
        t0 = time.perf_counter()
        fn(0, probe_loops)
        per_loop.append((time.perf_counter() - t0) / probe_loops)
    loops = max(1, round(target_s / statistics.median(per_loop)))
    for refine in (True, False):  # correct once with calls of the full length
        took = []
        for _ in range(probes):
            t0 = time.perf_counter()
            fn(0, loops)
            took.append(time.perf_counter() - t0)
        if refine:
            loops = max(1, round(loops * target_s / statistics.median(took)))
    return loops, statistics.median(took)
