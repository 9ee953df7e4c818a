"""The worker-process side of :class:`~dagexec.executors.loky.LokyExecutor`.

What loky runs in its worker processes, sent there by reference (so this module is
imported where the workers run, never the master's state): :func:`_init_worker`
(loky's ``initializer``: the report pipe, the progress board and a watchdog that ends
the worker when the master dies), :func:`_run_in_worker` for one trial and
:func:`_run_batch_in_worker` for a batch.  Each reports ``(sid, pid)`` on the shared
pipe before anything else, in one write of :data:`_REPORT` bytes; a task with a
``timeout`` is interrupted by ``SIGALRM`` (:func:`_alarm`).
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import signal
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from ..._errors import TaskTimeout
from ..._proctree import children, kill_trees, stop_started_since
from ...run.batches import run_batch
from ...run.pipes import STOP_MARK
from ...run.protocol import O_ERROR, O_IDX, O_OK, Batch, Call
from ...run.worker import install_worker_capture, run_call
from .._transport import Blobs, dump_outcome, load_spec, unloadable

#: a start report, ``(sid, pid)``: shorter than PIPE_BUF, so written at once
_REPORT = struct.Struct("=qq")

#: slots of the progress board: a batch in flight uses slot ``sid % _BOARD_SLOTS``
_BOARD_SLOTS = 4096

_reports: Any = None  # the writing end of the report pipe, set by _init_worker


_progress: Any = None  # the progress board (a memoryview of int64), set by _init_worker


def _init_worker(reports: Any, board: str) -> None:
    global _reports, _progress
    os.environ.pop("DAGEXEC_KEY", None)  # a worker signs and checks nothing: tasks never see the key
    _reports = reports
    try:
        with open(board, "r+b") as f:
            _progress = memoryview(mmap.mmap(f.fileno(), 0)).cast("q")
    except OSError:
        _progress = None  # a crash in a batch is then charged to none of its members
    threading.Thread(target=_watch_master, args=(os.getppid(),), name="dagexec-watchdog", daemon=True).start()


#: seconds between two looks at the worker's parent, where it cannot be waited on
_WATCH_S = 0.25


def _watch_master(master: int) -> None:
    """In a worker: wait for the master (the worker's parent) to die, then kill the
    processes the running trial started and end the worker.  A master killed with
    ``SIGKILL`` cannot stop its workers; without this they would run their trials
    to the end, and a ``--resume`` started at once would run them a second time."""
    try:
        fd = os.pidfd_open(master)
    except (AttributeError, OSError):  # no pidfd (before Linux 5.3): poll instead
        fd = -1
    if fd >= 0 and os.getppid() == master:
        select.select([fd], [], [])  # readable once the master has exited
    while os.getppid() == master:
        time.sleep(_WATCH_S)
    kill_trees(children(os.getpid()))
    os._exit(1)


def _alarm(key: str, timeout: float, start: float) -> Callable[[int, Any], None]:
    def on_alarm(signum: int, frame: Any) -> None:
        # the processes the trial started go first: once the task has its TaskTimeout
        # the worker is no longer busy with it, so nothing else would stop them (and a
        # `with Popen(...)` block would wait for them)
        stop_started_since(start)
        raise TaskTimeout(f"node {key!r} timed out after {timeout:g} s", key, timeout)

    return on_alarm


def _run_in_worker(
    sid: int, head: tuple[int, int, str], blobs: Blobs, values: bytes, trace: str | None = None
) -> tuple[bool, bytes]:
    """Run one trial in a worker process: whether the task returned, and its outcome as
    bytes (``trace``: the trace context it runs in, in a traced run)."""
    pid = os.getpid()
    if _reports is not None:
        _reports.send_bytes(_REPORT.pack(sid, pid))
    install_worker_capture()
    worker = f"pid:{pid}"
    start = time.time()
    try:
        spec = load_spec(*blobs)
    except Exception as exc:
        return False, unloadable(head, "its task", exc, start, worker)
    try:
        args, kwargs = pickle.loads(values)
    except Exception as exc:
        return False, unloadable(head, "its arguments", exc, start, worker)
    call = Call(head[0], head[1], spec, args, kwargs, trace)
    timeout = spec.timeout
    if timeout is None:
        out = run_call(call, worker)
    elif spec.coro:  # a coroutine is cancelled at its timeout instead
        out = run_call(call, worker)
        if isinstance(out[O_ERROR], TaskTimeout):
            stop_started_since(start)  # what it started outlives its cancellation otherwise
    else:
        previous = signal.signal(signal.SIGALRM, _alarm(spec.key, timeout, start))
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            out = run_call(call, worker)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return out[O_OK], dump_outcome(out, spec.key)


def _run_batch_in_worker(
    sid: int,
    heads: list[tuple[int, int, str]],
    fns: dict[bytes, bytes],
    specs: list[tuple[bytes, bytes, bytes]],
    linked: list[bool],
    keep: list[bool],
    values: bytes,
    feeds: list[Any] | None = None,
    outlet: tuple[dict[int, int], str, bytes] | None = None,
    traces: list[str | None] | None = None,
) -> tuple[Any, ...]:
    """Run a batch in a worker process: ``(True, outcomes as bytes)``, or
    ``(False, why)`` when the batch cannot run as one (its members then run alone,
    where what does not unpickle fails with its node's name); a pipe's (``feeds``)
    also gives the items each of its producers yielded.  A pipe with an ``outlet`` (its
    outlets, and where the master listens: :mod:`.outlets`) sends a map's items there
    while it runs; ``traces``: each member's trace context, in a traced run."""
    pid = os.getpid()
    if _reports is not None:
        _reports.send_bytes(_REPORT.pack(sid, pid))
    install_worker_capture()
    try:
        loaded = [load_spec(fd, fns[fd], sd, sb) for fd, sd, sb in specs]
        argl = pickle.loads(values)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    calls = [
        Call(idx, attempt, spec, args, kwargs, traces[k] if traces else None)
        for k, ((idx, attempt, _), spec, (args, kwargs)) in enumerate(zip(heads, loaded, argl, strict=True))
    ]
    del argl
    batch = Batch(calls, linked, keep, feeds)
    slot = sid % _BOARD_SLOTS
    post = None
    if outlet is not None:
        from .outlets import connect

        batch.outlets = outlet[0]
        board = _progress
        post = connect(sid, batch, outlet[1:], lambda: board is not None and board[slot] == STOP_MARK)
    done = run_batch(batch, f"pid:{pid}", _progress, slot, post)
    if post is not None:
        from .outlets import finish

        finish(batch, post)  # its last items taken before its outcomes go
    outs, yielded = done.outcomes, done.items
    del batch, calls, done
    if all(out[O_OK] for out in outs):
        try:
            import cloudpickle

            return True, cloudpickle.dumps(outs), yielded
        except Exception:
            pass
    # one at a time: a result or an exception that does not pickle fails its own node,
    # and the members chained after it count as not run (their input never arrives)
    keys = {idx: key for idx, _, key in heads}
    chained = {idx: linked[k] for k, (idx, _, _) in enumerate(heads)}
    items = []
    broken = False
    for out in outs:
        if broken and chained[out[O_IDX]]:
            continue
        data = dump_outcome(out, keys[out[O_IDX]])
        broken = out[O_OK] and not pickle.loads(data)[O_OK]
        items.append(data)
    return True, items, yielded
