"""Run semantics of the engine (DESIGN §5, §12): states, trials, retries, failures,
subsets, inputs, routing, memory, type checks, timeouts, callbacks and logging."""

import gc
import itertools
import logging
import re
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec.executors import FuturesExecutor, ThreadExecutor

SUCCEEDED = State.SUCCEEDED
FAILED = State.FAILED
UPSTREAM_FAILED = State.UPSTREAM_FAILED
SKIPPED = State.SKIPPED
CANCELLED = State.CANCELLED
TIMED_OUT = State.TIMED_OUT

EXECUTORS = ["serial", "threads"]


def trial_log(result: dx.RunResult, key: str) -> list[tuple[int, State]]:
    """(attempt, state) of each trial of ``key``."""
    return [(t.attempt, t.state) for t in result.trials[key]]


@pytest.fixture
def release():
    """An event that tasks left running past their timeout wait on; set at test end."""
    event = threading.Event()
    yield event
    event.set()


# -- plain runs ----------------------------------------------------------------------


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(a: int, b: int) -> int:
    return a + b


@dx.task
def total(items: list[int]) -> int:
    return sum(items)


@dx.section
def twice(x: int) -> int:
    return inc(inc(x))


def diamond_plan() -> dx.CompiledGraph:
    with dx.Graph("g") as g:
        n = g.input("n", int)
        a = inc(n)
        b = twice(a)
        c = twice(n)
        add(b, c)
    return g.compile()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_run_returns_output_states_and_trials(executor):
    result = diamond_plan().run(n=1, executor=executor)
    assert result.ok
    assert result.output == 7
    assert result.outputs == {"add": 7}
    assert result.states == {
        "inc": SUCCEEDED,
        "twice/inc": SUCCEEDED,
        "twice/inc-1": SUCCEEDED,
        "twice-1/inc": SUCCEEDED,
        "twice-1/inc-1": SUCCEEDED,
        "add": SUCCEEDED,
    }
    assert {k: trial_log(result, k) for k in result.trials} == {k: [(1, SUCCEEDED)] for k in result.states}
    for key, (trial,) in result.trials.items():
        assert trial.key == key
        assert trial.end is not None and trial.start <= trial.end
        if executor == "serial":
            assert trial.worker == "master"
        else:  # a thread, or once a function is measured tiny, the master thread
            assert trial.worker == "master" or trial.worker.startswith("dagexec-")
        assert trial.error is None and trial.traceback == ""
    if executor != "serial":  # the first trial of a function is never measured
        assert result.trials["inc"][0].worker.startswith("dagexec-")
    assert result["add"] == 7
    assert result.failed == []
    assert repr(result) == "<RunResult 'g' ok: 6 succeeded>"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_nested_container_arguments_are_filled(executor):
    @dx.task
    def shape(data: dict[str, Any]) -> list[Any]:
        return [data["a"], data["rest"][0][1], data["rest"][1]["z"]]

    with dx.Graph("g") as g:
        a = inc(1)
        b = inc(a)
        g.output(shape({"a": a, "rest": [(0, b), {"z": total([a, b, 10])}]}), name="shape")
        g.output(total(items=[a, a, b]), name="sum")
    result = g.compile().run(executor=executor)
    assert result.output == {"shape": [2, 3, 15], "sum": 7}
    assert result.outputs == {"shape": [2, 3, 15], "sum": 7}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_node_runs_though_only_one_is_an_output(executor):
    ran = []

    @dx.task
    def side(x: int) -> None:
        ran.append(x)

    with dx.Graph("g") as g:
        a = inc(1)
        side(a)
        g.output(inc(a), name="out")
    result = g.compile().run(executor=executor)
    assert result.outputs == {"out": 3}
    assert result.states == {"inc": SUCCEEDED, "side": SUCCEEDED, "inc-1": SUCCEEDED}
    assert ran == [2]


def test_plan_runs_again_with_other_inputs():
    plan = diamond_plan()
    assert plan.run(n=1, executor="serial").output == 7
    assert plan.run(inputs={"n": 10}, executor="threads").output == 25


def test_inputs_mapping_takes_names_that_run_options_use():
    with dx.Graph("g") as g:
        keep = g.input("keep", int)
        inc(keep)
    assert g.compile().run(inputs={"keep": 4}, executor="serial").output == 5


def test_ready_nodes_run_depth_first():
    order = []

    @dx.task
    def step(name: str, *deps: Any) -> str:
        order.append(name)
        return name

    with dx.Graph("g") as g:
        a = step("a")
        b = step("b")
        step("a2", a)
        step("b2", b)
    g.compile().run(executor="serial")
    assert order == ["a", "a2", "b", "b2"]


# -- failures --------------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_failure_raises_run_failed_whose_cause_is_the_task_exception(executor):
    raised = []

    @dx.task
    def boom(x: int) -> int:
        exc = ValueError(f"bad row {x}")
        raised.append(exc)
        raise exc

    with dx.Graph("g") as g:
        inc(boom(inc(2)))
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor)
    exc = info.value
    assert str(exc) == "1 node of graph 'g' failed: 'boom' (ValueError: bad row 3)"
    assert exc.failed == ["boom"]
    assert exc.__cause__ is raised[0]
    result = exc.result
    assert result.states == {"inc": SUCCEEDED, "boom": FAILED, "inc-1": UPSTREAM_FAILED}
    assert result.failed == ["boom"]
    assert not result.ok
    assert trial_log(result, "boom") == [(1, FAILED)]
    assert result.trials["inc-1"] == []
    trial = result.trials["boom"][0]
    assert trial.error is raised[0]
    assert trial.traceback.startswith("Traceback (most recent call last):")
    assert "raise exc" in trial.traceback
    assert trial.traceback.endswith("ValueError: bad row 3\n")
    assert isinstance(exc, dx.DagexecError)


def test_run_failed_message_names_the_first_three_failures():
    @dx.task
    def fail(i: int) -> int:
        raise KeyError(i)

    with dx.Graph("g") as g:
        for i in range(5):
            fail(i)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial", fail_fast=False)
    assert str(info.value) == (
        "5 nodes of graph 'g' failed: 'fail' (KeyError: 0), 'fail-1' (KeyError: 1), "
        "'fail-2' (KeyError: 2) and 2 more"
    )
    assert info.value.failed == ["fail", "fail-1", "fail-2", "fail-3", "fail-4"]


