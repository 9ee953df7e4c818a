"""Siblings sent to dask several to a task (DESIGN §16, ``dagexec/run/siblings.py``).

Nodes of one level, ready in the same pass and alike (resources, whether the master
needs their values), go as groups: about two per worker thread, so on conftest's
cluster (2 workers of 1 thread) ``n`` siblings go ``ceil(n / 4)`` to a task.  Each
member keeps its own trial; a failure, a retry, a lost input, a value that cannot
pickle and a dying worker touch only the member they concern.  A scheduler plugin
counts the keys of each graph the run's client sends; a spy on ``gather`` sees what
comes to the master; marks in a file count how often a function really ran.
"""

from __future__ import annotations

import os
import threading
import time
from itertools import pairwise
from typing import Any

from dask_helpers import node_of

import dagexec as dx
from dagexec import State
from dagexec.executors import DaskExecutor

GUARD = 30.0  # seconds before a wait is a failure


def marks(path: Any) -> list[str]:
    return open(path).read().split() if os.path.exists(path) else []


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(*xs: int) -> int:
    return sum(xs)


@dx.task
def mark(path: str, name: str, x: int) -> int:
    """Append ``name`` to ``path`` (the marks of every process), return ``x + 1``."""
    with open(path, "a") as f:
        f.write(name + "\n")
    return x + 1


@dx.task(retries=1)
def flaky(path: str, x: int) -> int:
    if not os.path.exists(path):  # the first attempt fails (each worker is a process)
        open(path, "w").close()
        raise RuntimeError("first attempt")
    return x + 100


@dx.task
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@dx.task
def a_lock(x: int) -> Any:
    return threading.Lock()


