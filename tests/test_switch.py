"""``dx.switch``: a multi-way branch, traced and checked like ``dx.cond`` (DESIGN §17;
docs/dynamic.md)."""

from __future__ import annotations

import pytest

import dagexec as dx
from dagexec import State

SUCCEEDED, SKIPPED, FAILED, UPSTREAM_FAILED, CANCELLED = (
    State.SUCCEEDED,
    State.SKIPPED,
    State.FAILED,
    State.UPSTREAM_FAILED,
    State.CANCELLED,
)


@dx.task
def weekday(day: str) -> str:
    return day


@dx.task
def report(kind: str) -> str:
    return f"{kind} report"


@dx.task
def length(text: str) -> int:
    return len(text)


@dx.task
def flaky_day(day: str, marker: str) -> str:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ConnectionError("calendar service down")
    return day


@dx.task
def broken(kind: str) -> str:
    raise RuntimeError(f"no {kind} today")


def by_day() -> dx.CompiledGraph:
    with dx.Graph("days") as g:
        day = weekday(g.input("day", str))
        chosen = dx.switch(
            day,
            {"mon": lambda: report("weekly"), "fri": lambda: report("friday")},
            default=lambda: report("daily"),
        )
        g.output(length(chosen), name="n")
        g.output(chosen, name="report")
    return g.compile()


#: the states of a run of by_day() on a Friday
FRIDAY = {
    "weekday": SUCCEEDED,
    "report": SKIPPED,
    "report-1": SUCCEEDED,
    "report-2": SKIPPED,
    "switch": SUCCEEDED,
    "length": SUCCEEDED,
}


def test_only_the_chosen_case_runs_and_the_others_are_skipped(every_executor):
    plan = by_day()
    assert plan.keys == ("weekday", "report", "report-1", "report-2", "switch", "length")
    fri = plan.run(day="fri", executor=every_executor)
    assert fri.outputs == {"n": 13, "report": "friday report"}
    assert dict(fri.states) == FRIDAY
    assert fri.trials["report"] == [] and fri.trials["report-2"] == []
    sun = plan.run(day="sun", executor=every_executor)
    assert sun.outputs == {"n": 12, "report": "daily report"}
    assert [k for k, s in sun.states.items() if s is SKIPPED] == ["report", "report-1"]


def test_no_case_and_no_default_fails_the_switch_naming_the_value_and_the_cases(every_executor):
    with dx.Graph("g") as g:
        day = weekday(g.input("day", str))
        g.output(length(dx.switch(day, {"mon": lambda: report("a"), "tue": lambda: report("b")})), name="n")
    result = g.compile().run(day="sun", executor=every_executor, raise_on_failure=False)
    assert dict(result.states) == {
        "weekday": SUCCEEDED,
        "report": SKIPPED,
        "report-1": SKIPPED,
        "switch": FAILED,
        "length": UPSTREAM_FAILED,
    }
    (trial,) = result.trials["switch"]
    assert type(trial.error) is ValueError
    assert str(trial.error) == "switch: no case for 'sun' and no default (the cases: 'mon', 'tue')"


def test_a_graph_input_selector_is_decided_before_anything_runs():
    started: list[str] = []

    class Starts:
        def on_trial_start(self, trial: dx.Trial) -> None:
            started.append(trial.key)

    with dx.Graph("g") as g:
        mode = g.input("mode", int)
        g.output(dx.switch(mode, {1: lambda: report("one"), 2: lambda: report("two")}), name="v")
    result = g.compile().run(mode=2, executor="threads", callbacks=[Starts()])
    assert result.outputs == {"v": "two report"}
    assert started == ["report-1", "switch"]
    assert result.states["report"] is SKIPPED


def test_labels_compare_as_dict_keys_do():
    with dx.Graph("g") as g:
        mode = g.input("mode", object)
        g.output(dx.switch(mode, {1: lambda: report("int"), "1": lambda: report("str")}), name="v")
    plan = g.compile()
    assert plan.run(mode=1.0, executor="serial").output == "int report"  # 1.0 == 1
    assert plan.run(mode="1", executor="serial").output == "str report"


def test_a_selector_that_failed_leaves_every_case_upstream_failed():
    with dx.Graph("g") as g:
        dx.switch(broken("selector"), {"a": lambda: report("a")}, default=lambda: report("b"))
    result = g.compile().run(executor="serial", raise_on_failure=False)
    assert dict(result.states) == {
        "broken": FAILED,
        "report": UPSTREAM_FAILED,
        "report-1": UPSTREAM_FAILED,
        "switch": UPSTREAM_FAILED,
    }


def test_a_retried_selector_chooses_once_it_succeeds(every_executor, tmp_path):
    with dx.Graph("g") as g:
        day = flaky_day.options(retries=1)(g.input("day", str), str(tmp_path / "marker"))
        g.output(dx.switch(day, {"mon": lambda: report("a")}, default=lambda: report("b")), name="v")
    result = g.compile().run(day="mon", executor=every_executor)
    assert result.output == "a report"
    assert [t.state for t in result.trials["flaky_day"]] == [FAILED, SUCCEEDED]
    assert result.states["report-1"] is SKIPPED


