"""Several trials in one submission, on executors that take batches.

A submission costs a round trip to a worker, which may be more than a tiny task's run.
On an executor with ``batches``, a node's linear chain (each link the only reader of the
one before, on the same lane) goes as one :class:`~dagexec.run.protocol.Batch`, its
values passed along in the worker.  On one with ``batch_tiny`` as well, trials of
functions measured tiny (:data:`TINY_S`) go several to a batch, within
:data:`BATCH_BUDGET_S` of their past running time; a map's items go ``chunksize`` to a
batch, or as many tiny ones as fit the budget.  A member of a batch the executor split
runs alone after (``solo``).

On executors with ``inline_tiny`` (threads), a trial of a function measured under
:data:`INLINE_S` is not submitted at all: the loop runs it in the master thread
(``quick`` holds those functions; :meth:`Batching.observe` keeps it, and
:meth:`Batching.ran_here` sends a function back to the threads after two slow trials in
a row in the master; :mod:`.here` runs them).

:class:`Batching` chooses the members; :func:`submit_batch` makes the calls and sends
the batch, and :func:`finish_batch` finishes each member's outcome through the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._shell import run_command
from .ahead import push_dependents, withdraw_ahead
from .policy import refused
from .protocol import FEED, LINK, O_ATTEMPT, O_IDX, O_START, Batch, BatchDone, Call, Executor, Outcome
from .state import MEMBER, PENDING, PLAIN

logger = logging.getLogger("dagexec.engine")

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .loop import Loop

#: a function whose trials took less than this (seconds) is tiny: on executors with
#: ``batch_tiny``, its ready trials go several to a submission
TINY_S = 0.002
#: the most work (by the functions' past times) put in one batch of tiny trials
BATCH_BUDGET_S = 0.02
#: the most members of one batch (chains included)
MAX_BATCH = 256
#: a function whose trials took less than this (seconds, a running average) runs in
#: the master thread on executors with ``inline_tiny``: a hand-off to a worker thread
#: and back costs about 10-20 µs, so a trial this short gains nothing from a thread,
#: even one that releases the GIL; a longer one keeps its thread
INLINE_S = 25e-6
#: trials run in the master in a row before the loop looks at what the workers posted
INLINE_BURST = 256


class Batching:
    """Per lane, whether it takes batches (``on``) and tiny batches (``tiny``); the plan's
    chain links (None when no lane takes batches); per function, its seconds per trial
    (``est``); the units to run alone (``solo``); per lane, whether it runs tiny trials
    in the master (``inline``), and the functions measured that tiny (``quick``).  It
    reads the loop's per-unit lists ``route``, ``state``, ``kind`` and ``owner`` (a map
    item's function is its map's)."""

    __slots__ = (
        "est", "inline", "keeps", "kind", "links", "measured", "on", "opts", "owner", "pipe_of", "pipes", "quick",
        "route", "solo", "specs", "state", "suspect", "tiny",
    )  # fmt: skip

    def __init__(
        self, plan: CompiledGraph, lanes: Sequence[Executor], n_execs: int, remote: bool, loop: Loop
    ) -> None:
        # lanes past n_execs run async tasks: never batched; in a run where values stay
        # on workers, only the lanes of the one executor that keeps them (its calls
        # read its own handles; a value from elsewhere would need fetching)
        keepers = {id(ex) for ex in lanes if ex.keeps_values}
        self.keeps = [ex.keeps_values for ex in lanes]
        self.on = [
            ex.batches and r < n_execs and (not remote or (ex.keeps_values and len(keepers) == 1))
            for r, ex in enumerate(lanes)
        ]
        self.tiny = [b and ex.batch_tiny for b, ex in zip(self.on, lanes, strict=True)]
        self.inline = [ex.inline_tiny and not remote and r < n_execs for r, ex in enumerate(lanes)]
        # the lanes whose trials' times are observed
        self.measured = [t or i for t, i in zip(self.tiny, self.inline, strict=True)]
        self.quick: set[Any] = set()
        self.suspect: set[Any] = set()  # quick functions whose last trial in the master was slow
        # per unit, the node that continues its chain, or -1 (a map item is in none)
        links: Any = plan._chain_links() if any(self.on) else None
        if links is not None and plan._maps:  # map items are appended past the slots
            links = list(links)
            loop.track(links, -1)
        self.links: Any = links
        # per pipe head, its members (dagexec/plan/streams.py): one batch, run interleaved
        self.pipes = plan._stream_feeds().pipes if any(self.on) else {}
        self.pipe_of = {m: head for head, members in self.pipes.items() for m in members}
        self.specs = plan._specs
        self.opts = plan._opts
        self.route = loop.route
        self.state = loop.state
        self.kind = loop.kind
        self.owner = loop.owner
        self.est: dict[Any, float] = {}
        self.solo: set[int] = set()

    def members(self, i: int, r: int, stack: list[int]) -> list[int] | None:
        """The units to submit with ``i`` as one batch (``i`` first), or None for ``i`` alone.

        A map item goes with more of its map's (:meth:`item_chunk`).  A node's linear
        chain follows it; on executors with ``batch_tiny``, when ``i``'s
        function is tiny, more tiny ready nodes from the top of ``stack`` (each with its
        chain): all of them, up to ``MAX_BATCH`` nodes and ``BATCH_BUDGET_S`` of their
        past running time.  Tiny work gains nothing from being spread over workers, and
        each submission costs a round trip, so the batch is not split to share it out;
        the budget keeps trials of a few milliseconds spread over the workers.
        """
        if self.kind[i] == MEMBER:
            return self.item_chunk(i, r, stack)
        solo = self.solo
        if solo and i in solo:
            return None
        head = self.pipe_of.get(i) if self.pipes else None
        if head is not None:  # a pipe goes whole, even of one node (a producer's items);
            state = self.state  # what is left of one whose first nodes are done (cached)
            return [j for j in self.pipes[head] if j >= i and state[j] == PENDING and not (solo and j in solo)]
        members = [i]
        self.extend_chain(members, r)
        if self.tiny[r] and stack:
            specs = self.specs
            kind = self.kind
            est = self.est
            spec = specs[i]
            e = est.get(spec.fn)
            if e is not None and e < TINY_S and spec.timeout is None:
                budget = BATCH_BUDGET_S - e
                while stack and len(members) < MAX_BATCH:
                    j = stack[-1]
                    if kind[j] != PLAIN:
                        break  # a map node expands in the master; an item goes with its map's
                    spec = specs[j]
                    e = est.get(spec.fn)
                    if e is None or e >= TINY_S or spec.timeout is not None or e > budget or j in solo:
                        break
                    budget -= e
                    members.append(stack.pop())
                    self.extend_chain(members, r)
        return members if len(members) > 1 else None

    def extend_chain(self, members: list[int], r: int) -> None:
        """Append to ``members`` the chain that continues its last node on lane ``r``.

        Where values stay on workers (``keeps_values``: a cluster), a link's input lives
        only in the batch, so a link that may be retried starts a chain of its own: its
        input is then the batch's value, kept for the retry; and so does a link that
        asks for other ``resources`` than the chain's first node (a batch runs on one
        worker)."""
        links = self.links
        assert links is not None
        route, state, solo = self.route, self.state, self.solo
        keeps, opts, specs = self.keeps[r], self.opts, self.specs
        wants = specs[members[0]].resources if keeps else None
        j = links[members[-1]]
        while j >= 0 and route[j] == r and state[j] == PENDING and len(members) < MAX_BATCH:
            if (solo and j in solo) or (
                keeps and ((opts[j] is not None and opts[j].retries) or specs[j].resources != wants)
            ):
                return
            members.append(j)
            j = links[j]

    def item_chunk(self, u: int, r: int, stack: list[int]) -> list[int] | None:
        """Items of the same map to submit with item ``u`` as one batch: the map's
        ``chunksize``, or where the executor batches tiny trials, as many as fit
        ``BATCH_BUDGET_S`` of their function's past running time; None for ``u`` alone."""
        kind, owner = self.kind, self.owner
        m = owner[u]
        spec = self.specs[m]
        opts = self.opts[m]
        solo = self.solo
        if spec.timeout is not None or (solo and u in solo):
            return None
        size = opts.chunksize if opts is not None else None
        if size is None:
            e = self.est.get(spec.fn)
            if not self.tiny[r] or e is None or e >= TINY_S:
                return None
            size = min(MAX_BATCH, max(1, int(BATCH_BUDGET_S / max(e, 1e-6))))
        members = [u]
        while len(members) < size and stack and kind[stack[-1]] == MEMBER and owner[stack[-1]] == m:
            if solo and stack[-1] in solo:
                break
            members.append(stack.pop())
        return members if len(members) > 1 else None

    def ran_here(self, i: int, took: float) -> None:
        """Unit ``i``'s trial ran in the master and took ``took`` seconds (told when that
        is :data:`INLINE_S` or more, or when a function is suspect).

        A slow trial makes its function suspect, and a second in a row sends it back to
        the threads: one alone may be the machine's doing (a preemption, a garbage
        collection), not the function's.  A quick one clears the suspicion."""
        fn = self.specs[self.owner[i]].fn
        if took < INLINE_S:
            self.suspect.discard(fn)
        elif fn in self.suspect:
            self.suspect.discard(fn)
            self.quick.discard(fn)
            self.est[fn] = took
        else:
            self.suspect.add(fn)

    def observe(self, out: Outcome) -> None:
        """Keep a running estimate of how long the node's function takes; a function
        under :data:`INLINE_S` that may run in the master is ``quick``."""
        i, _, _, _, _, _, start, end, _, _ = out  # unpacked once: it runs for each outcome
        spec = self.specs[self.owner[i]]
        fn = spec.fn
        took = end - start
        e = self.est.get(fn)
        e = self.est[fn] = took if e is None else (e + took) / 2
        if e < INLINE_S:
            if fn not in self.quick and not spec.coro and fn is not run_command:
                self.quick.add(fn)
        elif self.quick:
            self.quick.discard(fn)