@dx.task(retries=1)
def die_once(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(0.5)  # mid-member: its "started" event, naming it, has reached the master
        os._exit(1)
    return "survived"


def trial_log(result: dx.RunResult, key: str) -> list[tuple[int, State]]:
    return [(t.attempt, t.state) for t in result.trials[key]]


def test_siblings_go_several_to_a_dask_task_each_with_its_own_record(client, graphs, gathered):
    with dx.Graph("fan") as g:
        root = inc(0)
        kids = [inc(root) for _ in range(40)]
        g.output(add(*kids), name="out")
    plan = g.compile()
    result = plan.run(executor=DaskExecutor(client))
    assert result.output == 80
    # one graph: the root, the 40 siblings 10 to a task (ceil(40 / (2 x 2 threads))), the sum
    assert graphs == [1 + 4 + 1]
    assert [node_of(k) for k in gathered] == ["add"]  # no sibling's value came to the master
    trials = [result.trials[k.key] for k in kids]
    assert all([(t.attempt, t.state) for t in ts] == [(1, State.SUCCEEDED)] for ts in trials)
    for k in range(0, 40, 10):  # a group: plan order, one worker, one member after the other
        group = [ts[0] for ts in trials[k : k + 10]]
        assert len({t.worker for t in group}) == 1 and group[0].worker.startswith("tcp://127.0.0.1:")
        assert all(a.end <= b.start for a, b in pairwise(group))


def test_a_failed_sibling_is_retried_alone_and_the_others_run_once(client, graphs, tmp_path):
    log = str(tmp_path / "marks")
    with dx.Graph("fan") as g:
        root = inc(0)
        kids = [mark(log, f"kid{k}", root) for k in range(11)]
        kids.insert(5, flaky(str(tmp_path / "failed"), root))
        g.output(add(*kids), name="out")
    result = g.compile().run(executor=DaskExecutor(client))
    assert result.output == 11 * 2 + 101
    assert trial_log(result, "flaky") == [(1, State.FAILED), (2, State.SUCCEEDED)]
    assert sorted(marks(log)) == sorted(f"kid{k}" for k in range(11))  # each ran once
    # the root, 12 siblings 3 to a task, the sum; then flaky again, alone, with the sum
    # that waited for it (the root's value read from the cluster, not run again)
    assert graphs == [1 + 4 + 1, 2]
    assert trial_log(result, "inc") == [(1, State.SUCCEEDED)]


def test_a_sibling_whose_input_failed_is_left_out_and_its_group_runs_on(client, tmp_path):
    log = str(tmp_path / "marks")
    with dx.Graph("g") as g:
        good, bad = inc(1), boom(1)
        kids = [mark(log, f"kid{k}", bad if k == 1 else good) for k in range(8)]
        for k, kid in enumerate(kids):  # 2 to a task: the first reads good, the second bad
            g.output(kid, name=f"kid{k}")
    result = g.compile().run(executor=DaskExecutor(client), fail_fast=False, raise_on_failure=False)
    assert result.states["boom"] is State.FAILED
    assert result.states[kids[1].key] is State.UPSTREAM_FAILED and result.trials[kids[1].key] == []
    assert result.outputs == {f"kid{k}": 3 for k in range(8) if k != 1}
    assert all(trial_log(result, kid.key) == [(1, State.SUCCEEDED)] for kid in kids if kid is not kids[1])
    assert sorted(marks(log)) == sorted(f"kid{k}" for k in range(8) if k != 1)


def test_a_value_that_cannot_pickle_fails_only_its_sibling(client):
    with dx.Graph("g") as g:
        g.output(a_lock(0), name="lock")
        for k in range(7):
            g.output(inc(k), name=f"n{k}")
    result = g.compile().run(executor=DaskExecutor(client), fail_fast=False, raise_on_failure=False)
    assert result.states["a_lock"] is State.FAILED
    assert str(result.trials["a_lock"][0].error).startswith(
        "node 'a_lock': its result of type _thread.lock cannot be pickled: "
    )
    assert result.outputs == {f"n{k}": k + 1 for k in range(7)}


def test_siblings_the_master_needs_never_share_a_task_with_others(client, graphs, gathered):
    with dx.Graph("g") as g:
        root = inc(0)
        kids = [inc(root) for _ in range(12)]
        g.output(kids[3], name="one")  # an output, and read by the sum
        g.output(add(*kids), name="out")
    result = g.compile().run(executor=DaskExecutor(client))
    assert result.outputs == {"one": 2, "out": 24}
    # the root; the 11 siblings only the sum reads, 3 to a task; the output alone; the sum
    assert graphs == [1 + 4 + 1 + 1]
    assert sorted(node_of(k) for k in gathered) == ["add", "inc-4"]


def test_a_worker_dying_under_a_group_charges_the_member_that_was_running(client, tmp_path):
    n = len(client.nthreads())
    with dx.Graph("g") as g:
        g.output(inc(0), name="first")
        g.output(die_once(str(tmp_path / "died")), name="dies")
        for k in range(6):
            g.output(inc(k + 1), name=f"n{k}")
    result = g.compile().run(executor=DaskExecutor(client))  # 8 siblings, 2 to a task
    assert result.outputs == {"first": 1, "dies": "survived", **{f"n{k}": k + 2 for k in range(6)}}
    assert trial_log(result, "die_once") == [(1, State.CRASHED), (2, State.SUCCEEDED)]
    crashed = result.trials["die_once"][0]
    assert str(crashed.error) == f"node 'die_once': its dask worker {crashed.worker} died while running attempt 1"
    # inc ran before it in the same task: its value was lost with the worker, and it
    # ran again without using an attempt
    assert trial_log(result, "inc") == [(1, State.SUCCEEDED)]
    limit = time.monotonic() + GUARD
    while len(client.nthreads()) < n and time.monotonic() < limit:  # the nanny restarts it
        time.sleep(0.05)
    assert len(client.nthreads()) == n


@dx.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@dx.task
def total(xs: list[int]) -> int:
    return sum(xs)


def test_a_chunk_of_map_items_is_one_dask_task(client, graphs):
    with dx.Graph("mapped") as g:
        g.output(total(inc.options(chunksize=4).map(numbers(10))), name="out")
    result = g.compile().run(executor=DaskExecutor(client))
    assert result.output == sum(range(1, 11))
    assert [(t.attempt, t.state) for t in result.trials["inc[9]"]] == [(1, State.SUCCEEDED)]
    assert graphs == [1, 3, 1]  # numbers; the 10 items 4 to a task; total


class FakeWorker:
    """Records what the reports of a worker process send (``log_event``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def log_event(self, topic: str, msg: Any) -> None:
        self.sent.append((topic, msg))


def wait_for(predicate: Any) -> None:
    limit = time.monotonic() + GUARD
    while not predicate():
        assert time.monotonic() < limit, "waited too long"
        time.sleep(0.005)


def test_a_workers_successes_go_several_to_an_event_and_a_failure_at_once():
    from dagexec.executors.dask.worker import _Reports

    reports, worker = _Reports(), FakeWorker()
    with reports.lock:  # three successes before the reporting thread looks
        for k in range(3):
            reports.succeeded(worker, "t", {"k": f"n{k}", "t": [0.0, 1.0], "w": "w"})
        reports.batch_ended(worker, "t", {"k": "g", "b": [[1, 1, 0.0, 1.0, ""], [2, 1, b"failed"]], "w": "w"})
        assert worker.sent == [("t", {"k": "g", "b": [[1, 1, 0.0, 1.0, ""], [2, 1, b"failed"]], "w": "w"})]
    wait_for(lambda: len(worker.sent) == 2)
    assert worker.sent[1] == ("t", {"r": [{"k": f"n{k}", "t": [0.0, 1.0], "w": "w"} for k in range(3)]})
    # a task running past 10 ms says so (and, for a batch, which member runs)
    reports.began(worker, "t", "long")
    reports.member("long", 2)
    wait_for(lambda: len(worker.sent) == 3)
    assert worker.sent[2] == ("t", {"r": [{"k": "long", "s": 1, "m": 2}]})
    reports.ended("long")
    # one with a timeout says so at once
    reports.began(worker, "t", "timed", now=True)
    assert worker.sent[3] == ("t", {"k": "timed", "s": 1})
    reports.ended("timed")
    time.sleep(0.05)
    assert len(worker.sent) == 4