def test_raise_on_failure_false_returns_the_failed_result():
    @dx.task
    def boom() -> int:
        raise RuntimeError("no luck")

    with dx.Graph("g") as g:
        inc(boom())
        inc(1)
    result = g.compile().run(executor="serial", raise_on_failure=False)
    assert not result.ok
    assert result.states == {"boom": FAILED, "inc": UPSTREAM_FAILED, "inc-1": CANCELLED}
    assert result.failed == ["boom"]
    assert result.outputs == {}
    first, *rest = result.summary().splitlines()
    assert re.fullmatch(r"graph 'g': 3 nodes in \d+\.\d\d s: 1 failed, 1 upstream_failed, 1 cancelled", first)
    assert rest == ["  failed boom after 1 attempt(s) [failed]: RuntimeError: no luck"]
    assert repr(result) == "<RunResult 'g' failed: 1 failed, 1 upstream_failed, 1 cancelled>"
    with pytest.raises(KeyError) as info:
        _ = result.output
    assert info.value.args[0] == (
        "run of graph 'g' computed no output (states: 1 failed, 1 upstream_failed, 1 cancelled)"
    )


def test_output_with_several_outputs_is_a_dict_of_those_computed():
    @dx.task
    def boom() -> int:
        raise RuntimeError("no luck")

    with dx.Graph("g") as g:
        g.output(inc(boom()), name="bad")
        g.output(inc(1), name="good")
    result = g.compile().run(executor="serial", raise_on_failure=False, fail_fast=False)
    assert result.output == {"good": 2}


def test_output_of_a_single_output_that_failed_names_it():
    @dx.task
    def boom() -> int:
        raise RuntimeError("no luck")

    with dx.Graph("g") as g:
        g.output(inc(boom()), name="bad")
    result = g.compile().run(executor="serial", raise_on_failure=False)
    with pytest.raises(KeyError) as info:
        _ = result.output
    assert info.value.args[0] == (
        "output 'bad' of graph 'g' was not computed (states: 1 failed, 1 upstream_failed)"
    )


@pytest.mark.parametrize("executor", EXECUTORS)
def test_failure_marks_every_dependent_upstream_failed(executor):
    @dx.task
    def boom() -> int:
        raise ValueError("x")

    with dx.Graph("g") as g:
        a = boom()
        b = inc(a)
        c = inc(a)
        add(b, c)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor)
    assert info.value.result.states == {
        "boom": FAILED,
        "inc": UPSTREAM_FAILED,
        "inc-1": UPSTREAM_FAILED,
        "add": UPSTREAM_FAILED,
    }


@pytest.mark.parametrize("executor", EXECUTORS)
def test_fail_fast_false_runs_independent_branches_on(executor):
    @dx.task
    def boom() -> int:
        raise ValueError("x")

    with dx.Graph("g") as g:
        inc(boom())
        add(inc(1), 2)
    result = g.compile().run(executor=executor, fail_fast=False, raise_on_failure=False)
    assert result.states == {"boom": FAILED, "inc": UPSTREAM_FAILED, "inc-1": SUCCEEDED, "add": SUCCEEDED}
    assert result.outputs == {"add": 4}


@pytest.mark.timeout(30)
def test_fail_fast_lets_running_trials_finish_and_cancels_the_rest():
    slow_started = threading.Event()
    go = threading.Event()

    @dx.task
    def slow() -> int:
        slow_started.set()
        assert go.wait(30)
        return 1

    @dx.task
    def bad() -> int:
        assert slow_started.wait(30)
        raise ValueError("bad")

    @dx.task
    def other() -> int:
        return 3

    class GoWhenBadEnds:
        def on_trial_end(self, trial: dx.Trial) -> None:
            if trial.key == "bad":
                go.set()  # slow finishes only after the master saw bad fail

    with dx.Graph("g") as g:
        inc(slow())
        inc(bad())
        other()
    plan = g.compile()
    assert plan.keys == ("slow", "inc", "bad", "inc-1", "other")
    with pytest.raises(dx.RunFailed) as info:
        plan.run(executor="threads", max_workers=2, callbacks=[GoWhenBadEnds()])
    result = info.value.result
    assert result.states == {
        "slow": SUCCEEDED,
        "inc": CANCELLED,
        "bad": FAILED,
        "inc-1": UPSTREAM_FAILED,
        "other": CANCELLED,
    }
    assert {k: trial_log(result, k) for k in result.trials} == {
        "slow": [(1, SUCCEEDED)],
        "inc": [],
        "bad": [(1, FAILED)],
        "inc-1": [],
        "other": [],
    }


def test_fail_fast_cancels_a_node_waiting_for_its_retry():
    @dx.task(retries=3, retry_delay=60)
    def flaky() -> int:
        raise OSError("busy")

    @dx.task
    def boom() -> int:
        raise ValueError("x")

    with dx.Graph("g") as g:
        flaky()
        boom()
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial")
    result = info.value.result
    assert result.states == {"flaky": CANCELLED, "boom": FAILED}
    assert trial_log(result, "flaky") == [(1, FAILED)]
    assert str(info.value) == "1 node of graph 'g' failed: 'boom' (ValueError: x)"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_system_exit_in_a_task_fails_its_trial(executor):
    @dx.task
    def leave() -> int:
        raise SystemExit(3)

    with dx.Graph("g") as g:
        leave()
        inc(1)
    result = g.compile().run(executor=executor, fail_fast=False, raise_on_failure=False)
    assert result.states == {"leave": FAILED, "inc": SUCCEEDED}
    assert trial_log(result, "leave") == [(1, FAILED)]
    assert isinstance(result.trials["leave"][0].error, SystemExit)


# -- retries ---------------------------------------------------------------------------


def flaky_task(failures: int, exc: type[Exception] = OSError, **options: Any) -> dx.Task:
    """A task that raises ``exc`` on its first ``failures`` calls, then returns the call count."""
    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) <= failures:
            raise exc(f"attempt {len(calls)}")
        return len(calls)

    return dx.task(**options)(flaky)


