"""``task.map``: one trial per item of a list known at run time (DESIGN §10; docs/dynamic.md)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import dagexec as dx
from dagexec import State

SUCCEEDED, FAILED, UPSTREAM_FAILED, CANCELLED = (
    State.SUCCEEDED,
    State.FAILED,
    State.UPSTREAM_FAILED,
    State.CANCELLED,
)


@dx.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@dx.task
def square(x: int, plus: int = 0) -> int:
    return x * x + plus


@dx.task
def total(xs: list[int]) -> int:
    return sum(xs)


@dx.task
def picky(x: int) -> int:
    if x == 2:
        raise ValueError(f"not {x}")
    return x


def squares() -> dx.CompiledGraph:
    with dx.Graph("m") as g:
        n = g.input("n", int)
        plus = g.input("plus", int, default=0)
        mapped = square.map(numbers(n), plus=plus)
        g.output(mapped, name="squares")
        g.output(total(mapped), name="total")
    return g.compile()


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
@pytest.mark.parametrize("n", [0, 1, 7])
def test_a_map_over_a_runtime_list_equals_a_list_comprehension(executor, n):
    result = squares().run(n=n, plus=3, executor=executor, max_workers=2)
    expected = [x * x + 3 for x in range(n)]
    assert result.outputs == {"squares": expected, "total": sum(expected)}
    assert [k for k in result.states if k.startswith("square")] == ["square"] + [
        f"square[{j}]" for j in range(n)
    ]
    assert set(result.states.values()) == {SUCCEEDED}
    assert result.trials["square"] == []  # the map node runs nothing itself: its items do
    assert [len(result.trials[f"square[{j}]"]) for j in range(n)] == [1] * n


def test_a_map_over_a_list_written_in_the_call_with_nodes_in_it():
    with dx.Graph("g") as g:
        a = square(3)
        g.output(square.map([1, a, 2], plus=square(1)), name="v")
    assert g.compile().run(executor="threads").output == [2, 82, 5]


def test_outside_a_graph_map_is_the_list_comprehension():
    assert square.map([1, 2, 3], plus=1) == [2, 5, 10]


def test_an_item_that_fails_fails_its_map_and_what_needs_it_but_not_the_other_items():
    with dx.Graph("g") as g:
        mapped = picky.map(numbers(4))
        total(mapped)
        square(5)
    result = g.compile().run(executor="threads", fail_fast=False, raise_on_failure=False)
    assert dict(result.states) == {
        "numbers": SUCCEEDED,
        "picky": FAILED,
        "picky[0]": SUCCEEDED,
        "picky[1]": SUCCEEDED,
        "picky[2]": FAILED,
        "picky[3]": SUCCEEDED,
        "total": UPSTREAM_FAILED,
        "square": SUCCEEDED,
    }
    assert str(result.trials["picky[2]"][0].error) == "not 2"
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial", fail_fast=False)
    assert str(info.value) == (
        "1 node and 1 map item of graph 'g' failed: 'picky[2]' (ValueError: not 2), 'picky' (1 of 4 items failed)"
    )
    assert info.value.failed == ["picky[2]", "picky"]


def test_fail_fast_cancels_the_items_not_started():
    with dx.Graph("g") as g:
        total(picky.map(numbers(6)))
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial")
    assert str(info.value) == (
        "1 node and 1 map item of graph 'g' failed: 'picky[2]' (ValueError: not 2), 'picky' (1 of 6 items failed)"
    )
    assert info.value.failed == ["picky[2]", "picky"]
    assert info.value.__cause__ is info.value.result.trials["picky[2]"][0].error
    assert info.value.result.states["total"] == UPSTREAM_FAILED
    result = info.value.result
    assert [result.states[f"picky[{j}]"] for j in range(6)] == [
        SUCCEEDED, SUCCEEDED, FAILED, CANCELLED, CANCELLED, CANCELLED,
    ]  # fmt: skip
    assert result.states["picky"] == FAILED
    assert result.trials["picky[4]"] == []


@dx.task(retries=1)
def inv(x: int) -> float:
    if x % 3 == 2:
        raise ZeroDivisionError(f"no inverse for {x}")
    return 1 / x if x else 0.0


@dx.task
def broken(x: int) -> int:
    raise KeyError(x)


def failing_maps() -> dx.CompiledGraph:
    """``inv`` fails its items 2, 5, 8 and 11 (each after a retry); ``broken`` is a plain node."""
    with dx.Graph("g") as g:
        total(inv.map(numbers(12)))
        broken(7)
        square(2)
    return g.compile()


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_failed_map_item_is_named_before_its_map_in_run_failed(executor):
    with pytest.raises(dx.RunFailed) as info:
        failing_maps().run(executor=executor, fail_fast=False, max_workers=2)
    failed = info.value.failed
    # the maps' items in the order they failed, then the map: which comes first with
    # threads depends on the order trials end
    assert sorted(failed) == sorted(["inv[2]", "inv[5]", "inv[8]", "inv[11]", "inv", "broken"])
    # the map comes right after the last of its items to fail (with threads, any of them)
    assert failed.index("inv") == max(failed.index(f"inv[{k}]") for k in (2, 5, 8, 11)) + 1
    if executor == "serial":  # one trial at a time: plan order
        assert failed == ["inv[2]", "inv[5]", "inv[8]", "inv[11]", "inv", "broken"]
        assert str(info.value) == (
            "2 nodes and 4 map items of graph 'g' failed: "
            "'inv[2]' (ZeroDivisionError: no inverse for 2), "
            "'inv[5]' (ZeroDivisionError: no inverse for 5), "
            "'inv[8]' (ZeroDivisionError: no inverse for 8), "
            "'inv' (4 of 12 items failed), 'broken' (KeyError: 7)"
        )
    result = info.value.result
    assert info.value.__cause__ is result.trials[failed[0]][-1].error
    assert result.failed == ["inv[2]", "inv[5]", "inv[8]", "inv[11]", "inv", "broken"]
    first, *rest = result.summary().splitlines()
    assert re.fullmatch(
        r"graph 'g': 5 nodes in \d+\.\d\d s: 2 succeeded, 2 failed, 1 upstream_failed"
        r" · 12 map items: 8 succeeded, 4 failed",
        first,
    )
    assert rest == [
        "  failed inv[2] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 2",
        "  failed inv[5] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 5",
        "  failed inv[8] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 8",
        "  failed inv[11] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 11",
        "  failed inv (map): 4 of 12 items failed",
        "  failed broken after 1 attempt(s) [failed]: KeyError: 7",
    ]
    assert repr(result) == (
        "<RunResult 'g' failed: 2 succeeded, 2 failed, 1 upstream_failed"
        " · 12 map items: 8 succeeded, 4 failed>"
    )


def test_a_map_failing_fast_names_its_item_and_never_zero_attempts():
    with pytest.raises(dx.RunFailed) as info:
        failing_maps().run(executor="serial")
    assert str(info.value) == (
        "1 node and 1 map item of graph 'g' failed: "
        "'inv[2]' (ZeroDivisionError: no inverse for 2), 'inv' (1 of 12 items failed)"
    )
    assert info.value.failed == ["inv[2]", "inv"]
    summary = info.value.result.summary()
    assert "0 attempt(s)" not in summary
    assert summary.splitlines()[1:] == [
        "  failed inv[2] after 2 attempt(s) [failed]: ZeroDivisionError: no inverse for 2",
        "  failed inv (map): 1 of 12 items failed",
    ]
    assert summary.splitlines()[0].endswith(
        ": 1 succeeded, 1 failed, 1 upstream_failed, 2 cancelled"
        " · 12 map items: 2 succeeded, 1 failed, 9 cancelled"
    )


def test_past_three_failed_nodes_the_message_counts_the_rest():
    with dx.Graph("g") as g:
        for _ in range(3):
            broken(1)
        inv.map([2, 5])
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial", fail_fast=False)
    assert str(info.value) == (
        "4 nodes and 2 map items of graph 'g' failed: 'broken' (KeyError: 1), "
        "'broken-1' (KeyError: 1), 'broken-2' (KeyError: 1) and 1 more"
    )
    assert info.value.failed == ["broken", "broken-1", "broken-2", "inv[0]", "inv[1]", "inv"]


def test_a_map_that_cannot_expand_fails_with_its_own_trial():
    with dx.Graph("g") as g:
        picky.map(square(3))  # an int, not a list
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial")
    assert str(info.value) == (
        "1 node of graph 'g' failed: 'picky' (TypeError: node 'picky': map needs a list of items, got int)"
    )
    assert info.value.failed == ["picky"]
    assert info.value.result.summary().splitlines()[1:] == [
        "  failed picky after 1 attempt(s) [failed]: TypeError: node 'picky': map needs a list of items, got int"
    ]


def test_an_item_failing_after_another_node_stopped_the_run_still_names_its_map():
    started, stopped = threading.Event(), threading.Event()

    @dx.task
    def first_to_fail() -> int:
        assert started.wait(30)
        raise RuntimeError("stop")

    @dx.task
    def late(x: int) -> int:
        if x == 0:
            started.set()
            assert stopped.wait(30)
            raise ValueError("late")
        return x

    class WhenStopped:
        def on_trial_end(self, trial: dx.Trial) -> None:
            if trial.key == "first_to_fail":
                stopped.set()

    with dx.Graph("g") as g:
        first_to_fail()
        late.map([0, 1, 2])
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="threads", max_workers=2, callbacks=[WhenStopped()])
    assert info.value.failed == ["first_to_fail", "late[0]", "late"]
    assert str(info.value) == (
        "2 nodes and 1 map item of graph 'g' failed: 'first_to_fail' (RuntimeError: stop), "
        "'late[0]' (ValueError: late), 'late' (1 of 3 items failed)"
    )
    states = info.value.result.states
    assert [states[k] for k in ("late", "late[0]", "late[1]", "late[2]")] == [
        FAILED, FAILED, CANCELLED, CANCELLED,
    ]  # fmt: skip


def test_each_item_is_retried_on_its_own(tmp_path):
    marks = tmp_path / "marks"

    @dx.task(retries=2)
    def flaky(x: int) -> int:
        with open(marks, "a") as f:
            f.write(f"{x}\n")
        if x == 1 and marks.read_text().split().count("1") < 3:
            raise OSError("again")
        return x * 10

    with dx.Graph("g") as g:
        g.output(flaky.map([0, 1, 2]), name="v")
    result = g.compile().run(executor="serial")
    assert result.output == [0, 10, 20]
    log = {k: [(t.attempt, t.state) for t in ts] for k, ts in result.trials.items()}
    assert log == {
        "flaky": [],
        "flaky[0]": [(1, SUCCEEDED)],
        "flaky[1]": [(1, FAILED), (2, FAILED), (3, SUCCEEDED)],
        "flaky[2]": [(1, SUCCEEDED)],
    }


@dx.task(timeout=0.3)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.mark.parametrize("executor", ["threads", "loky"])
def test_an_item_past_its_timeout_is_timed_out_alone(executor):
    with dx.Graph("g") as g:
        sleepy.map([0.0, 5.0, 0.0])
    result = g.compile().run(executor=executor, max_workers=3, fail_fast=False, raise_on_failure=False)
    assert [result.states[f"sleepy[{j}]"] for j in range(3)] == [SUCCEEDED, FAILED, SUCCEEDED]
    trial = result.trials["sleepy[1]"][0]
    assert (trial.state, str(trial.error)) == (State.TIMED_OUT, "node 'sleepy[1]' timed out after 0.3 s")


def test_each_item_is_type_checked_by_its_key():
    with dx.Graph("g") as g:
        square.map(g.input("xs"))  # items known only at run time (constant items are checked at compile)
    result = g.compile().run(xs=[1, "two", 3], executor="serial", fail_fast=False, raise_on_failure=False)
    assert (
        str(result.trials["square[1]"][0].error)
        == "node 'square[1]': parameter 'x' expects int but got str 'two'"
    )
    assert result.states["square[2]"] == SUCCEEDED


@dx.section
def squares_of(n: int) -> int:
    return total(square.map(numbers(n)))


def test_a_map_in_a_section_has_its_path_in_its_item_keys():
    with dx.Graph("g") as g:
        squares_of(g.input("n", int))
    result = g.compile().run(n=3, executor="threads")
    assert result.output == 5
    assert [k for k in result.states if "[" in k] == [
        "squares_of/square[0]",
        "squares_of/square[1]",
        "squares_of/square[2]",
    ]


def test_bad_map_calls_are_errors_at_the_call():
    with dx.Graph("g") as g:
        with pytest.raises(
            dx.CallError, match=r"node 'square': map: unknown parameter 'nope'; square\(\) takes x, plus"
        ):
            square.map([1], nope=2)
        with pytest.raises(dx.CallError, match=r"node 'square': map takes a Node or a list of items, got 5"):
            square.map(5)
    with dx.Graph("g") as g:
        square.map(square(2))  # a Node whose value is an int, not a list
    result = g.compile().run(executor="serial", raise_on_failure=False)
    assert result.states["square-1"] == FAILED
    assert str(result.trials["square-1"][0].error) == "node 'square-1': map needs a list of items, got int"


def test_a_map_is_cached_as_one_value(tmp_path: Path):
    plan = squares()
    first = plan.run(n=4, executor="serial", cache=tmp_path)
    again = plan.run(n=4, executor="serial", cache=tmp_path)
    assert again.outputs == first.outputs
    assert set(again.states.values()) == {State.CACHED}
    other = plan.run(n=5, executor="serial", cache=tmp_path)
    assert other.outputs["total"] == 30 and other.states["square[4]"] == SUCCEEDED


def test_a_saved_plan_with_a_map_runs_the_same(tmp_path):
    plan = squares()
    plan.save(tmp_path / "m.dagx")
    assert dx.load(tmp_path / "m.dagx").run(n=3, executor="serial").outputs == {
        "squares": [0, 1, 4],
        "total": 5,
    }


def test_callbacks_see_each_item_start_and_end():
    seen: list[tuple[str, str]] = []

    class Record:
        def on_trial_start(self, trial: dx.Trial) -> None:
            seen.append(("start", trial.key))

        def on_trial_end(self, trial: dx.Trial) -> None:
            seen.append((trial.state.value, trial.key))

    with dx.Graph("g") as g:
        square.map(numbers(2))
    g.compile().run(executor="serial", callbacks=[Record()])
    assert seen == [
        ("start", "numbers"), ("succeeded", "numbers"),
        ("start", "square[0]"), ("succeeded", "square[0]"),
        ("start", "square[1]"), ("succeeded", "square[1]"),
    ]  # fmt: skip


def test_a_map_draws_as_one_node_with_its_items_counted(tmp_path):
    with dx.Graph("g") as g:
        picky.map([0, 1, 2, 3])
    plan = g.compile()
    assert 'label="picky\\nmap: picky\\nx=[0, 1, 2, 3]"' in plan.to_dot().source
    result = plan.run(executor="serial", fail_fast=False, raise_on_failure=False)
    source = result.to_dot().source
    assert "\\nfailed\\n4 items: 3 succeeded, 1 failed" in source
    assert source.count('id="node:') == 1  # the items are not nodes of the picture
    page = tmp_path / "run.html"
    result.to_html(page)
    assert "picky[2]" in page.read_text()  # the report lists each item's trial


@pytest.mark.parametrize("executor", ["threads", "loky"])
def test_chunksize_sends_items_in_chunks_and_keeps_each_items_trial(executor):
    with dx.Graph("g") as g:
        g.output(square.options(chunksize=4).map(numbers(8)), name="v")
    result = g.compile().run(executor=executor, max_workers=2)
    assert result.output == [x * x for x in range(8)]
    trials = [result.trials[f"square[{j}]"] for j in range(8)]
    assert [len(t) for t in trials] == [1] * 8
    # a chunk runs in one worker, its items one after the other
    for chunk in (trials[0:4], trials[4:8]):
        assert len({t[0].worker for t in chunk}) == 1
        assert all(a[0].end <= b[0].start for a, b in itertools.pairwise(chunk))


def test_a_failing_item_in_a_chunk_fails_alone_and_is_retried_alone(tmp_path):
    marks = tmp_path / "marks"

    @dx.task(retries=1, chunksize=3)
    def once_bad(x: int) -> int:
        with open(marks, "a") as f:
            f.write(f"{x}\n")
        if x == 1 and marks.read_text().split().count("1") == 1:
            raise OSError("first time")
        return x

    with dx.Graph("g") as g:
        g.output(once_bad.map([0, 1, 2]), name="v")
    result = g.compile().run(executor="threads")
    assert result.output == [0, 1, 2]
    assert [(t.attempt, t.state) for t in result.trials["once_bad[1]"]] == [(1, FAILED), (2, SUCCEEDED)]
    assert [len(result.trials[f"once_bad[{j}]"]) for j in (0, 2)] == [1, 1]


def test_tiny_items_are_chunked_on_processes_without_being_asked():
    with dx.Graph("g") as g:
        g.output(total(square.map(numbers(300))), name="v")
    result = g.compile().run(executor="loky", max_workers=2)
    assert result.output == sum(x * x for x in range(300))
    workers = [result.trials[f"square[{j}]"][0].worker for j in range(300)]
    runs = sum(1 for a, b in itertools.pairwise(workers) if a != b)
    assert runs < 150  # consecutive items share their worker: they went in chunks


@dx.task
def halve(x: int) -> float:
    return x / 2


def test_a_map_over_a_map_runs_item_by_item():
    with dx.Graph("g") as g:
        g.output(halve.map(square.map(numbers(4))), name="v")
    result = g.compile().run(executor="serial")
    assert result.output == [0.0, 0.5, 2.0, 4.5]
    first = {k: ts[0] for k, ts in result.trials.items() if "[" in k}
    # depth first: halve[0] runs as soon as square[0] is done, before square[1]
    assert first["halve[0]"].start <= first["square[1]"].start
    assert first["halve[2]"].start <= first["square[3]"].start


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_failed_item_fails_only_its_own_chain_of_items(executor):
    with dx.Graph("g") as g:
        mapped = halve.map(picky.map(numbers(4)))
        g.output(total.options(name="sum_halves")(mapped), name="sum")
        g.output(square(3), name="other")
    result = g.compile().run(executor=executor, max_workers=2, fail_fast=False, raise_on_failure=False)
    assert {k: s for k, s in result.states.items() if k.startswith(("picky", "halve", "sum"))} == {
        "picky": FAILED,
        "picky[0]": SUCCEEDED,
        "picky[1]": SUCCEEDED,
        "picky[2]": FAILED,
        "picky[3]": SUCCEEDED,
        "halve": UPSTREAM_FAILED,
        "halve[0]": SUCCEEDED,
        "halve[1]": SUCCEEDED,
        "halve[2]": UPSTREAM_FAILED,
        "halve[3]": SUCCEEDED,
        "sum_halves": UPSTREAM_FAILED,
    }
    assert result.trials["halve[2]"] == []
    assert result.outputs == {"other": 9}


@dx.task
def negated(x: float) -> float:
    return -x


@pytest.mark.parametrize("fail_fast", [False, True])
def test_a_failed_item_blocks_its_chain_three_maps_deep(fail_fast):
    # serial runs depth first: items 0 and 1 go through all three maps before picky[2]
    with dx.Graph("g") as g:
        g.output(total(negated.map(halve.map(picky.map(numbers(5))))), name="v")
    result = g.compile().run(executor="serial", fail_fast=fail_fast, raise_on_failure=False)
    after = SUCCEEDED if not fail_fast else CANCELLED  # items 3 and 4
    assert {k: s for k, s in result.states.items() if k != "numbers"} == {
        "picky": FAILED,
        **{f"picky[{j}]": s for j, s in enumerate([SUCCEEDED, SUCCEEDED, FAILED, after, after])},
        "halve": UPSTREAM_FAILED if not fail_fast else CANCELLED,
        **{f"halve[{j}]": s for j, s in enumerate([SUCCEEDED, SUCCEEDED, UPSTREAM_FAILED, after, after])},
        "negated": UPSTREAM_FAILED if not fail_fast else CANCELLED,
        **{f"negated[{j}]": s for j, s in enumerate([SUCCEEDED, SUCCEEDED, UPSTREAM_FAILED, after, after])},
        "total": UPSTREAM_FAILED if not fail_fast else CANCELLED,
    }
    assert result.trials["halve[2]"] == [] and result.trials["negated[2]"] == []
    assert result.failed == ["picky[2]", "picky"]


@dx.task
def noted(x: int) -> int:
    """``x * 3``, noting ``x`` in the file ``$MAP_CALLS`` names."""
    with open(os.environ["MAP_CALLS"], "a") as f:
        f.write(f"{x}\n")
    return x * 3


@dx.task
def listed(xs: list[int]) -> list[int]:
    return xs


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_two_maps_over_one_map_read_its_items_one_by_one(executor):
    # each item of picky is read by the same item of halve and of square: each of those
    # runs once its own item of picky has succeeded, and fails upstream when it failed
    with dx.Graph("g") as g:
        source = picky.map(numbers(4))
        g.output(halve.map(source), name="halves")
        g.output(square.map(source, plus=1), name="squares")
    result = g.compile().run(executor=executor, fail_fast=False, raise_on_failure=False)
    states = {k: s for k, s in result.states.items() if k.startswith(("picky", "halve[", "square["))}
    assert states == {
        "picky": FAILED,
        **{f"{name}[{j}]": SUCCEEDED for name in ("picky", "halve", "square") for j in (0, 1, 3)},
        "picky[2]": FAILED,
        "halve[2]": UPSTREAM_FAILED,
        "square[2]": UPSTREAM_FAILED,
    }
    assert result.states["halve"] is UPSTREAM_FAILED and result.states["square"] is UPSTREAM_FAILED
    assert result.trials["halve[2]"] == [] and result.trials["square[2]"] == []
    assert result.outputs == {}


def test_items_are_cached_one_by_one(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    monkeypatch.setenv("MAP_CALLS", str(calls))

    with dx.Graph("g") as g:
        tripled = noted.map(listed(g.input("xs", list[int])))
        g.output(halve.map(tripled), name="halves")
    plan = g.compile()
    assert plan.run(xs=[1, 2, 3], executor="serial", cache=tmp_path / "c").output == [1.5, 3.0, 4.5]
    assert calls.read_text().split() == ["1", "2", "3"]
    result = plan.run(xs=[1, 2, 4], executor="serial", cache=tmp_path / "c")
    assert result.output == [1.5, 3.0, 6.0]
    assert calls.read_text().split() == ["1", "2", "3", "4"]  # only the new item ran
    assert {k: s for k, s in result.states.items() if "[" in k} == {
        "noted[0]": State.CACHED,
        "noted[1]": State.CACHED,
        "noted[2]": SUCCEEDED,
        "halve[0]": State.CACHED,
        "halve[1]": State.CACHED,
        "halve[2]": SUCCEEDED,
    }


def test_a_map_whose_items_all_come_from_the_cache_joins_and_readies_its_readers(tmp_path, monkeypatch):
    # the same items in another order: the map nodes' keys change, their items' do not,
    # so every item is served (settled as cached) and each map joins without a trial
    calls = tmp_path / "calls"
    monkeypatch.setenv("MAP_CALLS", str(calls))

    @dx.task
    def sum_halves(xs: list[float]) -> float:
        return sum(xs)

    with dx.Graph("g") as g:
        halves = halve.map(noted.map(listed(g.input("xs", list[int]))))
        g.output(sum_halves(halves), name="sum")
        g.output(halves, name="halves")
    plan = g.compile()
    first = plan.run(xs=[1, 2, 3], executor="serial", cache=tmp_path / "c")
    assert first.outputs == {"sum": 9.0, "halves": [1.5, 3.0, 4.5]}
    result = plan.run(xs=[3, 1, 2], executor="serial", cache=tmp_path / "c")
    assert result.outputs == {"sum": 9.0, "halves": [4.5, 1.5, 3.0]}
    assert calls.read_text().split() == ["1", "2", "3"]  # no item ran again
    items = {k: s for k, s in result.states.items() if "[" in k}
    assert items == {f"{name}[{j}]": State.CACHED for name in ("noted", "halve") for j in range(3)}
    assert all(result.trials[k] == [] for k in items)
    assert [result.states[k] for k in ("listed", "noted", "halve", "sum_halves")] == [SUCCEEDED] * 4
    assert [len(result.trials[k]) for k in ("noted", "halve", "sum_halves")] == [0, 0, 1]


def test_on_serial_an_item_that_ran_past_its_timeout_is_timed_out_after_the_fact():
    with dx.Graph("g") as g:
        sleepy.map([0.0, 0.5])
    result = g.compile().run(executor="serial", fail_fast=False, raise_on_failure=False)
    assert (result.states["sleepy[0]"], result.states["sleepy[1]"]) == (SUCCEEDED, FAILED)
    trial = result.trials["sleepy[1]"][0]
    assert trial.state == State.TIMED_OUT
    assert str(trial.error).startswith("node 'sleepy[1]' ran 0.5")
    assert str(trial.error).endswith(" s, past its timeout of 0.3 s")


MAP_PIPE = """
import dagexec as dx


