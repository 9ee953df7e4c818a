"""One conformance suite, run on every executor: the same graphs, the same assertions.

Tasks live at module level (process workers import this module to find them) and
share state across processes through files in ``tmp_path``, never through globals.
"""

import itertools
import multiprocessing
import os
import pickle
import re
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec.executors import FuturesExecutor, LokyExecutor

SUCCEEDED = State.SUCCEEDED
FAILED = State.FAILED
UPSTREAM_FAILED = State.UPSTREAM_FAILED
TIMED_OUT = State.TIMED_OUT


@pytest.fixture(scope="module")
def thread_pool():
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


@pytest.fixture(scope="module")
def process_pool():
    # spawn: workers start clean whatever threads the test process has
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@pytest.fixture(params=["serial", "threads", "futures-threads", "futures-processes", "loky"])
def executor(request):
    """The executor under test, as passed to ``run(executor=...)``."""
    if request.param == "loky":
        return LokyExecutor(max_workers=2)
    if request.param == "futures-threads":
        return FuturesExecutor(request.getfixturevalue("thread_pool"))
    if request.param == "futures-processes":
        return FuturesExecutor(request.getfixturevalue("process_pool"))
    return request.param


@pytest.fixture
def gate(tmp_path):
    """A file path that stuck tasks wait for; it appears at test end to release them."""
    path = tmp_path / "gate"
    yield str(path)
    path.touch()


def trial_log(result: dx.RunResult, key: str) -> list[tuple[int, State]]:
    return [(t.attempt, t.state) for t in result.trials[key]]


def count_call(path: str) -> int:
    """Append a mark to ``path``; return how many marks it holds (works across processes)."""
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        return len(f.read())


# -- tasks ------------------------------------------------------------------------------


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(a: int, b: int) -> int:
    return a + b


@dx.task
def gather(data: dict[str, Any]) -> list[int]:
    return [data["a"], *data["pair"], data["deep"][0]["z"]]


@dx.task
def total(items: list[int]) -> int:
    return sum(items)


@dx.section
def twice(x: int) -> int:
    return inc(inc(x))


@dx.task
def explode(x: int) -> int:
    raise ValueError(f"bad value {x}")


def raise_deep(x: int) -> int:
    raise ValueError(f"deep value {x}")


@dx.task
def explode_deep(x: int) -> int:
    return raise_deep(x) + 1


@dx.task
def leave() -> int:
    raise SystemExit(2)


@dx.task
def untyped():  # no annotation: only the run-time check sees what it returns
    return "7"


@dx.task
def flaky(path: str, failures: int) -> int:
    n = count_call(path)
    if n <= failures:
        raise OSError(f"attempt {n}")
    return n


def transient_only(exc: BaseException) -> bool:
    return "transient" in str(exc)


@dx.task(retries=5, retry_on=transient_only)
def fetch(path: str) -> int:
    n = count_call(path)
    raise OSError("transient" if n == 1 else "fatal")


@dx.task(timeout=0.1)
def wait_for(path: str, cap: float) -> int:
    """Wait until ``path`` exists, at most ``cap`` seconds (serial runs cannot be pre-empted)."""
    limit = time.monotonic() + cap
    while not os.path.exists(path) and time.monotonic() < limit:
        time.sleep(0.005)
    return 1


@dx.task(executor="cpu")
def routed(x: int) -> int:
    return x * 10


# -- the suite ---------------------------------------------------------------------------


def test_runs_a_graph_with_sections_and_nested_arguments(executor):
    with dx.Graph("g") as g:
        n = g.input("n", int)
        a = inc(n)
        b = twice(a)
        g.output(gather({"a": a, "pair": (b, 7), "deep": [{"z": add(a, b)}]}), name="gathered")
        g.output(total([a, b, twice(n)]), name="total")
    result = g.compile().run(n=1, executor=executor)
    assert result.ok
    assert result.output == {"gathered": [2, 4, 7, 6], "total": 9}
    assert result.states == {
        "inc": SUCCEEDED,
        "twice/inc": SUCCEEDED,
        "twice/inc-1": SUCCEEDED,
        "add": SUCCEEDED,
        "gather": SUCCEEDED,
        "twice-1/inc": SUCCEEDED,
        "twice-1/inc-1": SUCCEEDED,
        "total": SUCCEEDED,
    }
    assert {k: trial_log(result, k) for k in result.trials} == {k: [(1, SUCCEEDED)] for k in result.states}
    for key, (trial,) in result.trials.items():
        assert trial.key == key
        assert trial.end is not None and trial.start <= trial.end
        assert re.fullmatch(r"master|dagexec-\d+|ThreadPoolExecutor-\d+_\d+|pid:\d+", trial.worker)
        assert (trial.error, trial.traceback) == (None, "")


