"""A pipe: stream producers and the nodes they feed, run as one unit, interleaved.

DESIGN §13.  A *pipe* is a :class:`~.protocol.Batch` with ``feeds``: its members, in
plan order, are stream producers (generator functions, and async generator functions,
each item awaited on the thread's event loop: :mod:`dagexec.plan.streams`)
and the nodes they feed item by item; where a member is fed, its call holds ``FEED``.
:func:`run_pipe` runs a pipe in the thread that calls it, on any executor, the way a
chain runs: pulling drives it, so no member ever waits for a worker another member
holds.  Data flow::

    a reader's code --> next(its feed) --> its buffer empty? --> source.advance():
                                             next(the producer's generator), under the
                                             producer's own log slot
        <-- the item <-- every reader's buffer gets it (and the list, when kept)

A producer starts when it is first pulled and ends when its generator does.  The
members that are not producers run in plan order (each pulls what it reads); then
the producers nobody in the pipe reads and the *outlets* (``batch.outlets``: a
producer's items for a map over its stream, which go to the master) are stepped one
item each in turn; then the producers not yet ended are drained, the last first
(draining a stage pulls what feeds it, so buffers stay short); a producer whose
readers all stopped early, and whose list nobody needs, is closed (``GeneratorExit``:
its ``finally`` runs; one that was never pulled does not start, and its trial has 0
items).

:func:`pipe_steps` is that run as a generator: it yields an outlet's items when the
master has taken the last ones (``batch.taken``) or ``buffer`` of them wait.
:func:`run_pipe` posts them (:class:`~.protocol.Items`) and waits on ``batch.taken``;
the serial executor keeps the generator paused until the engine takes them.

Each member keeps its own trial: start, end, state, log, and a producer's item count
(``BatchDone.items``).  A producer that fails raises :class:`Broken` in each member it
feeds, which then has no outcome: the engine makes it ``upstream_failed``.  When
fail_fast stops the run (``batch.stopped``, where the engine can set it: threads, the
master), producers give no more: they are closed, and they and what they feed end
with no outcome (``cancelled``).  However a pipe ends (an error, Ctrl-C), every
generator still open is closed.
"""

from __future__ import annotations

import threading
import types
from collections import deque
from collections.abc import Generator
from time import time
from typing import Any

from .._capture import CURRENT, log_text
from ..plan.streams import is_producer
from .protocol import FEED, O_END, O_ERROR, O_IDX, Batch, BatchDone, Call, Items, Outcome, failed_outcome
from .worker import check_arguments, from_task, run_call, run_coroutine

__all__ = ["Broken", "pipe_steps", "run_pipe", "wait_taken"]

NEW, RUNNING, ENDED, FAILED, BROKEN, CLOSED = range(6)
#: what a process executor writes in a pipe's slot of its board when fail_fast stops
#: the run (the worker reads it at each item: ``run_pipe``'s ``board``)
STOP_MARK = -2
_ASYNC = types.AsyncGeneratorType
#: seconds between two looks at ``batch.stopped`` while a pipe waits for the master
_LOOK_S = 0.05


class Broken(BaseException):
    """Raised in a member by the feed of a producer that failed: the member ends with no
    outcome (``upstream_failed``).  A BaseException: ``except Exception`` lets it pass."""


