"""The executor protocol: what the run loop and an executor exchange (docs/executors.md).

The loop hands an :class:`Executor` a :class:`Call` (one trial) or a :class:`Batch`
(several, run in order on one worker); an *outcome* comes back, or a
:class:`BatchDone` holding one per member that ran.  An outcome is a plain tuple,
because one is made per trial on the hot path::

    (idx, attempt, ok, value, error, traceback, start, end, worker, log)

Read its fields by the ``O_*`` constants below (``out[O_OK]``), which cost what a
literal index costs.  ``ok`` is True when ``value`` is the task's return value;
otherwise ``error`` is the exception (or None when it could not travel) and
``traceback`` its text.  ``log`` is what the task logged and printed while it ran
(see :mod:`dagexec._capture`), "" when nothing was, and for the outcomes the master
makes itself (:func:`failed_outcome`, :func:`crashed_outcome`).

An executor that keeps values where they were made returns :class:`Remote` handles
as values.  This module imports only leaf modules: executors, the executing side
(:mod:`dagexec.run.worker`) and the loop all read it.
"""

from __future__ import annotations

import threading
import traceback as _tb
from collections.abc import Callable
from time import time
from typing import Any, ClassVar, Final

from .._errors import WorkerCrashed

__all__ = [
    "LINK",
    "O_ATTEMPT",
    "O_END",
    "O_ERROR",
    "O_IDX",
    "O_LOG",
    "O_OK",
    "O_START",
    "O_TRACEBACK",
    "O_VALUE",
    "O_WORKER",
    "Batch",
    "BatchDone",
    "Call",
    "Executor",
    "Items",
    "Marker",
    "Outcome",
    "Remote",
    "crashed_outcome",
    "failed_outcome",
    "with_value",
]

Outcome = tuple[int, int, bool, Any, "BaseException | None", str, float, float, str, str]

#: the fields of an :data:`Outcome`, by position
O_IDX: Final = 0  # the node's index in the plan
O_ATTEMPT: Final = 1  # the trial's attempt number, 1 for the first
O_OK: Final = 2  # True: the task returned O_VALUE
O_VALUE: Final = 3  # the task's return value (None when it failed, or was not sent back)
O_ERROR: Final = 4  # the exception, or None (success, or an error that could not travel)
O_TRACEBACK: Final = 5  # the error's traceback text, "" on success
O_START: Final = 6  # time.time() when the trial began
O_END: Final = 7  # time.time() when it ended
O_WORKER: Final = 8  # where it ran: a thread's name, "pid:N", "master", a cluster worker
O_LOG: Final = 9  # what the task logged and printed, "" when nothing


class Call:
    """One trial to run: the node's spec, its attempt number and its argument values.

    Attributes:
        idx: the node's index in the plan.
        attempt: 1 for the first attempt.
        spec: the node's :class:`~dagexec.plan.specs.NodeSpec`.
        args: positional argument values.
        kwargs: keyword argument values, or None.
        trace: in a traced run, the trial's span as a W3C ``traceparent`` (the trace
            context it runs in: :mod:`dagexec._tracectx`); else None.
    """

    __slots__ = ("args", "attempt", "idx", "kwargs", "spec", "trace")

    def __init__(
        self, idx: int, attempt: int, spec: Any, args: Any, kwargs: dict[str, Any] | None, trace: str | None = None
    ):
        self.idx = idx
        self.attempt = attempt
        self.spec = spec
        self.args = args
        self.kwargs = kwargs
        self.trace = trace

    @property
    def key(self) -> str:
        """The node key."""
        return str(self.spec.key)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Call, (self.idx, self.attempt, self.spec, self.args, self.kwargs, self.trace))

    def __repr__(self) -> str:
        return f"<Call {self.spec.key!r} attempt={self.attempt}>"


class Remote:
    """A value kept where it was made (e.g. in a cluster worker's memory).

    An executor with ``keeps_values`` returns one as a trial's value.  The engine
    holds it like any value (and drops it when the value is released), passes it
    as it is to calls on the same executor, and asks the executor for the value
    itself (``owner.fetch([...])``) only where it is needed elsewhere: in a call on
    another executor, or as an output or ``keep=`` value of the run.

    Attributes:
        owner: the executor that keeps the value.
        ref: the executor's handle on it (e.g. a ``distributed.Future``).
    """

    __slots__ = ("owner", "ref")

    def __init__(self, owner: Any, ref: Any) -> None:
        self.owner = owner
        self.ref = ref

    def __repr__(self) -> str:
        return f"<Remote {self.ref!r} on {self.owner!r}>"