def test_keep_all_brings_every_value_back(executor):
    with dx.Graph("g") as g:
        twice(1)
    result = g.compile().run(executor=executor, keep="all")
    assert (result["twice/inc"], result["twice/inc-1"]) == (2, 3)


def test_a_wide_graph_runs_past_the_executor_capacity(executor):
    with dx.Graph("g") as g:
        total([twice(i) for i in range(40)])
    result = g.compile().run(executor=executor)
    assert result.output == sum(range(40)) + 80
    assert set(result.states.values()) == {SUCCEEDED}
    assert len(result.states) == 81


def test_failure_brings_back_the_exception_and_its_traceback(executor):
    with dx.Graph("g") as g:
        a = explode(inc(2))
        add(inc(a), 1)
        inc(10)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor, fail_fast=False)
    exc = info.value
    assert str(exc) == "1 node of graph 'g' failed: 'explode' (ValueError: bad value 3)"
    assert exc.failed == ["explode"]
    assert type(exc.__cause__) is ValueError and str(exc.__cause__) == "bad value 3"
    result = exc.result
    assert result.states == {
        "inc": SUCCEEDED,
        "explode": FAILED,
        "inc-1": UPSTREAM_FAILED,
        "add": UPSTREAM_FAILED,
        "inc-2": SUCCEEDED,
    }
    assert trial_log(result, "explode") == [(1, FAILED)]
    (trial,) = result.trials["explode"]
    assert trial.error is exc.__cause__
    assert trial.traceback.startswith("Traceback (most recent call last):\n")
    assert 'raise ValueError(f"bad value {x}")' in trial.traceback
    assert trial.traceback.endswith("ValueError: bad value 3\n")
    assert result.outputs == {"inc-2": 11}


SOURCE = Path(__file__).read_text().splitlines()
FRAME = re.compile(r'  File "(.*)", line (\d+), in (\w+)$')


def line_of(statement: str) -> int:
    """The line number of ``statement`` (a whole line, indentation included) in this file."""
    return SOURCE.index(statement) + 1


def test_a_remote_traceback_starts_at_the_task_function(executor):
    with dx.Graph("g") as g:
        explode_deep(4)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor)
    cause = info.value.__cause__
    (trial,) = info.value.result.trials["explode_deep"]
    here = explode_deep.__wrapped__.__code__.co_filename
    call, rise = line_of("    return raise_deep(x) + 1"), line_of('    raise ValueError(f"deep value {x}")')
    assert trial.traceback.splitlines()[:2] == [
        "Traceback (most recent call last):",
        f'  File "{here}", line {call}, in explode_deep',
    ]
    found = [m.groups() for m in map(FRAME.match, trial.traceback.splitlines()) if m]
    assert found == [(here, str(call), "explode_deep"), (here, str(rise), "raise_deep")]
    assert trial.traceback.endswith("ValueError: deep value 4\n")
    # what printing the RunFailed shows of the task's error: the same frames
    remote = cause.__cause__  # the remote traceback of an error from another process
    shown = remote.tb if remote is not None else "".join(traceback.format_exception(cause))
    assert shown == trial.traceback


def test_system_exit_in_a_task_fails_its_trial(executor):
    with dx.Graph("g") as g:
        leave()
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor)
    assert info.value.result.states == {"leave": FAILED}
    assert trial_log(info.value.result, "leave") == [(1, FAILED)]
    assert type(info.value.__cause__) is SystemExit
    assert str(info.value) == "1 node of graph 'g' failed: 'leave' (SystemExit: 2)"


def test_retries_until_success_with_attempts_from_one(executor, tmp_path):
    path = str(tmp_path / "calls")
    with dx.Graph("g") as g:
        inc(flaky.options(retries=2, retry_delay=0.05)(path, 2))
    result = g.compile().run(executor=executor)
    assert result.states == {"flaky": SUCCEEDED, "inc": SUCCEEDED}
    assert result.output == 4
    assert trial_log(result, "flaky") == [(1, FAILED), (2, FAILED), (3, SUCCEEDED)]
    assert [str(t.error) for t in result.trials["flaky"]] == ["attempt 1", "attempt 2", "None"]
    trials = result.trials["flaky"]
    assert [b.start - a.end >= 0.05 for a, b in itertools.pairwise(trials)] == [True, True]