def before_stop(batch: Batch, outs: list[Outcome], stop_time: float) -> list[Outcome]:
    """The outcomes of a batch the master would have seen had its members been
    submitted one by one: a chain member that started after fail_fast stopped the
    run (at ``stop_time``) would not have been submitted (it counts as not run, and
    ends cancelled)."""
    linked = batch.linked
    pos = {call.idx: k for k, call in enumerate(batch.calls)}
    kept = []
    broken = False
    for out in outs:
        if linked[pos[out[O_IDX]]]:
            if broken or out[O_START] >= stop_time:
                broken = True
                continue
        else:
            broken = False
        kept.append(out)
    return kept


def submit_batch(loop: Loop, members: list[int], r: int, ex: Executor, ahead: list[int] | None = None) -> None:
    """Submit ``members`` (each chain link after the node it reads) to ``ex``, lane ``r``;
    with ``ahead``, the lane's stack, what waits for its members may go ahead onto it
    (:mod:`.ahead`)."""
    vals, kept, links, make, saving = (
        loop.vals,
        loop.kept,
        loop.batches.links,
        loop.make_call,
        loop.saving,
    )
    n_slots = loop.n_slots
    assert links is not None
    calls: list[Call] = []
    linked: list[bool] = []
    keep: list[bool] = []
    prev = -1
    if loop.batches.pipes and members[0] in loop.batches.pipe_of:
        batch = pipe_batch(loop, members, ex)
        calls, linked = batch.calls, batch.linked
    else:
        for j in members:
            is_link = prev >= 0 and links[prev] == j
            if is_link:
                vals[prev] = LINK  # where j reads prev, the worker passes prev's value
            calls.append(make(j))
            linked.append(is_link)
            # a chained value stays in the worker unless kept, or written to the cache
            # (a map item's value always comes back: no member reads it)
            keep.append(j >= n_slots or kept[j] or (saving is not None and saving[j]))
            prev = j
        batch = Batch(calls, linked, keep)
    if loop.has_cb:
        # a chained member's trial starts when its outcome arrives (finish_batch):
        # callbacks see what they would see were the chain submitted node by node
        for call, is_link in zip(calls, linked, strict=True):
            if not is_link:
                loop.trials.started(call.idx, call.attempt)
            if loop.tracer is not None:  # the trace context each member runs in
                call.trace = loop.tracer.traceparent(loop.trials.key(call.idx), call.attempt)
    # in flight before it is sent: its first member may run, and a Ctrl-C arrive,
    # before submit_batch returns, and an interrupted run must find every member
    if batch.outlets:  # a pipe that posts items: it may hold the lane's one slot (serial)
        loop.maps.streaming += 1
    else:
        loop.inflight[r] += 1
    for j in members:
        loop.calls[j] = batch
    done = send_batch(loop, batch, ex)
    if done is not None:
        if not batch.outlets:
            loop.inflight[r] -= 1
        for j in members:
            loop.calls.pop(j, None)
        finish_batch(loop, done, False)
    elif ahead is not None:
        for j in members:
            push_dependents(loop, j, batch, ex, r, ahead)


