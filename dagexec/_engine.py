"""The run engine: one master loop per run.

The master thread owns every piece of run state; executors only execute::

    ready stacks (one per executor) --submit(Call)--> executor --> worker: run_call()
          ^                                                            |
          |                          outcome tuple (via post() or returned at once)
          |                                                            v
     dependents whose last dependency finished  <--  finish(outcome) in the master

State layout (lists indexed by the node's ``idx`` in the plan, made once per run):

* ``vals[slot]``    the value of a node, input or constant; ``_RELEASED`` after the
                    last reader finished (unless kept);
* ``waiting[idx]``  dependencies not yet succeeded; 0 means ready;
* ``left[slot]``    readers not yet finished;
* ``state[idx]``    a small int (``_PENDING`` ...), turned into :class:`State` at the end;
* ``attempt[idx]``  the attempt number of the node's current or last trial.

Ready nodes are popped last-in first-out (depth-first), so intermediates are
consumed and released early.  Executors that complete synchronously (serial)
return the outcome from ``submit``; the others post it to the run's queue, which
the loop blocks on, with a timeout set by the nearest trial deadline or retry.

What each node needs is decided at compile time (type checks, retries, timeout);
a plain task costs the loop a pop, a call, and a few list updates.
"""

from __future__ import annotations

import heapq
import logging
import queue
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import InputError, Problem, RunFailed, TaskTimeout, TypeCheckError, WorkerCrashed
from ._prepare import (
    as_list,
    bind_inputs,
    kept_slots,
    require_portable,
    resolve_executors,
    select,
    sigterm_interrupts,
)
from ._state import State, Trial
from ._worker import Call, Outcome

if TYPE_CHECKING:
    from ._plan import CompiledGraph
    from ._result import RunResult

__all__ = ["Executor", "run_plan"]

logger = logging.getLogger("dagexec.engine")

_PENDING, _RUNNING, _SUCCEEDED, _FAILED, _UPSTREAM_FAILED, _SKIPPED, _CACHED, _CANCELLED = range(8)
_STATES = (
    State.PENDING,
    State.RUNNING,
    State.SUCCEEDED,
    State.FAILED,
    State.UPSTREAM_FAILED,
    State.SKIPPED,
    State.CACHED,
    State.CANCELLED,
)


class _Released:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<released>"


