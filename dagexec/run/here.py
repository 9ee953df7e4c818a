"""Trials run in the master thread, back to back, without a submission.

A serial executor runs every trial where the loop is, and a threads executor the
trials of functions measured tiny (:mod:`.batching`): a hand-off would cost more
than the trial.  For those, :func:`drain_here` takes ready units off a lane's stack
and runs them in a loop of its own, the run state bound to locals once: it makes the
call, runs it as :func:`~.worker.run_call` would (type checks, the trial's own log
slot, Ctrl-C stopping the processes the trial started) and, for the common case of a
first trial that succeeded and logged nothing, does what :meth:`Loop.finish
<.loop.Loop.finish>` does on success in place.  Anything else goes through the
loop's own paths::

    lane stack --(a plain node's first trial)--> drain_here: call, run, record,
        ^                                          release reads, ready dependents
        |                                                |          |
        +-------------- dependents on this lane ---------+          | anything else
                                                                    v
                           Loop.finish(outcome) / the loop's submit path

A unit takes the short way when it is a plan node (not a map item) whose call holds
no containers to fill, whose task is not ``async`` and has no timeout, on its first
attempt, in a run where no executor keeps values on its workers (the submit path
brings those over); its outcome goes through ``finish`` when it failed, logged or printed
something, is a cond's predicate, is written to the cache, or the run has callbacks.
:meth:`CompiledGraph._plain_units` (kept on the plan) says which nodes may.
"""

from __future__ import annotations

from time import time
from typing import TYPE_CHECKING, Any

from .._capture import CURRENT as _CURRENT
from .._capture import log_text
from .._proctree import stop_started_since
from ..plan.direct import Direct
from ..plan.templates import with_values
from .batching import INLINE_BURST, INLINE_S
from .protocol import O_END, Call, failed_outcome
from .state import PENDING, RELEASED, RUNNING, SUCCEEDED
from .timers import expire
from .worker import _check, _check_return, from_task

if TYPE_CHECKING:
    from .loop import Loop

_set_slot = _CURRENT.set
_reset_slot = _CURRENT.reset


def drain_here(loop: Loop, stack: list[int], quick: Any, plain: tuple[Direct | None, ...]) -> None:
    """Run the units on top of ``stack`` in the master thread until it is empty or its
    top unit needs the loop's general path (``quick``: only the functions in this
    set run here; None: every plain unit; ``plain``: the plan's :data:`Direct` tuples)."""
    state, attempts, vals = loop.state, loop.attempt, loop.vals
    rows, ends = loop.rows, loop.trials.ends  # a start in rows, its end in ends (see .trials)
    left, kept, waiting, ready, route = loop.left, loop.kept, loop.waiting, loop.ready, loop.route
    finish, n = loop.finish, loop.n
    push = stack.append if len(ready) == 1 else None  # one lane: every dependent is this stack's
    has_cb = loop.has_cb
    conds = loop.conds or ()
    short = not has_cb and loop.saving is None
    batches = loop.batches
    suspect = batches.suspect
    burst = INLINE_BURST
    while stack:
        i = stack[-1]
        if i >= n or attempts[i] or loop.stopping:
            return
        direct = plain[i]
        if direct is None:
            return
        fn, checks, ret, get, al, fl, kw, kwf, reads, dependents = direct
        if quick is not None and fn not in quick:
            return
        stack.pop()
        if get is not None:  # the values it reads, in order, and nothing else
            al = get(vals)
        elif fl:
            al = list(al)
            for p, s in fl:
                al[p] = vals[s]
        if kwf:
            kw = with_values(kw, kwf, vals)
        state[i] = RUNNING
        attempts[i] = 1
        if has_cb:
            loop.trials.started(i, 1)
        buf: list[Any] = []  # what the task logs and prints
        slot: list[Any] = [buf]
        token = _set_slot(slot)
        start = time()
        try:
            try:
                if checks:
                    _check(loop.specs[i], al, kw)
                value = fn(*al, **kw) if kw else fn(*al)
                if ret is not None:
                    _check_return(loop.specs[i], value)
            finally:
                slot[0] = None  # closed: what the task's threads write from now on is no trial's
                _reset_slot(token)  # a trial that runs this one (a nested run) gets its slot back
        except KeyboardInterrupt:
            stop_started_since(start)  # what this trial started in the master
            raise
        except BaseException as exc:
            end = _failed(loop, Call(i, 1, loop.specs[i], al, kw), exc, start, buf)
        else:
            end = time()
            if buf or not short or i in conds:
                out = (i, 1, True, value, None, "", start, end, "master", log_text(buf) if buf else "")
                finish(out, False)
            else:  # what finish does on success, with the lists bound to locals
                state[i] = SUCCEEDED
                vals[i] = value
                rows[i] = start
                ends[i] = end
                for s in reads:
                    c = left[s] - 1
                    left[s] = c
                    if c == 0 and not kept[s]:
                        vals[s] = RELEASED
                if left[i] == 0 and not kept[i]:
                    vals[i] = RELEASED
                for d in dependents:
                    w = waiting[d] - 1
                    waiting[d] = w
                    if w == 0 and state[d] == PENDING:
                        if push is not None:
                            push(d)
                        else:
                            ready[route[d]].append(d)
        if quick is not None:  # on threads: a function found slow goes back to them
            if end - start >= INLINE_S or suspect:
                batches.ran_here(i, end - start)
            burst -= 1
            if not burst:
                burst = INLINE_BURST
                loop.take_posted(None, batches.observe)  # what the workers posted meanwhile
                expire(loop)


def _failed(loop: Loop, call: Call, exc: BaseException, start: float, buf: list[Any]) -> float:
    """Finish a trial run in the master whose task raised ``exc``; return its end."""
    tb = exc.__traceback__
    exc = from_task(exc.with_traceback(tb.tb_next if tb else None), call.spec.fn)  # from the task's frame
    out = failed_outcome(call, exc, start, "master", log_text(buf))
    loop.finish(out, False)
    end: float = out[O_END]
    return end
