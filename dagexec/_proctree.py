"""Process trees: finding the processes a trial started, and stopping them all.

A trial may start processes of its own (``subprocess.Popen``, ``os.system``, a
``dx.shell`` command).  When dagexec gives up on a trial (Ctrl-C, a worker past
its timeout, a master that died) those processes must not go on: this module finds
them and kills them, with everything they started.  It reads ``/proc`` (Linux);
where there is none it finds nothing, and stopping a tree is killing its roots.

Where a trial runs in a thread of the master (serial, threads) its processes are
children of the master like any other: which trial started one cannot be read
back, so a trial's processes are taken to be the master's children started since
the trial began (:func:`started_since`).  A trial in the master thread (serial)
is stopped by :func:`stop_started_since` as the interrupt leaves it; for worker
threads :data:`RUNNING` records, per thread, when its trial began, and the
interrupt hook :func:`stop_interrupted` uses it.

Stopping a tree (:func:`kill_trees`) first freezes it (``SIGSTOP``), so that no
process in it can start another or leave it while it is read again, then kills
every process group that a process of the tree leads (a ``dx.shell`` command's
group, which may hold processes no longer under it), then every process, with
``SIGKILL``.  The caller's own process and process group are never signalled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

__all__ = [
    "RUNNING",
    "children",
    "clock",
    "kill_trees",
    "started_since",
    "stop_interrupted",
    "stop_started_since",
]

#: thread id -> ``time.time()`` when the trial that thread runs began (threads)
RUNNING: dict[int, float] = {}

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def clock() -> float:
    """Seconds since boot: the clock of the processes' start times in ``/proc``."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _table() -> dict[int, tuple[int, int, int]]:
    """Every process: pid -> (parent pid, process group, start time in clock ticks)."""
    table: dict[int, tuple[int, int, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                # the command name may hold spaces and parentheses: fields follow its last ')'
                fields = f.read().rpartition(b")")[2].split()
            table[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[19]))
        except (OSError, IndexError, ValueError):
            continue  # gone while we read, or not ours to read
    return table


def _under(table: dict[int, tuple[int, int, int]], roots: Iterable[int]) -> set[int]:
    """``roots`` that exist, and every process below them."""
    below: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        below.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [pid for pid in roots if pid in table]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(below.get(pid, ()))
    return found


def children(pid: int) -> list[int]:
    """The children of process ``pid``."""
    return [p for p, (ppid, _, _) in _table().items() if ppid == pid]


def started_since(pid: int, since: float) -> list[int]:
    """The children of process ``pid`` started at or after ``since`` (a :func:`clock` time)."""
    first_tick = int(since * _TICKS)
    return [p for p, (ppid, _, start) in _table().items() if ppid == pid and start >= first_tick]


def kill_trees(roots: Iterable[int]) -> None:
    """Kill the processes ``roots``, everything below them, and the process groups
    any of them leads, with ``SIGKILL`` (see the module's docstring)."""
    own = os.getpid()
    own_group = os.getpgrp()
    roots = [pid for pid in roots if pid != own]
    if not os.path.isdir("/proc"):
        for pid in roots:
            _signal(pid, signal.SIGKILL)
        return
    tree: set[int] = set()
    for _ in range(3):  # frozen processes start nothing: a second look finds what a fork had under way
        table = _table()
        more = _under(table, roots) - tree - {own}
        if not more:
            break
        for pid in more:
            _signal(pid, signal.SIGSTOP)
        tree |= more
    table = _table()
    for pid in tree:
        group = table.get(pid, (0, 0, 0))[1]
        if group == pid and group != own_group:
            try:
                os.killpg(group, signal.SIGKILL)
            except OSError:
                pass
    for pid in tree:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass  # gone already, or not ours


def stop_started_since(since: float) -> None:
    """Kill the children of this process started at or after ``since`` (a
    ``time.time()``), with what they started."""
    kill_trees(started_since(os.getpid(), clock() - (time.time() - since)))


def stop_interrupted() -> None:
    """An interrupt hook: kill the processes that the trials running in this
    process's threads started (the master's children started since the oldest
    of those trials began), with what they started."""
    starts = list(RUNNING.values())
    if starts:
        RUNNING.clear()
        stop_started_since(min(starts))