_RELEASED: Any = _Released()


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

    @property
    def capacity(self) -> int:
        """How many trials may be in flight at once."""
        return 1

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome | None:
        """Start ``call``; return its outcome now, or None and ``post`` it later.

        ``post`` may be called from any thread, exactly once per call.
        """
        raise NotImplementedError

    def abandon(self, call: Call) -> None:
        """``call`` ran past its timeout: stop it if the backend can (its outcome is ignored)."""

    def run_ended(self) -> None:
        """A run that used this executor ended (every executor, owned or not)."""

    def shutdown(self, *, cancel: bool = False) -> None:
        """Release the executor's resources; with ``cancel``, do not wait for running work."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class _Callbacks:
    """Calls user callbacks; an exception in one is logged, never raised."""

    __slots__ = ("_cbs",)

    def __init__(self, cbs: Sequence[Any]) -> None:
        self._cbs = list(cbs)

    def __bool__(self) -> bool:
        return bool(self._cbs)

    def call(self, method: str, arg: Any) -> None:
        for cb in self._cbs:
            fn = getattr(cb, method, None)
            if fn is None:
                continue
            try:
                fn(arg)
            except Exception:
                logger.warning("callback %r raised in %s; the run goes on", cb, method, exc_info=True)


def run_plan(
    plan: CompiledGraph,
    given: dict[str, Any],
    *,
    executor: Any,
    max_workers: int | None,
    only: Sequence[str] | str | None,
    skip: Sequence[str] | str | None,
    fail_fast: bool,
    keep: Sequence[str] | str | None,
    callbacks: Sequence[Any],
    progress: bool,
    raise_on_failure: bool,
) -> RunResult:
    """Run ``plan``; see :meth:`dagexec.CompiledGraph.run`."""
    problems: list[Problem] = []
    selected = select(plan, as_list(only), as_list(skip), problems)
    input_values = bind_inputs(plan, given, selected, problems)
    kept = kept_slots(plan, keep, problems)
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    ):
        problems.append(Problem(f"max_workers must be an int >= 1, got {max_workers!r}"))
    execs, route_idx, owned = resolve_executors(plan, executor, max_workers, selected, problems)
    if problems:
        for ex in owned:
            ex.shutdown()
        raise InputError(problems, what=f"run of graph {plan.name!r}")
    if plan._pickle_problems:
        require_portable(plan, execs, route_idx, selected, owned)
    cbs = list(callbacks)
    bar = None
    if progress:
        from ._progress import ProgressBar

        bar = ProgressBar(sum(selected))
        cbs.append(bar)
    run = _Run(plan, input_values, selected, kept, execs, route_idx, fail_fast, _Callbacks(cbs))
    try:
        with sigterm_interrupts():
            result = run.execute()
    finally:
        for ex in execs:
            ex.run_ended()
        for ex in owned:
            ex.shutdown(cancel=run.interrupted)
    if raise_on_failure and run.failed_order:
        raise _run_failed(result, run)
    return result


def _run_failed(result: RunResult, run: _Run) -> RunFailed:
    failed = [run.plan._keys[i] for i in run.failed_order]
    parts = []
    for key in failed[:3]:
        err = result.trials[key][-1].error
        parts.append(f"{key!r} ({type(err).__name__}: {err})" if err is not None else repr(key))
    more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
    noun = "node" if len(failed) == 1 else "nodes"
    exc = RunFailed(
        f"{len(failed)} {noun} of graph {run.plan.name!r} failed: {', '.join(parts)}{more}",
        result,
        failed,
    )
    exc.__cause__ = result.trials[failed[0]][-1].error
    return exc


def _trial_state(err: BaseException | None) -> State:
    """The state of a trial that ended with ``err``."""
    if isinstance(err, TaskTimeout):
        return State.TIMED_OUT
    if isinstance(err, WorkerCrashed):
        return State.CRASHED
    return State.FAILED


def _retry_wait(opts: Any, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` (``attempt`` failed)."""
    delay = opts.retry_delay
    if isinstance(delay, tuple):
        wait = delay[min(attempt - 1, len(delay) - 1)] if delay else 0.0
    else:
        wait = delay * opts.retry_backoff ** (attempt - 1)
    if opts.retry_jitter:
        wait += wait * opts.retry_jitter * random.random()
    return float(wait)


def _should_retry(opts: Any, exc: BaseException | None) -> bool:
    if exc is None or isinstance(exc, TypeCheckError):
        return exc is None
    retry_on = opts.retry_on
    if isinstance(retry_on, tuple):
        return isinstance(exc, retry_on)
    try:
        return bool(retry_on(exc))
    except Exception:
        logger.warning("retry_on predicate %r raised; not retrying", retry_on, exc_info=True)
        return False


