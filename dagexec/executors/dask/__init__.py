"""``DaskExecutor``: trials as tasks on a dask.distributed cluster.

dagexec's master loop still decides what runs and when; dask decides where, and
moves the data.  Data flow::

    master process                      dask scheduler                worker W
    submit(call) / submit_batch(chain): a Future made now (promise()), the task gathered
    the loop submits, in the same pass, what waits for it (its promise as an argument)
    flush(): client.get(one graph of every gathered task) -->
                                        starts each task when its
                                        inputs exist (data, resources) --> _run_trial(),
                                                                     _run_batch() or _run_group():
                                                                         run_call() / run_batch()
                                                                         a report (no value):
                                                                         a failure at once,
                                                                         successes and late
                                                                         starts a few to an event
                                                                         the value stays in W
    _on_trial_event() <------------- events on the executor's topic ---+
      post((idx, attempt, True, Remote(self, future), ...)) or a BatchDone
    _on_cluster_event() <-- "remove-worker" on topic "all" (a worker died)

* **The plan goes ahead** (``ahead``, :mod:`dagexec.run.ahead`).  ``submit`` makes the
  task's future at once and gathers the task; the loop asks its :meth:`promise` and
  submits the dependents with it in their arguments; ``flush`` sends what a pass
  gathered as one graph, with each task's ``resources`` and the order of submission
  as its dask priority, by key.
* **Chains are one task** (``batches``): a linear chain the loop batches runs in one
  dask task, each member reading the one before in the worker; its value is the last
  member's, and one event carries every member's record.  A batch that is not one
  chain, or whose member other than the last is kept, is split (its members go alone).
* **Siblings are one task** (``groups``, :mod:`dagexec.run.siblings`): the engine
  sends nodes of one level several to a batch with no member linked; it runs as one
  dask task (:func:`.worker._run_group`) whose value is the tuple of the members'
  values, and one event carries every member's record.  A member's handle is an
  ``_Elem`` of the group's future; a reader's task takes its element in a nested
  dask task, so only the group's tuple moves between workers.
* **Values stay on the workers.**  A trial's value is its dask task's result; the
  engine holds it as a ``Remote(self, future)``.  A call on this executor gets the
  futures of its inputs as arguments (at the top level and inside lists, tuples,
  dicts and sets), so dask moves a value from worker to worker only when the
  consumer runs elsewhere.  The run's outputs and ``keep=`` values, and a value
  that a call on another executor reads, come to the master through ``fetch`` (one
  ``client.gather``).  When the engine drops the last ``Remote`` of a value its
  future goes, and dask releases the value.
* **Outcomes travel as reports, not as task results** (:mod:`.reports`).  The
  worker logs a small report on this executor's topic (start, end and worker; or the
  pickled error and traceback), which the client hands to ``_on_trial_event`` on
  its event loop: a failure in an event of its own, sent before the task is reported
  finished, so the master never waits for a value to learn that a trial failed;
  successes a few milliseconds later, several to an event (``worker._Reports``).
  When dask says a task finished before its report came, the executor waits for
  it (``_late``; one timer fails a trial whose report is lost).
  A failed trial's task returns a marker (``_FAILED``) that no consumer is ever
  given: were dask to recompute it after a loss and fail, a consumer reading it
  fails by name.
* **Crashes.**  When a worker dies (not when it is retired), the scheduler logs a
  ``remove-worker`` event with the tasks the worker was processing.  Those whose
  "started" event had arrived crashed: they end ``crashed`` with a
  :class:`~dagexec.WorkerCrashed` naming the node and the worker, and their tasks are
  cancelled, so dask does not run them again by itself and dagexec's retries decide.
  Those that had not started (queued on that worker) are bystanders: dask gives them
  to another worker, and they keep their attempt.
* **One outcome per trial.**  Whoever claims a trial from the executor's
  :class:`~dagexec.executors._inflight.InFlight` (by its dask key, under the
  registry's lock) posts its outcome: the "ended" event, a crash, the done-callback
  of a future that erred or was cancelled, or ``abandon`` (a timeout, Ctrl-C).
* **The task function** is pickled once per run (its ``Task``: a module's function by
  reference); workers keep what they unpickled, by digest.

The master side is this module, :mod:`.hub`, :mod:`.graph` and :mod:`.reports`;
dask workers import :mod:`.worker` (dagexec installed where they run), whose task
functions are submitted by reference.  A running pipe is stopped by an event.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import logging
import math
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from ..._errors import WorkerCrashed
from ...run.protocol import (
    O_OK,
    Batch,
    BatchDone,
    Call,
    Executor,
    Outcome,
    Remote,
    crashed_outcome,
    failed_outcome,
    with_value,
)
from .._crash import died_outcome, refused, worker_died
from .._inflight import InFlight, Submission
from .._transport import SpecPickler
from .graph import Elem, graph_of, member_value, not_sent, resources_of, swap_remotes
from .hub import _Hub, cancel_soon, join_hub, leave_hub
from .outlets import items_posted, tell_taken
from .reports import batch_outcomes, trial_outcome
from .worker import _FAILED, _drop_tracebacks, _run_batch, _run_group, _run_pipe, _run_trial, stop_pipe

logger = logging.getLogger("dagexec.executors.dask")

__all__ = ["UNLIMITED", "DaskExecutor"]

#: the capacity of an executor given no ``max_in_flight``: trials waiting in dask's
#: queues do not use up their timeouts, and a fail_fast stop takes back what has not
#: started, so nothing bounds what is submitted ahead
UNLIMITED = sys.maxsize

#: seconds a finished task may wait for its "ended" event before its trial fails
_LOST_EVENT_S = 10.0

#: what a trial's crash says when the client would not take it (a closed client)
_REFUSED = refused("the dask client")

_NO_CLIENT = (
    "executor 'dask' needs a dask.distributed client, and there is none: make one first "
    "(distributed.Client(address) or distributed.Client(distributed.LocalCluster())), "
    "give run() scheduler='tcp://host:8786', or pass DaskExecutor('tcp://host:8786')"
)


class _Sub(Submission):
    """One trial in flight: a dask task (its ``future`` made at submission, before the
    task is sent), until its outcome is claimed."""

    __slots__ = ("began", "running", "started")

    def __init__(self, call: Call, post: Callable[[Any], None], batch: Batch | None = None) -> None:
        super().__init__(call, post, batch)
        self.started = False  # its "started" event arrived
        self.began = math.inf  # when it did, by the master's clock
        self.running = call  # a batch's member last told running (its first, until told)


class DaskExecutor(Executor):
    """Runs trials as tasks on a dask.distributed cluster; values stay on its workers.

    Each trial, linear chain of trials or group of sibling trials is one dask task
    (dask's ``retries=0``: retries are dagexec's), keyed ``<node key>-a<attempt>-<token>``
    (a chain's and a group's by its first member), given the task's ``resources``
    option as dask worker resources.  A trial's dependents are sent
    ahead with its future, one graph per pass of the engine's loop; inputs made on
    the cluster move from worker to worker, never through the master; only outputs
    and ``keep=`` values are gathered.  See ``docs/distributed.md``.

    Args:
        client_or_address: a ``distributed.Client``; a scheduler address
            (``"tcp://host:8786"``), for which the executor makes a client of its own
            and closes it at :meth:`shutdown`; or None for the current client
            (``distributed.get_client()``), else one to dask's configured
            ``scheduler-address`` (``DASK_SCHEDULER_ADDRESS``).
        max_in_flight: dask tasks (trials, chains, groups) submitted to the cluster
            at once; by default no limit (:data:`UNLIMITED`).

    Raises:
        ValueError: with no client and no address, saying how to make one; for a
            ``max_in_flight`` that is not an int >= 1.
        TypeError: for a ``client_or_address`` that is neither.
        ImportError: when ``distributed`` is not installed.
        OSError: when the scheduler at the address cannot be reached.
    """

    name = "dask"
    needs_pickle = True
    keeps_values = True
    batches = True  # linear chains, as one dask task each
    ahead = True
    groups = True  # siblings, several to a dask task
    outlets = True  # a pipe's items for a map sent while it runs

    def __init__(self, client_or_address: Any = None, *, max_in_flight: int | None = None) -> None:
        if max_in_flight is not None and (
            isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1
        ):
            raise ValueError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        import dask
        import distributed

        # distributed is typed in part: the client is used as Any
        Client: Any = distributed.Client
        get_client: Any = distributed.get_client
        client: Any
        self._owns_client = False
        if client_or_address is None:
            try:
                client = get_client()
            except ValueError:
                address = dask.config.get("scheduler-address", None)
                if not address:
                    raise ValueError(_NO_CLIENT) from None
                client = Client(address, set_as_default=False)
                self._owns_client = True
        elif isinstance(client_or_address, str):
            client = Client(client_or_address, set_as_default=False)
            self._owns_client = True
        elif isinstance(client_or_address, Client):
            client = client_or_address
        else:
            raise TypeError(
                "DaskExecutor takes a distributed.Client or a scheduler address such as "
                f"'tcp://host:8786', got {type(client_or_address).__name__}"
            )
        self._client: Any = client
        self._future: Any = distributed.Future
        self._max = max_in_flight
        self._inflight: InFlight[str, _Sub] = InFlight()  # dask key -> trial in flight
        # dask key -> (its trial or batch, the function its task runs, that function's
        # arguments): submitted, sent at the next flush
        self._gathered: dict[str, tuple[_Sub, Callable[..., Any], tuple[Any, ...]]] = {}
        self._prefix = uuid.uuid4().hex[:8]
        self._count = itertools.count()
        self._sent = 0  # tasks sent, for their dask priority
        self._hub: _Hub | None = None  # set while a run uses the executor
        self._threads: int | None = None  # the cluster's worker threads, read once a run
        # dask key -> when dask said its task finished, while its report is awaited;
        # one timer looks them over
        self._late: dict[str, float] = {}
        self._late_lock = threading.Lock()
        self._sweeper: threading.Timer | None = None
        # pickled this run: id(task or function) -> (it, digest, bytes), id(spec) -> (spec, blobs)
        self._pickler = SpecPickler()  # task functions and specs, pickled once per run

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` trials are submitted with."""
        return self._client

    @property
    def capacity(self) -> int:
        """``max_in_flight``; by default no limit (:data:`UNLIMITED`): the plan's part
        on the cluster is submitted at once, and dask's scheduler runs it."""
        return UNLIMITED if self._max is None else self._max

    @property
    def parallelism(self) -> int:
        """The cluster's worker threads, asked of the scheduler once a run (at least 1;
        1 when it cannot be asked)."""
        if self._threads is None:
            try:
                self._threads = max(1, sum(self._client.nthreads().values()))
            except Exception:
                logger.info("could not ask the dask scheduler for its threads", exc_info=True)
                self._threads = 1
        return self._threads

    # -- submission ----------------------------------------------------------------------
    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome | None:
        """Gather ``call`` for the next :meth:`flush`, as a dask task whose future exists
        from now on; a failed outcome at once when it cannot go."""
        try:
            topic = self._joined()
        except Exception as exc:  # a closed client refuses even the subscription
            return crashed_outcome(call, exc, time.time(), _REFUSED)
        try:
            blobs = self._pickler.blobs(call.spec)
            args, kwargs, inputs = swap_remotes(call, self)
        except Exception as exc:
            return failed_outcome(call, exc, time.time(), "master")
        head = (call.idx, call.attempt, call.key) + (() if call.trace is None else (call.trace,))
        self._gather(call, post, None, _run_trial, topic, (head, blobs, args, kwargs, inputs))
        return None

    def submit_batch(self, batch: Batch, post: Callable[[Any], None]) -> BatchDone | None:
        """Gather a linear chain as one dask task that runs its members in order on one
        worker (:func:`.worker._run_batch`; its value is the last member's), or a group
        of siblings (no member linked) as one that runs each (:func:`.worker._run_group`;
        its value the tuple of theirs).  A batch that is neither, or a chain whose value
        other than the last's is kept, is split at once (its members go one by one)."""
        group = not any(batch.linked)
        if batch.feeds is None and not group and (not all(batch.linked[1:]) or any(batch.keep[:-1])):
            return BatchDone(batch, [], split=True)
        try:
            topic = self._joined()
            blobs = [self._pickler.blobs(call.spec) for call in batch.calls]
            swapped = [swap_remotes(call, self) for call in batch.calls]
        except Exception:
            return BatchDone(batch, [], split=True)  # each alone says what went wrong
        heads = [(c.idx, c.attempt, c.key) + (() if c.trace is None else (c.trace,)) for c in batch.calls]
        if batch.feeds is not None:  # a pipe: its value, as a group's, the tuple of its members'
            pipe = (heads, blobs, swapped, batch.linked, batch.keep, batch.feeds, batch.outlets)
            self._gather(batch.calls[0], post, batch, _run_pipe, topic, pipe)
        elif group:
            self._gather(batch.calls[0], post, batch, _run_group, topic, (heads, blobs, swapped))
        else:
            self._gather(batch.calls[0], post, batch, _run_batch, topic, (heads, blobs, swapped, batch.linked))
        return None

    def _joined(self) -> str:
        """The topic of this run's trial events, the client's hub joined on first use
        (raises where the client refuses)."""
        if self._hub is None:
            self._hub = join_hub(self._client, self)
        return self._hub.topic

    def _gather(
        self, first: Call, post: Callable[[Any], None], batch: Batch | None, fn: Any, topic: str, rest: tuple[Any, ...]
    ) -> None:
        """Register a trial (or batch, ``first`` its first call) as in flight, its future
        made now, and gather its task ``fn(topic, dask key, *rest)`` for the next flush."""
        dkey = f"{first.key}-a{first.attempt}-{self._prefix}{next(self._count) & 0xFFFFFFFF:08x}"
        sub = _Sub(first, post, batch)
        sub.future = self._future(dkey, self._client)  # a handle on the value to be: promise()
        self._inflight.add(dkey, first if batch is None else batch, sub)
        self._gathered[dkey] = (sub, fn, (topic, dkey, *rest))
        if not self.ahead:  # a subclass the engine does not flush: each task goes now
            self.flush()

    def promise(self, call: Call | Batch, idx: int | None = None) -> Remote | None:
        """A handle on the value ``call`` is to make: its dask future; for a chain's
        member ``idx``, the future when it is the last member (else None); for a group's,
        its element of the group's value."""
        sub = self._inflight.find(call)
        if sub is None:
            return None
        if sub.batch is None or idx is None:
            return Remote(self, sub.future)
        return member_value(self, sub.future, sub.batch, idx)

    def flush(self) -> None:
        """Send the tasks :meth:`submit` gathered since the last flush as one dask graph
        (dask's ``retries=0``): each task given its ``resources`` and, as its dask
        priority, the order of its submission (the engine's order: a dependent right
        after what it waits for), both by key."""
        if not self._gathered:
            return
        from dask._task_spec import Task, parse_input

        gathered, self._gathered = self._gathered, {}
        dsk = {dkey: Task(dkey, fn, *map(parse_input, task_args)) for dkey, (_, fn, task_args) in gathered.items()}
        # dask calls these with each new key (they travel pickled: builtins only)
        first, self._sent = self._sent, self._sent + len(dsk)
        priority = collections.defaultdict(int, zip(dsk, range(-first, -first - len(dsk), -1), strict=True))
        resources = resources_of(gathered)
        try:
            self._client.get(
                graph_of(dsk, f"dagexec-{self._prefix}-{first:x}"),
                list(dsk),
                sync=False,
                priority=priority.__getitem__,
                resources=resources.__getitem__ if resources else None,
                retries=0,
            )
        except Exception as exc:
            _drop_tracebacks(exc, clear=True)
            self._not_taken(gathered, exc)
            # the errors dask logged on the way keep this frame: it holds no trial
            gathered.clear()
            dsk.clear()
            return
        for dkey, entry in gathered.items():
            entry[0].future.add_done_callback(lambda f, dkey=dkey: self._done(dkey, f))

    def _not_taken(self, gathered: dict[str, tuple[_Sub, Callable[..., Any], tuple[Any, ...]]], exc: Exception) -> None:
        """The client would not take the graph of ``gathered``: each trial's outcome
        (:func:`.graph.not_sent`); a batch is split, its members saying why one by one."""
        for dkey, (sub, _, task_args) in gathered.items():
            if self._inflight.claim(dkey) is None:
                continue
            if sub.batch is not None:
                sub.post(BatchDone(sub.batch, [], split=True))
            else:
                sub.post(not_sent(sub.call, task_args[4], task_args[5], exc, _REFUSED))

    # -- outcomes (on the client's event loop, or dask's callback thread) -----------------
    def _end(self, sub: _Sub, out: Outcome, cancel: bool = False) -> None:
        """Post the outcome of a claimed trial; with ``cancel``, cancel its task.  For a
        batch, ``out`` is one member's (a crash, a lost report): the others go again
        without using an attempt (their values, if any, were in the task's)."""
        if cancel:
            cancel_soon(self._client, [sub.future])
        if sub.batch is not None:
            sub.post(BatchDone(sub.batch, [out]))
            return
        if out[O_OK]:
            out = with_value(out, Remote(self, sub.future))
        sub.post(out)

    def _on_trial_event(self, msg: Any) -> bool:
        """Handle a trial's event; False when the trial is not this executor's."""
        dkey = msg.get("k")
        if not isinstance(dkey, str) or not dkey.endswith(self._prefix, -16, -8):
            return False
        if "o" in msg:  # a pipe's items for a map (.outlets)
            if (sub := self._inflight.get(dkey)) is not None and sub.batch is not None:
                sub.post(items_posted(sub.batch, msg))
            return True
        if "s" in msg:
            sub = self._inflight.get(dkey)
            if sub is not None:
                if not sub.started:
                    sub.began = time.time()
                    sub.started = True
                if "m" in msg and sub.batch is not None:
                    sub.running = sub.batch.calls[msg["m"]]
            return True
        found = self._inflight.claim(dkey)
        if found is None:
            return True  # abandoned, crashed, or run again by dask after a loss
        if found.batch is not None:
            found.post(batch_outcomes(found.batch, msg, lambda idx: member_value(self, found.future, found.batch, idx), found.start))
            return True
        out = trial_outcome(found.call, msg, found.start)
        self._end(found, out)
        return True

    def _worker_died(self, worker: str, keys: Any) -> None:
        """A worker died with ``keys`` in processing: the started trials among them crashed."""
        for dkey in keys:
            sub = self._inflight.get(dkey)
            if sub is None:
                continue
            if not sub.started:
                logger.info("trial %r was queued on dead worker %s: dask runs it elsewhere", dkey, worker)
                continue
            sub = self._inflight.claim(dkey)
            if sub is None:
                continue
            call = sub.running  # a batch's: the member told running, else its first
            error = worker_died(call, f"its dask worker {worker}", worker=worker)
            logger.warning(
                "node %r: dask worker %s died while running attempt %d", call.key, worker, call.attempt
            )
            self._end(sub, died_outcome(call, error, sub.start, worker), cancel=True)

    def _done(self, dkey: str, future: Any) -> None:
        """A trial's future is done; an outcome still unclaimed comes from here."""
        if self._inflight.get(dkey) is None:
            return
        status = future.status
        if status == "finished":
            # its report comes a few ms after dask says it finished: wait for it
            with self._late_lock:
                self._late[dkey] = time.monotonic()
                if self._sweeper is None:
                    self._sweeper = threading.Timer(1.0, self._sweep)
                    self._sweeper.daemon = True
                    self._sweeper.start()
            return
        sub = self._inflight.claim(dkey)
        if sub is None:
            return
        call = sub.call
        error: BaseException
        text = ""
        if status == "error":
            try:
                error = future.exception()
                tb = future.traceback()
                text = "".join(traceback.format_exception(type(error), error, tb))
            except Exception as exc:
                error = exc
            if type(error).__name__ == "KilledWorker":
                error = WorkerCrashed(
                    f"node {call.key!r}: dask gave up on attempt {call.attempt} after workers died running it",
                    call.key,
                )
        else:
            error = concurrent.futures.CancelledError(
                f"node {call.key!r}: its dask task was cancelled (dask future status {status!r})"
            )
        self._end(sub, died_outcome(call, error, sub.start, "dask", text))

    def _sweep(self) -> None:
        """Fail the trials whose task finished :data:`_LOST_EVENT_S` ago and whose
        report never came; look again in a second while some wait."""
        now = time.monotonic()
        with self._late_lock:
            lost = [k for k, t in self._late.items() if now - t > _LOST_EVENT_S]
            for dkey in lost:
                del self._late[dkey]
        for dkey in lost:
            self._no_event(dkey)
        with self._late_lock:
            self._late = {k: t for k, t in self._late.items() if self._inflight.get(k) is not None}
            self._sweeper = None
            if self._late:
                self._sweeper = threading.Timer(1.0, self._sweep)
                self._sweeper.daemon = True
                self._sweeper.start()

    def _no_event(self, dkey: str) -> None:
        sub = self._inflight.claim(dkey)
        if sub is None:
            return
        call = sub.call
        error = RuntimeError(
            f"node {call.key!r}: its dask task finished, but the report of its outcome never arrived"
        )
        self._end(sub, failed_outcome(call, error, sub.start, "dask"))

    def more(self, batch: Batch) -> None:
        """The engine took a pipe's items: the pipe is told (:mod:`.outlets`)."""
        if (dkey := self._inflight.token_of(batch)) is not None:
            tell_taken(self._client, dkey)

    def stop_batch(self, batch: Batch) -> None:
        """fail_fast stopped the run: a pipe running on a worker gives no more items."""
        if batch.feeds is not None and (dkey := self._inflight.token_of(batch)) is not None:
            stop_pipe(self._client, dkey)

    def started_at(self, call: Call | Batch) -> float | None:
        """When ``call``'s "started" event arrived; ``math.inf`` while its task waits
        in dask's queues (a timeout counts from the start); None once its outcome is in."""
        sub = self._inflight.find(call)
        return None if sub is None else sub.began

    # -- values ----------------------------------------------------------------------------
    def fetch(self, remotes: list[Remote]) -> list[Any]:
        """The values behind ``remotes``, in one ``client.gather``.

        Raises:
            RuntimeError: for a value dask lost and failed to compute again.
        """
        refs = [r.ref for r in remotes]
        futures = [ref.future if type(ref) is Elem else ref for ref in refs]
        unique = list({f.key: f for f in futures}.values())  # a group's task once
        got = dict(zip((f.key for f in unique), self._client.gather(unique), strict=True))
        values: list[Any] = []
        for ref, future in zip(refs, futures, strict=True):
            value = got[future.key]
            if value is not _FAILED and type(ref) is Elem:
                value = value[ref.k]
            if value is _FAILED:
                raise RuntimeError(
                    f"the value of dask task {future.key!r} was lost with a worker, "
                    "and dask's recomputation of it failed"
                )
            values.append(value)
        return values

    # -- the end of a trial, a run, the executor ------------------------------------------------
    def abandon(self, call: Call | Any) -> None:
        """Cancel ``call``'s dask task (``force=True``): its outcome is ignored, and a running
        one goes on in its thread until its function returns (a pipe's gives no more items)."""
        dkey = self._inflight.token_of(call)
        sub = self._inflight.claim_unit(call)
        if sub is not None and (dkey is None or self._gathered.pop(dkey, None) is None):  # sent
            cancel_soon(self._client, [sub.future])
            if dkey is not None and sub.batch is not None and sub.batch.feeds is not None:
                stop_pipe(self._client, dkey)

    def withdraw(self, call: Call | Any) -> bool:
        """Take ``call`` back if its "started" event has not arrived: its task is
        cancelled, and its outcome never comes."""
        sub = self._inflight.find(call)
        if sub is None or sub.started:
            return False
        self.abandon(call)
        return True

    def run_ended(self) -> None:
        """Unsubscribe from the client's events and forget what was pickled."""
        hub, self._hub = self._hub, None
        if hub is not None:
            leave_hub(hub, self)
        self._inflight.clear()
        self._gathered.clear()
        self._pickler.clear()
        self._threads = None
        with self._late_lock:
            sweeper, self._sweeper = self._sweeper, None
            self._late.clear()
        if sweeper is not None:
            sweeper.cancel()

    def shutdown(self, *, cancel: bool = False) -> None:
        """End the run's use of the cluster; close the client when the executor made it."""
        subs = self._inflight.pending()
        if cancel and subs:
            cancel_soon(self._client, [s.future for s in subs if s.future is not None])
        self.run_ended()
        if self._owns_client:
            try:
                self._client.close()
            except Exception:
                logger.warning("closing the dask client failed", exc_info=True)

    def __repr__(self) -> str:
        try:
            address = self._client.scheduler.address
        except Exception:
            address = "?"
        return f"DaskExecutor({address!r})"
