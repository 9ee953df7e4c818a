"""Trials the engine runs itself in the master thread (``dagexec/run/here.py``).

On ``SerialExecutor`` the engine runs a plain node's first trial without a call
object or a ``submit``.  What that short way records must be exactly what the
executor's own ``submit`` records: the same states, values, attempts, workers, logs,
errors and tracebacks.  The reference is a subclass that overrides ``submit`` (it
calls the base class's), which turns the short way off and sees every trial.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec import _proctree as proctree
from dagexec.executors import SerialExecutor

logger = logging.getLogger("pipeline.here")


class Submitting(SerialExecutor):
    """Serial, every trial through ``submit``: the general path."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[tuple[str, int]] = []

    def submit(self, call: Any, post: Any) -> Any:
        self.keys.append((call.key, call.attempt))
        return super().submit(call, post)


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(a: int, b: int = 0) -> int:
    return a + b


@dx.task
def talk(x: int) -> int:
    print("talking", x)
    logger.warning("warned %d", x)
    return x * 10


@dx.task
def wrong_type(x: int) -> int:
    return "not an int"  # type: ignore[return-value]


@dx.task
def divide(x: int) -> int:
    return x // 0


@dx.task
def text(x):  # not annotated: its value is checked where it is read
    return str(x)


@dx.task
def parts(x: int) -> dict[str, int]:
    return {"a": x, "b": x + 1}


ATTEMPTS: list[int] = []


@dx.task(retries=1)
def flaky(x: int) -> int:
    ATTEMPTS.append(x)
    if len(ATTEMPTS) % 2:
        raise RuntimeError("first attempt fails")
    return x


def _graph() -> dx.Graph:
    with dx.Graph("here") as g:
        x = g.input("x")
        a = inc(x)
        b = add(a, b=inc(a))  # a keyword argument filled from a node
        t = talk(b)
        g.output(t, name="talked")
        g.output(add(inc(t), b=flaky(x)), name="total")
        g.output(wrong_type(a), name="wrong")
        g.output(inc(divide(a)), name="blocked")
        g.output(add(*[parts(a)["a"], parts(a)["b"]]), name="indexed")
        g.output(inc(text(a)), name="bad_argument")
    return g


def _described(result: dx.RunResult) -> dict[str, Any]:
    """Everything a trial records but its times, by node key."""
    out = {}
    for key, trials in result.trials.items():
        out[key] = [
            (
                t.attempt,
                t.state,
                t.worker,
                t.log,
                type(t.error).__name__ if t.error is not None else None,
                str(t.error) if t.error is not None else None,
                t.traceback.splitlines()[1:3] if t.traceback else None,  # the first frame
            )
            for t in trials
        ]
    return out


def test_the_short_way_records_exactly_what_submit_records():
    plan = _graph().compile()
    ATTEMPTS.clear()
    short = plan.run({"x": 1}, executor=SerialExecutor(), fail_fast=False, raise_on_failure=False)
    ATTEMPTS.clear()
    reference = Submitting()
    general = plan.run({"x": 1}, executor=reference, fail_fast=False, raise_on_failure=False)
    assert len(reference.keys) == 17  # every trial, the retry included
    assert short.states == general.states
    assert short.outputs == general.outputs == {"talked": 50, "total": 52, "indexed": 5}
    assert _described(short) == _described(general)
    assert short.trials["talk"][0].log == "talking 5\nWARNING pipeline.here: warned 5\n"
    assert [t.worker for ts in short.trials.values() for t in ts] == ["master"] * 17
    assert short.states["wrong_type"] is State.FAILED
    assert str(short.trials["wrong_type"][0].error) == "node 'wrong_type': return value expects int but got str 'not an int'"
    assert str(short.trials["inc-4"][0].error) == "node 'inc-4': parameter 'x' expects int but got str '2'"
    assert short.states["inc-3"] is State.UPSTREAM_FAILED
    first_frame = short.trials["divide"][0].traceback.splitlines()[1]
    assert "in divide" in first_frame and "test_here.py" in first_frame


def test_a_subclass_that_overrides_submit_sees_every_trial():
    assert SerialExecutor().runs_in_master is True
    reference = Submitting()
    assert reference.runs_in_master is False
    with dx.Graph("chain") as g:
        g.output(inc(inc(inc(g.input("x")))))
    assert g.compile().run({"x": 0}, executor=reference).output == 3
    assert reference.keys == [("inc", 1), ("inc-1", 1), ("inc-2", 1)]


SEEN: list[int] = []


@dx.task
def watched(x: int) -> int:
    SEEN.append(len(proctree._WATCH.sinces))
    return x


def test_the_run_watches_the_processes_its_trials_start_from_its_start():
    SEEN.clear()
    with dx.Graph("watch") as g:
        g.output(watched(watched(g.input("x"))))
    ex = SerialExecutor()
    assert g.compile().run({"x": 2}, executor=ex).output == 2
    if proctree._HAS_PROC:
        assert SEEN == [1, 1]  # a watch, taken at the run's start and given back at its end
    else:  # where processes cannot be listed, nothing is watched
        assert SEEN == [0, 0]
    assert ex._watch is None
    assert not proctree._WATCH.sinces


