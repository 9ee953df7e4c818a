"""``task.map(stream)`` (DESIGN §13): one trial per item, started as items arrive.

On every executor the pipe sends its items to the master while the producer runs
(``Batch.outlets``); the tests prove "as they arrive" with a producer that waits for a
file only an item's trial writes, never with sleeps.  Where the cache writes the map,
it gets the complete list once its producer has finished (docs/streams.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec.executors import ThreadExecutor

AHEAD: list[int] = []  # per item the producer made: items made minus item trials ended
ENDED: list[int] = []


def wait_for(path: str) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError("no item's trial ran while the producer ran")
        time.sleep(0.005)


@dx.task
def waits_for_an_item(n: int, folder: str) -> Iterator[int]:
    """Yields 0 .. n-1, but item 3 only once item 0's trial has run."""
    for i in range(n):
        if i == 3:
            wait_for(os.path.join(folder, "item-0-ran"))
        yield i


@dx.task
def triple_marks(x: int, folder: str) -> int:
    if x == 0:
        open(os.path.join(folder, "item-0-ran"), "w").close()
    return 3 * x


@dx.task
def triple(x: int) -> int:
    return 3 * x


@dx.task(retries=2)
def dies_after_yielding(folder: str) -> Iterator[int]:
    """Yields 3 items, then its worker process dies once item 0's trial has run."""
    yield from range(3)
    wait_for(os.path.join(folder, "item-0-ran"))
    os._exit(1)


@dx.task(buffer=4)
def counted(n: int) -> Iterator[int]:
    AHEAD.clear()
    ENDED.clear()
    for i in range(n):
        AHEAD.append(i - len(ENDED))
        yield i


@dx.task
def slow_square(x: int) -> int:
    threading.Event().wait(0.002)  # slower than the producer, so the buffer fills
    ENDED.append(x)
    return x * x


@dx.task
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@dx.task
def breaks_after(n: int) -> Iterator[int]:
    yield from range(n)
    raise ValueError(f"broke after {n}")


