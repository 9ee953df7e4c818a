"""Process pools: what must pickle to reach a worker and come back (DESIGN §12).

The suite that every executor runs alike is ``test_conformance.py``; these tests pin the
messages of a ``FuturesExecutor`` over a ``ProcessPoolExecutor`` when a value, an error or
a task does not pickle.  Tasks live at module level (process workers import this module
to find them).
"""

import multiprocessing
import pickle
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import dagexec as dx
from dagexec import State

SUCCEEDED = State.SUCCEEDED
FAILED = State.FAILED
UPSTREAM_FAILED = State.UPSTREAM_FAILED


@pytest.fixture(scope="module")
def process_pool():
    # spawn: workers start clean whatever threads the test process has
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def trial_log(result: dx.RunResult, key: str) -> list[tuple[int, State]]:
    return [(t.attempt, t.state) for t in result.trials[key]]


def count_call(path: str) -> int:
    """Append a mark to ``path``; return how many marks it holds (works across processes)."""
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        return len(f.read())


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def flaky(path: str, failures: int) -> int:
    n = count_call(path)
    if n <= failures:
        raise OSError(f"attempt {n}")
    return n


# -- process pools: what must pickle (DESIGN §12) ------------------------------------------


class LockedError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


@dx.task
def give_lock(x: int) -> Any:
    return threading.Lock()


@dx.task
def hold(x: Any) -> int:
    return 1


@dx.task
def fail_locked() -> int:
    raise LockedError("held")


def test_a_result_that_cannot_pickle_fails_its_node_by_name(process_pool):
    with dx.Graph("g") as g:
        hold(give_lock(1))
        inc(1)
    result = g.compile().run(executor=process_pool, fail_fast=False, raise_on_failure=False)
    assert result.states == {"give_lock": FAILED, "hold": UPSTREAM_FAILED, "inc": SUCCEEDED}
    (trial,) = result.trials["give_lock"]
    assert trial.state is FAILED
    assert isinstance(trial.error, pickle.PicklingError)
    assert str(trial.error) == (
        "node 'give_lock': its result of type _thread.lock cannot be pickled: cannot pickle '_thread.lock' object"
    )


def test_an_argument_that_cannot_pickle_fails_its_trial_by_name(process_pool):
    with dx.Graph("g") as g:
        hold(g.input("x"))
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(x=threading.Lock(), executor=process_pool)
    assert str(info.value.__cause__) == (
        "node 'hold': an argument of type _thread.lock cannot be pickled to send it to a process: "
        "cannot pickle '_thread.lock' object"
    )
    assert trial_log(info.value.result, "hold") == [(1, FAILED)]


def test_an_exception_that_cannot_pickle_comes_back_as_remote_error(process_pool):
    with dx.Graph("g") as g:
        fail_locked()
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=process_pool)
    cause = info.value.__cause__
    assert isinstance(cause, dx.RemoteError)
    assert (cause.type_name, cause.message) == ("test_executors.LockedError", "held")
    assert str(cause) == "test_executors.LockedError: held"
    assert 'raise LockedError("held")' in cause.traceback
    assert cause.traceback.endswith("test_executors.LockedError: held\n")
    assert (
        str(info.value)
        == "1 node of graph 'g' failed: 'fail_locked' (RemoteError: test_executors.LockedError: held)"
    )


def test_a_plan_that_does_not_pickle_is_refused_before_anything_runs(process_pool, tmp_path):
    lock = threading.Lock()
    path = str(tmp_path / "calls")

    @dx.task
    def guarded(x: int) -> int:
        with lock:
            return x

    with dx.Graph("g") as g:
        flaky(path, 0)
        guarded(1)
    plan = g.compile()
    assert not plan.portable
    with pytest.raises(dx.GraphError) as info:
        plan.run(executor=process_pool)
    (problem,) = info.value.problems
    assert str(info.value) == problem.message
    assert re.fullmatch(
        r"node 'guarded': task function test_executors:test_a_plan_that_does_not_pickle_is_refused_before_"
        r"anything_runs\.<locals>\.guarded cannot be pickled because of its closure variable 'lock' \(a _thread\.lock\): "
        r"TypeError: cannot pickle '_thread\.lock' object \(called at .*test_executors\.py:\d+\); "
        r'executor="threads" or "serial" runs in this process, where nothing is pickled',
        str(info.value),
    )
    assert not Path(path).exists()
    # serial and thread runs need no pickling, nor does a route that keeps the task at home
    assert plan.run(executor="serial").ok
    assert plan.run(executor={"default": "serial", "cpu": process_pool}).ok
    assert plan.run(executor=process_pool, skip=["guarded"]).ok