class _Source:
    """One producer member: its call, its generator, its readers' buffers, its items.

    ``state`` goes NEW -> RUNNING -> ENDED (its generator returned), FAILED (it
    raised), BROKEN (what feeds it failed) or CLOSED (nobody needs more)."""

    __slots__ = (
        "batch", "bufs", "call", "end", "error", "gen", "items", "listed", "log", "read_by", "start", "state",
        "stop", "worker",
    )  # fmt: skip

    def __init__(self, batch: Batch, call: Call, keep: bool, worker: str, stop: Any) -> None:
        self.batch = batch  # its ``stopped``: fail_fast stopped the run
        self.stop = stop  # or this, not None, says so (a board written by the master)
        self.call = call
        self.worker = worker
        self.gen: Any = None
        self.bufs: dict[int, deque[Any]] = {}  # reader's position -> its buffer
        self.read_by = 0  # readers it ever had
        self.listed: list[Any] | None = [] if keep else None  # every item, when the master needs them
        self.items = 0
        self.state = NEW
        self.log: list[Any] = []
        self.start = self.end = 0.0
        self.error: BaseException | None = None

    def advance(self) -> bool:
        """Pull one item into every reader's buffer; False once there is none to come."""
        if self.state > RUNNING:
            return False
        if self.stopped():  # the run stops: nobody gets more
            self.close()
            return False
        call = self.call
        slot: list[Any] = [self.log]
        token = CURRENT.set(slot)
        try:
            if self.state == NEW:
                self.state, self.start = RUNNING, time()
                check_arguments(call)
                self.gen = call.spec.fn(*call.args, **(call.kwargs or {}))
            gen = self.gen
            # an async generator's next item, awaited on this thread's event loop
            item = next(gen) if type(gen) is not _ASYNC else run_coroutine(gen.__anext__())
        except (StopIteration, StopAsyncIteration):
            self._ended(ENDED, None)
            return False
        except Broken as exc:
            self._ended(BROKEN, exc)
            return False
        except BaseException as exc:
            self._ended(FAILED, exc)
            if not isinstance(exc, Exception):
                raise  # Ctrl-C, SystemExit: the pipe stops
            return False
        finally:
            slot[0] = None
            CURRENT.reset(token)
        self.items += 1
        for buf in self.bufs.values():
            buf.append(item)
        if self.listed is not None:
            self.listed.append(item)
        return True

    def stopped(self) -> bool:
        """Whether fail_fast stopped the run."""
        return self.batch.stopped or (self.stop is not None and self.stop())

    def _ended(self, state: int, error: BaseException | None) -> None:
        self.state, self.end, self.error, self.gen = state, time(), error, None

    def close(self) -> None:
        """Nobody needs more: close its generator (its ``finally`` runs); one never
        pulled does not start."""
        if self.state == NEW:
            self.state, self.start, self.end = CLOSED, time(), time()
        elif self.state == RUNNING:
            gen, self.gen = self.gen, None
            self.state, self.end = CLOSED, time()
            if type(gen) is _ASYNC:
                run_coroutine(gen.aclose())
            else:
                gen.close()

    def outcome(self) -> Outcome | None:
        """Its trial's outcome once it has ended; None when what fed it failed."""
        call, log = self.call, log_text(self.log) if self.log else ""
        if self.state == BROKEN:
            return None
        if self.state == FAILED:
            assert self.error is not None
            out = failed_outcome(call, from_task(self.error, call.spec.fn), self.start, self.worker, log)
            return (*out[:O_END], self.end, *out[O_END + 1 :])
        return (call.idx, call.attempt, True, self.listed, None, "", self.start, self.end, self.worker, log)


class _Fed:
    """The iterator a fed parameter receives: its own buffer of one source's items."""

    __slots__ = ("buf", "src")

    def __init__(self, src: _Source, buf: deque[Any]) -> None:
        self.src = src
        self.buf = buf

    def __iter__(self) -> _Fed:
        return self

    def __next__(self) -> Any:
        buf = self.buf
        while not buf:
            src = self.src
            if not src.advance():
                if src.state in (FAILED, BROKEN):
                    raise Broken(f"node {src.call.key!r}, which feeds this one, failed")
                if src.stopped():
                    raise Broken("the run stopped")
                raise StopIteration
        return buf.popleft()


class _Outlet:
    """Where a producer's items leave the pipe for the master, for the map reading them:
    its own buffer of the producer's items, and the items pulled but not yet sent."""

    __slots__ = ("batch", "buf", "buffer", "k", "pending", "src")

    def __init__(self, batch: Batch, k: int, src: _Source, buf: deque[Any], buffer: int) -> None:
        self.batch = batch
        self.k = k  # the producer's position in the batch
        self.src = src
        self.buf = buf
        self.buffer = buffer
        self.pending: list[Any] = []

    def pull(self) -> bool:
        """One more item into ``pending``; False once the producer has none to give."""
        buf = self.buf
        if not buf and not self.src.advance():
            return False
        self.pending.append(buf.popleft())
        return True

    def due(self) -> bool:
        """Whether ``pending`` goes now: the master took the last, or ``buffer`` wait."""
        taken = self.batch.taken
        return len(self.pending) >= self.buffer or (taken is not None and taken.is_set())

    def take(self) -> list[Any]:
        out, self.pending = self.pending, []
        return out


def run_pipe(
    batch: Batch, worker: str | None = None, board: Any = None, slot: int = 0, post: Any = None
) -> BatchDone:
    """Run the pipe ``batch`` in this thread (see the module's docstring); never raises
    for the tasks' own errors.  With ``board``, ``board[slot] == STOP_MARK`` says, as
    ``batch.stopped`` does, that fail_fast stopped the run (a process executor's).  A
    pipe with ``outlets`` posts its maps' items with ``post``, each time once the master
    has taken the last (``batch.taken``)."""
    steps = pipe_steps(batch, worker, board, slot)
    while True:
        try:
            k, items = next(steps)
        except StopIteration as end:
            done: BatchDone = end.value
            return done
        if wait_taken(batch):
            assert batch.taken is not None
            batch.taken.clear()
            post(Items(batch, batch.calls[k].idx, items))


def wait_taken(batch: Batch) -> bool:
    """Wait until the master has taken what the pipe posted last (a pipe posting
    again, or one on another process ending: its end must not overtake its last
    items); False when the run stopped meanwhile (nobody takes more)."""
    taken = batch.taken
    assert taken is not None
    while not taken.wait(_LOOK_S):
        if batch.stopped:
            return False
    return not batch.stopped


