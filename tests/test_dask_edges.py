"""``DaskExecutor`` at its edges, on a real ``distributed.LocalCluster`` (one for the
module): it walks the containers the graph builder accepts (lists, tuples, dicts, sets
and namedtuples), so a node's value inside a namedtuple reaches its consumer as it does
on threads; and a client closed during a run makes the trials it refuses ``crashed``,
never an exception out of ``run`` (DESIGN §12, executor boundary).
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


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.mark.slow
def test_a_namedtuple_holding_node_values_works_on_threads_and_on_dask(cluster):
    expected = {"top": 7, "both": 18, "deep": [60, 36], "home": 14}
    assert plan().run(n=3, executor={"default": "threads", "home": "threads"}).outputs == expected
    with Client(cluster, set_as_default=False) as client:
        executor = {"default": DaskExecutor(client), "home": "threads"}
        result = plan().run(n=3, executor=executor, raise_on_failure=False)
    assert {k: s.value for k, s in result.states.items()} == dict.fromkeys(
        ("make", "k", "add_pair", "both", "deep", "home"), "succeeded"
    )
    assert result.outputs == expected


class CloseAfter:
    """A callback that closes the client once the node ``key`` has ended."""

    def __init__(self, client: Client, key: str) -> None:
        self.client = client
        self.key = key

    def on_trial_end(self, trial: dx.Trial) -> None:
        if trial.key == self.key:
            self.client.close()


@pytest.mark.slow
def test_a_client_closed_during_a_run_crashes_the_trials_it_refuses(cluster):
    with dx.Graph("g") as g:
        g.output(add_pair.options(retries=1)(Pair(make(g.input("n", int)), 1)), name="v")
    client = Client(cluster, set_as_default=False)
    try:
        result = g.compile().run(n=3, executor=DaskExecutor(client), callbacks=[CloseAfter(client, "make")],
                                 raise_on_failure=False)  # fmt: skip
    finally:
        client.close()
    assert {k: s.value for k, s in result.states.items()} == {"make": "succeeded", "add_pair": "failed"}
    trials = result.trials["add_pair"]
    assert [(t.attempt, t.state.value) for t in trials] == [(1, "crashed"), (2, "crashed")]
    assert all(type(t.error) is dx.WorkerCrashed for t in trials)
    assert str(trials[0].error).startswith(
        "node 'add_pair': the dask client refused the trial: ClosedClientError: "
    )
