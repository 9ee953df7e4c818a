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

A master killed outright (``SIGKILL``, the OOM killer) runs none of this: the
processes its serial or threads trials started would go on.  So while a run on
those executors lasts (:func:`watch_children` at its first trial,
:func:`unwatch_children` at its end), a thread of the master looks for the
master's new children every ``WATCH_S`` seconds, and lists each with a *guard*,
started at the first one found: a ``/bin/sh`` in a session of its own, with an
empty environment, whose stdin is a pipe only the master holds::

    master                                guard (sh), reading its stdin
    the watching thread, every WATCH_S:
      a new child ------------------->    "+ pid start": listed
      a listed child gone ----------->    "- pid start": forgotten
    the run ends ------------------->     "q": stands down and exits
    the master dies (the pipe's end)      each listed pid whose start time is still
                                          the one listed (not a pid used again):
                                          frozen with all below it, then SIGKILL to
                                          the groups they lead and to every one

A child is listed when it started since the oldest watching run's first trial
began and is not one of the master's own helpers, told by their command lines
(``_HELPERS``: ``dx.shell``'s guards, this guard, loky's workers, the resource
trackers of loky and ``multiprocessing``, which end by themselves or must outlive
the master to clean up).  A child caught between its fork and its exec still shows
the master's command line: it is listed, and forgotten at a later look if it turns
out to be a helper.  ``dx.shell`` commands are listed: the guard kills their group,
as their own guard does.  A child started less than ``WATCH_S`` before the master
died may not be listed yet.  A process forked from the master (``os.fork``) does not
keep the guard's pipe open (:func:`_after_fork_in_child`).

A look lists ``/proc`` and reads the ``stat`` of the pids it has not seen before
(all of them every ``_REREAD``-th look).  Runs whose trials start no process start no
guard, and cost a look every ``WATCH_S`` while they last; the thread outlives a run
by ``IDLE_S`` seconds, so runs that follow one another do not start one each.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from typing import Any

__all__ = [
    "RUNNING",
    "children",
    "clock",
    "guarded",
    "kill_trees",
    "started_since",
    "stop_interrupted",
    "stop_started_since",
    "unwatch_children",
    "watch_children",
]

logger = logging.getLogger("dagexec.processes")

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
    guard = _WATCH.guard.pid if _WATCH.guard is not None else -1  # the run's guard is not a trial's
    return [
        p for p, (ppid, _, start) in _table().items() if ppid == pid and start >= first_tick and p != guard
    ]


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


# -- the watch over a master's children while serial and threads runs last ----------------

#: seconds between two looks for new children of the master while a run watches them
WATCH_S = 0.25
#: seconds the watching thread waits for the next run before it ends
IDLE_S = 5.0
# a look reads the /proc/<pid>/stat of the pids it has not seen; every _REREAD-th, of all
_REREAD = 8

# command lines of the master's own helpers, never a trial's (see the module's docstring)
_HELPERS = (
    b"dagexec-guard",
    b"dagexec-childguard",
    b"loky.backend.popen_loky_posix",
    b"resource_tracker import main",
)

# the guard: lines "+ pid start" and "- pid start" list and forget a child; "q" (the run
# ended) or any other line: exit.  At the end of the pipe (the master died): every listed
# pid whose start time is still the listed one, and all below it, are frozen (a pass
# over /proc finds the processes whose parent is frozen, until one finds none), then
# the groups they lead and they themselves get SIGKILL.  Fields of /proc/<pid>/stat
# follow the command name's last ") ": $2 the parent, $3 the group, ${20} the start.
_GUARD = r"""
list=' '
while read -r op pid start; do
  case $op in
    +) list="$list$pid:$start " ;;
    -) case $list in *" $pid:$start "*) list="${list%%" $pid:$start "*} ${list#*" $pid:$start "}" ;; esac ;;
    *) exit 0 ;;
  esac
done
tree=' '
for e in $list; do
  pid=${e%%:*}
  read -r line < "/proc/$pid/stat" || continue
  set -- ${line##*) }
  [ "${20}" = "${e#*:}" ] || continue
  kill -s STOP "$pid"; tree="$tree$pid "
done
[ "$tree" = ' ' ] && exit 0
n=0
while [ "$n" -lt 32 ]; do
  n=$((n + 1)); more=
  for f in /proc/[0-9]*/stat; do
    read -r line < "$f" || continue
    set -- ${line##*) }
    case $tree in *" $2 "*) ;; *) continue ;; esac
    pid=${f#/proc/}; pid=${pid%/stat}
    case $tree in *" $pid "*) continue ;; esac
    kill -s STOP "$pid"; tree="$tree$pid "; more=1
  done
  [ -n "$more" ] || break
done
for pid in $tree; do
  read -r line < "/proc/$pid/stat" || continue
  set -- ${line##*) }
  [ "$3" = "$pid" ] && kill -s KILL -- "-$pid"
done
for pid in $tree; do kill -s KILL "$pid"; done
"""


def watch_children() -> float:
    """A run on serial or threads begins its first trial: until
    :func:`unwatch_children`, the children this process starts are listed with a
    guard that kills them should this process die.  Returns the token to give back."""
    since = clock()
    watch = _WATCH
    if not _HAS_PROC:
        return since
    with watch.cond:
        watch.sinces.append(since)
        if watch.thread is None:
            watch.thread = threading.Thread(target=watch.loop, name="dagexec-childwatch", daemon=True)
            watch.thread.start()
        elif watch.idle:
            watch.cond.notify()  # the thread waits for a run: this one
    return since


def guarded(pid: int) -> bool:
    """True once the guard of this process's watching runs has been told of its child ``pid``."""
    watch = _WATCH
    with watch.cond:
        return pid in watch.listed and watch.guard is not None


def unwatch_children(token: float) -> None:
    """The run that :func:`watch_children` returned ``token`` to ended: once no run
    watches, the guard stands down (it kills nothing) and is reaped."""
    watch = _WATCH
    with watch.cond:
        try:
            watch.sinces.remove(token)
        except ValueError:
            return  # given in a process forked since: its watch is not this one's
        if not watch.sinces:
            watch.stand_down()


def _read(path: str, size: int) -> bytes:
    """The first ``size`` bytes of ``path``; b"" when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.read(fd, size)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _parent_and_start(pid: int) -> tuple[int, int]:
    """(parent pid, start time in clock ticks) of ``pid``; (-1, -1) when unreadable."""
    fields = _read(f"/proc/{pid}/stat", 1024).rpartition(b")")[2].split()
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return -1, -1


def _command_line(pid: int) -> bytes:
    return _read(f"/proc/{pid}/cmdline", 4096)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


class _Watch:
    """This process's watch over its children while runs on serial or threads last."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())  # guards every field below
        self.sinces: list[float] = []  # the first trial's clock() of each watching run
        self.thread: threading.Thread | None = None  # the watching thread, while it lives
        self.idle = False  # True while the thread waits for a run (it is told of one)
        self.guard: Any = None  # the guard (a subprocess.Popen), once a child was found
        self.pipe = -1  # the write end of the guard's stdin
        self.failed = False  # no guard could start: not tried again until the runs end
        self.listed: dict[int, int] = {}  # pid -> start tick: told to the guard
        self.unsure: set[int] = set()  # listed while they showed this process's command line
        self.helpers: set[int] = set()  # children that are this process's helpers
        self.known: dict[int, tuple[int, int]] = {}  # pid -> (parent, start tick), read once
        self.own = b""  # this process's command line: a child's before it execs
        self.looks = 0  # looks so far: every _REREAD-th reads every process afresh

    def loop(self) -> None:
        """Look every ``WATCH_S`` while a run watches; end after ``IDLE_S`` without one."""
        with self.cond:
            while True:
                if not self.sinces:
                    self.known.clear()  # read afresh when the next run comes
                    self.idle = True
                    self.cond.wait(IDLE_S)
                    self.idle = False
                    if not self.sinces:
                        self.thread = None
                        return
                self.cond.wait(WATCH_S)  # never told: runs that come and go do not hasten a look
                if self.sinces:
                    try:
                        self.look()
                    except Exception:  # a watch that fails must not end the thread
                        logger.warning("looking for this process's children failed", exc_info=True)

    def look(self) -> None:
        """Tell the guard of the new children of this process, and of those gone."""
        try:
            entries = os.listdir("/proc")
        except OSError:
            return
        self.looks += 1
        if self.looks % _REREAD == 0:
            self.known.clear()  # a pid used again between two looks is read afresh
        known = self.known
        alive: set[int] = set()
        for entry in entries:
            if entry.isdigit():
                pid = int(entry)
                alive.add(pid)
                if pid not in known:
                    known[pid] = _parent_and_start(pid)
        for pid in [p for p in known if p not in alive]:
            del known[pid]
        self.helpers &= alive
        lines = [self.forget(pid) for pid in [p for p in self.listed if p not in alive]]
        lines += [self.forget(pid) for pid in self.resolve_unsure()]
        lines += self.list_new(known)
        if lines:
            self.tell(lines)

    def forget(self, pid: int) -> bytes:
        self.unsure.discard(pid)
        return b"- %d %d\n" % (pid, self.listed.pop(pid))

    def resolve_unsure(self) -> list[int]:
        """Listed children that have since shown themselves helpers (caught between
        their fork and their exec)."""
        helpers = []
        for pid in list(self.unsure):
            command = _command_line(pid)
            if command != self.own:
                self.unsure.discard(pid)
                if any(mark in command for mark in _HELPERS):
                    helpers.append(pid)
                    self.helpers.add(pid)
        return helpers

    def list_new(self, known: dict[int, tuple[int, int]]) -> list[bytes]:
        master = os.getpid()
        first = int(min(self.sinces) * _TICKS)
        guard = self.guard.pid if self.guard is not None else -1
        lines = []
        for pid, (ppid, start) in known.items():
            if ppid != master or start < first or pid in self.listed or pid in self.helpers or pid == guard:
                continue
            command = _command_line(pid)
            if any(mark in command for mark in _HELPERS):
                self.helpers.add(pid)
                continue
            if not self.own:
                self.own = _command_line(master)
            if command == self.own:
                self.unsure.add(pid)
            self.listed[pid] = start
            lines.append(b"+ %d %d\n" % (pid, start))
        return lines

    def tell(self, lines: list[bytes]) -> None:
        """Send ``lines`` to the guard; start one first if there is none (it gets the
        whole list), and start another if it died (killed with a run's processes)."""
        for _ in range(2):
            if self.guard is None:
                if self.failed or not self.start_guard():
                    return
                lines = [b"+ %d %d\n" % item for item in self.listed.items()]
            try:
                _write_all(self.pipe, b"".join(lines))
                return
            except OSError:
                self.drop_guard()

    def start_guard(self) -> bool:
        import subprocess

        read, write = os.pipe()  # both ends close on exec: the guard gets only its stdin
        try:
            self.guard = subprocess.Popen(
                ["/bin/sh", "-c", _GUARD, "dagexec-childguard"],
                env={},
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # beyond the reach of a killpg of the master's group
            )
        except OSError as exc:
            os.close(write)
            self.failed = True
            logger.warning("no guard for the processes trials start (%s): they outlive a killed master", exc)
            return False
        finally:
            os.close(read)
        self.pipe = write
        return True

    def drop_guard(self) -> None:
        """Close the pipe and reap the guard (it has read "q", or it died)."""
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1
        if self.guard is not None:
            self.guard.wait()
            self.guard = None

    def stand_down(self) -> None:
        """No run watches: the guard exits without killing, the lists are emptied."""
        if self.guard is not None:
            try:
                _write_all(self.pipe, b"q\n")
            except OSError:
                pass  # it died already: nothing to tell it
            self.drop_guard()
        self.failed = False
        self.listed.clear()
        self.unsure.clear()
        self.helpers.clear()


_HAS_PROC = os.path.isdir("/proc")
_WATCH = _Watch()


def _after_fork_in_child() -> None:
    """A process forked from a watching master neither watches nor holds the guard's
    pipe (holding it would keep the guard from seeing the master's death)."""
    global _WATCH
    if _WATCH.pipe >= 0:
        try:
            os.close(_WATCH.pipe)
        except OSError:
            pass
    _WATCH = _Watch()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
