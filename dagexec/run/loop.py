"""The run loop: one master loop per run.

The master thread owns every piece of run state; executors only execute::

    ready stacks (one per lane) --submit(Call)--> executor --> worker: run_call()
          ^                                                          |
          |                        outcome tuple (via post() or returned at once)
          |                                                          v
     dependents whose last dependency finished  <--  finish(outcome) in the master

Ready nodes are popped last-in first-out (depth-first), so intermediates are consumed
and released early.  Serial executors return the outcome from ``submit``; the others
post it to ``q``, which the loop waits on until the nearest deadline or retry.  The hot
path (``_loop``, ``finish``, ``submit``) binds lists to locals and unpacks the
outcome tuple once.

The loop's state is a :class:`~.state.RunState` (it is one): flat lists indexed by
*unit* ``u``, nodes first, then graph inputs and constants, then the map items
expansions append, described there.  What the loop adds:

* ``calls``          unit -> the Call or Batch in flight;
* per lane           ``execs``, ``caps``, ``inflight`` and the ``ready`` stack;
* ``q``              the queue executors post outcomes and BatchDones to;
* ``failed_order``   the nodes that failed, in order (for RunFailed);
* ``stopping``, ``stop_time``: fail_fast stopped the run, and when;
* ``remote``         an executor keeps values on its workers (:mod:`.values`);
* ``own_specs``      the run's specs are not the plan's (``check_mutation``).

Its collaborators: ``trials`` (:mod:`.trials`; ``rows`` is its list, for ``finish``),
``timers`` (:mod:`.timers`), ``batches`` (:mod:`.batching`), ``maps`` (:mod:`.maps`,
for the ``map_nodes``; ``items`` leads from an item's unit to its expansion,
``map_runs`` from a map node to it), ``cache`` (:mod:`dagexec.cache.session`;
``saving[u]``: the unit's value is written), ``conds`` (:mod:`.conds`, by predicate
slot); what fails or is skipped downstream of a unit, :mod:`.triggers` walks (a node
with a trigger rule decides for itself).  A value the master makes without a trial (a map's join, a map item the cache
serves) goes through ``settle``.  :mod:`.policy` says what a failed trial means,
:mod:`.values` moves values kept on workers, :mod:`.result` makes the result,
:mod:`.state` holds the states and lanes.
"""

from __future__ import annotations

import logging
import operator
import queue
import time
from itertools import compress
from typing import TYPE_CHECKING, Any

from .._plan import NodeSpec
from .._state import State, Trial
from ..cache.session import CacheSession
from .ahead import push_dependents, withdraw_ahead
from .batching import Batching, finish_batch, submit_batch
from .conds import choose, conds_by_predicate
from .here import drain_here
from .interrupt import cancel_all, stop_batches, withdraw_waiting
from .maps import Maps
from .policy import next_wait, refused, timeout_error, trial_state
from .protocol import O_ATTEMPT, Batch, BatchDone, Call, Executor, Items, Outcome
from .result import run_result
from .siblings import submit_by_level
from .state import (
    CACHED,
    CANCELLED,
    EXPAND,
    FAILED,
    MEMBER,
    PENDING,
    RELEASED,
    RUNNING,
    SUCCEEDED,
    RunState,
    async_lanes,
)
from .timers import Timers, expire
from .trials import Callbacks, Trials
from .triggers import fail_downstream, run_after_stop, survives_stop
from .values import call_values, localize

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .._result import RunResult
    from ..cache.decide import CacheDecision
    from ..cache.store import CacheStore
    from ..plan.arguments import Arguments
    from .bundles import BundleWriter
    from .tracing import TraceWriter

logger = logging.getLogger("dagexec.engine")

_CORO = operator.attrgetter("coro")
_TIMEOUT = operator.attrgetter("timeout")
#: a lane whose executor runs every trial in the master (see ``_loop``)
ALL: Any = frozenset()


