"""One conformance suite, run on every executor: the same graphs, the same assertions.

The executors: ``serial``, ``threads``, ``loky``, ``FuturesExecutor`` over a
``ThreadPoolExecutor`` and over a ``ProcessPoolExecutor``, and ``DaskExecutor`` on a real
``distributed.LocalCluster`` of two worker processes on 127.0.0.1 (one for the module,
started only when a dask case runs; those cases are marked slow), and ``RayExecutor`` on
a local Ray of two CPUs started in this process (likewise, ``ray_cluster`` in conftest).  What every one of them
must give alike (DESIGN §5, §12): values, nested containers and namedtuples included;
failures with their exact type and message; retries with attempts numbered from 1;
timeouts that end one trial and lose no other work; Ctrl-C, a real ``SIGINT`` to a master
in a subprocess, that cancels the run, raises ``KeyboardInterrupt`` and leaves no process.

Then the protocol of ``docs/executors.md``, checked from outside: ``submit`` never raises
(a shut-down pool, a closed dask client, a third-party executor whose ``submit`` raises
make the trial ``crashed`` and the run keeps its result); ``post`` is called once per
trial, with the outcome's fields in their order; an outcome that arrives after
``abandon`` is ignored; no more trials run at once than ``capacity``.

A worker that dies (``os._exit`` in a task) is checked on the process executors only:
on serial and threads it would end the test process itself.

Tasks live at module level (process workers import this module to find them) and
share state across processes through files in ``tmp_path``, never through globals.
"""

import collections
import itertools
import json
import logging
import multiprocessing
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

import dagexec as dx
from dagexec import State
from dagexec._worker import Call
from dagexec.executors import (
    DaskExecutor,
    FuturesExecutor,
    LokyExecutor,
    RayExecutor,
    ThreadExecutor,
    make_executor,
)

SUCCEEDED = State.SUCCEEDED
FAILED = State.FAILED
UPSTREAM_FAILED = State.UPSTREAM_FAILED
TIMED_OUT = State.TIMED_OUT
CRASHED = State.CRASHED
CANCELLED = State.CANCELLED

GUARD = 30.0  # seconds before a wait is a failure: a guard against a hang, never a timing assertion
SPAWN = multiprocessing.get_context("spawn")  # workers start clean whatever threads the test process has

#: a dask case: slow, for the cluster it needs
DASK = pytest.param("dask", marks=pytest.mark.slow)
#: a Ray case: slow, for the local Ray it starts
RAY = pytest.param("ray", marks=pytest.mark.slow)


@pytest.fixture(scope="module")
def thread_pool():
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


@pytest.fixture(scope="module")
def process_pool():
    with ProcessPoolExecutor(max_workers=2, mp_context=SPAWN) as pool:
        yield pool


def trial_keys(client: Any) -> list[str]:
    """The dask keys of dagexec trials that the client or the scheduler still holds."""
    ours = re.compile(r".+-a\d+-[0-9a-f]{16}")
    held = [*client.futures, *client.cluster.scheduler.tasks]
    return [k for k in held if isinstance(k, str) and ours.fullmatch(k)]


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {GUARD:g} s for {what}")
        time.sleep(0.01)


@pytest.fixture(params=["serial", "threads", "futures-threads", "futures-processes", "loky", DASK, RAY])
def executor(request):
    """The executor under test, as passed to ``run(executor=...)``; a dask case ends with
    every trial's task released by the client and the scheduler."""
    if request.param == "loky":
        yield LokyExecutor(max_workers=2)
    elif request.param == "futures-threads":
        yield FuturesExecutor(request.getfixturevalue("thread_pool"))
    elif request.param == "futures-processes":
        yield FuturesExecutor(request.getfixturevalue("process_pool"))
    elif request.param == "dask":
        client = request.getfixturevalue("client")
        yield DaskExecutor(client)
        wait_until(lambda: not trial_keys(client), "the trials' dask tasks to be released")
    elif request.param == "ray":
        request.getfixturevalue("ray_cluster")
        yield RayExecutor()
    else:
        yield request.param


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


def wait_for_path(path: str) -> None:
    """In a task: wait until ``path`` exists (at most GUARD seconds, then fail)."""
    deadline = time.monotonic() + GUARD
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {GUARD:g} s for {path}")
        time.sleep(0.005)


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
        assert re.fullmatch(
            r"master|dagexec-\d+|ThreadPoolExecutor-\d+_\d+|pid:\d+|tcp://127\.0\.0\.1:\d+|ray:pid:\d+", trial.worker
        )
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