@dx.task
def fails_at(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x


@dx.task
def endless(folder: str) -> Iterator[int]:
    try:
        i = 0
        while True:
            yield i
            i += 1
    finally:
        open(os.path.join(folder, "closed"), "w").close()


@dx.task
def running_total(xs: Iterator[int]) -> Iterator[int]:
    total = 0
    for x in xs:
        total += x
        yield total


@pytest.fixture
def live(every_executor: Any) -> Any:
    return every_executor


def test_an_items_trial_runs_before_the_producer_has_finished(live, tmp_path):
    with dx.Graph("g") as g:
        g.output(triple_marks.map(waits_for_an_item(6, str(tmp_path)), folder=str(tmp_path)), name="out")
    result = g.compile().run(executor=live)
    assert result.output == [0, 3, 6, 9, 12, 15]
    assert result.states == {
        "waits_for_an_item": State.SUCCEEDED,
        "triple_marks": State.SUCCEEDED,
        **{f"triple_marks[{k}]": State.SUCCEEDED for k in range(6)},
    }
    assert [t.items for t in result.trials["waits_for_an_item"]] == [6]
    assert [t.attempt for k in range(6) for t in result.trials[f"triple_marks[{k}]"]] == [1] * 6


@pytest.mark.parametrize("ex", ["loky", "dask"])
def test_a_worker_dying_after_its_items_left_fails_the_producer_without_a_retry(tmp_path, ex, request):
    executor: Any = ex
    if ex == "dask":
        from dagexec.executors import DaskExecutor

        executor = DaskExecutor(request.getfixturevalue("client"))
    with dx.Graph("g") as g:
        triple_marks.map(dies_after_yielding(str(tmp_path)), folder=str(tmp_path))
    result = g.compile().run(executor=executor, fail_fast=False, raise_on_failure=False)
    # item 0 left at once; items 1 and 2 left only if the master took item 0 before
    # the producer went on to die
    sent = sorted(k for k in result.states if k.startswith("triple_marks["))
    assert sent == [f"triple_marks[{k}]" for k in range(len(sent))] and len(sent) >= 1
    assert result.states == {
        "dies_after_yielding": State.FAILED,
        "triple_marks": State.UPSTREAM_FAILED,
        **dict.fromkeys(sent, State.SUCCEEDED),
    }
    trials = result.trials["dies_after_yielding"]
    assert [(t.attempt, t.state, t.items) for t in trials] == [(1, State.CRASHED, len(sent))]
    assert isinstance(trials[0].error, dx.WorkerCrashed)


def test_the_producer_runs_at_most_three_buffers_ahead_of_the_maps_trials():
    with dx.Graph("g") as g:
        g.output(slow_square.map(counted(200)), name="out")
    result = g.compile().run(executor=ThreadExecutor(max_workers=3))
    assert result.output == [x * x for x in range(200)]
    # buffer=4: at most 4 items not ended when the master takes more, 4 more it takes
    # then, 4 waiting to go, and the one in hand
    assert max(AHEAD) <= 3 * 4 + 1
    assert max(AHEAD) >= 4  # the producer did run ahead: the bound was reached


def test_a_stream_feeds_a_map_and_a_stage_in_one_pipe(live):
    with dx.Graph("g") as g:
        ns = numbers(5)
        g.output(triple.map(ns), name="tripled")
        g.output(running_total(ns), name="totals")
    result = g.compile().run(executor=live)
    assert result.outputs == {"tripled": [0, 3, 6, 9, 12], "totals": [0, 1, 3, 6, 10]}
    assert [t.items for t in result.trials["numbers"]] == [5]


def test_a_producer_failing_after_yielding_leaves_its_map_upstream_failed(live):
    with dx.Graph("g") as g:
        triple.map(breaks_after(3))
    result = g.compile().run(executor=live, fail_fast=False, raise_on_failure=False)
    assert result.states == {
        "breaks_after": State.FAILED,
        "triple": State.UPSTREAM_FAILED,
        # the items that left the producer before it failed ran
        **{f"triple[{k}]": State.SUCCEEDED for k in range(3)},
    }
    assert [(t.state, t.items) for t in result.trials["breaks_after"]] == [(State.FAILED, 3)]


def test_with_fail_fast_a_failed_producers_map_is_upstream_failed_and_its_waiting_items_cancelled(live):
    with dx.Graph("g") as g:
        triple.map(breaks_after(3))
    result = g.compile().run(executor=live, raise_on_failure=False)
    assert result.states["breaks_after"] == State.FAILED
    assert result.states["triple"] == State.UPSTREAM_FAILED
    items = [result.states[f"triple[{k}]"] for k in range(3)]
    assert set(items) <= {State.SUCCEEDED, State.CANCELLED}  # ran, or still waiting at the stop


def test_an_item_failing_with_fail_fast_closes_an_endless_producer(live, tmp_path):
    with dx.Graph("g") as g:
        fails_at.map(endless(str(tmp_path)), bad=5)
    result = g.compile().run(executor=live, raise_on_failure=False)
    assert result.states["fails_at"] == State.FAILED
    assert result.states["fails_at[5]"] == State.FAILED
    assert result.states["endless"] == State.CANCELLED
    # items before it ran, or, where items run side by side, were still waiting at the stop
    assert {result.states[f"fails_at[{k}]"] for k in range(5)} <= {State.SUCCEEDED, State.CANCELLED}
    assert (tmp_path / "closed").exists()  # the generator was closed: its finally ran


def test_without_fail_fast_a_failed_item_fails_the_map_once_the_stream_ended(live):
    with dx.Graph("g") as g:
        fails_at.map(numbers(6), bad=2)
    result = g.compile().run(executor=live, fail_fast=False, raise_on_failure=False)
    assert result.states == {
        "numbers": State.SUCCEEDED,
        "fails_at": State.FAILED,
        **{f"fails_at[{k}]": State.FAILED if k == 2 else State.SUCCEEDED for k in range(6)},
    }


def test_one_thread_held_by_the_pipe_does_not_deadlock_its_map():
    with dx.Graph("g") as g:
        g.output(slow_square.map(counted(50)), name="out")
    result = g.compile().run(executor=ThreadExecutor(max_workers=1))
    assert result.output == [x * x for x in range(50)]


def test_a_map_over_a_stream_downstream_of_the_map_and_an_output_of_the_stream(live):
    with dx.Graph("g") as g:
        ns = numbers(4)
        g.output(ns, name="items")
        g.output(triple.map(triple.map(ns)), name="nine")
    result = g.compile().run(executor=live)
    assert result.outputs == {"items": [0, 1, 2, 3], "nine": [0, 9, 18, 27]}


def test_a_cached_map_over_a_stream_is_served_whole_the_second_time(tmp_path, live):
    with dx.Graph("g") as g:
        g.output(fails_at.map(numbers(4), bad=-1), name="out")
    plan = g.compile()
    first = plan.run(executor=live, cache=str(tmp_path))
    second = plan.run(executor=live, cache=str(tmp_path))
    assert first.output == second.output == [0, 1, 2, 3]
    assert first.states["fails_at"] == State.SUCCEEDED
    assert second.states["fails_at"] == State.CACHED


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import sys
    import time
    from collections.abc import Iterator

    import dagexec as dx

    executor, folder = sys.argv[1], sys.argv[2]

    @dx.task
    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                time.sleep(0.001)
        finally:
            open(os.path.join(folder, "closed"), "w").close()

    @dx.task
    def mark(x: int) -> int:
        if x == 5:
            open(os.path.join(folder, "started"), "w").close()
        return x

    with dx.Graph("g") as g:
        mark.map(endless())

    report = {}
    try:
        g.compile().run(executor=executor)
    except KeyboardInterrupt:
        report["raised"] = "KeyboardInterrupt"
    deadline = time.monotonic() + 10  # the pipe's thread closes its generator on its own
    while not os.path.exists(os.path.join(folder, "closed")) and time.monotonic() < deadline:
        time.sleep(0.01)
    report["closed"] = os.path.exists(os.path.join(folder, "closed"))
    print(json.dumps(report))
    """
)


@pytest.mark.parametrize("ex", ["serial", "threads"])
def test_ctrl_c_closes_a_stream_feeding_a_map(ex, tmp_path):
    script = tmp_path / "plan.py"
    script.write_text(CTRL_C_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), ex, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        wait_for(str(tmp_path / "started"))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # the stream never ends: ending means it was stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert json.loads(out.splitlines()[-1]) == {"raised": "KeyboardInterrupt", "closed": True}, err