class Marker:
    """A one-of-a-kind value that stands for something, and pickles by name.

    A subclass sets :attr:`NAME`, the name of the module attribute holding its one
    instance (so it unpickles as that same instance in any process), and
    :attr:`TEXT`, its repr.
    """

    __slots__ = ()
    NAME: ClassVar[str] = ""
    TEXT: ClassVar[str] = ""

    def __reduce__(self) -> str:
        return self.NAME

    def __repr__(self) -> str:
        return self.TEXT


class _Link(Marker):
    """Stands in a batch member's arguments for the value of the member before it."""

    __slots__ = ()
    NAME = TEXT = "LINK"


#: where a chained member of a :class:`Batch` takes the value of the member before it
LINK: Any = _Link()


class _Feed(Marker):
    """Stands in a pipe member's arguments for a stream fed to it item by item."""

    __slots__ = ()
    NAME = TEXT = "FEED"


#: where a member of a pipe (a :class:`Batch` with ``feeds``) takes an iterator over a
#: stream another member produces (:mod:`dagexec.run.pipes`)
FEED: Any = _Feed()


class Batch:
    """Trials an executor runs as one submission, in order, on one worker.

    A batch holds one or more *segments*: a linear chain of nodes (each reading the
    one before, fused so the value never leaves the worker), or a tiny trial on its
    own.  Every member keeps its own trial: its own attempt, start, end and outcome.

    Attributes:
        calls: the members' calls, in the order they run.
        linked: per member, True when it continues the member before it: it runs only
            if that one succeeded, and takes its value where ``LINK`` stands in its
            arguments.
        keep: per member, True when the master needs its value even when the next,
            linked member consumed it (an output, or a ``keep=`` key); for a pipe's
            stream producer, its complete list of items.
        feeds: None, or for a *pipe* (a stream producer and what it feeds, run
            interleaved: :mod:`dagexec.run.pipes`), per member ``(where, k)`` for each
            of its arguments that member ``k`` (a position) feeds item by item
            (``FEED`` stands there in its call).
        outlets: None, or for a pipe whose producers feed maps (DESIGN §13: a map over
            a stream starts an item's trial as the item arrives), ``{k: buffer}``: the
            items member ``k`` yields go to the master as :class:`Items` (``post``), at
            most ``buffer`` at a time while the master has not taken the last ones.
        taken: set while the master has taken every :class:`Items` posted (the master
            sets it: :meth:`Executor.more`); cleared by the worker at each post.
    """

    __slots__ = ("calls", "feeds", "keep", "linked", "outlets", "stopped", "taken")

    def __init__(
        self,
        calls: list[Call],
        linked: list[bool],
        keep: list[bool],
        feeds: list[tuple[tuple[int | str, int], ...]] | None = None,
    ) -> None:
        self.calls = calls
        self.linked = linked
        self.keep = keep
        self.feeds = feeds
        #: set by the engine when fail_fast stops the run: no further chained member starts
        self.stopped = False
        self.outlets: dict[int, int] | None = None
        self.taken: threading.Event | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (Batch, (self.calls, self.linked, self.keep, self.feeds))

    def __repr__(self) -> str:
        return f"<Batch of {len(self.calls)}: {self.calls[0].key!r} ...>"


class BatchDone:
    """What an executor posts when a batch ends.

    Attributes:
        batch: the batch.
        outcomes: the outcomes of the members that ran, in order; a member whose
            chain broke before it did not run and has none.
        split: True when the batch could not run as one (its worker died, or it
            did not pickle): the engine runs its members again, one by one,
            without using an attempt.
        items: for a pipe, the number of items each stream producer yielded, by unit.
    """

    __slots__ = ("batch", "items", "outcomes", "split")

    def __init__(
        self, batch: Batch, outcomes: list[Outcome], split: bool = False, items: dict[int, int] | None = None
    ) -> None:
        self.batch = batch
        self.outcomes = outcomes
        self.split = split
        self.items = items