def gaps(result: dx.RunResult, key: str) -> list[float]:
    trials = result.trials[key]
    return [b.start - a.end for a, b in itertools.pairwise(trials)]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_retries_number_attempts_from_one_and_wait_retry_delay(executor):
    flaky = flaky_task(2, retries=2, retry_delay=0.05)
    with dx.Graph("g") as g:
        inc(flaky())
    result = g.compile().run(executor=executor)
    assert result.states == {"flaky": SUCCEEDED, "inc": SUCCEEDED}
    assert result.output == 4
    assert trial_log(result, "flaky") == [(1, FAILED), (2, FAILED), (3, SUCCEEDED)]
    assert [str(t.error) for t in result.trials["flaky"]] == ["attempt 1", "attempt 2", "None"]
    assert all(g >= 0.05 for g in gaps(result, "flaky"))


def test_retry_backoff_multiplies_the_delay():
    flaky = flaky_task(3, retries=3, retry_delay=0.02, retry_backoff=2)
    with dx.Graph("g") as g:
        flaky()
    result = g.compile().run(executor="serial")
    assert trial_log(result, "flaky") == [(1, FAILED), (2, FAILED), (3, FAILED), (4, SUCCEEDED)]
    waits = gaps(result, "flaky")
    assert [w >= bound for w, bound in zip(waits, [0.02, 0.04, 0.08], strict=True)] == [True, True, True]


def test_retry_delay_list_gives_each_wait_and_repeats_the_last():
    flaky = flaky_task(3, retries=3, retry_delay=[0.01, 0.05])
    with dx.Graph("g") as g:
        flaky()
    result = g.compile().run(executor="threads")
    assert trial_log(result, "flaky") == [(1, FAILED), (2, FAILED), (3, FAILED), (4, SUCCEEDED)]
    waits = gaps(result, "flaky")
    assert [w >= bound for w, bound in zip(waits, [0.01, 0.05, 0.05], strict=True)] == [True, True, True]


def test_retry_jitter_only_adds_to_the_delay():
    flaky = flaky_task(2, retries=2, retry_delay=0.03, retry_jitter=0.5)
    with dx.Graph("g") as g:
        flaky()
    result = g.compile().run(executor="serial")
    assert trial_log(result, "flaky") == [(1, FAILED), (2, FAILED), (3, SUCCEEDED)]
    assert all(w >= 0.03 for w in gaps(result, "flaky"))


def test_other_ready_work_runs_while_a_retry_waits():
    order = []
    flaky = flaky_task(1, retries=1, retry_delay=0.05)

    @dx.task
    def steady(x: int) -> int:
        order.append("steady")
        return x

    class Record:
        def on_trial_start(self, trial: dx.Trial) -> None:
            order.append(f"{trial.key}#{trial.attempt}")

    with dx.Graph("g") as g:
        flaky()
        steady(1)
    result = g.compile().run(executor="serial", callbacks=[Record()])
    assert result.ok
    assert order == ["flaky#1", "steady#1", "steady", "flaky#2"]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_exhausted_retries_mark_dependents_upstream_failed(executor):
    flaky = flaky_task(5, retries=2)
    with dx.Graph("g") as g:
        a = flaky()
        add(inc(a), inc(a))
        inc(5)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor, fail_fast=False)
    result = info.value.result
    assert result.states == {
        "flaky": FAILED,
        "inc": UPSTREAM_FAILED,
        "inc-1": UPSTREAM_FAILED,
        "add": UPSTREAM_FAILED,
        "inc-2": SUCCEEDED,
    }
    assert trial_log(result, "flaky") == [(1, FAILED), (2, FAILED), (3, FAILED)]
    assert str(info.value) == "1 node of graph 'g' failed: 'flaky' (OSError: attempt 3)"
    assert str(info.value.__cause__) == "attempt 3"


def test_retry_on_types_retries_only_matching_exceptions():
    retried = flaky_task(1, exc=KeyError, retries=2, retry_on=(KeyError, OSError))
    not_retried = flaky_task(1, exc=ValueError, retries=2, retry_on=(KeyError, OSError))
    with dx.Graph("g") as g:
        retried.options(name="retried")()
        not_retried.options(name="not_retried")()
    result = g.compile().run(executor="serial", fail_fast=False, raise_on_failure=False)
    assert result.states == {"retried": SUCCEEDED, "not_retried": FAILED}
    assert trial_log(result, "retried") == [(1, FAILED), (2, SUCCEEDED)]
    assert trial_log(result, "not_retried") == [(1, FAILED)]


def test_retry_on_a_single_type_works_like_a_tuple():
    flaky = flaky_task(1, exc=KeyError, retries=1, retry_on=KeyError)
    with dx.Graph("g") as g:
        flaky()
    assert trial_log(g.compile().run(executor="serial"), "flaky") == [(1, FAILED), (2, SUCCEEDED)]


def test_retry_on_predicate_decides_each_retry():
    calls = []

    @dx.task(retries=5, retry_on=lambda exc: "transient" in str(exc))
    def fetch() -> int:
        calls.append(1)
        raise OSError("transient" if len(calls) == 1 else "fatal")

    with dx.Graph("g") as g:
        fetch()
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial")
    assert trial_log(info.value.result, "fetch") == [(1, FAILED), (2, FAILED)]
    assert str(info.value) == "1 node of graph 'g' failed: 'fetch' (OSError: fatal)"


