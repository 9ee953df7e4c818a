"""Streams in a compiled plan: which nodes produce one, and which read one item by item.

DESIGN §13: a task whose function is a generator function (or an async generator
function) is a *stream producer*, and its node's value is a stream.  A node that
receives a producer's node, as a whole argument, in a parameter annotated
``Iterator[T]``, ``Iterable[T]`` or ``AsyncIterator[T]`` (from ``typing`` or
``collections.abc``; or one of them ``| None``) is a *stage*: that parameter is *fed* item by item while the
producer runs.  A stream given anywhere else (another parameter, inside a container)
is read whole: the complete list of its items, once the producer has finished.

Both are decided from the plan alone (the functions and their annotations), once
per plan (``CompiledGraph._stream_feeds``, kept beside it, never pickled): the run
engine reads which edges of a plan stream.  ``docs/streams.md`` gives the semantics.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import types
import typing
from typing import TYPE_CHECKING, Any

from .specs import _Ref

if TYPE_CHECKING:
    from .compiled import CompiledGraph

__all__ = ["FEEDING", "StreamFeeds", "is_producer", "pipes_of", "stream_feeds", "wants_async"]

#: the annotations (their ``typing.get_origin``) that make a parameter a stream feed
FEEDING = frozenset({cabc.Iterator, cabc.Iterable, cabc.AsyncIterator})


class StreamFeeds(typing.NamedTuple):
    """A plan's streams.

    Attributes:
        producers: the nodes whose function is a generator (or async generator) function.
        feeds: per node, ``(where, producer)`` for each parameter fed item by item:
            ``where`` is the argument's position, or its name for a keyword-only one.
        pipes: per pipe, by its first node (its *head*), its nodes in plan order: see
            :func:`pipes_of`.
        fed_whole: the nodes with a fed parameter that are in no pipe: they are given
            an iterator over the stream's complete list.
        fed: the nodes with a fed parameter.
        outlets: per map over a stream (``task.map(stream)`` that waits for nothing
            else), the producer whose items it maps: they go to the master while the
            producer runs, each item's trial started as it arrives.
    """

    producers: frozenset[int]
    feeds: tuple[tuple[tuple[int | str, int], ...], ...]
    pipes: dict[int, tuple[int, ...]] = {}  # noqa: RUF012 (a NamedTuple field: never changed)
    fed_whole: frozenset[int] = frozenset()
    fed: frozenset[int] = frozenset()
    outlets: dict[int, int] = {}  # noqa: RUF012 (a NamedTuple field: never changed)


def is_producer(fn: Any) -> bool:
    """Whether a task function makes a stream: a generator or async generator function."""
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)


def stream_feeds(plan: CompiledGraph) -> StreamFeeds:
    """The producers of ``plan`` and, per node, the parameters each producer feeds."""
    specs = plan._specs
    producers = frozenset(i for i, spec in enumerate(specs) if spec.task is not None and is_producer(spec.fn))
    if not producers:
        return StreamFeeds(producers, ((),) * len(specs))
    feeds: list[tuple[tuple[int | str, int], ...]] = []
    for i, spec in enumerate(specs):
        found: list[tuple[int | str, int]] = []
        if spec.task is not None and i not in plan._maps:
            for where, slot in _whole_reads(plan, i):
                if slot in producers and _fed(spec.task.meta, where):
                    found.append((where, slot))
        feeds.append(tuple(found))
    pipes = pipes_of(plan, producers, feeds)
    piped = {m for members in pipes.values() for m in members}
    fed_whole = frozenset(i for i, f in enumerate(feeds) if f and i not in piped)
    fed = frozenset(i for i, f in enumerate(feeds) if f)
    outlets = {
        m: p
        for m in plan._maps
        for p in plan._deps[m][:1]
        if p in piped and p in producers and plan._deps[m] == (p,) and (0, p) in plan._fills[m] and not plan._nested[m]
    }
    return StreamFeeds(producers, tuple(feeds), pipes, fed_whole, fed, outlets)


def pipes_of(
    plan: CompiledGraph, producers: frozenset[int], feeds: list[tuple[tuple[int | str, int], ...]]
) -> dict[int, tuple[int, ...]]:
    """The plan's pipes: each a stream producer, and the nodes it feeds that read nothing
    else, transitively, run as one unit (:mod:`dagexec.run.pipes`).

    In plan order, a node that is fed joins the pipe of what feeds it when every node
    it waits for is in that one pipe and every value it reads is fed (none inside a
    container), it runs on the same route as the pipe's head, and it is neither async
    nor timed.  Any other
    producer (a generator or async generator function, not timed) heads a pipe of its
    own.  A timed producer, a map and a gated node (a trigger rule) are in no pipe."""
    specs, deps, routes = plan._specs, plan._deps, plan._routes
    head_of: dict[int, int] = {}
    pipes: dict[int, list[int]] = {}
    for i, spec in enumerate(specs):
        runs_here = (
            spec.task is not None and spec.timeout is None and not spec.coro and i not in plan._maps and i not in plan._gates
        )
        if not runs_here:
            continue
        fed_by = {p for _, p in feeds[i]}
        heads = {head_of.get(d) for d in deps[i]}
        if (
            feeds[i]
            and len(heads) == 1
            and None not in heads
            and not plan._nested[i]  # no stream hidden in a container
            and set(deps[i]) == fed_by
            and len(_whole_reads(plan, i)) == len(feeds[i])  # every value it reads is fed
            and routes[i] == routes[next(iter(heads))]  # type: ignore[index]
        ):
            head = next(iter(heads))
            assert head is not None
            pipes[head].append(i)
            head_of[i] = head
        elif i in producers:
            pipes[i] = [i]
            head_of[i] = i
    return {head: tuple(members) for head, members in pipes.items()}


def _whole_reads(plan: CompiledGraph, i: int) -> list[tuple[int | str, int]]:
    """``(where, slot)`` for each argument of node ``i`` that is a node's value as a
    whole (not inside a container)."""
    out: list[tuple[int | str, int]] = list(plan._fills[i])
    out += plan._kwfills[i]
    if plan._nested[i]:  # the template holds the refs that containers do not hide
        out += [(k, a.slot) for k, a in enumerate(plan._args[i]) if type(a) is _Ref]
        out += [(name, v.slot) for name, v in (plan._kwargs[i] or {}).items() if type(v) is _Ref]
    return out


def _fed(meta: Any, where: int | str) -> bool:
    """Whether the parameter an argument at ``where`` binds to is annotated as a stream."""
    name = _param(meta, where)
    return name is not None and _feeding(meta.hints.get(name))


def _param(meta: Any, where: int | str) -> str | None:
    """The name of the parameter an argument at ``where`` binds to (``*args``' and
    ``**kwargs``' past the named ones), or None."""
    params = meta.params
    if isinstance(where, int):
        if where < len(meta.pos_params):
            return str(meta.pos_params[where])
        return next((p.name for p in params.values() if p.kind is p.VAR_POSITIONAL), None)
    if where in params:
        return where
    return next((p.name for p in params.values() if p.kind is p.VAR_KEYWORD), None)


def wants_async(meta: Any, where: int | str) -> bool:
    """Whether the fed parameter at ``where`` is annotated ``AsyncIterator[T]``."""
    name = _param(meta, where)
    ann = meta.hints.get(name) if name is not None else None
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        ann = next((a for a in typing.get_args(ann) if a is not type(None)), None)
    return typing.get_origin(ann) is cabc.AsyncIterator


def _feeding(ann: Any) -> bool:
    """Whether ``ann`` is ``Iterator[T]``, ``Iterable[T]`` or ``AsyncIterator[T]``, or
    one of them or None (``Iterator[T] | None``)."""
    origin = typing.get_origin(ann)
    if origin in FEEDING:
        return True
    if origin is typing.Union or origin is types.UnionType:
        rest = [a for a in typing.get_args(ann) if a is not type(None)]
        return len(rest) == 1 and typing.get_origin(rest[0]) in FEEDING
    return False
