"""Trigger rules ``all_done`` and ``none_failed``, and ``dx.Outcome`` parameters
(DESIGN §17; docs/airflow.md), on every executor."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import dagexec as dx
from dagexec import State

SUCCEEDED, FAILED, UPSTREAM_FAILED, SKIPPED, CANCELLED, CACHED = (
    State.SUCCEEDED,
    State.FAILED,
    State.UPSTREAM_FAILED,
    State.SKIPPED,
    State.CANCELLED,
    State.CACHED,
)


@dx.task
def load(n: int) -> int:
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n


@dx.task
def double(x: int) -> int:
    return 2 * x


@dx.task
def slow(x: int) -> int:
    time.sleep(0.5)
    return x


@dx.task(trigger="all_done")
def cleanup(value: int | None, source: dx.Outcome) -> str:
    error = f"{type(source.error).__name__}: {source.error}" if source.error is not None else None
    return f"value={value} source={source.key}:{source.state.value}:{source.value}:{error}"


@dx.task(trigger="all_done")
def notify(result: dx.Outcome[int]) -> str:
    return f"{result.key} {result.state.value}"


@dx.task(trigger="all_done")
def summary(results: list[dx.Outcome]) -> list[str]:
    return [f"{o.key}:{o.state.value}" for o in results]


@dx.task(trigger="none_failed")
def publish(value: int | None) -> str:
    return f"published {value}"


@dx.task
def after(text: str) -> str:
    return f"after {text}"


def pipeline() -> dx.CompiledGraph:
    with dx.Graph("p") as g:
        x = load(g.input("n", int))
        y = double(x)
        g.output(cleanup(y, x), name="cleanup")
        g.output(notify(x), name="notify")
        g.output(after(publish(y)), name="published")
    return g.compile()


def test_all_done_runs_after_a_success_with_the_values(every_executor):
    result = pipeline().run(n=3, executor=every_executor)
    assert result.outputs == {
        "cleanup": "value=6 source=load:succeeded:3:None",
        "notify": "load succeeded",
        "published": "after published 6",
    }
    assert set(result.states.values()) == {SUCCEEDED}


@pytest.mark.parametrize("fail_fast", [True, False])
def test_all_done_runs_after_a_failure_with_none_and_the_outcome(every_executor, fail_fast):
    result = pipeline().run(n=-1, executor=every_executor, raise_on_failure=False, fail_fast=fail_fast)
    assert dict(result.states) == {
        "load": FAILED,
        "double": UPSTREAM_FAILED,
        "cleanup": SUCCEEDED,
        "notify": SUCCEEDED,
        "publish": SKIPPED,  # none_failed: its upstream failed
        "after": SKIPPED,  # what only a skipped node feeds
    }
    assert result.outputs == {
        "cleanup": "value=None source=load:failed:None:ValueError: negative: -1",
        "notify": "load failed",
    }
    assert not result.ok and result.failed == ["load"]


def test_fail_fast_never_cancels_an_all_done_node(every_executor):
    @dx.task
    def boom() -> int:
        raise RuntimeError("boom")

    with dx.Graph("ff") as g:
        failed = boom()
        later = double(slow(1))  # slow runs (or is cancelled); double never starts
        g.output(summary([failed, later]), name="summary")
        g.output(summary.options(name="again")([later]), name="again")
    result = g.compile().run(executor=every_executor, fail_fast=True, raise_on_failure=False, max_workers=2)
    assert result.outputs == {"summary": ["boom:failed", "double:cancelled"], "again": ["double:cancelled"]}
    assert result.states["double"] is CANCELLED
    assert (result.states["summary"], result.states["again"]) == (SUCCEEDED, SUCCEEDED)


def test_after_a_stop_all_done_nodes_run_in_order():
    @dx.task
    def boom() -> int:
        raise RuntimeError("boom")

    @dx.task(trigger="all_done")
    def first(x: int | None) -> str:
        return "first"

    @dx.task(trigger="all_done")
    def second(text: str | None, other: int | None) -> str:
        return f"second after {text}"

    with dx.Graph("chain") as g:
        b = boom()
        g.output(second(first(b), double(b)), name="v")
    result = g.compile().run(executor="threads", fail_fast=True, raise_on_failure=False)
    assert result.output == "second after first"
    assert dict(result.states) == {"boom": FAILED, "first": SUCCEEDED, "double": UPSTREAM_FAILED, "second": SUCCEEDED}


def test_none_failed_runs_after_a_skipped_branch_and_all_done_too(every_executor):
    @dx.task
    def positive(n: int) -> bool:
        return n > 0

    with dx.Graph("branch") as g:
        n = g.input("n", int)
        chosen = dx.cond(positive(n), then=lambda: double(n))  # no otherwise: None
        g.output(publish(chosen), name="published")
        g.output(notify(chosen), name="notify")
    plan = g.compile()
    off = plan.run(n=-2, executor=every_executor)
    assert off.outputs == {"published": "published None", "notify": "cond succeeded"}
    assert off.states["double"] is SKIPPED
    with dx.Graph("skipped") as g:
        n = g.input("n", int)
        dx.cond(positive(n), then=lambda: g.output(publish(double(n)), name="published"))
    assert g.compile().run(n=-2, executor=every_executor).states["publish"] is SKIPPED  # in the branch


def test_a_gated_node_in_the_branch_not_taken_is_skipped():
    @dx.task
    def positive(n: int) -> bool:
        return n > 0

    with dx.Graph("g") as g:
        n = g.input("n", int)
        dx.cond(positive(n), then=lambda: notify(double(n)))
    result = g.compile().run(n=-1, executor="threads")
    assert (result.states["double"], result.states["notify"]) == (SKIPPED, SKIPPED)


@pytest.mark.parametrize("fail_fast", [True, False])
def test_a_retried_upstream_is_waited_for_and_a_gated_node_retries(every_executor, fail_fast, tmp_path):
    @dx.task(retries=1)
    def always_fails(marker: str) -> int:
        with open(marker, "a") as f:
            f.write("x")
        raise ConnectionError("down")

    @dx.task(trigger="all_done", retries=1)
    def flaky_cleanup(result: dx.Outcome, marker: str) -> str:
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise OSError("disk busy")
        return f"cleaned after {result.state.value} ({type(result.error).__name__})"

    with dx.Graph("r") as g:
        g.output(flaky_cleanup(always_fails(str(tmp_path / "a")), str(tmp_path / "b")), name="v")
    result = g.compile().run(executor=every_executor, raise_on_failure=False, fail_fast=fail_fast)
    assert result.outputs == {"v": "cleaned after failed (ConnectionError)"}
    assert [t.state for t in result.trials["always_fails"]] == [FAILED, FAILED]
    assert [t.state for t in result.trials["flaky_cleanup"]] == [FAILED, SUCCEEDED]
    assert (tmp_path / "a").read_text() == "xx"


@dx.task
def inverse(x: int) -> float:
    return 1 / x


@dx.task
def numbers() -> list[int]:
    return [1, 0, 2]


def test_a_failed_maps_outcome_holds_its_first_failed_items_error(every_executor):
    with dx.Graph("m") as g:
        g.output(notify.options(name="report")(inverse.map(numbers())), name="v")

    @dx.task(trigger="all_done")
    def errors(result: dx.Outcome) -> str:
        return f"{result.state.value}: {type(result.error).__name__}: {result.error}"

    with dx.Graph("m2") as g2:
        g2.output(errors(inverse.map(numbers())), name="v")
    result = g2.compile().run(executor=every_executor, raise_on_failure=False)
    assert result.output == "failed: ZeroDivisionError: division by zero"
    assert result.states["inverse"] is FAILED


def test_an_outcome_parameter_without_a_trigger_sees_a_success():
    @dx.task
    def describe(result: dx.Outcome[int]) -> str:
        return repr(result)

    with dx.Graph("o") as g:
        g.output(describe(load(4)), name="v")
    assert g.compile().run(executor="serial").output == "Outcome('load', succeeded, value=4)"
    with dx.Graph("o2") as g2:
        g2.output(describe(load(-4)), name="v")
    failed = g2.compile().run(executor="serial", raise_on_failure=False)
    assert failed.states["describe"] is UPSTREAM_FAILED  # the default rule: all_succeeded


def test_compile_refuses_a_parameter_that_cannot_take_none():
    @dx.task(trigger="all_done")
    def strict(value: int, fine: int | None = None) -> int:
        return 0

    with dx.Graph("g") as g:
        x = load(1)
        strict(x, x)
    with pytest.raises(dx.GraphError) as info:
        g.compile()
    (problem,) = info.value.problems
    assert problem.message.startswith(
        "node 'strict': parameter 'value' is annotated int, but with trigger='all_done' it receives None "
        "where 'load' ends without a value; annotate it 'int | None' or 'dx.Outcome' (called at "
    )
    assert "test_triggers.py:" in problem.message
    assert (problem.key, problem.param) == ("strict", "value")


def test_a_map_cannot_have_a_trigger_and_the_rule_is_checked():
    with dx.Graph("g") as g:
        publish.map(numbers())
    with pytest.raises(dx.GraphError, match=r"node 'publish': a map cannot have trigger='none_failed'"):
        g.compile()
    with pytest.raises(ValueError, match=r"task option 'trigger' must be one of 'all_succeeded', 'all_done', "):
        dx.task(trigger="one_success")(lambda: 1)


def test_a_gated_nodes_value_is_cached_only_when_its_upstreams_had_values(tmp_path):
    plan = pipeline()
    failed = plan.run(n=-1, executor="serial", cache=tmp_path, raise_on_failure=False)
    assert failed.states["cleanup"] is SUCCEEDED
    again = plan.run(n=-1, executor="serial", cache=tmp_path, raise_on_failure=False)
    assert again.states["cleanup"] is SUCCEEDED  # not served: made from a failure
    assert again.trials["cleanup"][0].state is SUCCEEDED
    plan.run(n=3, executor="serial", cache=tmp_path)
    cached = plan.run(n=3, executor="serial", cache=tmp_path)
    assert set(cached.states.values()) == {CACHED}


def test_a_saved_plan_keeps_its_trigger_rules(tmp_path):
    plan = pipeline()
    plan.save(tmp_path / "p.dagx")
    loaded = dx.load(tmp_path / "p.dagx")
    assert loaded.fingerprint == plan.fingerprint
    assert loaded.run(n=-1, executor="serial", raise_on_failure=False).outputs["notify"] == "load failed"
    with dx.Graph("p") as g:  # the same graph without the rules: another plan
        x = load(g.input("n", int))
        y = double(x)
        g.output(cleanup.options(trigger="all_succeeded")(y, x), name="cleanup")
        g.output(notify.options(trigger="all_succeeded")(x), name="notify")
        g.output(after(publish.options(trigger="all_succeeded")(y)), name="published")
    assert g.compile().fingerprint != plan.fingerprint


def test_outcomes_pickle_and_read_well():
    import pickle

    outcome: dx.Outcome[Any] = dx.Outcome("load", State.FAILED, None, ValueError("x"))
    back = pickle.loads(pickle.dumps(outcome))
    assert (back.key, back.state, back.value, repr(back.error)) == ("load", State.FAILED, None, "ValueError('x')")
    assert repr(back) == "Outcome('load', failed, error=ValueError('x'))"
    assert not back.ok and dx.Outcome("a", State.CACHED, 1).ok


def test_pictures_mark_trigger_nodes_and_a_dry_run_names_the_rule(tmp_path):
    plan = pipeline()
    source = plan.to_dot().source
    assert 'n2 [label="cleanup\\ncleanup\\ntrigger: all_done" id="node:cleanup" peripheries=2' in source
    assert 'label="publish\\npublish\\ntrigger: none_failed" id="node:publish" peripheries=2' in source
    assert 'n1 [label="double\\ndouble" id="node:double" tooltip=' in source  # no mark
    found = {e.key: e.reasons for e in plan.explain({"n": 1}, cache=tmp_path)}
    assert found["cleanup"][-1] == "trigger all_done: runs once its upstreams end, whatever their state"
    assert found["publish"][-1] == "trigger none_failed: runs unless an upstream fails (then skipped)"
    assert found["double"] == ("upstream will run: load",)


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_ctrl_c_starts_no_all_done_node(executor):
    @dx.task
    def interrupted() -> int:
        raise KeyboardInterrupt

    ended: list[dx.RunResult] = []

    class End:
        def on_run_end(self, result: dx.RunResult) -> None:
            ended.append(result)

    with dx.Graph("c") as g:
        g.output(notify(interrupted()), name="v")
    with pytest.raises(KeyboardInterrupt):
        g.compile().run(executor=executor, callbacks=[End()])
    (result,) = ended
    assert dict(result.states) == {"interrupted": CANCELLED, "notify": CANCELLED}
    assert result.trials["notify"] == []
