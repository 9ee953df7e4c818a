"""Peak memory of one call, above what was in use right before it (Linux only).

Two measures, taken in separate calls:

* :func:`rss_peak`: the kernel's own peak resident set size (``VmHWM`` in
  ``/proc/PID/status``) of this process and of every process descending from it
  (worker processes, and helpers such as a resource tracker).  Right before the
  call each one's peak is reset (``5`` written to ``/proc/PID/clear_refs``) and its
  resident size read; after it, each one's peak minus that baseline is its figure.
  That is exact for each process and misses nothing: no sampling.  (A sampling
  thread in this process would need the GIL, which copying 20 MB holds for
  milliseconds: the very moment of the peak.)  The sum over the processes is
  exact for one process and, for several, an upper bound of their peak together,
  since their own peaks may come at different moments.
* :func:`traced_peak`: tracemalloc's peak during the call, in this process only
  (every thread, no worker processes).  Exact for what is allocated through
  Python's allocators, which is every object's memory, bytearray buffers included.

Resident memory follows the live values only if freed big blocks go back to the
system.  glibc's malloc gives blocks of 128 KiB and more their own mapping, which
it unmaps when they are freed, but after the first such block is freed it raises
that threshold (up to 32 MiB): later 20 MB blocks come from its heap, and freed
ones may stay there, for the next run to reuse without its resident size growing.
``MALLOC_ENV`` fixes the threshold at its default value, which turns that
adjustment off; ``run.py`` sets it for the memory workload's process, and the
worker processes inherit it.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from typing import Any

import psutil

__all__ = ["MALLOC_ENV", "check_supported", "rss_peak", "traced_peak"]

#: glibc: a fixed mmap threshold (its default value), so big blocks are unmapped when freed
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _status(pid: int) -> tuple[int, int]:
    """``(resident bytes, peak resident bytes)`` of process ``pid``.

    Raises:
        OSError: when the process has exited (or is a zombie, which has no memory).
    """
    with open(f"/proc/{pid}/status", "rb") as f:
        data = f.read()
    rss = hwm = -1
    for line in data.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith(b"VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    if rss < 0 or hwm < 0:
        raise ProcessLookupError(pid)
    return rss, hwm


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def _tree() -> list[int]:
    """This process's id, then its descendants'."""
    return [os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True))]


def check_supported() -> None:
    """Raise ``RuntimeError`` unless this system lets :func:`rss_peak` reset and read peaks."""
    try:
        _reset_peak(os.getpid())
        _status(os.getpid())
    except OSError as exc:
        raise RuntimeError(
            f"the memory workload needs Linux's /proc/PID/status and /proc/PID/clear_refs: {exc}"
        ) from exc


def rss_peak(fn: Callable[[], Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Call ``fn``; return its value and, for each process, its peak above its baseline.

    Each process is ``{"pid", "main", "baseline_bytes", "peak_bytes"}``, this process
    first.  A process that starts during the call counts whole (baseline 0); one that
    exits during it cannot be read and is listed with ``peak_bytes`` None.
    """
    base: dict[int, int] = {}
    for pid in _tree():
        try:
            _reset_peak(pid)
            base[pid] = _status(pid)[0]
        except OSError:
            continue  # exited since it was listed
    value = fn()
    procs = []
    main = os.getpid()
    for pid in dict.fromkeys([*base, *_tree()]):
        try:
            peak: int | None = _status(pid)[1] - base.get(pid, 0)
        except OSError:
            peak = None
        procs.append({"pid": pid, "main": pid == main, "baseline_bytes": base.get(pid), "peak_bytes": peak})
    return value, procs


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Call ``fn`` with tracemalloc on; return its value and the peak bytes traced.

    Only blocks allocated after tracing starts are traced, so the peak is above
    what was allocated before the call.
    """
    tracemalloc.start()
    try:
        value = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return value, peak
