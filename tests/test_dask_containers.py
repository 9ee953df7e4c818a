"""Every executor walks the containers the graph builder accepts (lists, tuples, dicts,
sets and namedtuples): a node's value inside a namedtuple reaches its consumer on a real
``distributed.LocalCluster`` as it does on threads, where it stays on the workers too.
"""

from __future__ import annotations

import collections

import pytest
from distributed import Client, LocalCluster

import dagexec as dx
from dagexec.executors import DaskExecutor

Pair = collections.namedtuple("Pair", ["left", "right"])


@dx.task
def make(n: int) -> int:
    return n * 2


@dx.task
def add_pair(pair: Pair) -> int:
    assert type(pair) is Pair  # the namedtuple itself, not a plain tuple
    return pair.left + pair.right


@dx.task
def deep(data: dict[str, list[Pair]]) -> list[int]:
    return [p.left * p.right for p in data["pairs"]]


def plan() -> dx.CompiledGraph:
    with dx.Graph("g") as g:
        m = make(g.input("n", int))
        k = make.options(name="k")(m)
        g.output(add_pair(Pair(m, 1)), name="top")
        g.output(add_pair.options(name="both")(Pair(left=m, right=k)), name="both")
        g.output(deep({"pairs": [Pair(m, 10), Pair(3, k)]}), name="deep")
        g.output(
            add_pair.options(name="home", executor="home")(Pair(k, 2)), name="home"
        )  # runs in the master's threads
    return g.compile()


@pytest.mark.slow
def test_a_namedtuple_holding_node_values_works_on_threads_and_on_dask():
    expected = {"top": 7, "both": 18, "deep": [60, 36], "home": 14}
    assert plan().run(n=3, executor={"default": "threads", "home": "threads"}).outputs == expected
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        executor = {"default": DaskExecutor(client), "home": "threads"}
        result = plan().run(n=3, executor=executor, raise_on_failure=False)
        assert {k: s.value for k, s in result.states.items()} == dict.fromkeys(
            ("make", "k", "add_pair", "both", "deep", "home"), "succeeded"
        )
        assert result.outputs == expected
