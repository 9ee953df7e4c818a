"""Trials that wait in the threads executor's queue (``Executor.queue_ahead``).

As many trials as threads wait in the queue besides those that run, so a thread that
ends a trial takes the next without a round trip through the master.  A waiting
trial has not started: its timeout counts from when a thread takes it
(``started_at``), and a fail_fast stop or Ctrl-C takes it back (``withdraw``) before it
runs.  Runs with callbacks do not queue ahead (callbacks hear of a trial's start when
it is submitted).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import dagexec as dx
from dagexec import State
from dagexec.executors import ThreadExecutor
from dagexec.run.protocol import Call
from dagexec.run.worker import run_call


@dx.task
def hold(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@dx.task(timeout=0.4)
def brief(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _call(idx: int, task: dx.Task, *args: Any) -> Call:
    with dx.Graph("one") as g:
        task(*args)
    plan = g.compile()
    return Call(idx, 1, plan._specs[0], args, None)


def test_threads_queue_as_many_trials_as_they_run():
    ex = ThreadExecutor(max_workers=3)
    assert (ex.capacity, ex.queue_ahead) == (3, 3)
    assert dx.Executor.queue_ahead == 0
    ex.shutdown()


def test_a_waiting_call_has_not_started_and_can_be_taken_back():
    release = threading.Event()
    outcomes: list[Any] = []

    @dx.task
    def blocker() -> int:
        assert release.wait(30)
        return 1

    ex = ThreadExecutor(max_workers=1)
    first, second = _call(0, blocker), _call(1, hold, 0.0)
    before = time.time()
    assert ex.submit(first, outcomes.append) is None
    assert ex.submit(second, outcomes.append) is None
    deadline = time.monotonic() + 30
    while ex.started_at(first) is None or ex.started_at(first) == math.inf:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert before <= ex.started_at(first) <= time.time()  # type: ignore[operator]
    assert ex.started_at(second) == math.inf  # behind the only thread's trial
    assert ex.withdraw(second) is True
    assert ex.withdraw(second) is False  # once
    assert ex.withdraw(first) is False  # it runs
    release.set()
    while not outcomes:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    ex.run_ended()
    ex.shutdown()  # the thread ends once the queue is empty: the withdrawn call never ran
    assert [(o[0], o[2], o[3]) for o in outcomes] == [(0, True, 1)]
    assert ex.started_at(second) is None


def test_a_timeout_counts_from_when_a_thread_takes_the_trial():
    # one thread: brief waits in the queue while hold runs for longer than brief's timeout
    with dx.Graph("queued") as g:
        g.output(hold(0.8), name="held")
        g.output(brief(0.05), name="brief")
    result = g.compile().run(executor=ThreadExecutor(max_workers=1, inline=False))
    assert result.states == {"hold": State.SUCCEEDED, "brief": State.SUCCEEDED}
    held, quick = result.trials["hold"][0], result.trials["brief"][0]
    assert quick.start >= held.end - 0.05  # it waited for the thread (the clocks are the same)
    assert quick.worker == held.worker


def test_a_fail_fast_stop_takes_back_what_waits():
    started: list[str] = []
    release = threading.Event()

    @dx.task
    def fails() -> int:
        started.append("fails")
        raise ValueError("no")

    @dx.task
    def waits(name: str) -> str:
        started.append(name)
        assert release.wait(30)
        return name

    # two threads: 'a' holds one, 'fails' the other; 'b' and 'c' wait in the queue
    # and the master takes them back when it sees the failure, before a thread is free
    with dx.Graph("stop") as g:
        g.output(waits("a"), name="a")
        g.output(fails(), name="failed")
        g.output(waits("b"), name="b")
        g.output(waits("c"), name="c")
    ex = ThreadExecutor(max_workers=2, inline=False)
    threading.Timer(1.0, release.set).start()  # 'a' ends after the master saw the failure
    result = g.compile().run(executor=ex, raise_on_failure=False)
    assert result.states["fails"] is State.FAILED
    assert result.states["waits"] is State.SUCCEEDED  # 'a': it was running
    states = {result.states["waits-1"], result.states["waits-2"]}
    # the thread freed by 'fails' may take 'b' before the master saw the failure
    assert states in ({State.CANCELLED}, {State.SUCCEEDED, State.CANCELLED})
    cancelled = [k for k in ("waits-1", "waits-2") if result.states[k] is State.CANCELLED]
    assert all(result.trials[k] == [] for k in cancelled)  # taken back: never ran, no trial
    ran = ["a"] + [k for k, name in (("waits-1", "b"), ("waits-2", "c")) if k not in cancelled]
    assert len(started) == len(ran) + 1
    ex.shutdown()


def test_withdrawn_calls_are_not_run_by_a_thread():
    ran: list[int] = []

    @dx.task
    def note(i: int) -> int:
        ran.append(i)
        return i

    release = threading.Event()

    @dx.task
    def blocker() -> int:
        assert release.wait(30)
        return -1

    ex = ThreadExecutor(max_workers=1)
    out: list[Any] = []
    ex.submit(_call(0, blocker), out.append)
    calls = [_call(i + 1, note, i) for i in range(5)]
    for c in calls:
        ex.submit(c, out.append)
    for c in calls[::2]:
        assert ex.withdraw(c)
    release.set()
    ex.run_ended()
    ex.shutdown()
    assert ran == [1, 3]
    assert sorted(o[0] for o in out) == [0, 2, 4]
    assert run_call(calls[0], "here")[3] == 0  # a withdrawn call is an ordinary call still
