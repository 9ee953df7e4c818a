"""Several trials in one submission, on executors that take batches.

A submission costs a round trip to a worker, which may be more than a tiny task's run.
On an executor with ``batches``, a node's linear chain (each link the only reader of the
one before, on the same lane) goes as one :class:`~dagexec.run.protocol.Batch`, its
values passed along in the worker.  On one with ``batch_tiny`` as well, trials of
functions measured tiny (:data:`TINY_S`) go several to a batch, within
:data:`BATCH_BUDGET_S` of their past running time; a map's items go ``chunksize`` to a
batch, or as many tiny ones as fit the budget.  A member of a batch the executor split
runs alone after (``solo``).

:class:`Batching` chooses the members; the loop makes the calls and sends the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .protocol import O_END, O_IDX, O_START, Batch, Executor, Outcome
from .state import PENDING

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .maps import MapRun

#: a function whose trials took less than this (seconds) is tiny: on executors with
#: ``batch_tiny``, its ready trials go several to a submission
TINY_S = 0.002
#: the most work (by the functions' past times) put in one batch of tiny trials
BATCH_BUDGET_S = 0.02
#: the most members of one batch (chains included)
MAX_BATCH = 256


class Batching:
    """Per lane, whether it takes batches (``on``) and tiny batches (``tiny``); the plan's
    chain links (None when no lane takes batches); per function, its seconds per trial
    (``est``); the nodes and item tokens to run alone (``solo``)."""

    __slots__ = ("est", "items", "links", "on", "opts", "route", "solo", "specs", "state", "tiny")

    def __init__(
        self,
        plan: CompiledGraph,
        lanes: Sequence[Executor],
        n_execs: int,
        remote: bool,
        route: list[int],
        state: list[int],
        items: dict[int, tuple[MapRun, int]],
    ) -> None:
        # lanes past n_execs run async tasks: never batched
        self.on = [ex.batches and not remote and r < n_execs for r, ex in enumerate(lanes)]
        self.tiny = [b and ex.batch_tiny for b, ex in zip(self.on, lanes, strict=True)]
        self.links = plan._chain_links() if any(self.on) else None
        self.specs = plan._specs
        self.opts = plan._opts
        self.route = route
        self.state = state
        self.items = items
        self.est: dict[Any, float] = {}
        self.solo: set[int] = set()

    def members(self, i: int, r: int, stack: list[int]) -> list[int] | None:
        """The nodes to submit with ``i`` as one batch (``i`` first), or None for ``i`` alone.

        ``i``'s linear chain follows it; on executors with ``batch_tiny``, when ``i``'s
        function is tiny, more tiny ready nodes from the top of ``stack`` (each with its
        chain): all of them, up to ``MAX_BATCH`` nodes and ``BATCH_BUDGET_S`` of their
        past running time.  Tiny work gains nothing from being spread over workers, and
        each submission costs a round trip, so the batch is not split to share it out;
        the budget keeps trials of a few milliseconds spread over the workers.
        """
        solo = self.solo
        if solo and i in solo:
            return None
        members = [i]
        self.extend_chain(members, r)
        if self.tiny[r] and stack:
            specs = self.specs
            est = self.est
            spec = specs[i]
            e = est.get(spec.fn)
            if e is not None and e < TINY_S and spec.timeout is None:
                budget = BATCH_BUDGET_S - e
                while stack and len(members) < MAX_BATCH:
                    j = stack[-1]
                    spec = specs[j]
                    e = est.get(spec.fn)
                    if e is None or e >= TINY_S or spec.timeout is not None or e > budget or j in solo:
                        break
                    budget -= e
                    members.append(stack.pop())
                    self.extend_chain(members, r)
        return members if len(members) > 1 else None

    def extend_chain(self, members: list[int], r: int) -> None:
        """Append to ``members`` the chain that continues its last node on lane ``r``."""
        links = self.links
        assert links is not None
        route, state, solo = self.route, self.state, self.solo
        j = links[members[-1]]
        while j >= 0 and route[j] == r and state[j] == PENDING and len(members) < MAX_BATCH:
            if solo and j in solo:
                return
            members.append(j)
            j = links[j]

    def item_chunk(self, token: int, r: int, stack: list[int]) -> list[int] | None:
        """Items to submit with ``token`` as one batch: the map's ``chunksize``, or where
        the executor batches tiny trials, as many as fit ``BATCH_BUDGET_S`` of their
        function's past running time; None for ``token`` alone."""
        items = self.items
        run = items[token][0]
        spec = self.specs[run.m]
        opts = self.opts[run.m]
        solo = self.solo
        if spec.timeout is not None or (solo and token in solo):
            return None
        size = opts.chunksize if opts is not None else None
        if size is None:
            e = self.est.get(spec.fn)
            if not self.tiny[r] or e is None or e >= TINY_S:
                return None
            size = min(MAX_BATCH, max(1, int(BATCH_BUDGET_S / max(e, 1e-6))))
        members = [token]
        while len(members) < size and stack and stack[-1] < 0 and items[stack[-1]][0] is run:
            if solo and stack[-1] in solo:
                break
            members.append(stack.pop())
        return members if len(members) > 1 else None

    def observe(self, out: Outcome) -> None:
        """Keep a running estimate of how long the node's function takes."""
        i = out[O_IDX]
        fn = self.specs[i if i >= 0 else self.items[i][0].m].fn
        took = out[O_END] - out[O_START]
        e = self.est.get(fn)
        self.est[fn] = took if e is None else (e + took) / 2


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