@dx.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@dx.task(retries=1)
def inv(x: int) -> float:
    return 1 / (x - 2)


@dx.task
def total(xs: list[float]) -> float:
    return sum(xs)


with dx.Graph("g") as graph:
    total(inv.map(numbers(4)))
"""


def test_the_command_line_report_counts_items_apart_and_names_the_failed_item(tmp_path):
    (tmp_path / "map_pipe.py").write_text(MAP_PIPE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    env["COLUMNS"] = "200"
    proc = subprocess.run(
        [sys.executable, "-m", "dagexec", "run", "map_pipe:graph", "--executor", "serial", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = [line.rstrip() for line in proc.stderr.splitlines()]
    assert re.fullmatch(r"graph 'g': 3 nodes in \d+\.\d\d s", lines[0])
    assert [line.split() for line in lines[1:7]] == [
        ["state", "nodes", "map", "items"],
        [lines[2].strip()],  # the rule under the header
        ["succeeded", "1", "2"],
        ["failed", "1", "1"],
        ["upstream_failed", "1", "0"],
        ["cancelled", "0", "1"],
    ]
    assert lines[7] == "2 failed:"
    assert lines[10].split(None, 3) == ["inv[2]", "2", "failed", "ZeroDivisionError: division by zero"]
    assert lines[11].split(None, 2) == ["inv", "map", "1 of 4 items failed"]  # no attempts of its own
    assert "0 attempt" not in proc.stderr