def pipe_batch(loop: Loop, members: list[int], ex: Executor) -> Batch:
    """The batch of a pipe's ``members`` (:mod:`.pipes`): ``FEED`` where each is fed, and
    the position of the member feeding it; a producer's list kept where the master, the
    cache or a node outside the pipe needs it (not a map it feeds through an outlet:
    ``ex.outlets``, :mod:`.maps`)."""
    streams = loop.plan._stream_feeds()
    pos = {j: k for k, j in enumerate(members)}
    vals, kept, saving, dependents = loop.vals, loop.kept, loop.saving, loop.dependents
    for j in members:
        if j in streams.producers:
            vals[j] = FEED  # where a member reads it, the worker feeds it item by item
    calls = [loop.make_call(j) for j in members]
    # fed by a member; by a producer done before (cached): an iterator over its list
    feeds = [tuple((where, pos[p]) for where, p in streams.feeds[j] if p in pos) for j in members]
    fed = loop.maps.fed_maps(streams.outlets, pos) if streams.outlets and ex.outlets else {}
    keep = [
        kept[j] or (saving is not None and saving[j]) or any(d not in pos and d != fed.get(j) for d in dependents[j])
        for j in members
    ]
    batch = Batch(calls, [False] * len(members), keep, feeds)
    if fed:
        batch.outlets = {pos[p]: buffer for p, buffer in loop.maps.open(batch, fed).items()}
        batch.taken = threading.Event()
        batch.taken.set()
    return batch