def pipe_steps(
    batch: Batch, worker: str | None = None, board: Any = None, slot: int = 0
) -> Generator[tuple[int, list[Any]], None, BatchDone]:
    """Run the pipe ``batch``, yielding ``(k, items)`` where member ``k``'s items are to go
    to the master for its map (``batch.outlets``): the caller posts them, and resumes
    this when the master may take more.  Returns the :class:`BatchDone`."""
    name = worker or threading.current_thread().name
    calls, feeds, keep = batch.calls, batch.feeds, batch.keep
    assert feeds is not None
    stop = None if board is None else (lambda: board[slot] == STOP_MARK)
    producers = [k for k, call in enumerate(calls) if is_producer(call.spec.fn)]
    sources = {k: _Source(batch, calls[k], keep[k], name, stop) for k in producers}
    reads: dict[int, list[int]] = {}  # member -> the sources it reads
    for m, call in enumerate(calls):
        for where, k in feeds[m]:
            _put(call, where, _Fed(sources[k], _reader(sources, k, m, reads)))
    outlets = [
        _Outlet(batch, k, sources[k], _reader(sources, k, ~k, reads), n) for k, n in (batch.outlets or {}).items()
    ]
    outs: dict[int, Outcome] = {}
    try:
        for m, call in enumerate(calls):
            if m in sources or batch.stopped or (stop is not None and stop()):
                continue
            out = run_call(call, name, reraise_interrupt=True)
            _done_reading(m, reads, sources)
            if not isinstance(out[O_ERROR], Broken):
                outs[m] = out
        yield from _round_robin(sources, outlets, reads)
        for k in sorted(sources, reverse=True):  # the last first: draining it pulls what feeds it
            src = sources[k]
            if src.stopped() or (src.read_by and not src.bufs and src.listed is None):
                src.close()  # its readers stopped early (or the run stops): nobody needs more
            while src.advance():
                pass
            _done_reading(k, reads, sources)
    finally:
        for src in sources.values():
            src.close()
    stopped = batch.stopped or (stop is not None and stop())
    for k, src in sources.items():
        ended = None if stopped and src.state == CLOSED else src.outcome()
        if ended is not None:  # a stopped run's closed producers did not end: cancelled
            outs[k] = ended
    items = {src.call.idx: src.items for src in sources.values()}
    return BatchDone(batch, sorted(outs.values(), key=_order(calls)), items=items)


def _reader(sources: dict[int, _Source], k: int, m: int, reads: dict[int, list[int]]) -> deque[Any]:
    """A new buffer of source ``k``'s items for reader ``m`` (a member; ``~k`` for the
    outlet of ``k``)."""
    buf: deque[Any] = deque()
    src = sources[k]
    src.bufs[m] = buf
    src.read_by += 1
    reads.setdefault(m, []).append(k)
    return buf


def _round_robin(
    sources: dict[int, _Source], outlets: list[_Outlet], reads: dict[int, list[int]]
) -> Generator[tuple[int, list[Any]], None, None]:
    """Step, one item each in turn, the producers nobody in the pipe reads and the
    outlets, until all have ended: no buffer then grows past an item or two (the
    buffers of members that already ran whole are left alone).  An outlet's items are
    yielded once the master has taken the last ones, or ``buffer`` of them wait."""
    steppers: list[_Source | _Outlet] = [src for src in sources.values() if not src.read_by and not src.stopped()]
    steppers += outlets
    while steppers:
        for s in list(steppers):
            if type(s) is _Source:
                if not s.advance():
                    steppers.remove(s)
                continue
            assert type(s) is _Outlet
            more = s.pull()
            if s.pending and (not more or s.due()):
                yield s.k, s.take()
            if not more:
                steppers.remove(s)
                _done_reading(~s.k, reads, sources)


def _put(call: Call, where: int | str, fed: _Fed) -> None:
    """Put ``fed`` where ``FEED`` stands in ``call``'s arguments."""
    if isinstance(where, int):
        args = list(call.args)
        assert args[where] is FEED
        args[where] = fed
        call.args = args
    else:
        kwargs = dict(call.kwargs or {})
        assert kwargs[where] is FEED
        kwargs[where] = fed
        call.kwargs = kwargs


def _done_reading(m: int, reads: dict[int, list[int]], sources: dict[int, _Source]) -> None:
    """Member ``m`` reads no more: its buffers go (a producer stops filling them)."""
    for k in reads.pop(m, ()):
        sources[k].bufs.pop(m, None)


def _order(calls: list[Call]) -> Any:
    pos = {call.idx: k for k, call in enumerate(calls)}
    return lambda out: pos[out[O_IDX]]
