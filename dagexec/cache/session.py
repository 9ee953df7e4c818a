"""One run's use of the cache: what the store serves before the run starts, what the
run writes to it, and the cache keys of a map's items.

:func:`dagexec._api.run` decides with :mod:`dagexec.cache.decide` what the cache
serves and hands the loop the store and the decision; :class:`CacheSession` applies
the decision to the run's lists once, then writes each value a node (or a map's item)
that the plan stores makes, before its dependents run (one could change it in place).
A failure to write, or to make an item's key, is logged and the run goes on: the cache
never makes a run fail.  Logs on ``dagexec.engine``, as the loop did.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .._state import Trial
from ..run.state import CACHED, PENDING, RELEASED, SUCCEEDED
from ..run.values import fetched

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from ..run.maps import MapRun
    from .decide import CacheDecision
    from .store import CacheStore

logger = logging.getLogger("dagexec.engine")


class CacheSession:
    """The store, the plan's cache keys, and per unit whether its value is written
    (``saving``: the loop extends it to its slots and its map items); ``item_keys``: a
    map item's cache key and name, by unit; ``earlier``: the trials of the run being
    resumed, shown first; ``decision``: what the cache served and what ran, without the
    loaded values (for the run's report)."""

    __slots__ = ("decision", "earlier", "item_keys", "keys", "plan", "saving", "store")

    def __init__(
        self, plan: CompiledGraph, store: CacheStore, decision: CacheDecision, earlier: dict[int, list[Trial]]
    ) -> None:
        self.plan = plan
        self.store = store
        self.keys = keys = decision.keys
        runs = decision.runs
        self.saving = [
            runs[i] and keys.stored[i] and keys.keys[i] is not None for i in range(len(plan._keys))
        ]
        self.earlier = earlier
        self.item_keys: dict[int, tuple[str, str]] = {}
        self.decision = replace(decision, values={})

    def apply(
        self,
        decision: CacheDecision,
        state: list[int],
        vals: list[Any],
        left: list[int],
        waiting: list[int],
    ) -> None:
        """Mark the nodes the cache serves (or that only cached nodes need) ``cached``,
        with their loaded values, and those that succeeded in the run being resumed
        ``succeeded``: their reads and their dependents' waits are counted off."""
        runs = decision.runs
        reads, dependents = self.plan._reads, self.plan._dependents
        for i in range(len(self.plan._keys)):
            if state[i] != PENDING or runs[i]:
                continue
            state[i] = SUCCEEDED if i in decision.resumed else CACHED
            vals[i] = decision.values.get(i, RELEASED)
            for s in reads[i]:
                left[s] -= 1
            for d in dependents[i]:
                waiting[d] -= 1

    def save(self, u: int, value: Any) -> None:
        """Write unit ``u``'s value (a node's or a map item's) to the store (a failure
        to write is logged, not raised)."""
        keys = self.keys
        if u < len(self.plan._keys):
            key, name = keys.keys[u], self.plan._keys[u]
            what = "node"
        else:
            key, name = self.item_keys[u]
            what = "item"
        assert key is not None
        try:
            value = fetched(value)
            meta = {"node": name, "graph": self.plan.name}
            if what == "node":
                meta.update(keys.parts(u))
            # written before a dependent runs, which might change the value in place
            self.store.put(key, value, meta)
        except Exception:
            logger.warning("%s %r: its value could not be written to the cache", what, name, exc_info=True)

    def load_items(self, run: MapRun) -> list[tuple[int, Any]]:
        """Make the cache keys of ``run``'s items: ``(j, value)`` for each item ``j``
        whose entry is in the store, in order; the others are written when done
        (``saving``)."""
        from .keys import item_keys

        try:
            run.keys = list(item_keys(self.plan._specs[run.m].fn, run.rest, run.kwargs, run.values_in))
        except Exception:
            logger.warning("map %r: its items' cache keys could not be made", run.call.key, exc_info=True)
            return []
        found = [(j, self.load(run, j)) for j in range(len(run.keys))]
        return [(j, value) for j, (ok, value) in found if ok]

    def load_chained(self, run: MapRun, j: int) -> tuple[bool, Any]:
        """Make the cache key of a chained map's item ``j``, now that its argument is
        known: ``(True, value)`` if its entry is in the store; else ``(False, None)``,
        and it is written when done."""
        from .keys import item_keys

        if run.keys is None:
            run.keys = [None] * len(run.units)
        try:
            run.keys[j] = item_keys(self.plan._specs[run.m].fn, run.rest, run.kwargs, [run.values_in[j]])[0]
        except Exception:
            logger.warning("item %r: its cache key could not be made", run.item_key(j), exc_info=True)
            return False, None
        return self.load(run, j)

    def load(self, run: MapRun, j: int) -> tuple[bool, Any]:
        """Item ``j``'s value from the store, ``(True, value)``, if its entry is there;
        else ``(False, None)``, and it is written when done."""
        assert run.keys is not None
        key = run.keys[j]
        if key is not None and key in self.store:
            ok, value = self.store.get(key)
            if ok:
                return True, value
        self._will_save(run, j)
        return False, None

    def _will_save(self, run: MapRun, j: int) -> None:
        """Item ``j`` of ``run`` runs: its value is written when it succeeds."""
        key = run.keys[j] if run.keys is not None else None
        if key is not None:
            u = run.units[j]
            self.item_keys[u] = (key, run.item_key(j))
            self.saving[u] = True
