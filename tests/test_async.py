"""``async def`` tasks: awaited on an event loop where the trial runs, concurrently on
threads, cancelled at their timeout (DESIGN §10; docs/dynamic.md)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

import dagexec as dx
from dagexec import State
from dagexec.executors import ThreadExecutor

GUARD = 30.0  # seconds before a wait is a failure (never a timing assertion)


@dx.task
async def double(x: int) -> int:
    await asyncio.sleep(0.001)
    return 2 * x


@dx.task
def add(a: int, b: int) -> int:
    return a + b


@dx.task
async def fail_async(x: int) -> int:
    await asyncio.sleep(0)
    raise ValueError(f"no {x}")


@dx.task
async def wrong_type() -> int:
    return "seven"  # type: ignore[return-value]


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_async_tasks_give_their_values_on_every_executor(executor):
    with dx.Graph("g") as g:
        a = double(1)
        g.output(add(double(a), double(add(a, 1))), name="out")
    result = g.compile().run(executor=executor, max_workers=2)
    assert result.output == 4 + 6
    assert set(result.states.values()) == {State.SUCCEEDED}


def test_an_async_task_is_marked_and_is_the_plain_coroutine_function_outside_a_graph():
    with dx.Graph("g") as g:
        double(1)
        add(1, 2)
    plan = g.compile()
    assert [spec.coro for spec in plan._specs] == [True, False]
    assert asyncio.run(double(21)) == 42  # outside a graph: the plain async function


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_an_async_failure_comes_back_with_its_traceback(executor):
    with dx.Graph("g") as g:
        fail_async(3)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor, max_workers=2)
    cause = info.value.__cause__
    assert type(cause) is ValueError and str(cause) == "no 3"
    trial = info.value.result.trials["fail_async"][0]
    assert ", in fail_async\n" in trial.traceback


def test_the_return_value_of_an_async_task_is_type_checked():
    with dx.Graph("g") as g:
        wrong_type()
    result = g.compile().run(executor="threads", raise_on_failure=False)
    assert str(result.trials["wrong_type"][0].error) == (
        "node 'wrong_type': return value expects int but got str 'seven'"
    )


def test_async_retries_use_attempts_like_any_task(tmp_path):
    marks = tmp_path / "marks"

    @dx.task(retries=2)
    async def flaky() -> int:
        with open(marks, "a") as f:
            f.write("x")
        if len(marks.read_text()) < 3:
            raise OSError("not yet")
        return 7

    with dx.Graph("g") as g:
        flaky()
    result = g.compile().run(executor="threads")
    assert result.output == 7
    assert [(t.attempt, t.state) for t in result.trials["flaky"]] == [
        (1, State.FAILED),
        (2, State.FAILED),
        (3, State.SUCCEEDED),
    ]


# -- concurrency on threads --------------------------------------------------------------

N = 60  # far more than the executor's 4 threads


class Meeting:
    """Counts tasks running at once; each waits until all N are there (or GUARD ends)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    async def attend(self) -> int:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        deadline = time.monotonic() + GUARD
        while self.peak < N and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        with self.lock:
            self.running -= 1
        return 1


def test_async_tasks_overlap_on_the_threads_executors_event_loop():
    meeting = Meeting()

    @dx.task
    async def attend(i: int) -> int:
        return await meeting.attend()

    @dx.task
    def count(xs: list[int]) -> int:
        return sum(xs)

    with dx.Graph("g") as g:
        g.output(count([attend(i) for i in range(N)]), name="n")
    result = g.compile().run(executor=ThreadExecutor(max_workers=4))
    assert result.output == N
    assert meeting.peak == N  # all of them were running at once, on 4 threads
    workers = {result.trials[k][0].worker for k in result.trials if k.startswith("attend")}
    assert len(workers) == 1 and workers.pop().startswith("dagexec-async-")


def test_max_async_bounds_how_many_run_at_once():
    meeting = Meeting()

    @dx.task
    async def attend(i: int) -> int:
        with meeting.lock:
            meeting.running += 1
            meeting.peak = max(meeting.peak, meeting.running)
        await asyncio.sleep(0.01)
        with meeting.lock:
            meeting.running -= 1
        return 1

    with dx.Graph("g") as g:
        for i in range(30):
            attend(i)
    g.compile().run(executor=ThreadExecutor(max_workers=2, max_async=5))
    assert meeting.peak == 5


# -- timeouts --------------------------------------------------------------------------------


def cancelled_task(marker: Path) -> dx.Task:
    @dx.task(timeout=0.3)
    async def slow() -> int:
        try:
            await asyncio.sleep(GUARD)
        finally:  # written whole, then renamed: the test reads it as soon as it exists
            marker.with_suffix(".part").write_text("finally ran")
            os.replace(marker.with_suffix(".part"), marker)
        return 1

    return slow


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_an_async_task_past_its_timeout_is_cancelled_and_its_finally_runs(executor, tmp_path):
    marker = tmp_path / "marker"
    with dx.Graph("g") as g:
        cancelled_task(marker)()
    result = g.compile().run(executor=executor, raise_on_failure=False, max_workers=2)
    trial = result.trials["slow"][0]
    assert (result.states["slow"], trial.state) == (State.FAILED, State.TIMED_OUT)
    assert str(trial.error) == "node 'slow' timed out after 0.3 s"
    if executor == "loky":  # the worker may report after the master saw the deadline
        deadline = time.monotonic() + GUARD
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    # serial: cancelled in the trial; threads: the run's executor waits for the cleanup
    assert marker.read_text() == "finally ran"


def test_async_tasks_run_from_code_that_has_an_event_loop_running():
    with dx.Graph("g") as g:
        g.output(double(double(5)), name="out")
    plan = g.compile()

    async def notebook_cell() -> int:
        return int(plan.run(executor="serial").output)  # plan.run() inside a running loop

    assert asyncio.run(notebook_cell()) == 20


def test_the_threads_executors_event_loop_stops_at_shutdown():
    before = set(threading.enumerate())
    ex = ThreadExecutor(max_workers=1)
    with dx.Graph("g") as g:
        double(1)
    g.compile().run(executor=ex)
    (loop_thread,) = [t for t in set(threading.enumerate()) - before if t.name.startswith("dagexec-async-")]
    ex.shutdown()
    loop_thread.join(GUARD)
    assert not loop_thread.is_alive()
