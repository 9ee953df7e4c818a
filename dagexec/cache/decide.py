"""What a run with a cache runs, and why (DESIGN §7): the decision and ``explain``.

Given every node's cache key (``cache/keys.py``) and a store, this module says which
selected nodes run and which are served from the store, loads the values that are
needed, and, for ``plan.explain()`` and ``--dry-run``, gives the reasons.  It is kept
apart from the keys because it is about a store and a run, while the keys depend on
the plan and its inputs alone.

What runs (:func:`decide`): a node whose key is in the store is ``cached``; a node
that is not cached runs when a node that runs needs it, when it is an output or kept,
or when nothing selected reads it (a sink); every other node (only cached nodes need
it) is ``cached`` too and does not run.  The values of cached nodes are loaded only
where a node that runs reads them, or where they are outputs or kept; an entry that
fails to load is a miss (the store logs it), and the decision is made again.  In a
resumed run, nodes that the last run finished (``cache/journal.py``) count as done:
one runs again only where its value is needed and the store does not give it back.

Why a node runs (:func:`explain`) compares what went into its key with what went into
the newest entry the same graph wrote for it (an entry's meta holds those parts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .keys import _Keys
    from .store import CacheStore

__all__ = ["CacheDecision", "Explanation", "decide", "explain", "explain_run", "explanations", "open_store"]


def open_store(cache: Any) -> CacheStore | None:
    """A :class:`~dagexec.CacheStore` for ``run(cache=...)``: None, a folder or a store.

    Raises:
        TypeError: for anything else.
    """
    import os

    from .store import CacheStore

    if cache is None or isinstance(cache, CacheStore):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return CacheStore(cache)
    raise TypeError(f"cache must be a folder or a dagexec.CacheStore, got {type(cache).__name__}")


@dataclass
class CacheDecision:
    """What a run with a cache does: per node, whether it runs, and loaded values."""

    keys: _Keys
    #: per node: its key is in the store (and, for loaded ones, the entry was good)
    hit: list[bool]
    #: per node: it runs (selected, not cached, and needed)
    runs: list[bool]
    #: values of cached nodes that something needs: node idx -> value
    values: dict[int, Any]
    #: nodes that succeeded in the run being resumed, not in the store, not run again
    resumed: frozenset[int] = frozenset()


def decide(
    plan: CompiledGraph,
    store: CacheStore,
    keys: _Keys,
    selected: list[bool],
    kept: list[bool],
    load: bool = True,
    done: frozenset[int] = frozenset(),
) -> CacheDecision:
    """Which selected nodes run and which are cached; with ``load``, the values of
    cached nodes that a running node reads, or that are outputs or kept.

    ``done`` (resume) are nodes that succeeded in the run being resumed: they do not
    run again unless their value is needed (a node that runs reads it, or it is an
    output or kept) and the store does not give it back (never written, pruned since,
    or damaged): then they run again, so no output is ever left out.
    """
    n = len(plan._keys)
    hit = [
        selected[i] and keys.stored[i] and keys.keys[i] is not None and keys.keys[i] in store
        for i in range(n)
    ]
    finished = [selected[i] and i in done for i in range(n)]
    values: dict[int, Any] = {}
    while True:
        runs = _runs(plan, [h or f for h, f in zip(hit, finished, strict=True)], selected, kept)
        missed = False
        for i in range(n):
            if not (hit[i] or finished[i]) or i in values:
                continue
            if not hit[i]:
                if kept[i] or _read_by_runner(plan, i, runs):
                    finished[i] = False  # done before, but its value is needed and not stored
                    missed = True
                continue
            if not (kept[i] or _read_by_runner(plan, i, runs)):
                continue
            if not load:
                continue
            key = keys.keys[i]
            assert key is not None
            ok, value = store.get(key)
            if ok:
                values[i] = value
            else:
                hit[i] = finished[i] = False
                missed = True
        if not missed:
            return CacheDecision(
                keys, hit, runs, values, frozenset(i for i in range(n) if finished[i] and not hit[i])
            )


def _runs(plan: CompiledGraph, hit: list[bool], selected: list[bool], kept: list[bool]) -> list[bool]:
    n = len(plan._keys)
    runs = [False] * n
    dependents = plan._dependents
    for i in range(n - 1, -1, -1):
        if not selected[i] or hit[i]:
            continue  # hit: in the store, or done in the run being resumed
        users = [d for d in dependents[i] if selected[d]]
        runs[i] = kept[i] or not users or any(runs[d] for d in users)
    return runs


def _read_by_runner(plan: CompiledGraph, i: int, runs: list[bool]) -> bool:
    return any(runs[d] and i in plan._reads[d] for d in plan._dependents[i])


@dataclass(frozen=True)
class Explanation:
    """What a run with a cache would do with one node (``plan.explain()``).

    Attributes:
        key: the node key.
        action: ``"cached"`` (served from the store, or not needed by anything that
            runs), ``"run"``, ``"skipped"`` (left out by ``only``/``skip``) or, in a
            resumed run's report, ``"resumed"`` (done by the run it resumes).
        reasons: why it runs: ``"not cached yet"``, ``"code changed: mod:fn"``,
            ``"input changed: name"``, ``"constants changed"``, ``"upstream will run:
            key"``, ``"cache=False"``, ``"upstream not cacheable: key"``, ``"no cache
            key: input conn: app.Conn does not pickle"`` (a value the key needs has no
            stable token: the input, constant or code reference, and its type); for a
            cached node, ``"in the store"`` or ``"needed only by cached nodes"``.
        cache_key: the node's cache key, or None when it has none.
    """

    key: str
    action: str
    reasons: tuple[str, ...]
    cache_key: str | None

    def __str__(self) -> str:
        why = "; ".join(self.reasons)
        return f"{self.action:<8} {self.key}" + (f"  ({why})" if why else "")


def explain(
    plan: CompiledGraph, store: CacheStore, keys: _Keys, selected: list[bool], kept: list[bool]
) -> list[Explanation]:
    """For every node, what a run would do and why, without running or loading anything."""
    decision = decide(plan, store, keys, selected, kept, load=False)
    return explanations(plan, decision, selected, _latest_entries(store, plan.name))


def explain_run(
    plan: CompiledGraph, store: CacheStore, decision: CacheDecision, selected: list[bool], start: float
) -> list[Explanation]:
    """What a run of the nodes ``selected`` that started at ``start`` (``time.time()``)
    with ``decision`` did with each node and why, as :func:`explain` would have said
    just before it: a node that ran is compared with the newest entry written before
    the run (the run wrote its own since). For run reports."""
    return explanations(plan, decision, selected, _latest_entries(store, plan.name, before=start))


def explanations(
    plan: CompiledGraph, decision: CacheDecision, selected: list[bool], previous: dict[str, dict[str, Any]]
) -> list[Explanation]:
    """For every node, the action ``decision`` takes and why; ``previous``: the meta of
    the newest entry per node key, that a node's key parts are compared with."""
    keys = decision.keys
    out: list[Explanation] = []
    n = len(plan._keys)
    for i in range(n):
        key = plan._keys[i]
        ck = keys.keys[i]
        if not selected[i]:
            out.append(Explanation(key, "skipped", ("left out by only/skip",), ck))
            continue
        rule = _TRIGGERS.get(plan._gates[i][0], ()) if i in plan._gates else ()
        if i in decision.resumed:
            out.append(Explanation(key, "resumed", ("succeeded in the run this one resumes", *rule), ck))
            continue
        if decision.hit[i]:
            out.append(Explanation(key, "cached", ("in the store", *rule), ck))
            continue
        if not decision.runs[i]:
            out.append(Explanation(key, "cached", ("needed only by cached nodes", *rule), ck))
            continue
        out.append(Explanation(key, "run", (*_why(plan, i, keys, decision, previous), *rule), ck))
    return out


