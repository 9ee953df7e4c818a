"""``run(check_mutation=True)``: a task that changes an argument in place fails its
trial, on every executor (DESIGN §12 "Mutation"; docs/running.md, Executors)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

import dagexec as dx
from dagexec import State

MESSAGE = (
    "node {key!r} changed its argument {param!r} in place (the value came from {producer}); "
    "a task must not change its arguments: copy the value first"
)


@dx.task
def load(n: int) -> list[int]:
    return list(range(n))


@dx.task(retries=2)
def grow(rows: list[int]) -> int:
    rows.append(99)
    return len(rows)


@dx.task
def count(rows: list[int]) -> int:
    return len(rows)


@dx.task
def tag(item: int, seen: dict[str, int]) -> int:
    seen[str(item)] = item
    return item


@dx.task
def pair(a: int, b: list[int]) -> int:
    return a + len(b)


def grow_and_count() -> dx.CompiledGraph:
    with dx.Graph("m") as g:
        rows = load(3)
        g.output(grow(rows), name="grown")
        g.output(count(rows), name="counted")
    return g.compile()


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_task_that_changes_its_argument_fails_naming_node_parameter_and_producer(executor):
    with pytest.raises(dx.RunFailed) as info:
        grow_and_count().run(executor=executor, max_workers=2, check_mutation=True)
    result = info.value.result
    message = MESSAGE.format(key="grow", param="rows", producer="node 'load'")
    assert str(info.value) == f"1 node of graph 'm' failed: 'grow' (MutationError: {message})"
    (trial,) = result.trials["grow"]  # not retried: it would run on the changed value
    error = trial.error
    assert isinstance(error, dx.MutationError) and isinstance(error, dx.DagexecError)
    assert str(error) == message
    assert (error.key, error.param, error.producer) == ("grow", "rows", "node 'load'")
    assert trial.state is State.FAILED
    assert result.states["load"] is State.SUCCEEDED
    if executor == "loky":  # the check ran in the worker process that ran the trial
        assert trial.worker.startswith("pid:")
        workers = {p.pid for p in psutil.Process().children(recursive=True)}
        assert int(trial.worker[4:]) in workers


def test_off_by_default_results_depend_on_the_executor():
    with dx.Graph("m") as g:
        rows = load(3)
        grown = grow(rows)
        g.output(grown, name="grown")
        g.output(count(rows).after(grown), name="counted")
    plan = g.compile()
    # serial and threads: count reads the list grow changed; loky: each trial its own copy
    assert plan.run(executor="serial").outputs == {"grown": 4, "counted": 4}
    assert plan.run(executor="threads").outputs == {"grown": 4, "counted": 4}
    assert plan.run(executor="loky", max_workers=2).outputs == {"grown": 4, "counted": 3}


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_tasks_that_change_nothing_run_as_without_the_check(executor):
    with dx.Graph("ok") as g:
        rows = load(4)
        g.output(count(rows), name="n")
        g.output(pair(count(rows), b=rows), name="p")
    result = g.compile().run(executor=executor, max_workers=2, check_mutation=True)
    assert result.outputs == {"n": 4, "p": 8}


def test_graph_inputs_constants_and_keywords_are_named_as_producers():
    with dx.Graph("g") as g:
        seen = g.input("seen", dict[str, int])
        tag(1, seen)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(inputs={"seen": {}}, executor="serial", check_mutation=True)
    error = info.value.result.trials["tag"][0].error
    assert str(error) == MESSAGE.format(key="tag", param="seen", producer="graph input 'seen'")

    with dx.Graph("g") as g:
        tag(1, seen={})
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="threads", check_mutation=True)
    error = info.value.result.trials["tag"][0].error
    assert (error.param, error.producer) == ("seen", "a constant")


def test_a_container_argument_names_what_it_holds():
    @dx.task
    def first_grows(lists: list[list[int]]) -> int:
        lists[0].append(1)
        return 0

    with dx.Graph("g") as g:
        first_grows([load(2), load(3)])
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial", check_mutation=True)
    error = info.value.result.trials["first_grows"][0].error
    assert (error.param, error.producer) == ("lists", "a list holding node 'load', node 'load-1'")


@dx.task
def note(item: int, seen: list[int]) -> int:
    seen.append(item)  # changes the list every item shares
    return item


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_map_item_that_changes_a_fixed_argument_is_named_by_its_item_key(executor):
    with dx.Graph("g") as g:
        note.map(load(3), seen=load(0))
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=executor, max_workers=2, check_mutation=True, fail_fast=False)
    assert sorted(info.value.failed) == ["note", "note[0]", "note[1]", "note[2]"]
    assert info.value.failed[-1] == "note"
    for j in range(3):
        error = info.value.result.trials[f"note[{j}]"][0].error
        assert str(error) == MESSAGE.format(key=f"note[{j}]", param="seen", producer="node 'load-1'")


def test_map_items_are_named_with_where_each_came_from():
    @dx.task
    def clear(rows: list[int]) -> int:
        rows.clear()
        return 0

    @dx.task
    def nest(x: int) -> list[int]:
        return [x]

    with dx.Graph("g") as g:
        clear.map(g.output(nest.map(load(2)), name="nested"))  # chained: item j from nest[j]
        clear.map([[1], load(1)])  # a list written in the call
        clear.map(g.output(load.map([1, 2]), name="lists"))
    plan = g.compile()
    with pytest.raises(dx.RunFailed) as info:
        plan.run(executor="serial", check_mutation=True, fail_fast=False)
    trials = info.value.result.trials
    producers = {
        key: trials[key][0].error.producer
        for key in ("clear[0]", "clear[1]", "clear-1[0]", "clear-1[1]", "clear-2[0]", "clear-2[1]")
    }
    assert producers == {
        "clear[0]": "node 'nest[0]'",
        "clear[1]": "node 'nest[1]'",
        "clear-1[0]": "a constant",
        "clear-1[1]": "node 'load-1'",
        "clear-2[0]": "node 'load-2[0]'",
        "clear-2[1]": "node 'load-2[1]'",
    }
    assert str(trials["clear[1]"][0].error) == MESSAGE.format(
        key="clear[1]", param="rows", producer="node 'nest[1]'"
    )


def test_an_item_of_a_list_made_by_a_node_names_that_node():
    @dx.task
    def rows_of(n: int) -> list[list[int]]:
        return [[k] for k in range(n)]

    @dx.task
    def pop(row: list[int]) -> int:
        return row.pop()

    with dx.Graph("g") as g:
        pop.map(rows_of(2))
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="loky", max_workers=2, check_mutation=True, fail_fast=False)
    error = info.value.result.trials["pop[1]"][0].error
    assert str(error) == MESSAGE.format(key="pop[1]", param="row", producer="item 1 of node 'rows_of'")
    assert sorted(info.value.failed) == ["pop", "pop[0]", "pop[1]"]


def test_a_task_that_changed_its_argument_and_raised_fails_with_the_change_its_error_the_cause():
    @dx.task(retries=3)
    def half_done(rows: list[int]) -> int:
        rows.append(1)
        raise OSError("disk full")

    with dx.Graph("g") as g:
        half_done(load(1))
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="threads", check_mutation=True)
    (trial,) = info.value.result.trials["half_done"]
    assert isinstance(trial.error, dx.MutationError)
    assert isinstance(trial.error.__cause__, OSError) and str(trial.error.__cause__) == "disk full"


def test_an_async_task_is_checked_once_its_coroutine_ended():
    @dx.task
    async def later(rows: list[int]) -> int:
        await asyncio.sleep(0)
        rows.append(1)
        return len(rows)

    with dx.Graph("g") as g:
        later(load(2))
    for executor in ("serial", "threads"):
        with pytest.raises(dx.RunFailed) as info:
            g.compile().run(executor=executor, check_mutation=True)
        error = info.value.result.trials["later"][0].error
        assert (error.key, error.param, error.producer) == ("later", "rows", "node 'load'")


class Locked:
    """A value that does not pickle (it holds a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[int] = []


def test_values_that_do_not_pickle_are_not_checked():
    @dx.task
    def make() -> Locked:
        return Locked()

    @dx.task
    def add(box: Locked) -> int:
        box.items.append(1)
        return len(box.items)

    with dx.Graph("g") as g:
        g.output(add(make()), name="n")
    assert g.compile().run(executor="threads", check_mutation=True).output == 1


def test_check_mutation_must_be_a_bool():
    with pytest.raises(dx.InputError) as info:
        grow_and_count().run(executor="serial", check_mutation="yes")
    assert "check_mutation must be True or False, got str 'yes'" in str(info.value)


def test_on_dask_the_check_runs_on_the_worker():
    from distributed import Client, LocalCluster

    from dagexec.executors import DaskExecutor

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        with pytest.raises(dx.RunFailed) as info:
            grow_and_count().run(executor=DaskExecutor(client), check_mutation=True)
        (trial,) = info.value.result.trials["grow"]
        assert str(trial.error) == MESSAGE.format(key="grow", param="rows", producer="node 'load'")
        assert trial.worker == next(iter(client.scheduler_info()["workers"]))


def test_the_check_leaves_cache_keys_as_they_are(tmp_path):
    with dx.Graph("g") as g:
        g.output(load.map(g.input("sizes", list[int])), name="lists")
        g.output(count(load(3)), name="n")
    plan = g.compile()
    first = plan.run(inputs={"sizes": [1, 2]}, executor="serial", cache=tmp_path, check_mutation=True)
    assert first.outputs == {"lists": [[0], [0, 1]], "n": 3}
    again = plan.run(inputs={"sizes": [1, 2, 3]}, executor="serial", cache=tmp_path)
    assert {k: s.value for k, s in again.states.items()} == {
        "load": "succeeded",  # the map: its list changed
        "load[0]": "cached",
        "load[1]": "cached",
        "load[2]": "succeeded",
        "load-1": "cached",
        "count": "cached",
    }


CHANGING = """
import dagexec as dx


@dx.task
def load(n: int) -> list[int]:
    return list(range(n))


@dx.task
def grow(rows: list[int]) -> int:
    rows.append(99)
    return len(rows)


with dx.Graph("cli") as graph:
    graph.output(grow(load(3)), name="n")
"""


def run_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    env["COLUMNS"] = "250"
    cmd = [sys.executable, "-m", "dagexec", "run", "changing:graph", "--no-progress", *args]
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=60)


def test_dagexec_run_check_mutation_fails_the_run(tmp_path):
    (tmp_path / "changing.py").write_text(CHANGING)
    plain = run_cli(tmp_path)
    assert (plain.returncode, plain.stdout) == (0, "n = 4\n")
    checked = run_cli(tmp_path, "--check-mutation", "--executor", "loky", "--workers", "1")
    assert (checked.returncode, checked.stdout) == (1, "")
    message = MESSAGE.format(key="grow", param="rows", producer="node 'load'")
    row = next(line for line in checked.stderr.splitlines() if line.startswith("grow "))
    assert row.split(None, 3) == ["grow", "1", "failed", f"MutationError: {message}"]