# -- values in containers --------------------------------------------------------------------

Pair = collections.namedtuple("Pair", ["left", "right"])


@dx.task
def pair(left: int, right: int) -> Pair:
    return Pair(left, right)


@dx.task
def echo(value: Any) -> Any:
    return value


def shape(value: Any) -> Any:
    """The types of ``value`` and of what it holds, at every depth (a namedtuple compares
    equal to a plain tuple: its type is what tells them apart)."""
    kind = type(value).__name__
    if isinstance(value, dict):
        return (kind, {k: shape(v) for k, v in sorted(value.items())})
    if isinstance(value, (set, frozenset)):
        return (kind, sorted(value))
    if isinstance(value, (list, tuple)):
        return (kind, [shape(v) for v in value])
    return kind


@dx.task
def shape_of(value: Any) -> Any:
    return shape(value)


def test_values_in_nested_containers_and_namedtuples_arrive_as_they_were_made(executor):
    with dx.Graph("g") as g:
        a = inc(1)
        p = pair(a, 3)
        data = {
            "made": p,
            "built": Pair(left=[a, (a, {"k": a})], right=frozenset({a, 5})),
            "set": {a, 9},
            "list": [p, [a, Pair(p, a)]],
        }
        g.output(echo(data), name="echo")
        g.output(shape_of(data), name="inside")
    result = g.compile().run(executor=executor)
    expected = {
        "made": Pair(2, 3),
        "built": Pair(left=[2, (2, {"k": 2})], right=frozenset({2, 5})),
        "set": {2, 9},
        "list": [Pair(2, 3), [2, Pair(Pair(2, 3), 2)]],
    }
    assert result.outputs["echo"] == expected
    assert shape(result.outputs["echo"]) == shape(expected)  # what came back to the master
    assert result.outputs["inside"] == shape(expected)  # what the task was given
    assert type(result.outputs["echo"]["made"]) is Pair
    assert set(result.states.values()) == {SUCCEEDED}


# -- a worker that dies (process executors only: on serial and threads it is the test's own process) --

#: the message of a crash, per executor
CRASH_MESSAGES = {
    "loky": r"node 'crash_once': its worker process \(pid \d+\) died while running attempt 1; "
    r"exit codes of the workers that died: \{.*\}",
    "dask": r"node 'crash_once': its dask worker tcp://127\.0\.0\.1:\d+ died while running attempt 1",
    "ray": r"node 'crash_once': its Ray worker died or was lost: WorkerCrashedError: .*",
}


class StartSeen(DaskExecutor):
    """A DaskExecutor that creates the file ``seen`` once ``started_at`` says that the first
    attempt of node ``key`` runs.  A worker that dies before the master learnt of the start
    is no crash of that trial for dask: dask runs it again elsewhere, under the same attempt
    (docs/distributed.md); a task that is to crash its worker waits for this file."""

    def __init__(self, client: Any, key: str, seen: str) -> None:
        super().__init__(client)
        self.key = key
        self.seen = seen

    def submit(self, call: Call, post: Any) -> Any:
        out = super().submit(call, post)
        if out is None and call.key == self.key and call.attempt == 1:
            threading.Thread(target=self._watch, args=(call,), daemon=True).start()
        return out

    def submit_batch(self, batch: Any, post: Any) -> Any:
        # a chain that starts with the node runs as one dask task: its start is the batch's
        first = batch.calls[0]
        out = super().submit_batch(batch, post)
        if out is None and first.key == self.key and first.attempt == 1:
            threading.Thread(target=self._watch, args=(batch,), daemon=True).start()
        return out

    def _watch(self, call: Any) -> None:
        deadline = time.monotonic() + GUARD
        while (began := self.started_at(call)) == float("inf") and time.monotonic() < deadline:
            time.sleep(0.005)
        if began is not None and began != float("inf"):
            Path(self.seen).touch()


