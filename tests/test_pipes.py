"""A pipe run on its own (``dagexec/run/pipes.py``): stream producers and the members
they feed, interleaved in one thread, each member with its own outcome and a
producer's item count (DESIGN §13)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dagexec.plan.specs import NodeSpec
from dagexec.run.pipes import Broken, run_pipe
from dagexec.run.protocol import FEED, O_ERROR, O_IDX, O_OK, O_VALUE, Batch, Call

EVENTS: list[str] = []


def spec(key: str, fn: Any) -> NodeSpec:
    return NodeSpec(key, fn, None, (), None, None)


def call(idx: int, fn: Any, *args: Any, **kwargs: Any) -> Call:
    return Call(idx, 1, spec(fn.__name__, fn), list(args), kwargs or None)


def pipe(calls: list[Call], feeds: list[tuple[tuple[int | str, int], ...]], keep: list[bool] | None = None) -> Any:
    batch = Batch(calls, [False] * len(calls), keep or [False] * len(calls), feeds)
    done = run_pipe(batch, "w")
    return {out[O_IDX]: out for out in done.outcomes}, done.items


def numbers(n: int) -> Iterator[int]:
    try:
        for k in range(n):
            EVENTS.append(f"made {k}")
            yield k
    finally:
        EVENTS.append("numbers closed")


def double(xs: Iterator[int]) -> Iterator[int]:
    for x in xs:
        EVENTS.append(f"doubled {x}")
        yield 2 * x


def total(xs: Iterator[int]) -> int:
    out = 0
    for x in xs:
        EVENTS.append(f"added {x}")
        out += x
    return out


def first_two(xs: Iterator[int]) -> list[int]:
    return [next(xs), next(xs)]


def failing(n: int) -> Iterator[int]:
    yield from range(n)
    raise ValueError("no more")


def reader_with_cleanup(xs: Iterator[int]) -> int:
    try:
        return sum(xs)
    finally:
        EVENTS.append("reader cleaned up")


@pytest.fixture(autouse=True)
def fresh_events():
    EVENTS.clear()


def test_items_flow_through_a_stage_to_a_reader_one_at_a_time():
    outs, items = pipe(
        [call(0, numbers, 3), call(1, double, FEED), call(2, total, FEED)],
        [(), ((0, 0),), ((0, 1),)],
    )
    assert [outs[k][O_OK] for k in (0, 1, 2)] == [True, True, True]
    assert outs[2][O_VALUE] == 6 and outs[0][O_VALUE] is None  # no list kept
    assert items == {0: 3, 1: 3}
    # each item goes all the way before the next is made
    assert EVENTS == [
        *(e for k in range(3) for e in (f"made {k}", f"doubled {k}", f"added {2 * k}")),
        "numbers closed",
    ]
    assert all(outs[k][-2] == "w" for k in (0, 1, 2))


def test_the_first_item_reaches_its_reader_before_the_producer_goes_on():
    seen = threading.Event()  # set only by the reader

    def waits(n: int) -> Iterator[int]:
        for k in range(n):
            EVENTS.append(f"reader had item {k - 1}: {seen.is_set()}")
            yield k

    def marks(xs: Iterator[int]) -> int:
        got = []
        for x in xs:
            seen.set()
            got.append(x)
        return got[-1]

    outs, _ = pipe([call(0, waits, 2), call(1, marks, FEED)], [(), ((0, 0),)])
    assert outs[1][O_VALUE] == 1
    assert EVENTS == ["reader had item -1: False", "reader had item 0: True"]


def test_every_reader_sees_every_item_in_order_and_one_may_stop_early():
    outs, items = pipe(
        [call(0, numbers, 5), call(1, first_two, FEED), call(2, total, FEED)],
        [(), ((0, 0),), ((0, 0),)],
        keep=[True, False, False],
    )
    assert outs[1][O_VALUE] == [0, 1] and outs[2][O_VALUE] == 10
    assert outs[0][O_VALUE] == [0, 1, 2, 3, 4]  # its list, kept for the master
    assert items == {0: 5}


def test_a_producer_nobody_needs_more_of_is_closed():
    outs, items = pipe([call(0, numbers, 1000), call(1, first_two, FEED)], [(), ((0, 0),)])
    assert outs[1][O_VALUE] == [0, 1]
    assert outs[0][O_OK] and items == {0: 2}
    assert EVENTS == ["made 0", "made 1", "numbers closed"]


def test_a_producer_that_fails_after_yielding_breaks_what_it_feeds():
    outs, items = pipe(
        [call(0, failing, 2), call(1, double, FEED), call(2, reader_with_cleanup, FEED)],
        [(), ((0, 0),), ((0, 1),)],
    )
    assert set(outs) == {0}  # what it fed has no outcome: upstream_failed
    assert not outs[0][O_OK] and str(outs[0][O_ERROR]) == "no more"
    assert "ValueError: no more" in outs[0][5]
    assert items == {0: 2, 1: 2}
    assert EVENTS[-1] == "reader cleaned up"


def test_a_reader_that_fails_leaves_the_others_their_items():
    def boom(xs: Iterator[int]) -> int:
        next(xs)
        raise RuntimeError("reader failed")

    outs, items = pipe(
        [call(0, numbers, 3), call(1, boom, FEED), call(2, total, FEED)],
        [(), ((0, 0),), ((0, 0),)],
    )
    assert not outs[1][O_OK] and str(outs[1][O_ERROR]) == "reader failed"
    assert outs[2][O_VALUE] == 3 and outs[0][O_OK] and items == {0: 3}


def test_an_interrupt_closes_every_open_generator():
    def interrupted(xs: Iterator[int]) -> int:
        next(xs)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe([call(0, numbers, 10), call(1, interrupted, FEED)], [(), ((0, 0),)])
    assert EVENTS == ["made 0", "numbers closed"]


def test_a_broken_feed_is_no_exception_a_task_catches_as_one():
    assert not issubclass(Broken, Exception)
