"""``task.map`` at run time: a map node expands into one trial per item.

When a map node is ready, its call is made (its values filled in; ``args[0]`` is the
list) and :meth:`Maps.expand` turns it into a :class:`MapRun`: per item its argument
and its value.  Each item is a unit of the loop: it gets the next unit id past the
slots (``units[j]``), and every per-unit list of the loop grows by one (``kind``
``MEMBER``; ``route`` and ``owner``: the map's lane and index; ``state``, ``attempt``,
the trial row, the call's parts, ``vals``, ``left`` 1: its map's join reads it).
``items[u] = (run, j)`` leads from the unit to its expansion and its position.  Items go
on the map's lane's ready stack like node indices, and run through the loop's own
``make_call``, submit, ``finish`` and ``failed``; an item's spec (:meth:`Maps.spec`) is
made when it first runs.  Its end comes back here (:meth:`Maps.member_ended`).  While
its items run the map node is ``JOINING`` and its ``waiting`` counts the items not yet
ended; when it reaches 0, the map succeeds with the list of values (:meth:`Maps.end`), or
fails when an item failed.

A map over a stream (``f.map(s)``, ``s`` a generator task's node in a pipe, the map
waiting for nothing else: ``StreamFeeds.outlets``) opens when its pipe is sent, on an
executor that takes ``outlets``: its ``MapRun`` starts with no items, and its
``waiting`` counts 1 for the open stream besides its items.  The pipe posts the items
as the producer yields them (:class:`~.protocol.Items`); each batch becomes units at the
bottom of the map's lane's stack (:meth:`Maps.arrived`, first come, first run).  The
pipe posts again once the master has taken the last batch (``Executor.more``), which it
does while the map has at most ``buffer`` items (the producer's option) not ended:
so the producer runs at most about ``buffer`` items ahead of the map's trials.  When
the pipe ends (:meth:`Maps.pipe_ended`) the stream closes: the map joins once its
items have ended, or, when its producer failed or was cancelled, ends
``upstream_failed``, its items already sent running to their end.

A map over a map's list (``b = f.map(a)`` with ``a`` a map) is chained: it expands as
soon as ``a`` does, and its item k depends on ``a``'s item k as a unit on a unit (the
loop's ``dependents`` and ``waiting``): it is ready when that one has succeeded.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .._mapping import Mapped, named_items
from .._mutation import MutationCheck
from .._plan import NodeSpec
from .._state import State, Trial
from . import state as st
from .protocol import (
    Batch,
    Call,
    Items,
    failed_outcome,
)
from .trials import as_trials
from .triggers import fail_downstream
from .values import fetched, items_here

if TYPE_CHECKING:
    from .loop import Loop

logger = logging.getLogger("dagexec.engine")


def _here(value: Any) -> Any:
    """A map's list (or each list of a map by name), fetched where a worker keeps it."""
    if type(value) is Mapped:
        return value._replace(lists=tuple(fetched(v) for v in value.lists))
    return fetched(value)


class MapRun:
    """A ``task.map`` node expanded at run time: its items, and each item's trials."""

    __slots__ = (
        "call", "failed", "failed_items", "feed", "keys", "kwargs", "m", "named",
        "owed", "rest", "units", "upstream", "values", "values_in",
    )  # fmt: skip

    def __init__(self, m: int, call: Call, items: list[Any]) -> None:
        n = len(items)
        self.m = m
        self.call = call
        self.values_in = items
        self.rest = tuple(call.args[1:])  # the fixed arguments after the item
        self.kwargs = call.kwargs
        self.values: list[Any] = [None] * n
        self.units: list[int] = []  # each item's unit
        self.failed = False
        self.failed_items: list[int] = []  # the items that failed, in the order they did
        self.upstream = False  # an item of the map it is chained to failed
        self.keys: list[str | None] | None = None  # each item's cache key, with a cache
        self.feed: tuple[Batch, int, int] | None = None  # over an open stream: (its pipe, producer, buffer)
        self.owed = False  # the pipe waits for the master to take more items
        self.named = False  # by name: each item is a dict of keywords (dagexec/_mapping.py)

    def item_key(self, j: int) -> str:
        return f"{self.call.spec.key}[{j}]"