def test_retry_on_predicate_that_raises_is_logged_and_not_retried(caplog):
    def predicate(exc: BaseException) -> bool:
        raise RuntimeError("predicate broke")

    flaky = flaky_task(1, retries=3, retry_on=predicate)
    with dx.Graph("g") as g:
        flaky()
    with caplog.at_level(logging.WARNING, logger="dagexec"):
        result = g.compile().run(executor="serial", raise_on_failure=False)
    assert trial_log(result, "flaky") == [(1, FAILED)]
    (record,) = [r for r in caplog.records if "predicate" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"retry_on predicate {predicate!r} raised; not retrying"
    assert record.exc_info is not None and str(record.exc_info[1]) == "predicate broke"


# -- only / skip -----------------------------------------------------------------------


def subset_plan(ran: list[str]) -> dx.CompiledGraph:
    @dx.task
    def step(name: str, *deps: Any) -> str:
        ran.append(name)
        return name

    with dx.Graph("g") as g:
        m = g.input("m", str)
        a = step("a")
        b = step("b", a)
        step("c", b)
        step("d", m)
    return g.compile()


def test_only_runs_the_targets_and_their_ancestors():
    ran: list[str] = []
    result = subset_plan(ran).run(executor="serial", only=["step-2"])
    assert result.states == {"step": SUCCEEDED, "step-1": SUCCEEDED, "step-2": SUCCEEDED, "step-3": SKIPPED}
    assert ran == ["a", "b", "c"]
    assert result.ok
    assert result.trials["step-3"] == []
    assert result.outputs == {"step-2": "c"}


def test_skip_leaves_out_the_node_and_what_needs_it():
    ran: list[str] = []
    result = subset_plan(ran).run(m="m", executor="threads", skip="step-1")
    assert result.states == {"step": SUCCEEDED, "step-1": SKIPPED, "step-2": SKIPPED, "step-3": SUCCEEDED}
    assert sorted(ran) == ["a", "d"]
    assert result.outputs == {"step-3": "d"}


def test_input_needed_only_by_left_out_nodes_is_not_required():
    ran: list[str] = []
    plan = subset_plan(ran)
    assert plan.run(executor="serial", skip=["step-3"]).ok
    with pytest.raises(dx.InputError) as info:
        plan.run(executor="serial", only=["step-3"])
    assert str(info.value) == "missing input 'm', needed by 'step-3'"


def test_only_and_skip_take_section_paths():
    with dx.Graph("g") as g:
        n = g.input("n", int)
        a = inc(n)
        b = twice(a)
        c = twice(n)
        add(b, c)
    plan = g.compile()
    result = plan.run(n=1, executor="serial", only=["twice"])
    assert result.states == {
        "inc": SUCCEEDED,
        "twice/inc": SUCCEEDED,
        "twice/inc-1": SUCCEEDED,
        "twice-1/inc": SKIPPED,
        "twice-1/inc-1": SKIPPED,
        "add": SKIPPED,
    }
    result = plan.run(n=1, executor="serial", skip=["twice-1/inc-1"])
    assert result.states == {
        "inc": SUCCEEDED,
        "twice/inc": SUCCEEDED,
        "twice/inc-1": SUCCEEDED,
        "twice-1/inc": SUCCEEDED,
        "twice-1/inc-1": SKIPPED,
        "add": SKIPPED,
    }
    result = plan.run(n=1, executor="serial", skip=["twice"])
    assert result.states == {
        "inc": SUCCEEDED,
        "twice/inc": SKIPPED,
        "twice/inc-1": SKIPPED,
        "twice-1/inc": SUCCEEDED,
        "twice-1/inc-1": SUCCEEDED,
        "add": SKIPPED,
    }


def test_unknown_only_and_skip_keys_are_listed_before_anything_runs():
    ran: list[str] = []
    with pytest.raises(dx.InputError) as info:
        subset_plan(ran).run(m="m", executor="serial", only=["nope", "step"], skip=["twice"])
    assert str(info.value) == (
        "2 problems in run of graph 'g':\n"
        "- only: unknown key 'nope': not a node or section of graph 'g'\n"
        "- skip: unknown key 'twice': not a node or section of graph 'g'"
    )
    assert [p.key for p in info.value.problems] == ["nope", "twice"]
    assert isinstance(info.value, ValueError)
    assert ran == []


# -- inputs and executors checked before anything runs ----------------------------------


def input_plan(ran: list[str]) -> dx.CompiledGraph:
    @dx.task
    def use(n: int, s: str, xs: list[int]) -> int:
        ran.append("use")
        return n

    @dx.task
    def first() -> int:
        ran.append("first")
        return 1

    with dx.Graph("g") as g:
        n = g.input("n", int)
        s = g.input("s", str)
        xs = g.input("xs", list[int], default=[1])
        use(n, s, xs)
        first()
    return g.compile()


def test_bad_inputs_are_all_reported_before_any_task_runs():
    ran: list[str] = []
    with pytest.raises(dx.InputError) as info:
        input_plan(ran).run(inputs={"n": "three", "xs": [1, "2"], "zz": 0}, executor="serial")
    assert str(info.value) == (
        "4 problems in run of graph 'g':\n"
        "- input 'n' expects int but got str 'three'\n"
        "- input 'xs' expects list[int] but got list [1, '2'] (item 1 of list is not an instance of int)\n"
        "- missing input 's', needed by 'use'\n"
        "- unknown input 'zz'; the graph's inputs are: 'n', 's', 'xs'"
    )
    assert [p.key for p in info.value.problems] == ["n", "xs", "s", "zz"]
    assert ran == []


def test_a_single_bad_input_is_one_sentence():
    ran: list[str] = []
    with pytest.raises(dx.InputError) as info:
        input_plan(ran).run(n=1, executor="serial")
    assert str(info.value) == "missing input 's', needed by 'use'"
    assert info.value.key == "s"
    assert ran == []


def test_unknown_executor_name_lists_valid_names():
    ran: list[str] = []
    with pytest.raises(dx.InputError) as info:
        input_plan(ran).run(n=1, s="s", executor="nope")
    assert str(info.value) == "unknown executor 'nope'; valid names: 'dask', 'loky', 'ray', 'serial', 'threads'"
    assert ran == []


def test_executor_of_the_wrong_kind_is_an_input_error():
    ran: list[str] = []
    with pytest.raises(dx.InputError) as info:
        input_plan(ran).run(n=1, s="s", executor=42)
    assert str(info.value) == (
        "executor must be a name ('dask', 'loky', 'ray', 'serial', 'threads'), an Executor or a concurrent.futures.Executor, got 42"
    )
    assert ran == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_max_workers_is_an_input_error(bad):
    ran: list[str] = []
    with pytest.raises(dx.InputError) as info:
        input_plan(ran).run(n=1, s="s", executor="serial", max_workers=bad)
    assert str(info.value) == f"max_workers must be an int >= 1, got {bad!r}"
    assert ran == []


def test_unknown_keep_key_is_an_input_error():
    ran: list[str] = []
    with pytest.raises(dx.InputError) as info:
        input_plan(ran).run(n=1, s="s", executor="serial", keep=["nope"])
    assert str(info.value) == "keep: unknown key 'nope': not a node of graph 'g'"
    assert ran == []


# -- routing ---------------------------------------------------------------------------


@dx.task(executor="cpu")
def heavy() -> str:
    return threading.current_thread().name


@dx.task
def light() -> str:
    return threading.current_thread().name


def route_plan() -> dx.CompiledGraph:
    with dx.Graph("g") as g:
        heavy()
        light()
    return g.compile()


def test_executor_mapping_routes_tasks_by_their_executor_option():
    result = route_plan().run(executor={"default": "serial", "cpu": "threads"})
    assert result.outputs == {"heavy": "dagexec-1", "light": threading.current_thread().name}
    assert result.trials["heavy"][0].worker == "dagexec-1"
    assert result.trials["light"][0].worker == "master"


def test_routes_may_share_an_executor_object():
    ex = ThreadExecutor(max_workers=1)
    try:
        result = route_plan().run(executor={"default": ex, "cpu": ex})
    finally:
        ex.shutdown()
    assert result.outputs == {"heavy": "dagexec-1", "light": "dagexec-1"}


def test_the_same_name_in_two_routes_shares_one_executor():
    result = route_plan().run(executor={"default": "threads", "cpu": "threads"}, max_workers=1)
    assert result.outputs == {"heavy": "dagexec-1", "light": "dagexec-1"}


def test_a_single_executor_runs_every_route():
    result = route_plan().run(executor="serial")
    assert [t[0].worker for t in result.trials.values()] == ["master", "master"]


def test_a_route_missing_from_the_mapping_is_an_input_error():
    with pytest.raises(dx.InputError) as info:
        route_plan().run(executor={"default": "serial"})
    assert str(info.value) == (
        "node 'heavy' is routed to executor 'cpu', but the executor mapping has only 'default'"
    )
    with pytest.raises(dx.InputError) as info:
        route_plan().run(executor={"cpu": "serial", "gpu": "nope"})
    assert str(info.value) == (
        "node 'light' is routed to executor 'default', but the executor mapping has only 'cpu', 'gpu'"
    )


def test_a_bad_executor_in_the_mapping_names_its_route():
    with pytest.raises(dx.InputError) as info:
        route_plan().run(executor={"default": "serial", "cpu": "nope"})
    assert (
        str(info.value)
        == "unknown executor 'nope'; valid names: 'dask', 'loky', 'ray', 'serial', 'threads' (for route 'cpu')"
    )


def test_a_route_left_out_by_skip_needs_no_executor():
    result = route_plan().run(executor={"default": "serial"}, skip=["heavy"])
    assert result.states == {"heavy": SKIPPED, "light": SUCCEEDED}


# -- memory ----------------------------------------------------------------------------


class Blob:
    """A value that can be watched with a weakref."""

    def __init__(self, n: int) -> None:
        self.n = n


def chain_plan(refs: dict[str, Any], seen: dict[str, bool]) -> dx.CompiledGraph:
    @dx.task
    def make() -> Blob:
        blob = Blob(1)
        refs["make"] = weakref.ref(blob)
        return blob

    @dx.task
    def grow(b: Blob) -> Blob:
        blob = Blob(b.n + 1)
        refs.setdefault("grow", weakref.ref(blob))
        return blob

    @dx.task
    def check(b: Blob) -> int:
        # grow-1 has finished, so neither make's value nor grow's is read again
        seen["make"] = refs["make"]() is not None
        seen["grow"] = refs["grow"]() is not None
        return b.n

    with dx.Graph("g") as g:
        check(grow(grow(make())))
    return g.compile()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_value_is_released_once_its_last_reader_finished(executor):
    refs: dict[str, Any] = {}
    seen: dict[str, bool] = {}
    result = chain_plan(refs, seen).run(executor=executor)
    assert result.output == 3
    assert seen == {"make": False, "grow": False}
    with pytest.raises(KeyError) as info:
        result["make"]
    assert info.value.args[0] == (
        "the value of node 'make' was released during the run; pass keep=['make'] (or keep='all') to run() to hold it"
    )


@pytest.mark.parametrize("executor", EXECUTORS)
def test_keep_holds_the_named_values(executor):
    refs: dict[str, Any] = {}
    seen: dict[str, bool] = {}
    result = chain_plan(refs, seen).run(executor=executor, keep=["make"])
    assert seen == {"make": True, "grow": False}
    assert result["make"].n == 1
    assert "make" in result and "grow" not in result
    with pytest.raises(KeyError):
        result["grow"]


def test_keep_all_holds_every_value():
    refs: dict[str, Any] = {}
    seen: dict[str, bool] = {}
    result = chain_plan(refs, seen).run(executor="threads", keep="all")
    assert seen == {"make": True, "grow": True}
    assert [result[k].n for k in ("make", "grow", "grow-1")] == [1, 2, 3]
    assert result["check"] == 3


def test_keep_takes_section_paths_and_input_names():
    result = diamond_plan().run(n=1, executor="serial", keep=["twice", "n", "inc"])
    assert (result["twice"], result["n"], result["inc"]) == (4, 1, 2)
    assert result["twice/inc-1"] == 4  # the section's value is that of its last node
    with pytest.raises(KeyError):
        result["twice-1"]


def test_result_getitem_says_why_a_value_is_missing():
    @dx.task
    def boom(x: int) -> int:
        raise ValueError("x")

    with dx.Graph("g") as g:
        inc(boom(inc(1)))
        inc(2)
    result = g.compile().run(executor="serial", raise_on_failure=False, fail_fast=False, skip=["inc-2"])
    messages = {}
    for key in ("nope", "boom", "inc-1", "inc-2"):
        with pytest.raises(KeyError) as info:
            result[key]
        messages[key] = info.value.args[0]
    assert messages == {
        "nope": "graph 'g' has no node 'nope'",
        "boom": "node 'boom' has no value: it failed",
        "inc-1": "node 'inc-1' has no value: it upstream_failed",
        "inc-2": "node 'inc-2' has no value: it skipped",
    }


@pytest.mark.parametrize(
    "make_executor",
    [
        lambda pool: "serial",
        lambda pool: "threads",
        lambda pool: ThreadExecutor(max_workers=2),
        lambda pool: pool,
        lambda pool: FuturesExecutor(pool),
    ],
    ids=["serial", "threads", "ThreadExecutor", "ThreadPoolExecutor", "FuturesExecutor"],
)
def test_plans_and_executors_hold_no_values_after_a_run(make_executor):
    refs: dict[str, Any] = {}
    seen: dict[str, bool] = {}
    plan = chain_plan(refs, seen)
    with ThreadPoolExecutor(1) as pool:
        executor = make_executor(pool)
        result = plan.run(executor=executor, keep="all")
        kept = weakref.ref(result["grow-1"])
        assert refs["make"]() is not None
        del result
        # a concurrent.futures thread drops its last work item only when it takes the next one
        pool.submit(int).result()
        gc.collect()
        assert (refs["make"](), refs["grow"](), kept()) == (None, None, None)
        if not isinstance(executor, str):
            assert plan.run(executor=executor).output == 3  # the user's executor still works


# -- run-time type checks -----------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_run_time_type_check_of_an_argument_names_node_parameter_and_types(executor):
    @dx.task
    def produce():  # unannotated: only the run-time check can see the mismatch
        return "7"

    with dx.Graph("g") as g:
        inc(produce())
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor)
    exc = info.value.__cause__
    assert isinstance(exc, dx.TypeCheckError)
    assert str(exc) == "node 'inc': parameter 'x' expects int but got str '7'"
    assert (exc.key, exc.param) == ("inc", "x")
    assert str(info.value) == (
        "1 node of graph 'g' failed: 'inc' (TypeCheckError: node 'inc': parameter 'x' expects int but got str '7')"
    )