class Items:
    """What a pipe posts while it runs: ``items`` its producer ``idx`` (a unit) yielded,
    for the map that reads that stream (``Batch.outlets``)."""

    __slots__ = ("batch", "idx", "items")

    def __init__(self, batch: Batch, idx: int, items: list[Any]) -> None:
        self.batch = batch
        self.idx = idx
        self.items = items


def failed_outcome(
    call: Call, exc: BaseException, start: float, worker: str | None = None, log: str = ""
) -> Outcome:
    """The outcome of a trial that raised ``exc``, with what it logged and printed."""
    text = "".join(_tb.format_exception(type(exc), exc, exc.__traceback__))
    return (
        call.idx,
        call.attempt,
        False,
        None,
        exc,
        text,
        start,
        time(),
        worker or threading.current_thread().name,
        log,
    )


def with_value(out: Outcome, value: Any) -> Outcome:
    """The successful outcome ``out`` with ``value`` in place of the task's return
    value: None where the value is not sent back, a :class:`Remote` where it is kept."""
    idx, attempt, _, _, _, _, start, end, worker, log = out
    return (idx, attempt, True, value, None, "", start, end, worker, log)


def crashed_outcome(call: Call, error: BaseException, start: float, what: str) -> Outcome:
    """The outcome of a trial that its backend lost or refused (``what`` says which):
    ``crashed``, its error a :class:`~dagexec.WorkerCrashed` naming the backend's
    ``error``, which is its ``__cause__``; retried like any crash."""
    crash = WorkerCrashed(f"node {call.key!r}: {what}: {type(error).__name__}: {error}", call.key)
    crash.__cause__ = error
    return failed_outcome(call, crash, start, "master")