def test_exhausted_retries_fail_the_node_and_its_dependents(executor, tmp_path):
    path = str(tmp_path / "calls")
    with dx.Graph("g") as g:
        a = flaky.options(retries=1)(path, 10)
        add(inc(a), a)
        twice(1)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor, fail_fast=False)
    assert info.value.result.states == {
        "flaky": FAILED,
        "inc": UPSTREAM_FAILED,
        "add": UPSTREAM_FAILED,
        "twice/inc": SUCCEEDED,
        "twice/inc-1": SUCCEEDED,
    }
    assert trial_log(info.value.result, "flaky") == [(1, FAILED), (2, FAILED)]
    assert str(info.value) == "1 node of graph 'g' failed: 'flaky' (OSError: attempt 2)"


def test_retry_on_types_and_predicates(executor, tmp_path):
    with dx.Graph("g") as g:
        flaky.options(name="retried", retries=3, retry_on=OSError)(str(tmp_path / "a"), 1)
        flaky.options(name="not_retried", retries=3, retry_on=(KeyError,))(str(tmp_path / "b"), 1)
        fetch(str(tmp_path / "c"))
    result = g.compile().run(executor=executor, fail_fast=False, raise_on_failure=False)
    assert result.states == {"retried": SUCCEEDED, "not_retried": FAILED, "fetch": FAILED}
    assert trial_log(result, "retried") == [(1, FAILED), (2, SUCCEEDED)]
    assert trial_log(result, "not_retried") == [(1, FAILED)]
    assert trial_log(result, "fetch") == [(1, FAILED), (2, FAILED)]


def test_run_time_type_check_fails_the_trial_and_is_not_retried(executor):
    with dx.Graph("g") as g:
        inc.options(retries=2)(untyped())
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor)
    cause = info.value.__cause__
    assert isinstance(cause, dx.TypeCheckError)
    assert str(cause) == "node 'inc': parameter 'x' expects int but got str '7'"
    assert (cause.key, cause.param) == ("inc", "x")
    assert info.value.result.states == {"untyped": SUCCEEDED, "inc": FAILED}
    assert trial_log(info.value.result, "inc") == [(1, FAILED)]


@pytest.mark.timeout(60)
def test_trial_past_its_timeout_is_timed_out_and_other_work_goes_on(executor, gate):
    with dx.Graph("g") as g:
        inc(wait_for(gate, 0.5))
        total([twice(i) for i in range(4)])
    result = g.compile().run(executor=executor, fail_fast=False, raise_on_failure=False)
    assert result.states == {
        "wait_for": FAILED,
        "inc": UPSTREAM_FAILED,
        **{key: SUCCEEDED for key in result.states if key not in ("wait_for", "inc")},
    }
    assert len(result.states) == 11
    assert result.outputs == {"total": 14}
    assert trial_log(result, "wait_for") == [(1, TIMED_OUT)]
    error = result.trials["wait_for"][0].error
    assert isinstance(error, dx.TaskTimeout)
    # threads and processes are abandoned at the deadline; serial sees the trial return late
    assert re.fullmatch(
        r"node 'wait_for' (timed out after 0\.1 s|ran \d+\.\d\d s, past its timeout of 0\.1 s)", str(error)
    )
    assert result.failed == ["wait_for"]


def test_callbacks_see_each_trial_start_and_end(executor, tmp_path):
    events: list[tuple[Any, ...]] = []

    class Record:
        def on_run_start(self, plan: Any) -> None:
            events.append(("run_start", plan.name))

        def on_trial_start(self, trial: dx.Trial) -> None:
            events.append(("start", trial.key, trial.attempt, trial.state))

        def on_trial_end(self, trial: dx.Trial) -> None:
            events.append(("end", trial.key, trial.attempt, trial.state))

        def on_run_end(self, result: dx.RunResult) -> None:
            events.append(("run_end", result.ok))

    with dx.Graph("g") as g:
        inc(flaky.options(retries=1)(str(tmp_path / "calls"), 1))
    g.compile().run(executor=executor, callbacks=[Record()])
    assert events == [
        ("run_start", "g"),
        ("start", "flaky", 1, State.RUNNING),
        ("end", "flaky", 1, FAILED),
        ("start", "flaky", 2, State.RUNNING),
        ("end", "flaky", 2, SUCCEEDED),
        ("start", "inc", 1, State.RUNNING),
        ("end", "inc", 1, SUCCEEDED),
        ("run_end", True),
    ]


def test_a_task_defined_in_a_function_runs(executor):
    offset = 5

    @dx.task
    def shift(x: int) -> int:
        return x + offset

    with dx.Graph("g") as g:
        shift(inc(1))
    assert g.compile().run(executor=executor).output == 7