#: what a dry run says of a node with a trigger rule (DESIGN §17)
_TRIGGERS = {
    "all_done": ("trigger all_done: runs once its upstreams end, whatever their state",),
    "none_failed": ("trigger none_failed: runs unless an upstream fails (then skipped)",),
}


def _why(
    plan: CompiledGraph, i: int, keys: _Keys, decision: CacheDecision, previous: dict[str, dict[str, Any]]
) -> list[str]:
    opts = plan._opts[i]
    if opts is not None and not opts.cache:
        return ["cache=False"]
    n = len(plan._keys)
    reasons: list[str] = []
    if keys.keys[i] is None:
        if keys.why[i] is not None:
            return [f"no cache key: {keys.why[i]}"]
        for d in plan._deps[i]:
            if keys.keys[d] is None:
                reasons.append(f"upstream not cacheable: {plan._keys[d]}")
        return reasons
    upstream = [plan._keys[d] for d in plan._deps[i] if decision.runs[d] and d < n]
    mine = keys.parts(i)
    before = previous.get(plan._keys[i])
    if before is not None and mine:
        old_code, new_code = before.get("code", {}), mine.get("code", {})
        changed = sorted(f for f in set(old_code) | set(new_code) if old_code.get(f) != new_code.get(f))
        reasons += [f"code changed: {f}" for f in changed]
        old_in, new_in = before.get("inputs", {}), mine.get("inputs", {})
        reasons += [f"input changed: {name}" for name in sorted(new_in) if old_in.get(name) != new_in[name]]
        if before.get("constants") != mine.get("constants"):
            reasons.append("constants changed")
    reasons += [f"upstream will run: {u}" for u in upstream]
    if not reasons:
        reasons.append("not cached yet" if before is None or not keys.stored[i] else "not in the store")
    return reasons


def _latest_entries(store: CacheStore, graph: str, before: float = float("inf")) -> dict[str, dict[str, Any]]:
    """Node key -> the meta of the newest entry the graph ``graph`` wrote for it (before
    the time ``before``)."""
    latest: dict[str, tuple[float, dict[str, Any]]] = {}
    for entry in store.entries():
        meta = entry.meta
        if meta.get("graph") != graph or not isinstance(meta.get("node"), str) or entry.created >= before:
            continue
        node = meta["node"]
        if node not in latest or entry.created >= latest[node][0]:
            latest[node] = (entry.created, meta)
    return {k: v[1] for k, v in latest.items()}