def test_run_time_type_check_of_a_generic_argument_says_which_item():
    @dx.task
    def produce() -> list[Any]:
        return [1, "2"]

    with dx.Graph("g") as g:
        total(produce())
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial")
    assert str(info.value.__cause__) == (
        "node 'total': parameter 'items' expects list[int] but got list [1, '2'] "
        "(item 1 of list is not an instance of int)"
    )


def test_run_time_type_check_of_a_return_value():
    @dx.task(retries=3)
    def half(x: int) -> int:
        return x / 2  # type: ignore[return-value]

    with dx.Graph("g") as g:
        half(3)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial")
    assert str(info.value.__cause__) == "node 'half': return value expects int but got float 1.5"
    assert info.value.__cause__.param is None
    # a type error is a bug, not bad luck: it is never retried
    assert trial_log(info.value.result, "half") == [(1, FAILED)]


def test_typecheck_false_turns_run_time_checks_off():
    @dx.task(typecheck=False)
    def half(x: int) -> int:
        return x / 2  # type: ignore[return-value]

    with dx.Graph("g") as g:
        half(3)
    assert g.compile().run(executor="serial").output == 1.5


# -- timeouts ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_thread_trial_past_its_timeout_is_abandoned_and_other_work_goes_on(release):
    entered = threading.Event()
    left = threading.Event()

    @dx.task(timeout=0.1)
    def stuck() -> int:
        entered.set()
        release.wait(60)
        left.set()
        return 1

    with dx.Graph("g") as g:
        inc(stuck())
        inc(inc(1))
    plan = g.compile()
    assert plan.keys[0] == "stuck"
    # one worker: the other nodes can only run once the stuck thread is stood in for
    executor = ThreadExecutor(max_workers=1)
    try:
        result = plan.run(executor=executor, fail_fast=False, raise_on_failure=False)
        assert entered.is_set() and not left.is_set()  # run() did not wait for the stuck trial
        assert result.states == {
            "stuck": FAILED,
            "inc": UPSTREAM_FAILED,
            "inc-1": SUCCEEDED,
            "inc-2": SUCCEEDED,
        }
        assert trial_log(result, "stuck") == [(1, TIMED_OUT)]
        (trial,) = result.trials["stuck"]
        assert isinstance(trial.error, dx.TaskTimeout) and isinstance(trial.error, TimeoutError)
        assert str(trial.error) == "node 'stuck' timed out after 0.1 s"
        assert (trial.error.key, trial.error.timeout) == ("stuck", 0.1)
        assert trial.end is not None and trial.end - trial.start >= 0.099
        assert result.summary().splitlines()[1:] == [
            "  failed stuck after 1 attempt(s) [timed_out]: TaskTimeout: node 'stuck' timed out after 0.1 s"
        ]
        release.set()
        assert left.wait(30)
        # the pool kept its size: a second run on one worker still finishes
        with dx.Graph("again") as g2:
            inc(inc(inc(1)))
        assert g2.compile().run(executor=executor).output == 4
    finally:
        release.set()
        executor.shutdown()


