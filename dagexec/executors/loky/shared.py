"""What every :class:`~dagexec.executors.loky.LokyExecutor` of a process shares.

One report pipe (:class:`_Reports`, read by one thread), one progress board
(:class:`_Board`, a small shared file) and one thread every pool is asked for from
(:class:`_Keeper`): loky reuses one pool only while every executor passes it the same
``initializer`` arguments, so these are made once per process (:func:`_get_shared`).
Submission ids (:data:`_sids`) are unique in the process for the same reason.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import mmap
import os
import queue
import re
import stat
import tempfile
import threading
import time
from concurrent.futures import Future
from typing import Any

from .worker import _BOARD_SLOTS, _REPORT

logger = logging.getLogger("dagexec.executors.loky")


class _Reports:
    """The one pipe of ``(sid, pid)`` start reports, and the thread that reads it."""

    def __init__(self) -> None:
        from loky.backend.context import get_context

        self.reader, self.writer = get_context("loky").Pipe(duplex=False)
        self.pids: dict[int, int] = {}  # sid -> the pid it started in
        self.running: dict[int, int] = {}  # pid -> the sid it reported last
        self.began: dict[int, float] = {}  # sid -> when its report came, by the master's clock
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="dagexec-loky-reports", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        recv = self.reader.recv_bytes
        unpack = _REPORT.unpack
        while True:
            try:
                sid, pid = unpack(recv())
            except (EOFError, OSError):
                return
            now = time.time()
            with self.cond:
                self.pids[sid] = pid
                self.running[pid] = sid
                self.began[sid] = now
                self.cond.notify_all()

    def pid_of(self, sid: int, wait: float) -> int | None:
        """The pid trial ``sid`` reported, waiting up to ``wait`` s for the report."""
        deadline = time.monotonic() + wait
        with self.cond:
            while sid not in self.pids:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.pids[sid]

    def began_at(self, sid: int) -> float:
        """When trial ``sid`` reported its start, by the master's clock; ``math.inf``
        while it has not (it waits in loky's queue, or for a worker to start)."""
        with self.cond:
            return self.began.get(sid, math.inf)

    def running_sid(self, pid: int) -> int | None:
        """The trial worker ``pid`` started last (and may still be running)."""
        with self.cond:
            return self.running.get(pid)

    def forget(self, sid: int) -> None:
        with self.cond:
            pid = self.pids.pop(sid, None)
            self.began.pop(sid, None)
            if pid is not None and self.running.get(pid) == sid:
                del self.running[pid]


class _Board:
    """The progress board: a small shared file where a worker writes, before each
    member of a batch, the member's position, so that when the worker dies the
    master knows which member it was running (the one to charge with the crash).

    A memory write per member costs the worker next to nothing and the master
    nothing until a crash.  The file lives in ``/dev/shm`` where there is one, and
    is removed when the process exits.
    """

    def __init__(self) -> None:
        where = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        _remove_stale_boards(where)
        fd, self.path = tempfile.mkstemp(prefix=f"dagexec-board-{os.getpid()}-", dir=where)
        try:
            os.ftruncate(fd, _BOARD_SLOTS * 8)
            self.view = memoryview(mmap.mmap(fd, _BOARD_SLOTS * 8)).cast("q")
        finally:
            os.close(fd)
        atexit.register(self._remove)

    def _remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def clear(self, sid: int) -> None:
        self.view[sid % _BOARD_SLOTS] = -1

    def mark(self, sid: int, value: int) -> None:
        """Write ``value`` in batch ``sid``'s slot (a stop the worker reads)."""
        self.view[sid % _BOARD_SLOTS] = value

    def running(self, sid: int) -> int:
        """The position of the member batch ``sid`` started last, or -1."""
        return int(self.view[sid % _BOARD_SLOTS])


_BOARD_NAME = re.compile(r"dagexec-board-(\d+)-\w+")


def _remove_stale_boards(folder: str) -> None:
    """Remove the boards that processes killed before their exit left in ``folder``:
    only dagexec's, only this user's, only when the pid in the name is dead."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    uid = os.getuid()
    for name in names:
        found = _BOARD_NAME.fullmatch(name)
        if found is None or _alive(int(found.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
            if info.st_uid == uid and stat.S_ISREG(info.st_mode):
                os.unlink(path)
                logger.info("removed %s, left by process %s", path, found.group(1))
        except OSError:
            continue


class _Keeper:
    """The thread every pool is asked for from.

    ``loky.get_reusable_executor`` keeps one executor per calling thread.  Asked from
    the master, a run's threads that resubmit bystanders would each start a pool of
    their own (more workers than ``max_workers``, and pools Ctrl-C does not stop);
    asked from here, every LokyExecutor in the process shares one.
    """

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[tuple[dict[str, Any], Future[Any]]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="dagexec-loky-pool", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from loky import get_reusable_executor

        while True:
            kwargs, fut = self.requests.get()
            try:
                fut.set_result(get_reusable_executor(**kwargs))
            except BaseException as exc:
                fut.set_exception(exc)

    def pool(self, **kwargs: Any) -> Any:
        """loky's reusable executor for these arguments (a new one when it broke)."""
        fut: Future[Any] = Future()
        self.requests.put((kwargs, fut))
        return fut.result()


# submission ids, unique in the process: every LokyExecutor shares one report pipe
_sids = itertools.count(1)

_shared: tuple[_Reports, _Keeper, _Board] | None = None
_shared_lock = threading.Lock()


def _get_shared() -> tuple[_Reports, _Keeper, _Board]:
    # one report pipe for the process, so every LokyExecutor passes loky the same
    # initializer arguments and loky keeps reusing one pool
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = (_Reports(), _Keeper(), _Board())
        return _shared


def _get_reports() -> _Reports:
    return _get_shared()[0]


def _alive(pid: int) -> bool:
    """False for a process that is gone or a zombie (dead but not reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
