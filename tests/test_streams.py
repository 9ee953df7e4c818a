"""Streams in a run (DESIGN §13, ``docs/streams.md``): a generator task feeds what reads
it item by item, in one pipe, on every executor; plain readers get the list.

The pipe runs interleaved in one worker (the master on serial), so a module-level
list shared by a producer and its reader is the same list on every executor: the
tests read what the producer saw of the reader through it, never through sleeps.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import pytest

import dagexec as dx
from dagexec import State

SEEN: list[int] = []  # the items a reader has had, in the process that runs the pipe


@dx.task
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@dx.task
def watched(n: int) -> Iterator[list[int]]:
    """Yields, with each item, what its reader had had when the producer went on."""
    SEEN.clear()
    for _ in range(n):
        yield list(SEEN)


@dx.task
def reads(xs: Iterator[list[int]]) -> list[list[int]]:
    out = []
    for k, x in enumerate(xs):
        SEEN.append(k)
        out.append(x)
    return out


@dx.task
def double(xs: Iterator[int]) -> Iterator[int]:
    for x in xs:
        yield 2 * x


@dx.task
def total(xs: Iterable[int]) -> int:
    return sum(xs)


@dx.task
def size(xs: list[int]) -> int:
    return len(xs)


@dx.task(retries=2)
def breaks_after(n: int) -> Iterator[int]:
    yield from range(n)
    raise ValueError(f"broke after {n}")


@dx.task(retries=1)
def fails_first(marker: str) -> Iterator[int]:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt, before any item")
    yield from range(3)


@dx.task
def endless(marker: str) -> Iterator[int]:
    try:
        yield from itertools.count()
    finally:
        open(marker, "w").close()  # closed when nobody needs more


@dx.task
def first(xs: Iterator[int], k: int) -> list[int]:
    return list(itertools.islice(xs, k))


@dx.task(timeout=30)
def timed_total(xs: Iterator[int]) -> int:  # a timeout: in no pipe, fed an iterator over the list
    return sum(xs)


EXECUTORS = ["serial", "threads", "loky", "dask"]


@pytest.fixture(params=EXECUTORS)
def executor(request: Any) -> Any:
    if request.param == "dask":
        from dagexec.executors import DaskExecutor

        return DaskExecutor(request.getfixturevalue("client"))
    return request.param


def trial_log(result: dx.RunResult, key: str) -> list[tuple[int, State, int | None]]:
    return [(t.attempt, t.state, t.items) for t in result.trials[key]]


def test_a_stream_feeds_its_stages_and_plain_readers_get_its_list(executor):
    with dx.Graph("g") as g:
        ns = numbers(4)
        g.output(total(double(ns)), name="total")
        g.output(size(ns), name="size")
        g.output(ns, name="items")
    result = g.compile().run(executor=executor)
    assert result.outputs == {"total": 12, "size": 4, "items": [0, 1, 2, 3]}
    assert trial_log(result, "numbers") == [(1, State.SUCCEEDED, 4)]
    assert trial_log(result, "double") == [(1, State.SUCCEEDED, 4)]
    assert trial_log(result, "total") == [(1, State.SUCCEEDED, None)]


def test_each_item_reaches_the_reader_before_the_producer_goes_on(executor):
    with dx.Graph("g") as g:
        g.output(reads(watched(3)), name="seen")
    result = g.compile().run(executor=executor)
    # when the producer made item k, the reader had had items 0 .. k-1
    assert result.output == [[], [0], [0, 1]]


def test_a_stream_that_fails_after_yielding_is_not_retried_and_fails_what_it_feeds(executor):
    with dx.Graph("g") as g:
        total(double(breaks_after(2)))
    result = g.compile().run(executor=executor, raise_on_failure=False)
    assert result.states == {
        "breaks_after": State.FAILED,
        "double": State.UPSTREAM_FAILED,
        "total": State.UPSTREAM_FAILED,
    }
    assert trial_log(result, "breaks_after") == [(1, State.FAILED, 2)]  # retries=2, none used
    assert str(result.trials["breaks_after"][0].error) == "broke after 2"
    assert result.trials["double"] == [] and result.trials["total"] == []


def test_a_stream_that_fails_before_its_first_item_is_retried(executor, tmp_path):
    with dx.Graph("g") as g:
        g.output(total(fails_first(str(tmp_path / "failed"))), name="total")
    result = g.compile().run(executor=executor)
    assert result.output == 3
    assert trial_log(result, "fails_first") == [(1, State.FAILED, 0), (2, State.SUCCEEDED, 3)]
    assert trial_log(result, "total") == [(1, State.SUCCEEDED, None)]


def test_an_endless_stream_is_closed_when_its_reader_stops(executor, tmp_path):
    marker = tmp_path / "closed"
    with dx.Graph("g") as g:
        g.output(first(endless(str(marker)), 3), name="first")
    result = g.compile().run(executor=executor)
    assert result.output == [0, 1, 2]
    assert trial_log(result, "endless") == [(1, State.SUCCEEDED, 3)]
    assert marker.exists()  # its finally ran


def test_a_fed_parameter_outside_a_pipe_gets_an_iterator_over_the_list(executor):
    with dx.Graph("g") as g:
        g.output(timed_total(numbers(5)), name="total")
    result = g.compile().run(executor=executor)
    assert result.output == 10
    assert trial_log(result, "numbers") == [(1, State.SUCCEEDED, 5)]


def test_an_executor_without_batches_runs_a_producer_alone_and_feeds_an_iterator_over_its_list():
    from dagexec.executors import SerialExecutor

    class Submits(SerialExecutor):  # overrides submit: sees every trial, takes no batch
        def submit(self, call: Any, post: Any) -> Any:
            return super().submit(call, post)

    with dx.Graph("g") as g:
        ns = numbers(4)
        g.output(total(double(ns)), name="total")
        g.output(ns, name="items")
    result = g.compile().run(executor=Submits())
    assert result.outputs == {"total": 12, "items": [0, 1, 2, 3]}
    assert trial_log(result, "numbers") == [(1, State.SUCCEEDED, None)]  # alone: not counted


@dx.task
def endless_started(folder: str) -> Iterator[int]:
    try:
        for k in itertools.count():
            if k == 1:
                open(os.path.join(folder, "started"), "w").close()  # one item is out
            yield k
    finally:
        open(os.path.join(folder, "closed"), "w").close()


@dx.task
def fails_once_streaming(folder: str) -> int:
    path = os.path.join(folder, "started")
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the stream never started"
        time.sleep(0.01)
    raise RuntimeError("failed while a stream ran")


@pytest.mark.parametrize("ex", ["threads", "loky"])
def test_fail_fast_closes_a_running_pipe(tmp_path, ex):
    with dx.Graph("g") as g:
        first(endless_started(str(tmp_path)), 10**12)  # reads until the run stops
        fails_once_streaming(str(tmp_path))
    result = g.compile().run(executor=ex, raise_on_failure=False)
    assert result.states == {
        "endless_started": State.CANCELLED,
        "first": State.CANCELLED,
        "fails_once_streaming": State.FAILED,
    }
    assert (tmp_path / "closed").exists()  # the generator was closed: its finally ran


def test_a_pictured_run_counts_a_streams_items():
    with dx.Graph("g") as g:
        g.output(total(double(numbers(1234))), name="total")
    result = g.compile().run(executor="serial")
    dot = result.to_dot().source
    assert "1,234 items" in dot
    assert dot.count(" items") == 2  # the producer and the stage; the reader yields none


@dx.task
def triple(xs: Iterator[int]) -> Iterator[int]:
    for x in xs:
        yield 3 * x


def test_a_cached_stream_replays_its_items_to_what_it_feeds(tmp_path, executor):
    cache = str(tmp_path / "cache")
    with dx.Graph("g") as g:
        g.output(total(double(numbers(4))), name="total")
    first = g.compile().run(executor=executor, cache=cache)
    assert first.output == 12
    with dx.Graph("g") as g:  # the same producer, a stage that changed
        g.output(total(triple(numbers(4))), name="total")
    plan = g.compile()
    assert {e.key: e.action for e in plan.explain(cache=cache)}["numbers"] == "cached"
    again = plan.run(executor=executor, cache=cache)
    assert again.output == 18
    assert again.states["numbers"] is State.CACHED
    assert trial_log(again, "triple") == [(1, State.SUCCEEDED, 4)]


@dx.task
async def ticks(n: int) -> AsyncIterator[int]:
    for k in range(n):
        yield k


@dx.task
async def atotal(xs: AsyncIterator[int]) -> int:
    return sum([x async for x in xs])


def test_an_async_generator_feeds_a_stage_and_an_async_reader_gets_its_list(executor):
    with dx.Graph("g") as g:
        ts = ticks(4)
        g.output(total(double(ts)), name="total")  # in the pipe: fed item by item
        g.output(atotal(ts), name="atotal")  # async def: in no pipe, an async iterator over the list
    result = g.compile().run(executor=executor)
    assert result.outputs == {"total": 12, "atotal": 6}
    assert trial_log(result, "ticks") == [(1, State.SUCCEEDED, 4)]


def test_the_json_of_a_run_has_a_producers_items():
    from dagexec.cli.report import result_to_json

    with dx.Graph("g") as g:
        g.output(total(double(numbers(3))), name="total")
    doc = result_to_json(g.compile().run(executor="serial"))
    assert [t["items"] for t in doc["trials"]["numbers"]] == [3]
    assert "items" not in doc["trials"]["total"][0]
    assert list(doc["trials"]["total"][0]) == ["attempt", "state", "start", "end", "error", "log"]


def test_the_html_report_says_what_a_producer_yielded():
    from dagexec._html import _node_details

    with dx.Graph("g") as g:
        g.output(total(double(numbers(1234))), name="total")
    plan = g.compile()
    details = _node_details(plan, plan.run(executor="serial"), [])
    assert (details["numbers"]["items"], details["double"]["items"]) == ("1,234 yielded", "1,234 yielded")
    assert "items" not in details["total"]


def test_fail_fast_closes_a_running_pipe_on_dask(tmp_path, client):
    from dagexec.executors import DaskExecutor

    with dx.Graph("g") as g:
        first(endless_started(str(tmp_path)), 10**12)  # reads until the run stops
        fails_once_streaming(str(tmp_path))
    result = g.compile().run(executor=DaskExecutor(client), raise_on_failure=False)
    assert result.states == {
        "endless_started": State.CANCELLED,
        "first": State.CANCELLED,
        "fails_once_streaming": State.FAILED,
    }
    # the generator is closed on its worker (its finally runs), if only once the run has
    # returned: a pipe whose start had not reached the master was taken back, and stopped
    deadline = time.monotonic() + 30
    while not (tmp_path / "closed").exists():
        assert time.monotonic() < deadline, "the pipe was never closed"
        time.sleep(0.01)


@dx.task(timeout=0.3)
def endless_timed(folder: str) -> Iterator[int]:
    try:
        i = 0
        while True:
            yield i
            i += 1
            time.sleep(0.01)
    finally:
        open(os.path.join(folder, "closed"), "w").close()


@pytest.mark.parametrize("ex", ["serial", "threads", "loky"])
def test_a_producer_past_its_timeout_is_closed(ex, tmp_path):
    with dx.Graph("g") as g:
        total(endless_timed(str(tmp_path)))
    result = g.compile().run(executor=ex, raise_on_failure=False)
    assert result.states == {"endless_timed": State.FAILED, "total": State.UPSTREAM_FAILED}
    (trial,) = result.trials["endless_timed"]
    assert trial.state == State.TIMED_OUT
    assert str(trial.error) == "node 'endless_timed' timed out after 0.3 s"
    deadline = time.monotonic() + 30  # a thread closes it at its next item, after the run
    while not (tmp_path / "closed").exists():
        assert time.monotonic() < deadline, "the generator was never closed"
        time.sleep(0.01)