def crashing_executor(kind: str, request: Any, key: str, seen: str) -> Any:
    """The process executor ``kind`` for a test where node ``key`` kills its worker once
    ``seen`` exists (made at once where the executor needs no wait)."""
    if kind == "dask":
        return StartSeen(request.getfixturevalue("client"), key, seen)
    Path(seen).touch()  # loky, Ray and a stdlib pool tell a crash from the dead worker itself
    if kind == "loky":
        return LokyExecutor(max_workers=2)
    if kind == "ray":
        request.getfixturevalue("ray_cluster")
        return RayExecutor()
    pool = ProcessPoolExecutor(max_workers=2, mp_context=SPAWN)  # a fresh one: a dead worker breaks it
    request.addfinalizer(pool.shutdown)
    return pool


def after_a_crash(kind: str, request: Any) -> None:
    if kind == "dask":  # the nanny's new worker, for the next test
        client = request.getfixturevalue("client")
        wait_until(lambda: not trial_keys(client), "the trials' dask tasks to be released")
        client.wait_for_workers(2, timeout=GUARD)


@dx.task(retries=2)
def crash_once(path: str, seen: str) -> int:
    if count_call(path) == 1:
        wait_for_path(seen)
        os._exit(1)
    return 7


@pytest.mark.parametrize("kind", ["loky", "futures-processes", DASK, RAY])
def test_a_worker_dying_crashes_its_trial_which_is_retried_and_the_run_goes_on(kind, request, tmp_path):
    seen = str(tmp_path / "seen")
    ex = crashing_executor(kind, request, "crash_once", seen)
    with dx.Graph("g") as g:
        before = total([twice(i) for i in range(3)])
        g.output(inc(crash_once(str(tmp_path / "calls"), seen).after(before)), name="v")
        g.output(before, name="before")
    result = g.compile().run(executor=ex, raise_on_failure=False)
    after_a_crash(kind, request)
    errors = [t.error for t in result.trials["crash_once"]]
    if kind == "futures-processes":
        # a stdlib pool stays broken once a worker died: it refuses the retries, and the
        # run returns with the node failed
        assert (result.ok, result.outputs) == (False, {"before": 9})
        assert {k: s for k, s in result.states.items() if s is not SUCCEEDED} == {
            "crash_once": FAILED,
            "inc": UPSTREAM_FAILED,
        }
        assert trial_log(result, "crash_once") == [(1, CRASHED), (2, CRASHED), (3, CRASHED)]
        assert all(
            type(e) is dx.WorkerCrashed and type(e.__cause__).__name__ == "BrokenProcessPool" for e in errors
        )
        assert [str(e) for e in errors] == [
            "node 'crash_once': the worker running it was lost: BrokenProcessPool: A process in the process "
            "pool was terminated abruptly while the future was running or pending.",
            *["node 'crash_once': ProcessPoolExecutor refused the trial: BrokenProcessPool: A child process "
              "terminated abruptly, the process pool is not usable anymore"] * 2,
        ]  # fmt: skip
        return
    assert (result.ok, result.outputs) == (True, {"v": 8, "before": 9})
    assert set(result.states.values()) == {SUCCEEDED}
    assert trial_log(result, "crash_once") == [(1, CRASHED), (2, SUCCEEDED)]
    assert type(errors[0]) is dx.WorkerCrashed
    assert re.fullmatch(CRASH_MESSAGES[kind], str(errors[0]))


@dx.task(retries=1)
def crash_beside(path: str, seen: str, beside: str, crashing: str) -> int:
    """Attempt 1 waits until ``bystander`` runs on another worker, then its worker dies."""
    if count_call(path) == 1:
        wait_for_path(seen)
        wait_for_path(beside)
        open(crashing, "w").close()
        os._exit(1)
    return 7


@dx.task
def bystander(beside: str, crashing: str) -> int:
    """Runs while another worker dies; it may be stopped with its pool and run again."""
    open(beside, "w").close()
    wait_for_path(crashing)
    return 5


@pytest.mark.parametrize("kind", ["loky", DASK, RAY])
def test_a_trial_running_beside_a_crash_is_not_lost_nor_charged_an_attempt(kind, request, tmp_path):
    # not on a stdlib pool: a dead worker fails every trial that pool holds (see above)
    seen, beside, crashing = (str(tmp_path / name) for name in ("seen", "beside", "crashing"))
    ex = crashing_executor(kind, request, "crash_beside", seen)
    with dx.Graph("g") as g:
        crashed = crash_beside(str(tmp_path / "calls"), seen, beside, crashing)
        g.output(add(crashed, bystander(beside, crashing)), "v")
    result = g.compile().run(executor=ex)
    after_a_crash(kind, request)
    assert result.output == 12
    assert trial_log(result, "crash_beside") == [(1, CRASHED), (2, SUCCEEDED)]
    assert trial_log(result, "bystander") == [(1, SUCCEEDED)]


