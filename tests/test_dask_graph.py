"""The plan sent to dask at once (DESIGN §16): graph messages and what comes back.

A run on ``DaskExecutor`` submits a trial's dependents before the trial ends, with its
dask future in their arguments (``dagexec/run/ahead.py``), and sends what one pass of
the loop submitted as one graph: the scheduler, not the master, starts a dependent
when its inputs exist.  A scheduler plugin counts the ``update_graph`` messages the
run's client sends; a spy on the client's ``gather`` sees every value that comes to
the master.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

import dagexec as dx
from dagexec import State
from dagexec.executors import DaskExecutor


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with Client(cluster, set_as_default=False) as client:
        yield client


class GraphCount(SchedulerPlugin):
    """Counts the update_graph messages of one client, and the keys each asks for (its
    tasks; ``tasks`` would count the earlier graphs' keys they read as well)."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.graphs: list[int] = []

    def update_graph(self, scheduler: Any, *, client: str, keys: set[Any], **kwargs: Any) -> None:
        if client == self.client_id:
            self.graphs.append(len(keys))


@pytest.fixture
def graphs(cluster, client):
    plugin = GraphCount(client.id)
    cluster.scheduler.add_plugin(plugin, name="dagexec-graph-count")
    yield plugin.graphs
    cluster.scheduler.remove_plugin(name="dagexec-graph-count")


@pytest.fixture
def gathered(client, monkeypatch):
    """The keys of every value the client gathers."""
    keys: list[str] = []
    gather = client.gather

    def spy(futures: Any, *args: Any, **kwargs: Any) -> Any:
        keys.extend(f.key for f in futures)
        return gather(futures, *args, **kwargs)

    monkeypatch.setattr(client, "gather", spy)
    return keys


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
    assert graphs == [200]  # one message: every trial's task
    sinks = {name: values[name] for name in plan.outputs}  # no output marked: the sinks, by key
    assert len(sinks) > 10
    assert result.outputs == sinks
    # only the outputs came to the master, each once, in one gather
    assert sorted(k.rsplit("-a1-", 1)[0] for k in gathered) == sorted(sinks)
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
    # the run's graph, then the retried trial with the two that wait for it
    assert graphs == [5, 3]
    assert sorted(k.rsplit("-a", 1)[0] for k in gathered) == ["inc-2", "inc-3"]


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
    assert graphs == [5]