@pytest.mark.parametrize("fail_fast", [True, False])
def test_fail_fast_stops_the_short_way_after_a_failure(fail_fast):
    with dx.Graph("stop") as g:
        x = g.input("x")
        g.output(divide(x), name="failed")
        g.output(inc(inc(x)), name="after")
    result = g.compile().run({"x": 1}, fail_fast=fail_fast, raise_on_failure=False, executor="serial")
    assert result.states["divide"] is State.FAILED
    expected = State.CANCELLED if fail_fast else State.SUCCEEDED
    assert result.states["inc"] is expected and result.states["inc-1"] is expected


@dx.task
def double(x: int) -> int:
    return 2 * x


@dx.task
def total(xs: list[int]) -> int:
    return sum(xs)


@pytest.mark.parametrize("with_map", [False, True])
def test_a_trial_in_the_master_keeps_its_start_and_end(with_map):
    # the short way keeps a trial's start and end apart from its row until the result
    # makes its Trial; with a map, the result lists trials through the maps' path
    with dx.Graph("times") as g:
        x = g.input("x")
        a = inc(x)
        g.output(total(double.map([a, inc(a)])) if with_map else add(a, b=inc(a)), name="out")
    before = time.time()
    result = g.compile().run({"x": 1}, executor="serial")
    after = time.time()
    assert result.output == (10 if with_map else 5)
    first = result.trials["inc"]
    assert [(t.attempt, t.state, t.worker, t.log, t.error) for t in first] == [(1, State.SUCCEEDED, "master", "", None)]
    assert before <= first[0].start <= first[0].end <= after
    assert type(first[0].start) is float and type(first[0].end) is float
    later = result.trials["inc-1"][0]
    assert first[0].end <= later.start <= later.end <= after  # one after the other


@dx.task
def pair(a: int, b: int) -> tuple[int, int]:
    return (a, b)


@dx.task
def seven() -> int:
    return 7


@dx.task
def scaled(x: int, *, factor: int) -> int:
    return x * factor


def test_each_call_shape_gets_its_arguments_in_order_on_the_short_way():
    # the plan keeps, per plain node, a getter of its arguments when they are the values
    # it reads in order (dagexec/plan/direct.py), its template and fills otherwise
    with dx.Graph("shapes") as g:
        x = g.input("x")
        a, b = inc(x), seven()
        calls = {
            "one": inc(a),
            "two": pair(a, b),
            "swapped": pair(b, a),
            "twice": pair(a, a),
            "constant_first": pair(100, a),
            "constants": pair(1, 2),
            "keyword": add(a, b=b),  # bound by position
            "keyword_only": scaled(a, factor=b),
            "input": pair(x, b),
        }
        for name, node in calls.items():
            g.output(node, name=name)
    plan = g.compile()
    direct = plan._plain_units()
    getters = {name: direct[plan._index[node.key]][3] is not None for name, node in calls.items()}
    assert getters == {
        "one": True,
        "two": True,
        "swapped": True,
        "twice": True,
        "constant_first": False,
        "constants": False,
        "keyword": True,
        "keyword_only": False,
        "input": True,
    }
    expected = {
        "one": 3, "two": (2, 7), "swapped": (7, 2), "twice": (2, 2), "constant_first": (100, 2),
        "constants": (1, 2), "keyword": 9, "keyword_only": 14, "input": (1, 7),
    }  # fmt: skip
    assert plan.run({"x": 1}, executor="serial").outputs == expected
    reference = Submitting()
    assert plan.run({"x": 1}, executor=reference).outputs == expected
    assert len(reference.keys) == len(plan)


@dx.task(executor="threads")
def triple(v: int) -> int:
    return v * 3


def test_a_run_over_two_lanes_readies_each_dependent_on_its_own_lane():
    # a node routed to another executor is readied on that executor's lane, not on the
    # stack the short way drains
    with dx.Graph("lanes") as g:
        a = inc(g.input("x"))
        g.output(inc(triple(a)), name="out")
    result = g.compile().run({"x": 1}, executor={"default": "serial", "threads": "threads"})
    assert result.output == 7
    assert [result.trials[k][0].worker == "master" for k in ("inc", "inc-1")] == [True, True]
    assert result.trials["triple"][0].worker != "master"


def test_a_mutation_check_run_takes_the_general_path():
    @dx.task
    def grow(xs: list[int]) -> int:
        xs.append(1)
        return len(xs)

    with dx.Graph("mutation") as g:
        g.output(grow(dx.task(lambda: [0])()))
    result = g.compile().run(executor="serial", check_mutation=True, raise_on_failure=False)
    assert result.states["grow"] is State.FAILED
    assert str(result.trials["grow"][0].error).startswith("node 'grow' changed its argument 'xs' in place")