@pytest.mark.timeout(30)
def test_a_pool_made_from_a_name_returns_without_waiting_for_abandoned_threads():
    release = threading.Event()
    left = threading.Event()

    @dx.task(timeout=0.05)
    def stuck() -> int:
        release.wait(60)
        left.set()
        return 1

    with dx.Graph("g") as g:
        stuck()
    try:
        result = g.compile().run(executor="threads", raise_on_failure=False)
        assert not left.is_set()  # the abandoned task is still waiting: run() did not join it
        assert trial_log(result, "stuck") == [(1, TIMED_OUT)]
        assert result.states == {"stuck": FAILED}
    finally:
        release.set()
    assert left.wait(10)


@pytest.mark.timeout(30)
def test_timed_out_trials_are_retried(release):
    @dx.task(timeout=0.05, retries=1)
    def stuck() -> int:
        release.wait(60)
        return 1

    with dx.Graph("g") as g:
        stuck()
    executor = ThreadExecutor(max_workers=1)
    try:
        with pytest.raises(dx.RunFailed) as info:
            g.compile().run(executor=executor)
    finally:
        release.set()
        executor.shutdown()
    assert trial_log(info.value.result, "stuck") == [(1, TIMED_OUT), (2, TIMED_OUT)]
    assert str(info.value) == (
        "1 node of graph 'g' failed: 'stuck' (TaskTimeout: node 'stuck' timed out after 0.05 s)"
    )


def test_serial_trial_that_returns_past_its_timeout_is_timed_out():
    @dx.task(timeout=0.05)
    def slow() -> int:
        threading.Event().wait(0.2)  # the serial executor cannot pre-empt
        return 1

    with dx.Graph("g") as g:
        inc(slow())
        inc(1)
    result = g.compile().run(executor="serial", fail_fast=False, raise_on_failure=False)
    assert result.states == {"slow": FAILED, "inc": UPSTREAM_FAILED, "inc-1": SUCCEEDED}
    assert trial_log(result, "slow") == [(1, TIMED_OUT)]
    assert re.fullmatch(
        r"node 'slow' ran \d+\.\d\d s, past its timeout of 0\.05 s", str(result.trials["slow"][0].error)
    )
    assert result.outputs == {"inc-1": 2}