class Executor:
    """Runs trials for the engine; subclass it for a new backend.

    The engine calls :meth:`submit` at most :attr:`capacity` times before an
    outcome comes back, :meth:`abandon` for a trial past its timeout, and
    :meth:`shutdown` at the end of a run when it created the executor from a name.
    An executor the user passed in is never shut down by a run.
    """

    #: the name used in messages and ``Trial.worker`` prefixes
    name = "executor"
    #: True when calls travel to other processes: a run on it needs a portable plan
    needs_pickle = False
    #: True when the executor takes :meth:`submit_batch`: linear chains of nodes routed
    #: to it are then fused into one submission
    batches = False
    #: True when the engine should also batch tiny ready trials (ones whose function
    #: took under ``TINY_S`` before) for it: worth it where a submission is costly
    batch_tiny = False
    #: True when the engine may run a trial it has measured tiny (its function's trials
    #: took under ``INLINE_S``; the task has no timeout, is not ``async def`` and is not a
    #: shell command) in the master thread instead of submitting it: worth it where a
    #: submission costs more than such a trial (a hand-off between threads).  Such a
    #: trial's worker is ``"master"``
    inline_tiny = False
    #: True when the executor runs each trial in the master thread, at once, the way
    #: :func:`~dagexec.run.worker.run_call` does (serial): the engine then runs a plain
    #: node's first trial itself, without a :meth:`submit` (:mod:`dagexec.run.here`)
    runs_in_master = False
    #: trials the engine may have in flight beyond :attr:`capacity`: they wait in the
    #: executor's own queue and start the moment a worker is free, without a round trip
    #: through the master.  An executor that queues ahead says when a trial began
    #: (:meth:`started_at`) and takes back one that has not (:meth:`withdraw`).  The
    #: engine queues ahead only in runs without callbacks (they are told of a trial's
    #: start when it is submitted)
    queue_ahead = 0
    #: trials of ``async def`` tasks the executor runs at once besides :attr:`capacity`
    #: (on an event loop: they wait without holding a worker); 0: they count as any trial
    async_capacity = 0
    #: True when trial values may stay where they were made: outcomes then carry
    #: :class:`Remote` handles, and :meth:`fetch` brings values over
    keeps_values = False
    #: True when a call may read the value of a call still in flight on this executor,
    #: which it waits for on its own side (:mod:`dagexec.run.ahead`): the engine then
    #: submits a trial's dependents with the trial's :meth:`promise` in their arguments,
    #: and calls :meth:`flush` after each pass of submissions.  Such an executor keeps
    #: values, says when a trial began (:meth:`started_at`) and takes back one that
    #: has not (:meth:`withdraw`)
    ahead = False
    #: True when, on a lane that goes :attr:`ahead`, the engine should send siblings (nodes
    #: of one level, ready in the same pass, alike in resources and in whether the master
    #: needs their values) several to a :meth:`submit_batch`, unlinked: about
    #: ``GROUPS_PER_SLOT`` groups for each of :attr:`parallelism`, decided from the plan's
    #: structure alone (:mod:`dagexec.run.siblings`)
    groups = False
    #: True when a pipe it runs may post :class:`Items` while it runs (``Batch.outlets``):
    #: a map over a stream then starts its items' trials as they arrive; otherwise the
    #: map gets the stream's complete list once its producer has finished
    outlets = False

    @property
    def capacity(self) -> int:
        """How many trials may be in flight at once."""
        return 1

    @property
    def parallelism(self) -> int:
        """How many trials the executor runs at the same time (its worker threads or
        processes); by default :attr:`capacity`."""
        return self.capacity

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome | None:
        """Start ``call``; return its outcome now, or None and ``post`` it later.

        ``post`` may be called from any thread, exactly once per call.  It never
        raises: where the backend refuses the work (a broken pool, a closed client),
        it returns :func:`crashed_outcome` with the backend's error.  The engine
        treats an exception raised here the same way.
        """
        raise NotImplementedError

    def submit_batch(self, batch: Batch, post: Callable[[Any], None]) -> BatchDone | None:
        """Start ``batch`` (only called when :attr:`batches` is True); return its
        :class:`BatchDone` now, or None and ``post`` it later.  Where it raises, the
        engine counts the first member ``crashed`` and runs the others again without
        using an attempt."""
        raise NotImplementedError

    def fetch(self, remotes: list[Remote]) -> list[Any]:
        """The values behind ``remotes`` (made by this executor), in order; only
        called when :attr:`keeps_values` is True."""
        raise NotImplementedError

    def started_at(self, call: Call) -> float | None:
        """When ``call`` began to run, by the master's ``time.time()``; ``math.inf``
        while it still waits in a queue of the backend's own; None when the executor
        does not know (the default).

        The engine counts a trial's timeout from this time, or from the trial's
        submission when it is None: an executor that queues trials of its own (a
        cluster) says so here, so waiting there does not use up a timeout.
        """
        return None

    def withdraw(self, call: Call | Batch) -> bool:
        """Take ``call`` back if it has not begun to run (it waits in a queue of the
        executor's own), so that it never will: True when taken back (its outcome
        never comes).  A fail_fast stop withdraws what waits; the default takes
        nothing back."""
        return False

    def abandon(self, call: Call | Batch) -> None:
        """``call`` ran past its timeout, or the run was interrupted: stop it if the
        backend can (its outcome is ignored)."""

    def promise(self, call: Call | Batch, idx: int | None = None) -> Remote | None:
        """A handle on the value ``call`` (submitted, in flight) is to make, or, for a
        batch, its member ``idx`` (a unit index), to give calls submitted to this
        executor before ``call`` ends; None when there is none (a chain's member other
        than its last).  Only called when :attr:`ahead` is True."""
        return None

    def stop_batch(self, batch: Batch) -> None:
        """fail_fast stopped the run while ``batch`` runs, and the engine has set its
        ``stopped``: an executor whose batches run in another process tells that side
        (a pipe there then gives no more items).  By default nothing: a batch that runs
        in this process reads ``stopped`` itself."""

    def more(self, batch: Batch) -> None:
        """The master took every :class:`Items` that pipe ``batch`` posted, and its map can
        take more: the pipe may post again (only when :attr:`outlets` is True)."""
        assert batch.taken is not None
        batch.taken.set()

    def flush(self) -> None:
        """Send what :meth:`submit` has gathered since the last flush; the engine calls
        it after each pass of submissions, before it waits (only when :attr:`ahead`)."""

    def run_starting(self) -> None:
        """A run is about to start its first trial on this executor (every executor,
        owned or not)."""

    def run_ended(self) -> None:
        """A run that used this executor ended (every executor, owned or not)."""

    def shutdown(self, *, cancel: bool = False) -> None:
        """Release the executor's resources; with ``cancel``, do not wait for running work."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
