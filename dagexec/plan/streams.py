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

__all__ = ["FEEDING", "StreamFeeds", "is_producer", "stream_feeds"]

#: the annotations (their ``typing.get_origin``) that make a parameter a stream feed
FEEDING = frozenset({cabc.Iterator, cabc.Iterable, cabc.AsyncIterator})


class StreamFeeds(typing.NamedTuple):
    """A plan's streams.

    Attributes:
        producers: the nodes whose function is a generator (or async generator) function.
        feeds: per node, ``(where, producer)`` for each parameter fed item by item:
            ``where`` is the argument's position, or its name for a keyword-only one.
    """

    producers: frozenset[int]
    feeds: tuple[tuple[tuple[int | str, int], ...], ...]


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
    return StreamFeeds(producers, tuple(feeds))


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
    params = meta.params
    if isinstance(where, int):
        if where < len(meta.pos_params):
            name = meta.pos_params[where]
        else:  # past the named ones: *args
            name = next((p.name for p in params.values() if p.kind is p.VAR_POSITIONAL), None)
    else:
        name = where if where in params else next((p.name for p in params.values() if p.kind is p.VAR_KEYWORD), None)
    return name is not None and _feeding(meta.hints.get(name))


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