# -- callbacks, progress, logging ----------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_run_start(self, plan: dx.CompiledGraph) -> None:
        self.events.append(("run_start", plan.name))

    def on_trial_start(self, trial: dx.Trial) -> None:
        self.events.append(("trial_start", trial.key, trial.attempt, trial.state))

    def on_trial_end(self, trial: dx.Trial) -> None:
        self.events.append(("trial_end", trial.key, trial.attempt, trial.state))

    def on_run_end(self, result: dx.RunResult) -> None:
        self.events.append(("run_end", result.ok))


@pytest.mark.parametrize("executor", EXECUTORS)
def test_callbacks_are_called_in_order(executor):
    flaky = flaky_task(1, retries=1)
    with dx.Graph("g") as g:
        inc(flaky())
    rec = Recorder()
    result = g.compile().run(executor=executor, callbacks=[rec])
    assert rec.events == [
        ("run_start", "g"),
        ("trial_start", "flaky", 1, State.RUNNING),
        ("trial_end", "flaky", 1, FAILED),
        ("trial_start", "flaky", 2, State.RUNNING),
        ("trial_end", "flaky", 2, SUCCEEDED),
        ("trial_start", "inc", 1, State.RUNNING),
        ("trial_end", "inc", 1, SUCCEEDED),
        ("run_end", True),
    ]
    assert trial_log(result, "flaky") == [(1, FAILED), (2, SUCCEEDED)]


def test_on_run_end_is_called_when_the_run_fails():
    @dx.task
    def boom() -> int:
        raise ValueError("x")

    with dx.Graph("g") as g:
        boom()
    rec = Recorder()
    with pytest.raises(dx.RunFailed):
        g.compile().run(executor="serial", callbacks=[rec])
    assert rec.events == [
        ("run_start", "g"),
        ("trial_start", "boom", 1, State.RUNNING),
        ("trial_end", "boom", 1, FAILED),
        ("run_end", False),
    ]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_callback_that_raises_is_logged_at_warning_and_the_run_goes_on(executor, caplog):
    class Broken:
        def __repr__(self) -> str:
            return "<Broken>"

        def on_run_start(self, plan: Any) -> None:
            raise RuntimeError("start")

        def on_trial_start(self, trial: Any) -> None:
            raise RuntimeError("trial start")

        def on_trial_end(self, trial: Any) -> None:
            raise RuntimeError("trial end")

        def on_run_end(self, result: Any) -> None:
            raise RuntimeError("end")

    rec = Recorder()
    with caplog.at_level(logging.WARNING, logger="dagexec"):
        result = diamond_plan().run(n=1, executor=executor, callbacks=[Broken(), rec])
    assert result.output == 7
    assert rec.events[0] == ("run_start", "g") and rec.events[-1] == ("run_end", True)
    assert len(rec.events) == 2 + 2 * 6
    warnings = [(r.name, r.levelno, r.getMessage(), str(r.exc_info[1])) for r in caplog.records if r.exc_info]
    assert warnings[0] == (
        "dagexec.engine",
        logging.WARNING,
        "callback <Broken> raised in on_run_start; the run goes on",
        "start",
    )
    assert warnings[-1] == (
        "dagexec.engine",
        logging.WARNING,
        "callback <Broken> raised in on_run_end; the run goes on",
        "end",
    )
    assert sorted({w[2] for w in warnings}) == [
        "callback <Broken> raised in on_run_end; the run goes on",
        "callback <Broken> raised in on_run_start; the run goes on",
        "callback <Broken> raised in on_trial_end; the run goes on",
        "callback <Broken> raised in on_trial_start; the run goes on",
    ]
    assert len(warnings) == 2 + 2 * 6
    assert "Traceback (most recent call last):" in caplog.text


@pytest.mark.parametrize("exc_type", [SystemExit, GeneratorExit])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_callback_raising_systemexit_or_generatorexit_does_not_break_the_run(executor, exc_type, caplog):
    class Exits:
        def __repr__(self) -> str:
            return "<Exits>"

        def on_run_start(self, plan: Any) -> None:
            raise exc_type("start")

        def on_trial_end(self, trial: Any) -> None:
            raise exc_type("trial end")

        def on_run_end(self, result: Any) -> None:
            raise exc_type("end")

    rec = Recorder()
    with caplog.at_level(logging.WARNING, logger="dagexec"):
        result = diamond_plan().run(n=1, executor=executor, callbacks=[Exits(), rec])
    assert (result.ok, result.output) == (True, 7)
    assert rec.events[0] == ("run_start", "g") and rec.events[-1] == ("run_end", True)
    warnings = [(r.levelno, r.getMessage(), type(r.exc_info[1])) for r in caplog.records if r.exc_info]
    assert warnings[0] == (
        logging.WARNING,
        "callback <Exits> raised in on_run_start; the run goes on",
        exc_type,
    )
    assert warnings[-1] == (
        logging.WARNING,
        "callback <Exits> raised in on_run_end; the run goes on",
        exc_type,
    )
    assert len(warnings) == 2 + 6
    assert "Traceback (most recent call last):" in caplog.text


def test_a_callback_raising_keyboardinterrupt_stops_the_run():
    class Interrupts:
        def on_trial_end(self, trial: Any) -> None:
            raise KeyboardInterrupt("stop")

    rec = Recorder()
    with pytest.raises(KeyboardInterrupt, match=r"^stop$"):
        diamond_plan().run(n=1, executor="serial", callbacks=[Interrupts(), rec])
    assert rec.events[-1] == ("run_end", False)


def test_callbacks_may_define_only_some_methods():
    class OnlyEnd:
        def __init__(self) -> None:
            self.results: list[dx.RunResult] = []

        def on_run_end(self, result: dx.RunResult) -> None:
            self.results.append(result)

    cb = OnlyEnd()
    result = diamond_plan().run(n=1, executor="threads", callbacks=[cb])
    assert cb.results == [result]


