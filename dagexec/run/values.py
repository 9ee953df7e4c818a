"""Values kept on workers: an executor with ``keeps_values`` (dask) returns a
:class:`~dagexec.run.protocol.Remote` handle for a trial's value, not the value.

The handle goes into dependents' calls as it is.  A call for another executor needs the
value itself: :func:`localize` fetches what the call's executor does not own, walking
the argument containers.  At the end of the run :func:`fetch_results` brings the
outputs and the kept values over, one ``fetch`` per owner.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .._state import Outcome as Ended
from ..plan.streams import wants_async
from ..plan.templates import fill, with_values
from .protocol import FEED, Call, Executor, Outcome, Remote, failed_outcome
from .state import GATED, HAS_VALUE, RELEASED, STATES, SUCCEEDED

logger = logging.getLogger("dagexec.engine")


def fetch_in(value: Any, ex: Executor) -> Any:
    """``value`` with every Remote not owned by ``ex`` replaced by its value, walking containers."""
    t = type(value)
    if t is Remote:
        return value if value.owner is ex else value.owner.fetch([value])[0]
    if t in (list, tuple, set, frozenset):
        items = [fetch_in(v, ex) for v in value]
        return items if t is list else t(items)
    if t is dict:
        return {k: fetch_in(v, ex) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple, as the graph builder walks it
        return t(*[fetch_in(v, ex) for v in value])
    return value


def call_values(loop: Any, i: int) -> tuple[Any, dict[str, Any] | None]:
    """Unit ``i``'s arguments, its inputs' values filled in from ``loop.vals`` (its
    positional ones, its keyword ones or None); a fed parameter's stream as an
    iterator over its list where the stream is not fed item by item."""
    if loop.kind[i] == GATED:  # a trigger rule: how its upstreams ended (run/triggers.py)
        return gated_values(loop, i)
    vals = loop.vals
    if loop.nested[i]:
        kw = loop.kwargs[i]
        nargs: Any = tuple(fill(a, vals) for a in loop.args[i])
        nkw = {k: fill(v, vals) for k, v in kw.items()} if kw else None
        if loop.fed_any and i in loop.fed_any:
            nargs, nkw = fed_lists(loop.plan, i, nargs, nkw)
        return nargs, nkw
    fills = loop.fills[i]
    if fills:
        al = list(loop.args[i])
        for p, s in fills:
            al[p] = vals[s]
        args: Any = al
    else:
        args = loop.args[i]
    kw = loop.kwargs[i]
    if kw is not None and loop.kwfills[i]:
        kw = with_values(kw, loop.kwfills[i], vals)
    if loop.fed_any and i in loop.fed_any:
        args, kw = fed_lists(loop.plan, i, args, kw)
    return args, kw


class _Filled:
    """The values a gated node's arguments are filled from: a slot's value where it has
    one, else None; with ``outcomes``, an :class:`~dagexec.Outcome` for each slot."""

    __slots__ = ("loop", "outcomes")

    def __init__(self, loop: Any, outcomes: bool) -> None:
        self.loop = loop
        self.outcomes = outcomes

    def __getitem__(self, s: int) -> Any:
        loop = self.loop
        state = loop.state[s]
        value = fetched(loop.vals[s]) if state in HAS_VALUE else None
        if not self.outcomes:
            return value
        return Ended(loop.plan._slot_key(s), STATES[state], value, _error_of(loop, s) if value is None else None)


def gated_values(loop: Any, i: int) -> tuple[Any, dict[str, Any] | None]:
    """Gated node ``i``'s arguments: each upstream's value, None where it has none, and
    an Outcome for each where the parameter wants Outcomes.  An upstream without a
    value makes the node's own value one the cache does not keep (its key stands for
    its upstreams' values)."""
    args, kwargs = loop.args[i], loop.kwargs[i]
    at = loop.plan._gates[i][1]
    plain, outcomes = _Filled(loop, False), _Filled(loop, True)
    if loop.nested[i]:
        view: Any = lambda where: outcomes if where in at else plain  # noqa: E731
        args = tuple(fill(a, view(j)) for j, a in enumerate(args))
        kwargs = {k: fill(v, view(k)) for k, v in kwargs.items()} if kwargs else None
    else:
        args = list(args)
        for p, s in loop.fills[i]:
            args[p] = (outcomes if p in at else plain)[s]
        if kwargs is not None:
            kwargs = dict(kwargs)
            for name, s in loop.kwfills[i]:
                kwargs[name] = (outcomes if name in at else plain)[s]
    saving = loop.saving
    if saving is not None and saving[i] and any(loop.state[s] not in HAS_VALUE for s in loop.reads[i]):
        saving[i] = False
    if loop.fed_any and i in loop.fed_any:
        args, kwargs = fed_lists(loop.plan, i, args, kwargs)
    return args, kwargs


