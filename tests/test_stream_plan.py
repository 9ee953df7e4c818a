"""Which nodes of a plan produce a stream and which parameters it feeds (DESIGN §13,
``dagexec/plan/streams.py``): decided from the functions and their annotations alone."""

from __future__ import annotations

import collections.abc as cabc
import typing
from collections.abc import AsyncIterator, Iterable, Iterator

import dagexec as dx


@dx.task
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@dx.task
async def ticks(n: int) -> AsyncIterator[int]:
    for k in range(n):
        yield k


@dx.task
def double(xs: Iterator[int]) -> Iterator[int]:
    for x in xs:
        yield 2 * x


@dx.task
def count(xs: Iterable[int], *, scale: int = 1) -> int:
    return scale * sum(1 for _ in xs)


@dx.task
async def total(xs: AsyncIterator[int]) -> int:
    return sum([x async for x in xs])


@dx.task
def whole(xs: list[int]) -> int:
    return len(xs)


@dx.task
def unannotated(xs):  # type: ignore[no-untyped-def]
    return len(list(xs))


@dx.task
def typing_iter(xs: typing.Iterator[int], *more: cabc.Iterable[int], last: Iterator[int] | None = None) -> int:
    return 0


@dx.task
def in_a_list(xss: list[Iterator[int]]) -> int:
    return len(xss)


@dx.task
def inc(x: int) -> int:
    return x + 1


def feeds_by_key(plan: dx.CompiledGraph) -> tuple[set[str], dict[str, tuple[tuple[int | str, str], ...]]]:
    found = plan._stream_feeds()
    keys = plan.keys
    producers = {keys[i] for i in found.producers}
    feeds = {keys[i]: tuple((w, keys[p]) for w, p in f) for i, f in enumerate(found.feeds) if f}
    return producers, feeds


def test_generator_functions_produce_streams_and_annotated_parameters_are_fed():
    with dx.Graph("g") as g:
        ns = numbers(5)
        d = double(ns)
        count(d, scale=2)
        total(ticks(3))
        whole(ns)  # a list parameter: the complete list, not fed
        unannotated(d)  # no annotation: the complete list
        inc(count(ns))
    plan = g.compile()
    producers, feeds = feeds_by_key(plan)
    assert producers == {"numbers", "ticks", "double"}
    assert feeds == {
        "double": ((0, "numbers"),),
        "count": ((0, "double"),),
        "count-1": ((0, "numbers"),),
        "total": ((0, "ticks"),),
    }
    # pipes: a producer and what it feeds that reads nothing else; an async def reader
    # is in none (it gets an iterator over the list)
    assert pipes_by_key(plan) == (
        {"numbers": ("numbers", "double", "count", "count-1"), "ticks": ("ticks",)},
        {"total"},
    )


def pipes_by_key(plan: dx.CompiledGraph) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    found = plan._stream_feeds()
    keys = plan.keys
    return {keys[h]: tuple(keys[m] for m in ms) for h, ms in found.pipes.items()}, {keys[i] for i in found.fed_whole}


@dx.task
def zipped(a: Iterator[int], b: Iterator[int]) -> int:
    return sum(x * y for x, y in zip(a, b, strict=False))


@dx.task(timeout=5)
def timed_count(xs: Iterable[int]) -> int:
    return sum(1 for _ in xs)


@dx.task
def fed_and_whole(xs: Iterator[int], ys: list[int]) -> int:
    return len(ys)


def test_what_joins_a_pipe_and_what_reads_the_whole_list():
    with dx.Graph("g") as g:
        a, b = numbers(3), numbers(4)
        zipped(a, a)  # fed twice by one pipe: joins it
        zipped(a, b)  # fed by two pipes: reads both lists
        timed_count(a)  # a timeout: not in a pipe
        fed_and_whole(b, b)  # fed and read whole: not in a pipe
        double(inc(1))  # a producer waiting for a plain node heads its own pipe
        count(numbers(2), scale=inc(2))  # waits for a node outside the pipe
    pipes, fed_whole = pipes_by_key(g.compile())
    assert pipes == {
        "numbers": ("numbers", "zipped"),
        "numbers-1": ("numbers-1",),
        "double": ("double",),
        "numbers-2": ("numbers-2",),
    }
    assert fed_whole == {"zipped-1", "timed_count", "fed_and_whole", "count"}


def test_feeds_by_position_past_the_named_ones_by_keyword_and_from_typing():
    with dx.Graph("g") as g:
        ns = numbers(5)
        typing_iter(ns, ns, numbers(2), last=ns)
        in_a_list([ns])  # inside a container: read whole
        inc.map(ns)  # a map's items: not a feed
    producers, feeds = feeds_by_key(g.compile())
    assert producers == {"numbers", "numbers-1"}
    assert feeds == {"typing_iter": ((0, "numbers"), (1, "numbers"), (2, "numbers-1"), ("last", "numbers"))}


def test_a_plan_without_generators_has_no_streams_and_the_feeds_are_not_pickled():
    with dx.Graph("g") as g:
        inc(inc(1))
    plan = g.compile()
    assert plan._stream_feeds() == (frozenset(), ((), ()), {}, frozenset(), frozenset(), {})
    assert "_streams" not in plan.__getstate__()