class _Run:
    """The state of one run, owned by the master thread."""

    def __init__(
        self,
        plan: CompiledGraph,
        input_values: list[Any],
        selected: list[bool],
        kept: list[bool],
        execs: list[Executor],
        route_idx: list[int],
        fail_fast: bool,
        callbacks: _Callbacks,
    ) -> None:
        self.plan = plan
        n = len(plan._keys)
        self.n = n
        self.vals: list[Any] = [None] * n + input_values + list(plan._consts)
        self.kept = kept
        self.selected = selected
        self.execs = execs
        self.route = route_idx
        self.fail_fast = fail_fast
        self.cb = callbacks
        self.has_cb = bool(callbacks)
        self.state = [_PENDING if s else _SKIPPED for s in selected]
        self.waiting = [len(d) for d in plan._deps]
        self.left = list(plan._n_readers)
        if not all(selected):
            for i in range(n):
                if not selected[i]:
                    for s in plan._reads[i]:
                        self.left[s] -= 1
        self.attempt = [0] * n
        # per node: None, its list of Trials, or (start, end, worker) of a first trial that
        # succeeded without callbacks (cheaper than a Trial; made one in _result)
        self.trials: list[Any] = [None] * n
        self.calls: dict[int, Call] = {}  # idx -> in-flight call (asynchronous executors)
        self.inflight = [0] * len(execs)
        self.ready: list[list[int]] = [[] for _ in execs]
        self.deadlines: list[tuple[float, int, int]] = []  # (time, idx, attempt)
        self.retries: list[tuple[float, int]] = []  # (time, idx)
        self.q: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.failed_order: list[int] = []
        self.stopping = False
        self.interrupted = False
        self.start = 0.0

    # -- the loop -----------------------------------------------------------------
    def execute(self) -> RunResult:
        plan = self.plan
        self.start = time.time()
        t0 = time.perf_counter()
        logger.info("run of graph %r: %d nodes", plan.name, sum(self.selected))
        self.cb.call("on_run_start", plan)
        for i in range(self.n):
            if self.state[i] == _PENDING and self.waiting[i] == 0:
                self.ready[self.route[i]].append(i)
        for stack in self.ready:
            stack.reverse()  # so that the first ready node in plan order runs first
        try:
            self._loop()
        except BaseException:
            self.interrupted = True
            self._cancel_all()
            result = self._result(time.perf_counter() - t0)
            self.cb.call("on_run_end", result)
            raise
        for i in range(self.n):
            if self.state[i] == _PENDING:
                self.state[i] = _CANCELLED
        result = self._result(time.perf_counter() - t0)
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
        post = q.put
        finish = self._finish
        make = self._make_call
        caps = [ex.capacity for ex in execs]
        n_exec = len(execs)
        has_cb = bool(self.cb)
        while True:
            for r in range(n_exec):
                stack = ready[r]
                ex = execs[r]
                cap = caps[r]
                while stack and inflight[r] < cap:
                    i = stack.pop()
                    call = make(i)
                    if has_cb:
                        self._trial_started(i, call)
                    out = ex.submit(call, post)
                    if out is None:
                        inflight[r] += 1
                        self.calls[i] = call
                        timeout = call.spec.timeout
                        if timeout is not None:
                            heapq.heappush(self.deadlines, (time.time() + timeout, i, call.attempt))
                    else:
                        finish(out, False)
            if not any(inflight) and not self.retries:
                if any(ready):
                    continue
                return
            wait = self._next_wake()
            try:
                out = q.get(timeout=wait) if wait is None or wait > 0 else q.get_nowait()
            except queue.Empty:
                out = None
            if out is not None:
                finish(out, True)
                while True:
                    try:
                        out = q.get_nowait()
                    except queue.Empty:
                        break
                    finish(out, True)
            self._expire()

    def _next_wake(self) -> float | None:
        t = None
        if self.deadlines:
            t = self.deadlines[0][0]
        if self.retries:
            r = self.retries[0][0]
            t = r if t is None or r < t else t
        return None if t is None else max(0.0, t - time.time())

    def _make_call(self, i: int) -> Call:
        plan = self.plan
        vals = self.vals
        self.state[i] = _RUNNING
        attempt = self.attempt[i] + 1
        self.attempt[i] = attempt
        if plan._nested[i]:
            from ._fill import fill

            kw = plan._kwargs[i]
            return Call(
                i,
                attempt,
                plan._specs[i],
                tuple(fill(a, vals) for a in plan._args[i]),
                {k: fill(v, vals) for k, v in kw.items()} if kw else None,
            )
        fills = plan._fills[i]
        if fills:
            al = list(plan._args[i])
            for p, s in fills:
                al[p] = vals[s]
            args: Any = al
        else:
            args = plan._args[i]
        kw = plan._kwargs[i]
        if kw is not None:
            kwf = plan._kwfills[i]
            if kwf:
                kw = dict(kw)
                for name, s in kwf:
                    kw[name] = vals[s]
        return Call(i, attempt, plan._specs[i], args, kw)

    def _trial_started(self, i: int, call: Call) -> None:
        trial = Trial(self.plan._keys[i], call.attempt, State.RUNNING, time.time())
        lst = self.trials[i]
        if lst is None:
            self.trials[i] = [trial]
        else:
            lst.append(trial)
        self.cb.call("on_trial_start", trial)

    def _record(self, i: int, out: Outcome, state: State, error: BaseException | None, tb: str) -> Trial:
        lst: list[Trial] | None = self.trials[i]
        trial: Trial
        if lst is not None and lst[-1].attempt == out[1] and lst[-1].end is None:
            trial = lst[-1]
            trial.state = state
            trial.start = out[6]
            trial.end = out[7]
            trial.worker = out[8]
            trial.error = error
            trial.traceback = tb
        else:
            trial = Trial(self.plan._keys[i], out[1], state, out[6], out[7], out[8], error, tb)
            if lst is None:
                self.trials[i] = [trial]
            else:
                lst.append(trial)
        return trial

    # -- completions ----------------------------------------------------------------
    def _finish(self, out: Outcome, async_: bool) -> None:
        i = out[0]
        if self.state[i] != _RUNNING or self.attempt[i] != out[1]:
            return  # an abandoned trial (timed out or cancelled) reporting late
        if async_:
            self.inflight[self.route[i]] -= 1
            del self.calls[i]
        spec = self.plan._specs[i]
        if out[2]:
            timeout = spec.timeout
            if timeout is not None and out[7] - out[6] > timeout:
                exc = TaskTimeout(
                    f"node {spec.key!r} ran {out[7] - out[6]:.2f} s, past its timeout of {timeout:g} s",
                    spec.key,
                    timeout,
                )
                self._failed(i, out, State.TIMED_OUT, exc, "")
                return
            # succeeded: the hot path, kept in this one method
            self.state[i] = _SUCCEEDED
            vals = self.vals
            vals[i] = out[3]
            if self.has_cb:
                self.cb.call("on_trial_end", self._record(i, out, State.SUCCEEDED, None, ""))
            elif self.trials[i] is None:
                # a first trial that succeeded: (start, end, worker), made a Trial in _result
                self.trials[i] = (out[6], out[7], out[8])
            else:
                self._record(i, out, State.SUCCEEDED, None, "")
            left = self.left
            kept = self.kept
            for s in self.plan._reads[i]:
                c = left[s] - 1
                left[s] = c
                if c == 0 and not kept[s]:
                    vals[s] = _RELEASED
            if left[i] == 0 and not kept[i]:
                vals[i] = _RELEASED
            if self.stopping:
                return
            waiting = self.waiting
            state = self.state
            ready = self.ready
            route = self.route
            for d in self.plan._dependents[i]:
                w = waiting[d] - 1
                waiting[d] = w
                if w == 0 and state[d] == _PENDING:
                    ready[route[d]].append(d)
        else:
            err = out[4]
            if isinstance(err, KeyboardInterrupt):
                self._record(i, out, State.CANCELLED, err, out[5])
                raise KeyboardInterrupt(f"task of node {spec.key!r} raised KeyboardInterrupt")
            self._failed(i, out, _trial_state(err), err, out[5])

    def _failed(self, i: int, out: Outcome, tstate: State, exc: BaseException | None, tb: str) -> None:
        trial = self._record(i, out, tstate, exc, tb)
        self.cb.call("on_trial_end", trial)
        opts = self.plan._opts[i]
        key = self.plan._keys[i]
        if opts is not None and out[1] <= opts.retries and not self.stopping and _should_retry(opts, exc):
            wait = _retry_wait(opts, out[1])
            self.state[i] = _PENDING
            logger.info(
                "node %r: attempt %d %s (%s); retrying in %.3g s", key, out[1], tstate.value, exc, wait
            )
            if wait > 0:
                heapq.heappush(self.retries, (time.time() + wait, i))
            else:
                self.ready[self.route[i]].append(i)
            return
        logger.warning("node %r %s: %s: %s", key, tstate.value, type(exc).__name__, exc)
        self.state[i] = _FAILED
        self.failed_order.append(i)
        self._release_reads(i)
        self._upstream_failed(i)
        if self.fail_fast and not self.stopping:
            self.stopping = True
            for stack in self.ready:
                for j in stack:
                    self.state[j] = _CANCELLED
                stack.clear()
            for _, j in self.retries:
                self.state[j] = _CANCELLED
            self.retries.clear()

    def _release_reads(self, i: int) -> None:
        left, kept, vals = self.left, self.kept, self.vals
        for s in self.plan._reads[i]:
            left[s] -= 1
            if left[s] == 0 and not kept[s]:
                vals[s] = _RELEASED

    def _upstream_failed(self, i: int) -> None:
        state = self.state
        dependents = self.plan._dependents
        stack = list(dependents[i])
        while stack:
            j = stack.pop()
            if state[j] == _PENDING:
                state[j] = _UPSTREAM_FAILED
                self._release_reads(j)
                stack.extend(dependents[j])

    def _expire(self) -> None:
        now = time.time()
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, i, attempt = heapq.heappop(deadlines)
            if self.state[i] != _RUNNING or self.attempt[i] != attempt or i not in self.calls:
                continue
            call = self.calls.pop(i)
            r = self.route[i]
            self.inflight[r] -= 1
            self.execs[r].abandon(call)
            spec = call.spec
            exc = TaskTimeout(f"node {spec.key!r} timed out after {spec.timeout:g} s", spec.key, spec.timeout)
            start = now - spec.timeout
            trials = self.trials[i]
            if trials and trials[-1].attempt == attempt:
                start = trials[-1].start
            self._failed(i, (i, attempt, False, None, exc, "", start, now, ""), State.TIMED_OUT, exc, "")
        retries = self.retries
        while retries and retries[0][0] <= now:
            _, i = heapq.heappop(retries)
            if self.state[i] == _PENDING:
                self.ready[self.route[i]].append(i)

    def _cancel_all(self) -> None:
        now = time.time()
        for i, call in list(self.calls.items()):
            r = self.route[i]
            try:
                self.execs[r].abandon(call)
            except Exception:
                logger.warning("executor %r failed to abandon %r", self.execs[r], call, exc_info=True)
        self.calls.clear()
        for i in range(self.n):
            if self.state[i] == _RUNNING:
                # in flight, or interrupted in the master thread (serial): its trial ends cancelled
                lst = self.trials[i]
                attempt = self.attempt[i]
                if lst and lst[-1].attempt == attempt:
                    if lst[-1].end is None:
                        lst[-1].state = State.CANCELLED
                        lst[-1].end = now
                else:
                    trial = Trial(self.plan._keys[i], attempt, State.CANCELLED, now, now)
                    self.trials[i] = (lst or []) + [trial]
            if self.state[i] in (_PENDING, _RUNNING):
                self.state[i] = _CANCELLED

    def _result(self, duration: float) -> RunResult:
        from ._result import RunResult

        plan = self.plan
        keys = plan._keys
        vals = self.vals
        states = {keys[i]: _STATES[s] for i, s in enumerate(self.state)}
        trials = {
            keys[i]: ([Trial(keys[i], 1, State.SUCCEEDED, *t)] if type(t) is tuple else t or [])
            for i, t in enumerate(self.trials)
        }
        outputs: dict[str, Any] = {}
        for name, slot in plan._outputs:
            v = vals[slot]
            if v is not _RELEASED and (slot >= self.n or self.state[slot] == _SUCCEEDED):
                outputs[name] = v
        n_slots = len(self.kept)
        values: dict[str, Any] = {}
        for slot in range(n_slots):
            if self.kept[slot]:
                v = vals[slot]
                if v is _RELEASED or (slot < self.n and self.state[slot] != _SUCCEEDED):
                    continue
                values[keys[slot] if slot < self.n else plan._inputs[slot - self.n].name] = v
        for alias, slot in plan._aliases.items():
            if slot >= n_slots:
                values[alias] = vals[slot]
            elif (keys[slot] if slot < self.n else plan._inputs[slot - self.n].name) in values:
                values[alias] = values[keys[slot] if slot < self.n else plan._inputs[slot - self.n].name]
        self.vals = []
        self.calls = {}
        return RunResult(plan, states, trials, outputs, values, self.start, duration)