class Loop(RunState):
    """One run, driven by the master thread: its run state (:class:`~.state.RunState`)
    and what moves it."""

    def __init__(
        self,
        plan: CompiledGraph,
        arguments: Arguments,
        execs: list[Executor],
        route_idx: list[int],
        fail_fast: bool,
        callbacks: Callbacks,
        specs: tuple[NodeSpec, ...] | None = None,
    ) -> None:
        self.plan = plan
        self.execs = list(execs)
        # trials may wait in an executor's queue (queue_ahead) where nothing is told of
        # a trial's start at its submission: in a run without callbacks
        self.caps = [ex.capacity + (0 if callbacks else ex.queue_ahead) for ex in execs]
        route: Any = route_idx
        if any(map(_CORO, plan._specs)):
            route = async_lanes(plan, self.execs, self.caps, route_idx)
        RunState.__init__(self, plan, arguments, route, specs)
        self.own_specs = specs is not None
        self.timeouts = any(map(_TIMEOUT, plan._specs))  # (a timeout of 0 is refused by the task)
        self.fail_fast = fail_fast
        self.cb = callbacks
        self.has_cb = bool(callbacks)
        self.trials = Trials(plan._keys, callbacks, self.n)
        self.rows = self.trials.rows
        if plan._maps:
            self.track(self.rows, None)
        self.calls: dict[int, Call | Batch] = {}
        # a dependent's inputs not yet made or promised, once one of them was (run/ahead.py)
        self.unsent: dict[int, int] = {}
        # the nodes a stream feeds: where their call holds a list, not FEED, an iterator over it
        self.fed_any = plan._stream_feeds().fed
        self.bundles: BundleWriter | None = None  # run(bundles=): run/bundles.py
        self.tracer: TraceWriter | None = None  # run(trace=True): run/tracing.py
        self.inflight = [0] * len(self.execs)
        self.ready: list[list[int]] = [[] for _ in self.execs]
        self.timers = Timers()
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()  # Outcome or BatchDone
        self.failed_order: list[int] = []
        self.remote = any(ex.keeps_values for ex in execs)
        self.stopping = False
        self.stop_time = float("inf")  # when fail_fast stopped the run
        self.interrupted = False
        self.start = 0.0
        self.cache: CacheSession | None = None
        self.saving: list[bool] | None = None  # the cache session's, one attribute away
        self.earlier: dict[int, list[Trial]] = {}
        self.map_nodes = plan._maps
        self.maps = Maps(self)
        self.map_runs = self.maps.runs
        self.items = self.maps.items
        self.trials.item_key = self.maps.key
        self.batches = Batching(plan, self.execs, len(execs), self.remote, self)
        self.conds = conds_by_predicate(plan)

    def use_cache(self, store: CacheStore, decision: CacheDecision, earlier: dict[int, list[Trial]]) -> None:
        """Mark the nodes the cache serves (or that only cached nodes need) ``cached``,
        with their loaded values, and those that succeeded in the run being resumed
        ``succeeded``; the nodes that run write their values to ``store``; ``earlier``
        trials (of the run being resumed) come first in the result."""
        cache = self.cache = CacheSession(self.plan, store, decision, earlier)
        cache.apply(decision, self.state, self.vals, self.left, self.waiting)
        self.saving = cache.saving
        self.track(self.saving, False)
        self.earlier = earlier

    # -- the loop -----------------------------------------------------------------
    def execute(self) -> RunResult:
        """Run the plan to its end, or until an interrupt (raised again), and return
        the result."""
        plan = self.plan
        self.start = time.time()
        t0 = time.perf_counter()
        logger.info("run of graph %r: %d nodes", plan.name, sum(self.selected))
        self.cb.call("on_run_start", plan)
        if self.conds is not None:  # predicates known before anything runs: inputs, cached
            state, vals = self.state, self.vals
            for slot in self.conds:
                if (slot >= self.n or state[slot] in (CACHED, SUCCEEDED)) and vals[slot] is not RELEASED:
                    choose(self, slot, vals[slot], ready=False)
        state, route, ready = self.state, self.route, self.ready
        for i in compress(range(self.n), map(operator.not_, self.waiting)):  # nothing to wait for
            if state[i] == PENDING:
                ready[route[i]].append(i)
        for stack in self.ready:
            stack.reverse()  # so that the first ready node in plan order runs first
        for ex in dict.fromkeys(self.execs):  # an executor has a lane per kind of task
            ex.run_starting()
        try:
            self._loop()
        except BaseException:
            self.interrupted = True
            cancel_all(self)
            result = run_result(self, time.perf_counter() - t0)
            self.cb.call("on_run_end", result)
            raise
        if PENDING in self.state:
            for i in range(self.n):
                if self.state[i] == PENDING:
                    self.state[i] = CANCELLED
        self.maps.stopped(time.time())
        self.trials.end_unstarted()
        result = run_result(self, time.perf_counter() - t0)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "run of graph %r ended in %.3f s: %s", plan.name, result.duration, "ok" if result.ok else "failed"
            )
        self.cb.call("on_run_end", result)
        return result

    def _loop(self) -> None:
        execs = self.execs
        ready = self.ready
        inflight = self.inflight
        q = self.q
        submit = self.submit
        caps = self.caps
        n_exec = len(execs)
        has_cb = bool(self.cb)
        batches = self.batches
        batching = batches.on
        observe = batches.observe if any(batches.measured) else None
        batch_members = batches.members
        # per lane: None, or the trials it runs in the master (drain_here): all (the
        # executor runs every trial there) or the functions measured tiny; not where
        # values are kept on workers (the submit path brings them over, localize), nor
        # where the run's specs are not the plan's (check_mutation)
        here: list[Any] = [ALL if ex.runs_in_master and not self.remote else None for ex in execs]
        for r, inline in enumerate(batches.inline):
            if inline:
                here[r] = batches.quick
        if self.own_specs or self.tracer is not None:  # every trial through its Call
            here = [None] * n_exec
        plain = self.plan._plain_units() if any(h is not None for h in here) else ()
        # per lane: whether its dependents are submitted ahead (run/ahead.py); not on a
        # lane of async tasks (an executor's second lane), nor in a run with callbacks
        # (they hear of a trial's start when it is submitted)
        ahead = [ex.ahead and not has_cb and execs.index(ex) == r for r, ex in enumerate(execs)]
        flushes = [ex.ahead for ex in execs]
        # per lane: whether its ready plain nodes go level by level, siblings grouped
        grouped = [a and ex.groups and b for a, ex, b in zip(ahead, execs, batching, strict=True)]
        n = self.n
        has_maps = bool(self.map_nodes)
        kind = self.kind
        maps = self.maps
        retries = self.timers.retries
        next_wake = self.timers.next_wake
        while True:
            for r in range(n_exec):
                stack = ready[r]
                ex = execs[r]
                cap = caps[r]
                quick = here[r]
                if grouped[r] and stack:
                    submit_by_level(self, r, ex, stack)
                while stack:
                    if quick is not None:
                        top = stack[-1]  # its first trial, run in the master? (drain_here's test)
                        if top < n and (direct := plain[top]) is not None and (quick is ALL or direct[0] in quick):
                            drain_here(self, stack, None if quick is ALL else quick, plain)
                            if not stack:
                                break
                    if inflight[r] >= cap:
                        break
                    i = stack.pop()
                    if ahead[r] and self.state[i] != PENDING:
                        continue  # submitted ahead already, and readied by its input's end
                    if has_maps and kind[i] == EXPAND:
                        maps.expand(i, stack)
                        continue
                    if batching[r]:
                        members = batch_members(i, r, stack)
                        if members is not None:
                            submit_batch(self, members, r, ex, stack if ahead[r] else None)
                            continue
                    submit(i, r, ex, stack if ahead[r] else None)
                if flushes[r]:
                    ex.flush()  # what this pass submitted, sent at once
            if not any(inflight) and not retries and not maps.streaming:
                if any(ready) or (self.stopping and self.plan._gates and run_after_stop(self)):
                    continue
                return
            wait = next_wake()
            try:
                out = q.get(timeout=wait) if wait is None or wait > 0 else q.get_nowait()
            except queue.Empty:
                out = None
            if out is not None:
                self.take_posted(out, observe)
            expire(self)

    def submit(self, i: int, r: int, ex: Executor, ahead: list[int] | None) -> None:
        """Submit unit ``i``'s next trial to ``ex`` (lane ``r``); with ``ahead``, the
        lane's stack, its dependents that may go ahead onto it (:mod:`.ahead`)."""
        call = self.make_call(i)
        if self.remote:
            # containers to walk: a map item's arguments are its map's
            error = localize(call, ex, self.nested[self.owner[i]])
            if error is not None:
                self.finish(error, False)
                return
        if self.has_cb:
            self.trials.started(i, call.attempt)
            if self.tracer is not None:  # the trace context the trial runs in
                call.trace = self.tracer.traceparent(self.trials.key(i), call.attempt)
        try:
            out = ex.submit(call, self.q.put)
        except Exception as exc:
            out = refused(call, ex, exc)
        if out is not None:
            self.finish(out, False)
            return
        self.inflight[r] += 1
        self.calls[i] = call
        timeout = call.spec.timeout
        if timeout is not None:
            self.timers.deadline(time.time() + timeout, i, call.attempt)
        if ahead is not None:
            push_dependents(self, i, call, ex, r, ahead)

    def make_call(self, i: int) -> Call:
        """Unit ``i``'s next trial, its arguments filled in; the unit is running."""
        self.state[i] = RUNNING
        attempt = self.attempt[i] + 1
        self.attempt[i] = attempt
        spec = self.specs[i]
        if spec is None:  # a map item's first trial: its spec and arguments are made
            spec = self.specs[i] = self.maps.spec(i)
        return Call(i, attempt, spec, *call_values(self, i))

    def take_posted(self, out: Any = None, observe: Any = None) -> None:
        """Finish ``out`` and what else executors have posted, without waiting;
        ``observe`` each trial's time (lanes that measure trials)."""
        q = self.q
        finish = self.finish
        while True:
            if out is None:
                try:
                    out = q.get_nowait()
                except queue.Empty:
                    return
            if type(out) is BatchDone:
                finish_batch(self, out, True)
            elif type(out) is Items:  # a pipe's items for a map over its stream
                self.maps.arrived(out)
            else:
                if observe is not None:
                    observe(out)
                finish(out, True)
            out = None

    def unstart(self, call: Call) -> None:
        """``call`` was submitted in a batch but did not run: its unit is pending again."""
        i = call.idx
        if self.state[i] != RUNNING or self.attempt[i] != call.attempt:
            return
        self.state[i] = PENDING
        self.attempt[i] = call.attempt - 1
        self.trials.unstart(i, call.attempt)

    # -- completions ----------------------------------------------------------------
    def finish(self, out: Outcome, async_: bool) -> None:
        """Trial ``out`` ended (``async_``: posted by its executor): on success the
        node's value is stored, its reads released and its dependents readied."""
        # the hot path: the outcome stays a tuple (cheaper to make and to send than an
        # object), unpacked here once; elsewhere it is read by the O_* constants
        i, attempt, ok, value, err, tb, start, end, worker, log = out
        state = self.state
        if state[i] != RUNNING or self.attempt[i] != attempt:
            return  # an abandoned trial (timed out or cancelled) reporting late
        if async_:
            self.inflight[self.route[i]] -= 1
            del self.calls[i]
        if not ok:
            if isinstance(err, KeyboardInterrupt):
                self.trials.record(i, out, State.CANCELLED, err, tb)
                what = "item" if self.kind[i] == MEMBER else "node"
                raise KeyboardInterrupt(f"task of {what} {self.specs[i].key!r} raised KeyboardInterrupt")
            self.failed(i, out, trial_state(err), err, tb)
            return
        if self.timeouts:
            timeout = self.specs[i].timeout
            if timeout is not None and end - start > timeout:
                exc = timeout_error(self.specs[i].key, timeout, end - start)
                self.failed(i, out, State.TIMED_OUT, exc, "")
                return
        # from here, what settle() does, inlined with its lists bound to locals: this is
        # the path every successful trial takes
        state[i] = SUCCEEDED
        vals = self.vals
        vals[i] = value
        if self.saving is not None and self.saving[i]:
            assert self.cache is not None
            self.cache.save(i, value)
        if self.has_cb:
            self.cb.call("on_trial_end", self.trials.record(i, out, State.SUCCEEDED, None, ""))
        elif self.rows[i] is None and not log:
            # a first trial that succeeded and left no log: (start, end, worker), made a
            # Trial at the end (one with a log is recorded as a Trial now)
            self.rows[i] = (start, end, worker)
        else:
            self.trials.record(i, out, State.SUCCEEDED, None, "")
        left = self.left
        kept = self.kept
        for s in self.reads[i]:
            c = left[s] - 1
            left[s] = c
            if c == 0 and not kept[s]:
                vals[s] = RELEASED
        if left[i] == 0 and not kept[i]:
            vals[i] = RELEASED
        if i >= self.n_slots:  # a map item: its map joins when its last item ends
            self.maps.member_ended(i)
        if self.stopping:
            return
        if self.conds is not None and i in self.conds:
            choose(self, i, value)
        waiting = self.waiting
        ready = self.ready
        route = self.route
        for d in self.dependents[i]:
            w = waiting[d] - 1
            waiting[d] = w
            if w == 0 and state[d] == PENDING:
                ready[route[d]].append(d)

    def settle(self, u: int, value: Any, state: int) -> None:
        """Unit ``u`` has ``value`` without a trial of its own (a map's join; an item the
        cache serves, ``CACHED``): what a trial's success does in ``finish`` (bar the
        cache write and the trial record).  A map chained to ``u`` counts its own items."""
        self.state[u] = state
        self.vals[u] = value
        self.release_reads(u)
        if self.left[u] == 0 and not self.kept[u]:
            self.vals[u] = RELEASED
        if u >= self.n_slots:  # a map item (never a cond's predicate)
            self.maps.member_ended(u)
        elif self.conds is not None and u in self.conds and not self.stopping:
            choose(self, u, value)
        if not self.stopping:
            waiting, states, ready, route = self.waiting, self.state, self.ready, self.route
            for d in self.dependents[u]:
                if d in self.map_runs:
                    continue  # a map chained to u: it has expanded and waits for its items
                waiting[d] -= 1
                if waiting[d] == 0 and states[d] == PENDING:
                    ready[route[d]].append(d)

    def failed(self, i: int, out: Outcome, tstate: State, exc: BaseException | None, tb: str) -> None:
        """Unit ``i``'s trial ``out`` failed: it is retried, or the unit fails (a map item's
        map with it)."""
        seen = time.time()
        withdraw_ahead(self, i)  # what was submitted ahead waiting for i
        trial = self.trials.record(i, out, tstate, exc, tb)
        key = trial.key
        stopping = self.stopping and not survives_stop(self, i)  # an all_done node keeps its retries
        wait = next_wait(self.plan._opts[self.owner[i]], out[O_ATTEMPT], exc, tstate, key, stopping)
        yielded = self.trials.yielded  # a pipe's producers' items, while its outcomes are finished
        if wait is not None and yielded and yielded.get(i):
            logger.info("node %r: not retried: it failed after its stream had yielded", key)
            wait = None
        if wait is None and self.bundles is not None:  # its last attempt: a repro bundle
            self.bundles.write(self, i, trial)
        self.cb.call("on_trial_end", trial)
        if wait is not None:
            self.state[i] = PENDING
            if wait > 0:
                self.timers.retry(time.time() + wait, i)
            elif self.waiting[i] == 0:
                self.ready[self.route[i]].append(i)
            # else: a batch member whose chained input was lost with its crashed worker:
            # it is ready again when that input has been computed again
            return
        logger.warning("node %r %s: %s: %s", key, tstate.value, type(exc).__name__, exc)
        if self.kind[i] == MEMBER:
            self.state[i] = FAILED
            self.release_reads(i)
            fail_downstream(self, i)
            self.maps.member_failed(i, seen)
        else:
            self.fail(i, seen)

    def fail(self, u: int, seen: float) -> None:
        """Node ``u`` (a task's, or a map whose item failed) fails at ``seen``: what
        depends on it fails upstream, and with fail_fast the run stops."""
        self.state[u] = FAILED
        self.failed_order.append(u)
        self.release_reads(u)
        fail_downstream(self, u)
        if self.fail_fast and not self.stopping:
            self.stop(seen)

    def stop(self, seen: float) -> None:
        """fail_fast: let what runs finish, cancel what is ready or waiting to retry."""
        self.stopping = True
        self.stop_time = seen
        withdraw_waiting(self)  # what waits in an executor's queue does not start
        stop_batches(self)  # what runs as a batch starts no further member, gives no more items
        for stack in self.ready:
            for j in stack:
                self.cancel(j)
            stack.clear()
        for j in self.timers.cancel_retries():
            self.cancel(j)

    def cancel(self, i: int) -> None:
        """A ready or retrying node, or map item, that a stop leaves unrun (an
        ``all_done`` node waits to run after the stop: run/triggers.py)."""
        if not survives_stop(self, i):
            self.state[i] = CANCELLED

    def release_reads(self, i: int) -> None:
        """Node ``i`` will not read its inputs again: a value none will read is released."""
        left, kept, vals = self.left, self.kept, self.vals
        for s in self.reads[i]:
            left[s] -= 1
            if left[s] == 0 and not kept[s]:
                vals[s] = RELEASED