def send_batch(loop: Loop, batch: Batch, ex: Executor) -> BatchDone | None:
    """``ex.submit_batch(batch)``; where it raises, the first member crashed and
    the others did not run (they go again without using an attempt)."""
    try:
        return ex.submit_batch(batch, loop.q.put)
    except Exception as exc:
        return BatchDone(batch, [refused(batch.calls[0], ex, exc)])


def finish_batch(loop: Loop, done: BatchDone, async_: bool) -> None:
    """A batch ended (``async_``: posted by its executor): each outcome is finished as
    a trial's; members that did not run are pending again."""
    calls = mine = done.batch.calls
    first = calls[0]
    i = first.idx
    if async_:
        batch, owned = done.batch, loop.calls
        mine = [call for call in calls if owned.get(call.idx) is batch]  # not detached (ahead.py)
        if not mine:
            return  # an abandoned batch (the run was interrupted) reporting late
        if not done.batch.outlets:
            loop.inflight[loop.route[i]] -= 1
        for call in mine:
            del owned[call.idx]
    outs = done.outcomes
    if len(mine) < len(calls):  # a detached member's outcome is not its unit's now
        kept_idx = {call.idx for call in mine}
        outs = [out for out in outs if out[O_IDX] in kept_idx]
    if done.split:
        logger.info("a batch of %d trials from %r on runs again one by one", len(calls), first.key)
        for call in calls:
            loop.batches.solo.add(call.idx)
    elif loop.stopping:
        outs = before_stop(done.batch, outs, loop.stop_time)
    if len(outs) < len(calls):
        # members that did not run (or whose outcome was lost with a crashed worker)
        # are pending again, without using an attempt
        ran = {out[O_IDX] for out in outs}
        waiting, state, ready, route = loop.waiting, loop.state, loop.ready, loop.route
        for call in mine:
            if call.idx not in ran:
                withdraw_ahead(loop, call.idx)  # what was sent ahead waiting for it
                loop.unstart(call)
        if not loop.stopping:
            for call in reversed(mine):
                j = call.idx
                if j not in ran and state[j] == PENDING and waiting[j] == 0:
                    ready[route[j]].append(j)
    if done.batch.outlets:  # what reached a map left, whatever the pipe's end says (a crash)
        done.items = {**loop.maps.received(done.batch), **(done.items or {})}
    # a pipe's: what each producer yielded (no retry once it has; on its trial's record)
    loop.trials.yielded = done.items
    observe = loop.batches.measured[loop.route[i]]
    finish = loop.finish
    has_cb = loop.has_cb
    linked = done.batch.linked
    k = 0
    for out in outs:
        if observe:
            loop.batches.observe(out)
        if has_cb:
            idx = out[O_IDX]
            while calls[k].idx != idx:
                k += 1
            if linked[k]:
                loop.trials.started(idx, calls[k].attempt, out[O_START])
        finish(out, False)
    loop.trials.yielded = None
    if done.items:  # on each producer's trial record (a compact one made a Trial)
        for out in outs:
            n = done.items.get(out[O_IDX])
            if n is not None:
                loop.trials.set_items(out[O_IDX], out[O_ATTEMPT], n)
    if done.batch.outlets:
        loop.maps.pipe_ended(done.batch)