def test_serves_one_route_of_a_mapping(executor):
    with dx.Graph("g") as g:
        add(routed(inc(1)), 1)
    result = g.compile().run(executor={"default": "serial", "cpu": executor})
    assert result.output == 21
    assert [result.trials[k][0].worker == "master" for k in ("inc", "routed", "add")] == [
        True,
        executor == "serial",
        True,
    ]


def test_an_executor_object_is_not_shut_down_by_a_run(executor, thread_pool, process_pool):
    with dx.Graph("g") as g:
        twice(1)
    plan = g.compile()
    assert plan.run(executor=executor).output == 3
    assert plan.run(executor=executor).output == 3
    assert thread_pool.submit(int, "4").result() == 4
    assert process_pool.submit(int, "5").result() == 5


def test_bad_inputs_stop_the_run_before_any_task(executor, tmp_path):
    path = str(tmp_path / "calls")
    with dx.Graph("g") as g:
        n = g.input("n", int)
        flaky(path, 0)
        inc(n)
    with pytest.raises(dx.InputError) as info:
        g.compile().run(n="1", executor=executor)
    assert str(info.value) == "input 'n' expects int but got str '1'"
    assert not Path(path).exists()


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


# -- the executor boundary: submit never loses a run (DESIGN §12) ---------------------------

CRASHED = State.CRASHED


@dx.task(retries=2)
def die() -> int:
    os._exit(1)


def test_a_worker_dying_in_a_process_pool_crashes_its_trial_and_the_run_returns():
    with dx.Graph("g") as g:
        g.output(die(), name="v")
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = g.compile().run(executor=pool, raise_on_failure=False)
    assert (result.ok, result.states, result.outputs) == (False, {"die": FAILED}, {})
    assert trial_log(result, "die") == [(1, CRASHED), (2, CRASHED), (3, CRASHED)]
    errors = [t.error for t in result.trials["die"]]
    assert all(
        type(e) is dx.WorkerCrashed and type(e.__cause__).__name__ == "BrokenProcessPool" for e in errors
    )
    assert [str(e) for e in errors] == [
        "node 'die': the worker running it was lost: BrokenProcessPool: A process in the process pool was "
        "terminated abruptly while the future was running or pending.",
        *["node 'die': ProcessPoolExecutor refused the trial: BrokenProcessPool: A child process terminated "
          "abruptly, the process pool is not usable anymore"] * 2,
    ]  # fmt: skip


class Refusing(dx.Executor):
    """A third-party executor whose backend is gone: every method that can raise does."""

    name = "refusing"

    def __init__(self, batches: bool = False) -> None:
        self.batches = batches
        self.submitted = 0

    def submit(self, call: Any, post: Any) -> Any:
        self.submitted += 1
        raise ConnectionError("backend gone")

    def submit_batch(self, batch: Any, post: Any) -> Any:
        self.submitted += 1
        raise ConnectionError("backend gone")

    def run_ended(self) -> None:
        raise RuntimeError("cannot say goodbye")


def test_a_third_party_executor_whose_submit_raises_crashes_the_trial_and_the_run_returns():
    ex = Refusing()
    with dx.Graph("g") as g:
        g.output(inc.options(retries=1)(1), name="v")
    result = g.compile().run(executor=ex, raise_on_failure=False)
    assert (result.ok, result.states, ex.submitted) == (False, {"inc": FAILED}, 2)
    assert trial_log(result, "inc") == [(1, CRASHED), (2, CRASHED)]
    error = result.trials["inc"][-1].error
    assert type(error) is dx.WorkerCrashed and type(error.__cause__) is ConnectionError
    assert str(error) == "node 'inc': executor 'refusing' refused the trial: ConnectionError: backend gone"
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=Refusing())
    assert str(info.value) == (
        "1 node of graph 'g' failed: 'inc' (WorkerCrashed: node 'inc': executor 'refusing' refused the trial: "
        "ConnectionError: backend gone)"
    )
    assert info.value.result.states == {"inc": FAILED}


def test_a_third_party_executor_whose_submit_batch_raises_crashes_the_first_member():
    ex = Refusing(batches=True)
    with dx.Graph("g") as g:
        g.output(add(inc(inc(1)), 5), name="v")
    result = g.compile().run(executor=ex, raise_on_failure=False)
    assert result.states == {"inc": FAILED, "inc-1": UPSTREAM_FAILED, "add": UPSTREAM_FAILED}
    assert ex.submitted == 1
    assert trial_log(result, "inc") == [(1, CRASHED)]
    assert (result.trials["inc-1"], result.trials["add"]) == ([], [])
