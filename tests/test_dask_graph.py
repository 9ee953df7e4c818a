"""The plan sent to dask at once (DESIGN §16): graph messages and what comes back.

A run on ``DaskExecutor`` submits a trial's dependents before the trial ends, with its
dask future in their arguments (``dagexec/run/ahead.py``), and sends what one pass of
the loop submitted as one graph: the scheduler, not the master, starts a dependent
when its inputs exist.  A scheduler plugin counts the ``update_graph`` messages the
run's client sends; a spy on the client's ``gather`` sees every value that comes to
the master.  The cluster and its client are conftest's (one of each per module).
"""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any

from dask_helpers import node_of

import dagexec as dx
from dagexec import State
from dagexec.executors import DaskExecutor


def chain_end(plan: dx.CompiledGraph, key: str) -> str:
    """The last node of the linear chain ``key`` heads: the node whose value is the
    chain's dask task's."""
    links = plan._chain_links()
    i = plan.keys.index(key)
    while links[i] >= 0:
        i = links[i]
    return plan.keys[i]


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(*xs: int) -> int:
    return sum(xs)


def layered(layers: int, width: int, seed: int = 1) -> tuple[dx.Graph, dict[str, int]]:
    """``layers`` x ``width`` nodes, each past the first adding 1-3 of the layer before;
    with the value each node has, by key."""
    rng = random.Random(seed)
    values: dict[str, int] = {}
    with dx.Graph("layered") as g:
        prev = []
        for k in range(width):
            node = inc(k)
            values[node.key] = k + 1
            prev.append(node)
        for _ in range(1, layers):
            cur = []
            for _ in range(width):
                picks = rng.sample(range(width), rng.randint(1, 3))
                node = add(*[prev[p] for p in picks])
                values[node.key] = sum(values[prev[p].key] for p in picks)
                cur.append(node)
            prev = cur
    return g, values


def test_a_plan_of_200_nodes_goes_to_the_cluster_in_one_graph(client, graphs, gathered):
    g, values = layered(10, 20)
    plan = g.compile()
    assert len(plan) == 200
    result = plan.run(executor=DaskExecutor(client))
    assert result.ok
    # one message, with every trial's task (a chain of single readers is one task,
    # siblings of one level a few: DESIGN §16)
    assert len(graphs) == 1 and graphs[0] <= 200
    sinks = {name: values[name] for name in plan.outputs}  # no output marked: the sinks, by key
    assert len(sinks) > 10
    assert result.outputs == sinks
    # only the outputs came to the master, each task once (a chain's value is its task's,
    # keyed by its first link; a group's holds only outputs, keyed by its first member)
    assert len(gathered) == len(set(gathered))
    assert {chain_end(plan, node_of(k)) for k in gathered} <= set(sinks)
    assert all(t.worker.startswith("tcp://127.0.0.1:") for ts in result.trials.values() for t in ts)
    assert {t.attempt for ts in result.trials.values() for t in ts} == {1}


@dx.task(retries=1)
def flaky(path: str, x: int) -> int:
    import os

    if not os.path.exists(path):  # the first attempt fails (each worker is a process)
        open(path, "w").close()
        raise RuntimeError("first attempt")
    return x


def test_a_retry_sends_one_more_graph_with_what_waited_for_it(client, graphs, gathered, tmp_path):
    with dx.Graph("chain") as g:
        a = inc(1)
        b = flaky(str(tmp_path / "failed"), a)
        g.output(inc(inc(b)), name="out")
        g.output(inc(a), name="beside")
    result = g.compile().run(executor=DaskExecutor(client))
    assert result.outputs == {"out": 4, "beside": 3}
    assert [(t.attempt, t.state) for t in result.trials["flaky"]] == [(1, State.FAILED), (2, State.SUCCEEDED)]
    assert [len(result.trials[k]) for k in ("inc", "inc-1", "inc-2", "inc-3")] == [1, 1, 1, 1]
    # the run's graph (inc, the chain flaky-inc-1-inc-2 as one task, inc-3), then the
    # retried chain; its value, out's, is its task's (keyed by its first member)
    assert graphs == [3, 1]
    assert sorted(node_of(k) for k in gathered) == ["flaky", "inc-3"]


@dx.task
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


def test_what_was_sent_ahead_of_a_failed_node_never_runs(client, graphs):
    with dx.Graph("failing") as g:
        g.output(inc(inc(boom(inc(1)))), name="out")
        g.output(inc(10), name="other")
    result = g.compile().run(executor=DaskExecutor(client), fail_fast=False, raise_on_failure=False)
    assert result.states == {
        "inc": State.SUCCEEDED,
        "boom": State.FAILED,
        "inc-1": State.UPSTREAM_FAILED,
        "inc-2": State.UPSTREAM_FAILED,
        "inc-3": State.SUCCEEDED,
    }
    assert result.trials["inc-1"] == [] and result.trials["inc-2"] == []
    assert result.outputs == {"other": 11}
    assert graphs == [2]  # the chain inc-boom-inc-1-inc-2 as one task, and inc-3