# -- Ctrl-C: a real SIGINT to a master in a subprocess ---------------------------------------

INTERRUPTED = textwrap.dedent(
    """
    import json
    import multiprocessing
    import os
    import sys
    import time
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    import dagexec as dx

    kind, started, gate = sys.argv[1], sys.argv[2], sys.argv[3]

    @dx.task
    def block() -> int:
        with open(started, "w") as f:
            f.write(str(os.getpid()))
        limit = time.monotonic() + 120  # far longer than the test waits for this process
        while not os.path.exists(gate) and time.monotonic() < limit:
            time.sleep(0.01)
        return 1

    @dx.task
    def inc(x: int) -> int:
        return x + 1

    class Record:
        results = []

        def on_run_end(self, result):
            self.results.append(result)

    if __name__ == "__main__":
        with dx.Graph("g") as g:
            inc(block())
            inc(1)
        pool = None
        if kind == "futures-threads":
            pool = executor = ThreadPoolExecutor(1)
        elif kind == "futures-processes":
            pool = executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        else:
            executor = kind  # made by the run, which shuts it down
        report = {}
        try:
            g.compile().run(executor=executor, max_workers=1, callbacks=[Record()])
        except KeyboardInterrupt as exc:
            report["raised"] = type(exc).__name__
        (result,) = Record.results
        report["states"] = {k: s.value for k, s in result.states.items()}
        report["trials"] = {k: [[t.attempt, t.state.value, t.end is not None] for t in ts]
                            for k, ts in result.trials.items()}
        print(json.dumps(report), flush=True)
        open(gate, "w").close()  # a pool of the caller's own still runs the task: let it end
        if pool is not None:
            pool.shutdown()
    """
)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` still running; a zombie counts as gone."""
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
        except psutil.NoSuchProcess:
            continue
    return left


def ended(pid: int) -> bool:
    """Process ``pid`` is gone (or a zombie)."""
    try:
        return not alive([psutil.Process(pid)])
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("kind", ["serial", "threads", "futures-threads", "futures-processes", "loky", DASK, RAY])
def test_sigint_cancels_the_run_raises_keyboard_interrupt_and_leaves_no_process(kind, request, tmp_path):
    script, started, gate = tmp_path / "plan.py", str(tmp_path / "started"), str(tmp_path / "gate")
    script.write_text(INTERRUPTED)
    ray_address = request.getfixturevalue("ray_cluster") if kind == "ray" else None  # before the environment is read
    env = dict(os.environ)
    if kind == "dask":
        cluster = request.getfixturevalue("cluster")
        env["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
        clients = set(cluster.scheduler.clients)
    if ray_address is not None:  # the run joins the module's Ray, whose worker runs block()
        env["RAY_ADDRESS"] = ray_address
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, started, gate],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # the signal goes to the master alone, as in test_interrupt
    )
    try:
        wait_until(lambda: os.path.exists(started) or proc.poll() is not None, "the task to start")
        assert proc.poll() is None, proc.communicate()
        below = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=GUARD)  # the task would block for 120 s
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        Path(gate).touch()
    assert proc.returncode == 0, err
    assert json.loads(out) == {
        "raised": "KeyboardInterrupt",
        "states": {"block": "cancelled", "inc": "cancelled", "inc-1": "cancelled"},
        "trials": {"block": [[1, "cancelled", True]], "inc": [], "inc-1": []},
    }
    if kind in ("loky", "futures-processes"):
        assert below, "the master had no worker process to stop"
    wait_until(lambda: not alive(below), "every process below the master to end")
    if kind == "ray":  # the task's Ray worker, no child of the master, was stopped too
        pid = int(Path(started).read_text())
        wait_until(lambda: ended(pid), "the Ray worker that ran block() to end")
    if kind == "dask":
        # the run's client is gone, and the scheduler forgot every task of the run
        wait_until(lambda: set(cluster.scheduler.clients) == clients, "the run's client to close")
        client = request.getfixturevalue("client")
        wait_until(lambda: not trial_keys(client), "the run's dask tasks to be released")


# -- the protocol: submit never raises (DESIGN §12, "Executor boundary") ------------------------


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


def refusing_executor(kind: str, request: Any) -> Any:
    """An executor whose backend refuses every trial."""
    if kind == "ProcessPoolExecutor":
        pool: Any = ProcessPoolExecutor(max_workers=1, mp_context=SPAWN)
    elif kind == "ThreadPoolExecutor":
        pool = ThreadPoolExecutor(max_workers=1)
    elif kind == "ThreadExecutor":
        pool = ThreadExecutor(max_workers=1)
    else:
        from distributed import Client

        client = Client(request.getfixturevalue("cluster"), set_as_default=False)
        client.close()
        return DaskExecutor(client)
    pool.shutdown()
    return FuturesExecutor(pool) if kind.endswith("PoolExecutor") else pool


#: per refusing backend: what refused the trial, and the type and message of the backend's error
REFUSALS = {
    "ProcessPoolExecutor": (
        "ProcessPoolExecutor",
        "RuntimeError",
        "cannot schedule new futures after shutdown",
    ),
    "ThreadPoolExecutor": (
        "ThreadPoolExecutor",
        "RuntimeError",
        "cannot schedule new futures after shutdown",
    ),
    "ThreadExecutor": ("ThreadExecutor", "RuntimeError", "submit after ThreadExecutor.shutdown()"),
    "closed dask client": ("the dask client", "ClosedClientError", None),  # its message: distributed's
}


def assert_refused(error: Any, kind: str) -> None:
    """``error`` is the WorkerCrashed of a trial that ``kind`` refused, made by the executor
    itself (the engine's guard would say "executor 'name' refused the trial")."""
    who, cause_type, cause_message = REFUSALS[kind]
    cause = error.__cause__
    assert type(error) is dx.WorkerCrashed and type(cause).__name__ == cause_type
    if cause_message is not None:
        assert str(cause) == cause_message
    assert str(error) == f"node 'inc': {who} refused the trial: {cause_type}: {cause}"


def node_call(plan: dx.CompiledGraph, key: str, attempt: int, *args: Any) -> Call:
    """The call of node ``key`` as the engine makes it, with argument values ``args``."""
    i = plan.keys.index(key)
    return Call(i, attempt, plan._specs[i], args, None)


@pytest.mark.parametrize(
    "kind",
    [
        "ProcessPoolExecutor",
        "ThreadPoolExecutor",
        "ThreadExecutor",
        pytest.param("closed dask client", marks=pytest.mark.slow),
    ],
)
def test_submit_to_a_backend_that_refuses_work_returns_a_crashed_outcome_and_the_run_keeps_its_result(
    kind, request, caplog
):
    ex = refusing_executor(kind, request)
    with dx.Graph("g") as g:
        g.output(inc.options(retries=1)(1), name="v")
    plan = g.compile()
    # the protocol, called as the engine calls it: an outcome comes back, nothing is raised
    posted: list[Any] = []
    out = ex.submit(node_call(plan, "inc", 1, 1), posted.append)
    assert posted == []
    assert out[:3] == (0, 1, False)
    assert_refused(out[4], kind)
    # in a run: the trial is crashed, retried as any crash, and the run returns its result
    with caplog.at_level(logging.WARNING, logger="dagexec.engine"):
        result = plan.run(executor=ex, raise_on_failure=False)
    assert (result.ok, result.states, result.outputs) == (False, {"inc": FAILED}, {})
    assert trial_log(result, "inc") == [(1, CRASHED), (2, CRASHED)]
    for trial in result.trials["inc"]:
        assert_refused(trial.error, kind)
    assert [r.getMessage() for r in caplog.records if "raised in submit" in r.getMessage()] == []


# -- the protocol: one outcome per trial, in its order; a late one is ignored ---------------------


@dx.task
def fail_with(x: int) -> int:
    raise KeyError(f"no {x}")


def settle(ex: Any, calls: list[Call]) -> dict[int, list[Any]]:
    """Submit ``calls`` (no more than the executor's capacity); once each has an outcome,
    wait a moment more for any second one: every outcome by the call's attempt."""
    got: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outcomes: dict[int, list[Any]] = {c.attempt: [] for c in calls}
    for call in calls:
        out = ex.submit(call, got.put)
        if out is not None:
            outcomes[call.attempt].append(out)
    if ex.ahead:
        ex.flush()  # what was submitted goes at once (Executor.flush)
    deadline = time.monotonic() + GUARD
    while not all(outcomes.values()) and time.monotonic() < deadline:
        try:
            out = got.get(timeout=0.05)
        except queue.Empty:
            continue
        outcomes[out[1]].append(out)
    time.sleep(0.2)  # a second post would come now; none may (it is not waited for otherwise)
    while not got.empty():
        out = got.get()
        outcomes[out[1]].append(out)
    return outcomes


def test_each_call_gets_one_outcome_with_its_fields_in_order(executor, tmp_path):
    ex, owned = make_executor(executor)
    with dx.Graph("g") as g:
        inc(1)
        fail_with(2)
    plan = g.compile()
    # attempts tell the calls apart: 1 and 3 succeed, 2 fails
    calls = [node_call(plan, "inc", 1, 41), node_call(plan, "fail_with", 2, 2), node_call(plan, "inc", 3, 6)]
    outcomes: dict[int, list[Any]] = {}
    try:
        for k in range(0, len(calls), ex.capacity):  # never more in flight than the capacity
            outcomes.update(settle(ex, calls[k : k + ex.capacity]))
    finally:
        ex.run_ended()
        if owned:
            ex.shutdown()
    assert {a: len(outs) for a, outs in outcomes.items()} == {1: 1, 2: 1, 3: 1}
    (ok,), (failed,), (other,) = outcomes[1], outcomes[2], outcomes[3]
    # (idx, attempt, ok, value, error, traceback, start, end, worker, log)
    for out, idx, attempt in ((ok, 0, 1), (failed, 1, 2), (other, 0, 3)):
        assert type(out) is tuple and len(out) == 10
        assert out[:2] == (idx, attempt)
        assert type(out[6]) is float and type(out[7]) is float and out[6] <= out[7]
        assert re.fullmatch(
            r"master|dagexec-\d+|ThreadPoolExecutor-\d+_\d+|pid:\d+|tcp://127\.0\.0\.1:\d+|ray:pid:\d+", out[8]
        )
        assert out[9] == ""
    values = [ok[3], other[3]]
    if ex.keeps_values:  # the values stay where they were made: the outcome holds handles
        values = ex.fetch(values)
    assert values == [42, 7]
    assert (ok[2], ok[4], ok[5]) == (other[2], other[4], other[5]) == (True, None, "")
    assert (failed[2], failed[3], type(failed[4]), str(failed[4])) == (False, None, KeyError, "'no 2'")
    assert failed[5].startswith("Traceback (most recent call last):\n")
    assert failed[5].endswith("KeyError: 'no 2'\n")


@dx.task(timeout=0.2)
def overstay(abandoned: str, returned: str, cap: float) -> int:
    """Goes on past its timeout until the master has given up on it, then returns a value
    that nothing may see.  On serial, which cannot give up on a running trial, it returns
    after ``cap`` seconds (late, so timed out)."""
    limit = time.monotonic() + cap
    while not os.path.exists(abandoned):
        try:
            if time.monotonic() > limit:
                break
            time.sleep(0.005)
        except dx.TaskTimeout:  # loky interrupts the task at its timeout: it goes on anyway
            continue
    open(returned, "w").close()
    return 111


#: how long after abandoning a trial ``witness`` waits for its late outcome where the
#: executor may kill the trial's worker first (Ray: ``ray.cancel(force=True)``)
KILLED_AFTER_S = 2.0


@dx.task
def witness(returned: str, abandoned: str) -> int:
    """Runs while the late outcome comes in: the run lasts until the abandoned trial
    returned, or until KILLED_AFTER_S after it was abandoned (its worker killed first)."""
    deadline, since = time.monotonic() + GUARD, None
    while not os.path.exists(returned):
        if since is None and os.path.exists(abandoned):
            since = time.monotonic()
        if since is not None and time.monotonic() - since > KILLED_AFTER_S:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {GUARD:g} s for {returned}")
        time.sleep(0.005)
    return 1


class WhenTimedOut:
    """Creates ``path`` once a trial of node ``key`` ends timed out; counts trial ends."""

    def __init__(self, key: str, path: str) -> None:
        self.key = key
        self.path = path
        self.ends: list[tuple[str, int, State]] = []

    def on_trial_end(self, trial: dx.Trial) -> None:
        self.ends.append((trial.key, trial.attempt, trial.state))
        if trial.key == self.key and trial.state is TIMED_OUT:
            Path(self.path).touch()


def test_an_outcome_that_comes_after_abandon_is_ignored(executor, tmp_path):
    abandoned, returned = str(tmp_path / "abandoned"), str(tmp_path / "returned")
    cap = 0.5 if executor == "serial" else GUARD  # serial: the trial must return for the run to go on
    record = WhenTimedOut("overstay", abandoned)
    with dx.Graph("g") as g:
        g.output(inc(overstay(abandoned, returned, cap)), name="late")
        g.output(inc(inc(witness(returned, abandoned))), name="after")
    result = g.compile().run(executor=executor, fail_fast=False, raise_on_failure=False, callbacks=[record])
    # the abandoned trial did return its value; on Ray, which kills the worker of a trial
    # it abandons, the kill may come first (the trial is abandoned before the callback
    # below tells it so): then no late outcome comes, and the rest holds all the same
    assert os.path.exists(returned) or isinstance(executor, RayExecutor)
    assert result.states == {
        "overstay": FAILED,
        "inc": UPSTREAM_FAILED,
        "witness": SUCCEEDED,
        "inc-1": SUCCEEDED,
        "inc-2": SUCCEEDED,
    }
    assert result.outputs == {"after": 3}
    assert trial_log(result, "overstay") == [(1, TIMED_OUT)]
    assert type(result.trials["overstay"][0].error) is dx.TaskTimeout
    assert [end for end in record.ends if end[0] == "overstay"] == [("overstay", 1, TIMED_OUT)]
    assert result.trials["inc"] == []


# -- the protocol: capacity ----------------------------------------------------------------------------


@dx.task
def occupy(folder: str, capacity: int, n: int) -> int:
    """Run for at least 0.1 s, counting the trials running at once (files in ``folder``,
    seen by every process); the first ``capacity`` trials wait until they see each other.
    Returns the most seen."""
    running = os.path.join(folder, "running")
    me = os.path.join(running, f"{os.getpid()}-{threading.get_ident()}-{n}")
    open(me, "w").close()
    first = count_call(os.path.join(folder, "started")) <= capacity
    start = time.monotonic()
    peak = 0
    try:
        while time.monotonic() - start < GUARD:
            peak = max(peak, len(os.listdir(running)))
            if time.monotonic() - start >= 0.1 and (peak >= capacity or not first):
                break
            time.sleep(0.005)
    finally:
        os.remove(me)
    return peak


@dx.task
def highest(peaks: list[int]) -> int:
    return max(peaks)


def capacity_cases() -> list[Any]:
    """(name, a maker of the executor given the test's request, its capacity): backends
    that could run more trials at once than the executor's capacity are the telling ones."""
    return [
        pytest.param(lambda r: "serial", 1, id="serial"),
        pytest.param(lambda r: ThreadExecutor(max_workers=2), 2, id="threads"),
        pytest.param(
            lambda r: FuturesExecutor(r.getfixturevalue("thread_pool"), max_workers=2),
            2,
            id="futures-threads",
        ),
        pytest.param(lambda r: FuturesExecutor(r.getfixturevalue("process_pool")), 2, id="futures-processes"),
        pytest.param(lambda r: LokyExecutor(max_workers=2), 2, id="loky"),
        pytest.param(
            lambda r: DaskExecutor(r.getfixturevalue("client"), max_in_flight=1),
            1,
            id="dask",
            marks=pytest.mark.slow,
        ),
    ]


@pytest.mark.parametrize(("make", "capacity"), capacity_cases())
def test_no_more_trials_run_at_once_than_the_capacity(make, capacity, request, tmp_path):
    ex = make(request)
    (tmp_path / "running").mkdir()
    with dx.Graph("g") as g:
        g.output(highest([occupy(str(tmp_path), capacity, n) for n in range(6)]), name="peak")
    result = g.compile().run(executor=ex)
    assert result.output == capacity
    assert os.listdir(tmp_path / "running") == []
    assert len((tmp_path / "started").read_text()) == 6
    if not isinstance(ex, str):
        assert ex.capacity == capacity
        if isinstance(ex, ThreadExecutor):
            ex.shutdown()