def _error_of(loop: Any, s: int) -> BaseException | None:
    """The exception of slot ``s``'s last trial, where it failed (a map's: of its first
    failed item)."""
    run = loop.map_runs.get(s)
    if run is not None and run.failed_items:
        s = run.units[run.failed_items[0]]
    row = loop.rows[s]
    error: BaseException | None = row[-1].error if isinstance(row, list) and row else None
    return error


def fed_lists(plan: Any, i: int, args: Any, kwargs: dict[str, Any] | None) -> tuple[Any, Any]:
    """Node ``i`` is fed a stream (``plan/streams.py``): each fed argument that holds the
    stream's complete list (the node runs outside the stream's pipe: in none, after a
    cached stream, or one by one), not ``FEED``, becomes an iterator over it (a list
    kept on a worker is brought over: the iterator is made where the call is)."""
    spec = plan._specs[i]
    for where, _ in plan._stream_feeds().feeds[i]:
        make = AsyncItems if wants_async(spec.task.meta, where) else iter
        if isinstance(where, int):
            if args[where] is not FEED:
                args = list(args)
                args[where] = make(fetched(args[where]))
        elif kwargs is not None and kwargs[where] is not FEED:
            kwargs = {**kwargs, where: make(fetched(kwargs[where]))}
    return args, kwargs


class AsyncItems:
    """An async iterator over a list: what a parameter annotated ``AsyncIterator[T]``
    receives of a stream's complete list."""

    __slots__ = ("items", "k")

    def __init__(self, items: Any) -> None:
        self.items = list(items)
        self.k = 0

    def __aiter__(self) -> AsyncItems:
        return self

    async def __anext__(self) -> Any:
        if self.k >= len(self.items):
            raise StopAsyncIteration
        self.k += 1
        return self.items[self.k - 1]


def fetched(value: Any) -> Any:
    """``value``, or where it is a handle on a value kept on a worker, that value."""
    return value.owner.fetch([value])[0] if type(value) is Remote else value


def localize(call: Call, ex: Executor, nested: bool) -> Outcome | None:
    """Put in ``call`` the values of the Remote handles that ``ex`` does not own
    (``nested``: its arguments hold containers to walk); a failed outcome when one
    cannot be fetched."""
    try:
        args = call.args
        if any(type(a) is Remote and a.owner is not ex for a in args) or nested:
            call.args = [fetch_in(a, ex) for a in args]
        kwargs = call.kwargs
        if kwargs:
            call.kwargs = {k: fetch_in(v, ex) for k, v in kwargs.items()}
    except Exception as exc:
        logger.warning("node %r: an input value could not be fetched", call.key, exc_info=True)
        return failed_outcome(call, exc, time.time(), "master")
    return None


def items_here(values: list[Any]) -> list[Any]:
    """``values`` (a map's), each Remote handle replaced by its value, fetched at once
    from each executor that keeps some (a new list; ``values`` itself where none is)."""
    by_owner: dict[int, tuple[Any, list[int]]] = {}
    for k, v in enumerate(values):
        if type(v) is Remote:
            by_owner.setdefault(id(v.owner), (v.owner, []))[1].append(k)
    if not by_owner:
        return values
    out = list(values)
    for owner, where in by_owner.values():
        for k, got in zip(where, owner.fetch([values[k] for k in where]), strict=True):
            out[k] = got
    return out


def fetch_results(vals: list[Any], kept: list[bool], state: list[int], n: int) -> None:
    """Bring the run's outputs and kept values over from the executors that keep them:
    in ``vals``, the slots ``kept`` (of nodes that succeeded) and the inputs and constants
    (from ``n`` on)."""
    by_owner: dict[int, tuple[Any, list[int]]] = {}
    for slot in range(len(kept)):
        v = vals[slot]
        if type(v) is Remote and (kept[slot] or slot >= n) and (slot >= n or state[slot] == SUCCEEDED):
            by_owner.setdefault(id(v.owner), (v.owner, []))[1].append(slot)
        elif type(v) is list and kept[slot] and state[slot] == SUCCEEDED and any(type(x) is Remote for x in v):
            try:
                vals[slot] = items_here(v)  # a map's list of its items' values
            except Exception:
                logger.warning("the items of a map's value could not be fetched", exc_info=True)
                vals[slot] = RELEASED
    for owner, slots in by_owner.values():
        try:
            got = owner.fetch([vals[s] for s in slots])
        except Exception:
            logger.warning("values kept by %r could not be fetched", owner, exc_info=True)
            for s in slots:
                vals[s] = RELEASED
            continue
        for s, v in zip(slots, got, strict=True):
            vals[s] = v
    for slot in range(len(kept), len(vals)):
        vals[slot] = fetched(vals[slot])