@dx.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@dx.task
def positive(x: int) -> bool:
    return x > 0


@dx.task
def total(xs: list[int]) -> int:
    return sum(xs)


def test_a_map_sends_one_more_graph_once_its_items_are_known(client, graphs):
    with dx.Graph("mapped") as g:
        items = numbers(inc(3))  # [0, 1, 2, 3], known when numbers has run
        g.output(total(inc.map(items)), name="out")
        g.output(inc(5), name="beside")
    result = g.compile().run(executor=DaskExecutor(client))
    assert result.outputs == {"out": 10, "beside": 6}
    # what waits for no map (the chain inc-numbers as one task, and inc-2); the 4
    # items, once numbers has run; what reads the map
    assert graphs == [2, 4, 1]


def test_a_cond_sends_its_taken_branch_once_its_predicate_is_decided(client, graphs):
    with dx.Graph("branching") as g:
        x = g.input("x")
        chosen = dx.cond(positive(inc(x)), then=lambda: inc(inc(x)), otherwise=lambda: add(x, 100))
        g.output(chosen, name="out")
    result = g.compile().run({"x": 1}, executor=DaskExecutor(client))
    assert result.output == 3
    assert result.states["add"] is State.SKIPPED
    # the predicate with what it reads (a chain: one task); the taken branch, once it
    # is decided (each of its nodes waits for the predicate too: no chain); the cond,
    # which waits for the branch not taken too (skipped: no promise to wait on)
    assert graphs == [1, 2, 1]


def test_a_chain_runs_as_one_dask_task_with_each_trial_recorded(client, graphs, gathered):
    with dx.Graph("chain") as g:
        node = inc(0)
        for _ in range(9):
            node = inc(node)
        g.output(node, name="out")
    plan = g.compile()
    result = plan.run(executor=DaskExecutor(client))
    assert result.output == 10
    assert graphs == [1]  # one message, one task
    assert [node_of(k) for k in gathered] == ["inc"]  # the task's value: the last link's
    trials = [result.trials[key] for key in plan.keys]
    assert [[(t.attempt, t.state) for t in ts] for ts in trials] == [[(1, State.SUCCEEDED)]] * 10
    assert len({ts[0].worker for ts in trials}) == 1
    assert all(a[0].end <= b[0].start for a, b in pairwise(trials))


def test_a_chain_with_a_value_kept_midway_goes_link_by_link(client, graphs):
    with dx.Graph("chain") as g:
        mid = inc(inc(0))
        g.output(mid, name="mid")
        g.output(inc(inc(mid)), name="out")
    result = g.compile().run(executor=DaskExecutor(client))
    assert result.outputs == {"mid": 2, "out": 4}
    # mid's value must come back: the chain goes link by link, all sent ahead at once
    assert graphs == [4]


def test_a_link_that_may_be_retried_heads_a_chain_of_its_own(client, graphs, tmp_path):
    with dx.Graph("chain") as g:
        g.output(inc(inc(flaky(str(tmp_path / "failed"), inc(inc(0))))), name="out")
    result = g.compile().run(executor=DaskExecutor(client))
    assert result.output == 4
    assert [(t.attempt, t.state) for t in result.trials["flaky"]] == [(1, State.FAILED), (2, State.SUCCEEDED)]
    assert all(len(result.trials[k]) == 1 for k in ("inc", "inc-1", "inc-2", "inc-3"))
    # inc-inc-1 and flaky-inc-2-inc-3 (sent ahead of it), then the retried chain
    assert graphs == [2, 1]


class Events(DaskExecutor):
    """Records the trial events that reach the master, by kind."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.started: list[str] = []  # node keys
        self.ended = 0

    def _on_trial_event(self, msg: Any) -> bool:
        mine = super()._on_trial_event(msg)
        if mine and "s" in msg:
            self.started.append(node_of(msg["k"]))
        elif mine:
            self.ended += 1
        return mine


@dx.task
def nap(x: int) -> int:
    import time

    time.sleep(0.2)
    return x


@dx.task(timeout=30)
def timed(x: int) -> int:
    return x


def test_a_tiny_task_sends_one_message_and_a_longer_one_says_when_it_started(client):
    with dx.Graph("messages") as g:
        g.output(add(*[inc(k) for k in range(10)]), name="tiny")
        g.output(nap(1), name="long")
        g.output(timed(2), name="timed")
    ex = Events(client)
    result = g.compile().run(executor=ex)
    assert result.outputs == {"tiny": 55, "long": 1, "timed": 2}
    # 13 trials end in 7 tasks: the ten incs, siblings, 3 to a task (10 on 2 worker
    # threads, 2 tasks each: ceil(10 / 4)); nap (an output: never with what the master
    # does not need); timed (a timeout: alone); add.  nap ran 200 ms (told 10 ms in),
    # timed has a timeout (told at once); of the 5 tiny ones, only one whose thread
    # lost the core for 10 ms would say so
    assert ex.ended == 7
    assert {"nap", "timed"} <= set(ex.started) and len(ex.started) <= 4, ex.started