def last_bar(err: str) -> str:
    """The last drawing of a progress bar, without terminal control codes."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)
    return [line for line in re.split(r"[\r\n]+", plain) if line.strip()][-1]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_progress_bar_draws_nodes_done_and_failed_trials(executor, capsys):
    @dx.task
    def boom() -> int:
        raise ValueError("x")

    result = diamond_plan().run(n=1, executor=executor, progress=True)
    assert result.output == 7
    assert re.fullmatch(r"g .* 6/6 .*", last_bar(capsys.readouterr().err))
    with dx.Graph("p") as g:
        boom()
        inc(1)
    result = g.compile().run(executor=executor, progress=True, fail_fast=False, raise_on_failure=False)
    assert result.states == {"boom": FAILED, "inc": SUCCEEDED}
    assert re.fullmatch(r"p \(1 failed trials\) .* 1/2 .*", last_bar(capsys.readouterr().err))


def test_the_dagexec_logger_tells_what_happens(caplog):
    flaky = flaky_task(1, retries=1)

    @dx.task
    def boom() -> int:
        raise ValueError("bad")

    with dx.Graph("g") as g:
        flaky()
        boom()
    with caplog.at_level(logging.INFO, logger="dagexec"):
        g.compile().run(executor="serial", fail_fast=False, raise_on_failure=False)
    records = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert records[:-1] == [
        ("dagexec.engine", "INFO", "run of graph 'g': 2 nodes"),
        ("dagexec.engine", "INFO", "node 'flaky': attempt 1 failed (attempt 1); retrying in 0 s"),
        ("dagexec.engine", "WARNING", "node 'boom' failed: ValueError: bad"),
    ]
    assert records[-1][:2] == ("dagexec.engine", "INFO")
    assert re.fullmatch(r"run of graph 'g' ended in \d+\.\d{3} s: failed", records[-1][2])


# -- executors the user passes in -----------------------------------------------------------


def test_an_executor_the_user_passed_is_not_shut_down():
    executor = ThreadExecutor(max_workers=2)
    plan = diamond_plan()
    try:
        assert plan.run(n=1, executor=executor).output == 7
        assert plan.run(n=2, executor=executor).output == 9
    finally:
        executor.shutdown()
    with ThreadPoolExecutor(2) as pool:
        assert plan.run(n=1, executor=pool).output == 7
        assert plan.run(n=1, executor=FuturesExecutor(pool)).output == 7
        assert pool.submit(int, "4").result() == 4


def test_the_default_executor_is_threads():
    result = route_plan().run()
    assert result.trials["light"][0].worker.startswith("dagexec-")


def test_the_loop_s_old_module_still_exports_the_names_other_code_imports():
    import dagexec._engine as old
    from dagexec.run import batching, loop, protocol, result, state, trials

    assert old._Run is loop.Loop
    assert old._Callbacks is trials.Callbacks
    assert old._run_failed is result.run_failed
    assert (old.Executor, old.crashed_outcome) == (protocol.Executor, protocol.crashed_outcome)
    assert old.MAX_BATCH is batching.MAX_BATCH == 256
    assert [old._PENDING, old._RUNNING, old._SUCCEEDED, old._FAILED] == [0, 1, 2, 3]
    assert [old._UPSTREAM_FAILED, old._SKIPPED, old._CACHED, old._CANCELLED] == [4, 5, 6, 7]
    assert old._RELEASED is state.RELEASED
    assert repr(old._RELEASED) == "<released>"


def test_every_module_of_the_run_loop_logs_on_dagexec_engine():
    import importlib

    modules = ["loop", "batching", "maps", "policy", "timers", "trials", "values"]
    names = [f"dagexec.run.{m}" for m in modules] + ["dagexec.cache.session"]
    loggers = {name: importlib.import_module(name).logger.name for name in names}
    assert loggers == dict.fromkeys(names, "dagexec.engine")


def test_the_loop_s_lists_cover_graph_inputs_and_constants_and_tell_map_nodes_by_kind():
    from dagexec.executors.serial import SerialExecutor
    from dagexec.plan.arguments import Arguments
    from dagexec.run import state
    from dagexec.run.loop import Loop
    from dagexec.run.trials import Callbacks

    @dx.task
    def add(a, b):
        return a + b

    with dx.Graph("g") as g:
        x = g.input("x", int)
        total = add(x, 10)
        g.output(add.map([1, 2, 3], b=total), name="each")
    plan = g.compile()
    n = len(plan._keys)
    n_slots = n + 1 + len(plan._consts)
    assert n == 2  # the input x, then any constants, come after the nodes
    ex = SerialExecutor()
    loop = Loop(plan, Arguments([5], [True] * n, [True] * n_slots), [ex], [0] * n, False, Callbacks([]))
    assert loop.state[n:] == [state.SUCCEEDED] * (n_slots - n)
    assert loop.waiting[n:] == [0] * (n_slots - n)
    kinds = [state.EXPAND if i in plan._maps else state.PLAIN for i in range(n)]
    assert loop.kind == kinds + [state.PLAIN] * (n_slots - n)
    assert sorted(kinds) == [state.PLAIN, state.EXPAND]
    try:
        result = loop.execute()
    finally:
        ex.run_ended()  # what a run's assembly does: the run's watch of child processes ends
    assert result.outputs == {"each": [16, 17, 18]}
    assert sorted(s.value for s in result.states.values()) == ["succeeded"] * 5


def test_a_resumed_run_whose_map_runs_again_returns_its_result(tmp_path):
    # the trials of the run being resumed used to be added after the map's items were
    # listed, by position into a dict: a TypeError instead of the result
    fixed = tmp_path / "fixed"

    @dx.task
    def square(x):
        if x == 2 and not fixed.exists():
            raise ValueError("not yet")
        return x * x

    @dx.task
    def one():
        return 1

    with dx.Graph("r") as g:
        g.output(square.map([1, 2, 3]), name="squares")
        g.output(one(), name="one")
    plan = g.compile()
    first = plan.run(cache=tmp_path / "cache", raise_on_failure=False)
    assert first.states["square"] == FAILED and first.states["square[1]"] == FAILED
    fixed.touch()
    result = plan.run(cache=tmp_path / "cache", resume=True)
    assert result.outputs == {"squares": [1, 4, 9], "one": 1}
    assert result.states == {
        "square": SUCCEEDED,
        "square[0]": State.CACHED,
        "square[1]": SUCCEEDED,
        "square[2]": State.CACHED,
        "one": State.CACHED,
    }
    assert trial_log(result, "square[1]") == [(1, SUCCEEDED)]
    assert trial_log(result, "one") == [(1, SUCCEEDED)]  # its trial in the run resumed