class Maps:
    """The run's map expansions (``runs``, by map node) and items (``items``, by unit)."""

    __slots__ = ("fed", "items", "loop", "runs", "streaming")

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.runs: dict[int, MapRun] = {}
        self.items: dict[int, tuple[MapRun, int]] = {}
        self.fed: dict[int, MapRun] = {}  # by producer: the maps over open streams
        self.streaming = 0  # pipes in flight that post items (not counted in ``inflight``)

    # -- maps over a stream --------------------------------------------------------
    def fed_maps(self, outlets: dict[int, int], members: dict[int, int]) -> dict[int, int]:
        """Of the plan's maps over streams (``outlets``: map -> producer), those a pipe of
        ``members`` (unit -> position) feeds now, by producer: not when the cache
        writes the map (its items are keyed by the complete list), nor once it ran."""
        loop = self.loop
        state, waiting, saving = loop.state, loop.waiting, loop.saving
        out: dict[int, int] = {}
        for m, p in outlets.items():
            if p not in members:
                continue
            run = self.runs.get(m)
            if run is not None and run.feed is not None and state[m] == st.JOINING:
                out[p] = m  # the producer runs again (a retry before any item left it)
            elif state[m] == st.PENDING and waiting[m] == 1 and not (saving is not None and saving[m]):
                out[p] = m
        return out

    def open(self, batch: Batch, fed: dict[int, int]) -> dict[int, int]:
        """Pipe ``batch`` feeds the maps ``fed`` (by producer): each opens, with no item
        yet; returns each producer's ``buffer``."""
        loop = self.loop
        buffers: dict[int, int] = {}
        for p, m in fed.items():
            run = self.runs.get(m)
            if run is None:
                call = loop.make_call(m)  # args[0] is the producer's FEED: the items come later
                loop.state[m] = st.JOINING
                run = self.runs[m] = MapRun(m, call, [])
            opts = loop.plan._opts[p]
            buffers[p] = opts.buffer if opts is not None else 64
            run.feed = (batch, p, buffers[p])
            self.fed[p] = run
        return buffers

    def arrived(self, posted: Items) -> None:
        """A pipe posted items for the map over its producer's stream: one unit each,
        ready at the bottom of the map's lane's stack (first come, first run)."""
        loop = self.loop
        run = self.fed.get(posted.idx)
        if run is None or loop.state[run.m] != st.JOINING or loop.stopping:
            # the map ended (fail_fast), or the run stops: the items go nowhere, and the
            # pipe, which waits for them to be taken, goes on to its end (it gives no more)
            loop.execs[loop.route[posted.idx]].more(posted.batch)
            return
        items = posted.items
        j0 = len(run.values_in)
        run.values_in.extend(items)
        run.values.extend([None] * len(items))
        units = loop.add_units(len(items), run.m, run.kwargs)
        run.units.extend(units)
        loop.waiting[run.m] += len(items)
        for j, u in enumerate(units, j0):
            self.items[u] = (run, j)
        loop.ready[loop.route[run.m]][0:0] = reversed(units)
        run.owed = True
        self._take_more(run)

    def _take_more(self, run: MapRun) -> None:
        """Let ``run``'s pipe post more items, once at most ``buffer`` of the map's items
        have not ended (none, on an executor that runs in the master); or at once where the pipe and the map share
        an executor whose every worker a pipe holds (its items would wait for ever)."""
        loop = self.loop
        if run.feed is None or not run.owed:
            return  # its pipe ended, or waits for nothing
        batch, p, buffer = run.feed
        ex = loop.execs[loop.route[p]]
        route = loop.route
        lane = route[p]
        full = (
            not ex.runs_in_master
            and lane == route[run.m]
            and sum(1 for q in self.fed if route[q] == lane) >= ex.capacity  # pipes holding its workers
        )
        # in the master thread (serial), the producer waits for the map's items to run:
        # nothing else would run them meanwhile
        if loop.waiting[run.m] - 1 <= (0 if ex.runs_in_master else buffer) or full:
            run.owed = False
            ex.more(batch)

    def received(self, batch: Batch) -> dict[int, int]:
        """The items pipe ``batch``'s producers sent to their maps, by producer."""
        assert batch.outlets is not None
        runs = (self.fed.get(batch.calls[k].idx) for k in batch.outlets)
        return {run.feed[1]: len(run.values_in) for run in runs if run is not None and run.feed is not None}

    def pipe_ended(self, batch: Batch) -> None:
        """Pipe ``batch``, which fed maps, ended: each map's stream closes, unless its
        producer runs again (a retry before any item left it)."""
        loop = self.loop
        self.streaming -= 1
        assert batch.outlets is not None
        for k in batch.outlets:
            p = batch.calls[k].idx
            run = self.fed.get(p)
            if run is None or run.feed is None or run.feed[0] is not batch:
                continue
            now = loop.state[p]
            if now == st.PENDING and not run.values_in:
                self._reopen(run)  # it runs again, as a pipe or alone, before any item came
                continue
            if now in (st.PENDING, st.RUNNING):
                continue  # the run stops (the map is cancelled at the end)
            del self.fed[p]
            run.feed, run.owed = None, False
            if loop.state[run.m] != st.JOINING:
                continue
            if now != st.SUCCEEDED:  # its wait for the producer never ends: it ends here
                run.upstream = True
                loop.waiting[run.m] -= 1
                if loop.stopping:  # fail_fast: its items not ended are cancelled at the end
                    loop.state[run.m] = st.UPSTREAM_FAILED
                    continue
            if loop.waiting[run.m] == 0:
                self.end(run)

    def expand(self, m: int, stack: list[int]) -> None:
        """Map node ``m`` is ready: one unit per item onto ``stack`` (item 0 on top)."""
        loop = self.loop
        call = loop.make_call(m)  # its values filled in; args[0] is the list of items
        loop.state[m] = st.JOINING
        named = type(call.args[0]) is Mapped  # by name: one dict of keywords per item
        try:
            items = named_items(_here(call.args[0])) if named else list(_here(call.args[0]))
        except Exception as exc:
            error: Exception = TypeError(
                f"node {call.key!r}: map needs a list of items, got {type(call.args[0]).__name__}"
            )
            if named:
                error = type(exc)(f"node {call.key!r}: {exc}")
            error.__cause__ = exc
            loop.failed(m, failed_outcome(call, error, time.time(), "master"), State.FAILED, error, "")
            return
        run = MapRun(m, call, items)
        run.named = named
        self.runs[m] = run
        if not items:
            self.end(run)
            return
        self._add_units(run)
        self._chain(run)
        if loop.saving is not None and loop.saving[m]:
            assert loop.cache is not None
            for j, value in loop.cache.load_items(run):
                loop.settle(run.units[j], value, st.CACHED)
        state = loop.state
        stack.extend(reversed([u for u in run.units if state[u] == st.PENDING]))

    def _add_units(self, run: MapRun) -> None:
        """A unit per item of ``run``, run as its map's trials; the map joins them."""
        loop = self.loop
        units = loop.add_units(len(run.values_in), run.m, run.kwargs)
        run.units = list(units)
        loop.waiting[run.m] = len(units)  # JOINING: its items not yet ended
        items = self.items
        for j, u in enumerate(units):
            items[u] = (run, j)

    def _chain(self, source: MapRun) -> None:
        """Expand now each map over ``source``'s own list that waits for nothing else:
        its item k depends on ``source``'s item k (a unit dependency: ready when that one
        has succeeded, item by item, not map by map; upstream failed when it failed)."""
        loop = self.loop
        a = source.m
        for b in loop.dependents[a]:
            if (
                loop.kind[b] != st.EXPAND
                or loop.state[b] != st.PENDING
                or loop.waiting[b] != 1
                or loop.nested[b]
                or (0, a) not in loop.fills[b]
            ):
                continue
            call = loop.make_call(b)
            loop.state[b] = st.JOINING
            run = MapRun(b, call, [None] * len(source.units))
            self.runs[b] = run
            self._add_units(run)
            dependents, waiting = loop.dependents, loop.waiting
            for u, v in zip(source.units, run.units, strict=True):
                dependents[u] = (*dependents[u], v)
                waiting[v] = 1
            self._chain(run)

    def spec(self, u: int) -> NodeSpec:
        """Item ``u``'s spec: its map's under its own key (messages and workers name the
        item), made when it first runs, with its arguments (the item, then the map's
        fixed ones) in the loop's ``args``."""
        run, j = self.items[u]
        if run.named:
            self.loop.args[u] = run.rest
            self.loop.kwargs[u] = {**(run.kwargs or {}), **run.values_in[j]}
        else:
            self.loop.args[u] = (run.values_in[j], *run.rest)
        s = run.call.spec
        fn = s.fn
        key = f"{s.key}[{j}]"
        if type(fn) is MutationCheck:  # run(check_mutation=True): the item's own check
            fn = fn.for_item(j, key)
        return NodeSpec(key, fn, s.task, s.checks, s.ret, s.timeout, s.resources, s.coro)

    def member_ended(self, u: int) -> None:
        """Item ``u`` succeeded: its value moves from the loop's ``vals`` to its map's
        list and becomes the argument of the items chained to it (which the loop then
        readies as any dependents, unless the cache serves them); the map joins when
        its last item ends."""
        loop = self.loop
        run, j = self.items[u]
        value = run.values[j] = loop.vals[u]
        loop.vals[u] = st.RELEASED
        loop.left[u] = 0
        if not loop.stopping:
            for d in loop.dependents[u]:
                chained = self.items[d][0]
                chained.values_in[j] = value
                if loop.saving is not None and loop.saving[chained.m] and loop.state[d] == st.PENDING:
                    assert loop.cache is not None
                    found, cached = loop.cache.load_chained(chained, j)
                    if found:
                        loop.settle(d, cached, st.CACHED)
        self._joined(run)

    def member_failed(self, u: int, seen: float) -> None:
        """Item ``u`` failed (``seen``: when): its map fails, at once with fail_fast
        (items in flight still report), else when its last item ends."""
        loop = self.loop
        run, j = self.items[u]
        run.failed = True
        run.failed_items.append(j)
        if loop.fail_fast and not loop.stopping:
            loop.fail(run.m, seen)
        self._joined(run)

    def member_blocked(self, u: int) -> None:
        """Item ``u`` failed upstream (the item it is chained to failed)."""
        run = self.items[u][0]
        run.upstream = True
        self._joined(run)

    def _reopen(self, run: MapRun) -> None:
        """``run``'s producer runs again before any item came: the map is pending again,
        opened by the producer's next pipe, or expanded over its list."""
        assert run.feed is not None
        loop = self.loop
        del self.fed[run.feed[1]], self.runs[run.m]
        run.feed, run.owed = None, False
        loop.state[run.m] = st.PENDING
        loop.attempt[run.m] -= 1

    def _joined(self, run: MapRun) -> None:
        """One more of ``run``'s items ended: the map joins after the last."""
        waiting = self.loop.waiting
        waiting[run.m] -= 1
        if waiting[run.m] == 0:
            self.end(run)
        elif run.owed:
            self._take_more(run)

    def end(self, run: MapRun) -> None:
        """Every item of a map ended: the map node succeeds with the list of values, or
        fails (its dependents upstream_failed) when an item failed."""
        loop = self.loop
        m = run.m
        if loop.state[m] != st.JOINING:
            return  # failed already (fail_fast)
        if run.failed:
            loop.fail(m, time.time())
            return
        if run.upstream:
            loop.state[m] = st.UPSTREAM_FAILED
            loop.release_reads(m)
            fail_downstream(loop, m)
            return
        values = run.values
        run.values = []
        if loop.saving is not None and loop.saving[m]:
            assert loop.cache is not None
            try:
                loop.cache.save(m, items_here(values) if loop.remote else values)
            except Exception:  # an item's value lost with a worker: the map is not cached
                logger.warning("node %r: its items could not be fetched to cache", run.call.key, exc_info=True)
        loop.settle(m, values, st.SUCCEEDED)

    def key(self, u: int) -> str:
        """The key of item ``u`` (``inv[2]``)."""
        run, j = self.items[u]
        return run.item_key(j)

    def end_all(self, run: MapRun, now: float) -> None:
        """The run ended (stopped, or interrupted): ``run``'s items not ended are cancelled."""
        loop = self.loop
        state, attempt = loop.state, loop.attempt
        for u in run.units:
            now_in = state[u]
            if now_in == st.RUNNING:
                loop.trials.cancel_running(u, attempt[u], now)
            if now_in in (st.PENDING, st.RUNNING):
                state[u] = st.CANCELLED

    def stopped(self, now: float) -> None:
        """The loop ended (every map ended, or fail_fast stopped the run): items not
        ended are cancelled, and a map still running with them."""
        state = self.loop.state
        for run in self.runs.values():
            self.end_all(run, now)
            if state[run.m] == st.JOINING:  # fail_fast stopped it: items were cancelled
                state[run.m] = st.CANCELLED
                if run.failed:  # an item in flight when another node stopped the run failed
                    self.loop.fail(run.m, now)

    def with_items(
        self, keys: tuple[str, ...], states: dict[str, State], rows: list[Any]
    ) -> tuple[dict[str, State], dict[str, list[Trial]]]:
        """States and trials with each map's items after the map node itself."""
        state = self.loop.state
        ends = self.loop.trials.ends
        out_states: dict[str, State] = {}
        out_trials: dict[str, list[Trial]] = {}
        for i, key in enumerate(keys):
            out_states[key] = states[key]
            out_trials[key] = as_trials(key, rows[i], ends[i])
            run = self.runs.get(i)
            if run is not None:
                for j, u in enumerate(run.units):
                    item_key = run.item_key(j)
                    out_states[item_key] = st.STATES[state[u]]
                    out_trials[item_key] = as_trials(item_key, rows[u])
        return out_states, out_trials
