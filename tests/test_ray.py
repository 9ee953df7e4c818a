"""``RayExecutor`` on a local Ray started for this module (``ray_cluster`` in conftest):
what is Ray's own beyond the conformance suite (tests/test_conformance.py runs that on
Ray too). Every case here is slow: the module's Ray takes seconds to start."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import dagexec as dx
from dagexec import State
from dagexec.executors import RayExecutor
from dagexec.executors.ray import ray_options

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]

GUARD = 30.0  # seconds before a wait is a failure: a guard against a hang, never a timing assertion


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def numbers() -> list[int]:
    return [1, 2, 3]


@dx.task
def big(n: int) -> bytes:
    return b"x" * n


@dx.task
def size(data: bytes) -> int:
    return len(data)


def test_values_stay_in_the_object_store_and_only_outputs_come_back():
    ex = RayExecutor()
    fetched: list[int] = []
    fetch = ex.fetch

    def counting(remotes: list[dx.executors.Remote]) -> list[Any]:
        fetched.append(len(remotes))
        return fetch(remotes)

    ex.fetch = counting  # type: ignore[method-assign]
    with dx.Graph("g") as g:
        g.output(size(big(5_000_000)), name="n")
        g.output(inc.map(numbers()), name="each")
    result = g.compile().run(executor=ex)
    assert result.outputs == {"n": 5_000_000, "each": [2, 3, 4]}
    # the 5 MB value went from one Ray task to the next; the master fetched the list a
    # map expands over (once) and the outputs: n, and the three items of each
    assert sorted(fetched) == [1, 1, 3]


def test_task_resources_become_ray_resources():
    assert ray_options({"cpu": 2, "GPU": 1, "memory": 1e9, "special": 1}) == {
        "num_returns": 2,
        "max_retries": 0,
        "retry_exceptions": False,
        "num_cpus": 2,
        "num_gpus": 1,
        "memory": 1_000_000_000,
        "resources": {"special": 1},
    }
    assert ray_options(None) == {"num_returns": 2, "max_retries": 0, "retry_exceptions": False}


@dx.task(resources={"special": 1})
def exclusive(path: str, k: int) -> tuple[float, float]:
    start = time.time()
    time.sleep(0.3)
    return start, time.time()


@dx.task
def both(a: Any, b: Any) -> list[Any]:
    return [a, b]


def test_a_custom_resource_lets_one_task_hold_it_at_a_time(tmp_path):
    # the module's Ray has one "special": the two tasks that each ask for it never overlap
    with dx.Graph("g") as g:
        g.output(both(exclusive(str(tmp_path), 0), exclusive(str(tmp_path), 1)), name="spans")
    (a, b) = sorted(g.compile().run(executor=RayExecutor()).output)
    assert a[1] <= b[0]


@dx.task(timeout=2)
def hang(path: str) -> int:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)
    return 1


def test_a_timeout_stops_the_task_and_its_worker(tmp_path):
    pid_file = tmp_path / "pid"
    with dx.Graph("g") as g:
        g.output(hang(str(pid_file)), name="v")
        g.output(inc(1), name="other")
    result = g.compile().run(executor=RayExecutor(), raise_on_failure=False)
    assert result.outputs == {"other": 2}
    (trial,) = result.trials["hang"]
    assert trial.state is State.TIMED_OUT and type(trial.error) is dx.TaskTimeout
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + GUARD
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"the worker {pid} running hang() still runs"
        time.sleep(0.05)


def test_an_unpicklable_task_is_refused_before_anything_runs(tmp_path):
    lock = threading.Lock()
    marker = tmp_path / "ran"

    @dx.task
    def first() -> int:
        marker.touch()
        return 1

    @dx.task
    def locked(x: int) -> int:
        with lock:
            return x

    with dx.Graph("g") as g:
        g.output(locked(first()), name="v")
    with pytest.raises(dx.GraphError, match=r"node 'locked': .*cannot be pickled"):
        g.compile().run(executor=RayExecutor())
    assert not marker.exists()


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not this one")


@dx.task
def make_unpicklable() -> Any:
    return Unpicklable()


def test_a_value_that_does_not_pickle_fails_its_node_by_name():
    with dx.Graph("g") as g:
        g.output(make_unpicklable(), name="v")
    result = g.compile().run(executor=RayExecutor(), raise_on_failure=False)
    (trial,) = result.trials["make_unpicklable"]
    assert trial.state is State.FAILED
    assert str(trial.error) == (
        "node 'make_unpicklable': its result of type test_ray.Unpicklable cannot be pickled: not this one"
    )


MODULE = textwrap.dedent(
    """
    import importlib.util

    import dagexec as dx


    def helper(x):
        return x * 10


    @dx.task
    def on_worker(x: int) -> dict:
        return {"value": helper(x), "importable_here": importlib.util.find_spec("userland") is not None}
    """
)


def test_the_users_module_travels_by_value(tmp_path, monkeypatch):
    (tmp_path / "userland.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))  # the master finds it; Ray's workers do not
    import userland

    with dx.Graph("g") as g:
        g.output(userland.on_worker(4), name="v")
    assert g.compile().run(executor=RayExecutor()).output == {"value": 40, "importable_here": False}
    sys.modules.pop("userland", None)


def test_executor_ray_by_name_joins_the_running_ray_and_says_how_to_install_it(monkeypatch):
    with dx.Graph("g") as g:
        g.output(inc(1), name="v")
    result = g.compile().run(executor="ray")
    assert result.output == 2 and result.trials["inc"][0].worker.startswith("ray:pid:")
    monkeypatch.setitem(sys.modules, "ray", None)  # as where it is not installed
    with pytest.raises(ValueError, match=r"executor 'ray' needs the ray package .*pip install 'dagexec\[ray\]'"):
        g.compile().run(executor="ray")


def test_a_saved_plan_runs_on_ray_from_the_command_line(tmp_path, ray_cluster):
    import subprocess

    source = tmp_path / "src"
    source.mkdir()
    (source / "steps.py").write_text(
        "import dagexec as dx\n\n@dx.task\ndef square(x: int) -> int:\n    return x * x\n\n"
        "with dx.Graph('sq') as g:\n    g.output(square(g.input('n', int)), name='v')\nplan = g.compile()\n"
    )
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, "PYTHONPATH": str(source)}
    compiled = subprocess.run(
        [sys.executable, "-m", "dagexec", "compile", "steps:plan", "-o", str(tmp_path / "sq.dagx")],
        cwd=source, env=env, capture_output=True, text=True, timeout=120,
    )
    assert compiled.returncode == 0, compiled.stderr
    other = tmp_path / "elsewhere"
    other.mkdir()
    ran = subprocess.run(
        [sys.executable, "-m", "dagexec", "run", str(tmp_path / "sq.dagx"), "-i", "n=7", "--executor", "ray",
         "--json", "out.json"],
        cwd=other, env={**env, "PYTHONPATH": str(source)}, capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads((other / "out.json").read_text())
    assert report["outputs"] == {"v": 49}


def test_starting_ray_leaves_the_signal_handlers_of_a_run_as_they_were():
    import signal

    # the module's Ray was started by RayExecutor, as executor="ray" starts it; ray.init
    # alone installs a SIGTERM handler of its own, and a run's SIGTERM would then not
    # stop it as Ctrl-C does (docs/running.md)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


class Counting(RayExecutor):
    """Counts what the engine submits: trials alone, and chains (their sizes)."""

    def __init__(self) -> None:
        super().__init__()
        self.alone = 0
        self.chains: list[int] = []

    def submit(self, call: Any, post: Any) -> Any:
        self.alone += 1
        return super().submit(call, post)

    def submit_batch(self, batch: Any, post: Any) -> Any:
        self.chains.append(len(batch.calls))
        return super().submit_batch(batch, post)


@dx.task
def shaky(x: int, marker: str) -> int:
    if x == 3:
        if Path(marker).read_text() == "crash":
            os._exit(1)
        raise ValueError("three")
    return x


def test_a_chain_goes_at_once_and_each_member_keeps_its_own_trial():
    with dx.Graph("g") as g:
        x = inc(0)
        for _ in range(4):
            x = inc(x)
        g.output(x, name="v")
    ex = Counting()
    result = g.compile().run(executor=ex)
    assert result.output == 5
    assert (ex.alone, ex.chains) == (0, [5])
    assert {k: [(t.attempt, t.state) for t in ts] for k, ts in result.trials.items()} == {
        k: [(1, State.SUCCEEDED)] for k in ("inc", "inc-1", "inc-2", "inc-3", "inc-4")
    }
    assert all(t.worker.startswith("ray:pid:") for ts in result.trials.values() for t in ts)


@pytest.mark.parametrize("mode", ["fail", "crash"])
def test_a_chain_broken_in_the_middle_charges_the_member_that_broke_it(tmp_path, mode):
    marker = tmp_path / "mode"
    marker.write_text(mode)
    with dx.Graph("g") as g:
        x = inc(1)  # 2
        x = inc(x)  # 3
        x = shaky(x, str(marker))  # fails (or its worker dies) on 3
        g.output(inc(inc(x)), name="v")
    ex = Counting()
    result = g.compile().run(executor=ex, raise_on_failure=False)
    assert ex.chains == [5]
    assert dict(result.states) == {
        "inc": State.SUCCEEDED,
        "inc-1": State.SUCCEEDED,
        "shaky": State.FAILED,
        "inc-2": State.UPSTREAM_FAILED,
        "inc-3": State.UPSTREAM_FAILED,
    }
    (trial,) = result.trials["shaky"]
    if mode == "crash":
        assert trial.state is State.CRASHED and type(trial.error) is dx.WorkerCrashed
    else:
        assert trial.state is State.FAILED and str(trial.error) == "three"
    assert [t.state for t in result.trials["inc-1"]] == [State.SUCCEEDED]
    assert result.trials["inc-2"] == []


@dx.task
def produce(n: int) -> Iterator[int]:
    yield from range(n)


@dx.task
def added(items: Iterator[int]) -> int:
    return sum(items)


def test_a_stream_and_a_map_over_it_run_on_ray():
    # a stream's pipe goes one by one on Ray: the producer gives its list, its readers
    # an iterator over it, and the map an item each
    with dx.Graph("g") as g:
        made = produce(5)
        g.output(added(made), name="sum")
        g.output(inc.map(made), name="each")
    result = g.compile().run(executor=RayExecutor())
    assert result.outputs == {"sum": 10, "each": [1, 2, 3, 4, 5]}