def test_fail_fast_stops_at_a_failing_case(every_executor):
    with dx.Graph("g") as g:
        chosen = dx.switch(weekday("mon"), {"mon": lambda: broken("weekly")}, default=lambda: report("daily"))
        g.output(length(chosen), name="n")
    result = g.compile().run(executor=every_executor, fail_fast=True, raise_on_failure=False)
    assert dict(result.states) == {
        "weekday": SUCCEEDED,
        "broken": FAILED,
        "report": SKIPPED,
        "switch": UPSTREAM_FAILED,
        "length": UPSTREAM_FAILED,
    }


def test_cases_of_different_annotated_types_are_a_graph_error():
    with dx.Graph("g") as g:
        day = g.input("day", str)
        with pytest.raises(dx.GraphError) as info:
            dx.switch(day, {"a": lambda: report("a"), "b": lambda: length("b")})
        assert len(g) == 1  # the input: the cases were rolled back
    (problem,) = info.value.problems
    assert problem.message.startswith(
        "switch: the cases return different types: 'a' str ('report'), 'b' int ('length') (called at "
    )
    assert "test_switch.py:" in problem.message


def test_bad_switch_calls_are_call_errors():
    with pytest.raises(dx.CallError, match=r"switch\(\) is called inside 'with dx.Graph\(...\)'"):
        dx.switch(None, {"a": lambda: 1})  # type: ignore[arg-type]
    with dx.Graph("g") as g:
        day = g.input("day", str)
        with pytest.raises(dx.CallError, match=r"switch\(\): selector must be a Node of graph 'g', got 'a'"):
            dx.switch("a", {"a": lambda: 1})  # type: ignore[arg-type]
        with pytest.raises(dx.CallError, match=r"switch\(\): cases must be a non-empty dict of label -> function"):
            dx.switch(day, {})
        with pytest.raises(dx.CallError, match=r"switch\(\): 'b' must be a function of no argument, got 2"):
            dx.switch(day, {"a": lambda: 1, "b": 2})  # type: ignore[dict-item]


def test_a_switch_in_a_section_with_a_cond_in_a_case():
    @dx.task
    def is_long(text: str) -> bool:
        return len(text) > 3

    @dx.section
    def route(day: str) -> str:
        return dx.switch(
            weekday(day),
            {
                "mon": lambda: dx.cond(is_long(day), then=lambda: report("long"), otherwise=lambda: report("short")),
            },
            default=lambda: report("other"),
        )

    with dx.Graph("g") as g:
        g.output(route(g.input("day", str)), name="v")
    plan = g.compile()
    assert plan.keys == (
        "route/weekday",
        "route/is_long",
        "route/report",
        "route/report-1",
        "route/cond",
        "route/report-2",
        "route/switch",
    )
    mon = plan.run(day="mon", executor="threads")
    assert mon.output == "short report"
    assert [k for k, s in mon.states.items() if s is SKIPPED] == ["route/report", "route/report-2"]
    tue = plan.run(day="tue", executor="threads")
    assert tue.output == "other report"
    assert [k for k, s in tue.states.items() if s is SKIPPED] == [
        "route/is_long",
        "route/report",
        "route/report-1",
        "route/cond",
    ]


def test_a_map_in_an_untaken_branch_never_expands():
    @dx.task
    def days() -> list[str]:
        return ["mon", "tue"]

    with dx.Graph("g") as g:
        listed = days()
        g.output(dx.switch(g.input("mode", str), {"each": lambda: report.map(listed)}, default=lambda: []), name="v")
    plan = g.compile()
    plain = plan.run(mode="none", executor="threads")
    assert plain.output == [] and plain.states["report"] is SKIPPED
    each = plan.run(mode="each", executor="threads")
    assert each.output == ["mon report", "tue report"]


def test_a_saved_plan_with_a_switch_runs_the_same(tmp_path):
    plan = by_day()
    plan.save(tmp_path / "days.dagx")
    loaded = dx.load(tmp_path / "days.dagx")
    assert loaded.fingerprint == plan.fingerprint
    assert loaded.run(day="mon", executor="serial").outputs == {"n": 13, "report": "weekly report"}


def test_a_switch_with_a_cache_runs_only_the_newly_chosen_case(tmp_path):
    plan = by_day()
    plan.run(day="mon", executor="serial", cache=tmp_path)
    again = plan.run(day="mon", executor="serial", cache=tmp_path)
    # the cached selector still chooses: the cases not taken stay skipped, and the
    # switch (a builtin node, never cached) picks the cached case's value
    assert dict(again.states) == {
        "weekday": State.CACHED,
        "report": State.CACHED,
        "report-1": SKIPPED,
        "report-2": SKIPPED,
        "switch": SUCCEEDED,
        "length": State.CACHED,
    }
    assert again.trials["report-1"] == [] and again.outputs["report"] == "weekly report"
    fri = plan.run(day="fri", executor="serial", cache=tmp_path)
    assert fri.outputs == {"n": 13, "report": "friday report"}
    assert {k: s for k, s in fri.states.items() if s is not State.CACHED} == FRIDAY


def test_a_pictures_switch_edges_are_named_for_the_selector_and_each_case():
    source = by_day().to_dot().source
    assert "n0 -> n4 [label=switch]" in source
    assert "n1 -> n4 [label=\"'mon'\"]" in source
    assert "n2 -> n4 [label=\"'fri'\"]" in source
    assert "n3 -> n4 [label=default]" in source
