"""Cache keys of a plan's nodes, and what a run with a cache loads and runs (DESIGN §7).

A node's cache key is a Merkle hash, computed before anything runs::

    key(node) = SHA-256("dagexec-cache-1",
                        code_digest(its function),        # _codehash: code by value
                        its argument templates, where each value that flows in is
                            the key of the node it comes from,
                            or the token of the graph input's value,
                        the keys of the nodes it waits for with after())

so a graph input's value reaches only the nodes that depend on it, and a change to a
function changes the keys of its nodes and of everything downstream.  The node's own
key (its name) is not part of it: two nodes with the same code, constants and inputs
share one entry.  A node of a task with ``cache=False`` has no key, and neither has
anything downstream of it: its value cannot be known before it runs.  Nor has a node
whose key would need a value that does not pickle (a graph input, a constant, or
what its code refers to: a connection, a lock): such values have no stable token,
and two of them must never share a key; ``_Keys.why`` says which value it was, and
what depends on the node has no key either.

What runs (:func:`decide`): a node whose key is in the store is ``cached``; a node
that is not cached runs when a node that runs needs it, when it is an output or kept,
or when nothing selected reads it (a sink); every other node (only cached nodes need
it) is ``cached`` too and does not run.  The values of cached nodes are loaded only
where a node that runs reads them, or where they are outputs or kept; an entry that
fails to load is a miss (the store logs it), and the decision is made again.  In a
resumed run, nodes that the last run finished (``_journal``) count as done: one runs
again only where its value is needed and the store does not give it back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._fingerprint import NoToken, value_token
from ._plan import _Ref

if TYPE_CHECKING:
    from ._plan import CompiledGraph
    from ._store import CacheStore

__all__ = [
    "CacheDecision",
    "Explanation",
    "decide",
    "explain",
    "log_uncached",
    "merkle_key",
    "node_keys",
    "open_store",
    "plan_diff",
    "value_key",
]

_VERSION = b"dagexec-cache-1\0"


def open_store(cache: Any) -> CacheStore | None:
    """A :class:`~dagexec.CacheStore` for ``run(cache=...)``: None, a folder or a store.

    Raises:
        TypeError: for anything else.
    """
    import os

    from ._store import CacheStore

    if cache is None or isinstance(cache, CacheStore):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return CacheStore(cache)
    raise TypeError(f"cache must be a folder or a dagexec.CacheStore, got {type(cache).__name__}")


def value_key(value: Any) -> str:
    """The token of a value in cache keys: ``value_token`` made strict, with functions
    counted by their code by value (closures and what they call included).

    Raises:
        NoToken: for a value that does not pickle, or code that refers to one.
    """
    return value_token(value, strict=True, code=_code_key)


def _code_key(fn: Any) -> str:
    from ._codehash import code_digest

    return "code:" + code_digest(fn)


def _constant_key(value: Any) -> str:
    try:
        return value_key(value)
    except NoToken as exc:
        raise NoToken(f"a constant argument: {exc}") from None


class _Keys:
    """Per node: its cache key (None: not cacheable), whether its value is stored (a
    task with ``cache=True``), why it has no key where a value it needs has no token
    (:attr:`why`), and, on demand, what went into the key (:meth:`parts`)."""

    def __init__(self, plan: CompiledGraph, input_values: list[Any]) -> None:
        n = len(plan._keys)
        self.plan = plan
        self.n_inputs = len(input_values)
        self.input_values = input_values
        self.keys: list[str | None] = [None] * n
        self.stored = [False] * n
        #: per node: why its key could not be made (a value without a token), else None
        self.why: list[str | None] = [None] * n
        self._tokens: dict[int, str | NoToken] = {}  # slot of an input or constant -> digest

    def token(self, slot: int) -> str | None:
        """What the value in ``slot`` contributes: a node's key, or a value's digest.

        Raises:
            NoToken: for a graph input or constant that does not pickle, naming it.
        """
        n = len(self.keys)
        if slot < n:
            return self.keys[slot]
        tok = self._tokens.get(slot)
        if tok is None:
            tok = self._tokens[slot] = self._value_token(slot)
        if type(tok) is NoToken:
            raise NoToken(str(tok))
        assert isinstance(tok, str)
        return tok

    def _value_token(self, slot: int) -> str | NoToken:
        n = len(self.keys)
        if slot < n + self.n_inputs:
            value = self.input_values[slot - n]
            what = f"input {self.plan._inputs[slot - n].name}"
        else:
            value = self.plan._consts[slot - n - self.n_inputs]
            what = "a constant argument"
        try:
            return hashlib.sha256(value_key(value).encode()).hexdigest()
        except NoToken as exc:
            return NoToken(f"{what}: {exc}")

    def parts(self, i: int) -> dict[str, Any]:
        """What went into node ``i``'s key, for :func:`explain` and the store's entries:
        ``{"code": {function: digest}, "inputs": {name: digest}, "upstream": {key: cache
        key}, "constants": digest}``."""
        from ._codehash import code_parts

        plan, n = self.plan, len(self.keys)
        reads = plan._reads[i]
        return {
            "code": dict(code_parts(plan._specs[i].fn)),
            "inputs": {plan._inputs[s - n].name: self.token(s) for s in reads if n <= s < n + self.n_inputs},
            "upstream": {plan._keys[d]: self.keys[d] for d in plan._deps[i]},
            "constants": _constants_digest(plan, i),
        }


def node_keys(plan: CompiledGraph, input_values: list[Any]) -> _Keys:
    """Every node's cache key, from its code, constants, inputs and upstream keys."""
    from ._codehash import code_digest, forget

    forget()  # hash the code as it is now: a global may have been rebound since
    out = _Keys(plan, input_values)
    keys, stored = out.keys, out.stored
    for i in range(len(keys)):
        opts = plan._opts[i]
        stored[i] = opts is not None and opts.cache
        if opts is not None and not opts.cache:
            continue
        try:
            keys[i] = merkle_key(plan, i, keys, out.token, code_digest, _constant_key)
        except NoToken as exc:
            out.why[i] = str(exc)
    return out


def merkle_key(
    plan: CompiledGraph,
    i: int,
    keys: list[str | None],
    token: Callable[[int], str | None],
    code: Callable[[Any], str],
    constant: Callable[[Any], str],
) -> str | None:
    """Node ``i``'s key from ``keys`` (those of the nodes before it), ``token`` (of a
    value slot), ``code`` (of its function) and ``constant`` (of a value written in
    its call); None when a node it reads or waits for has no key."""
    n = len(keys)
    reads = plan._reads[i]
    after = [d for d in plan._deps[i] if d not in reads]
    if any(s < n and keys[s] is None for s in reads) or any(keys[d] is None for d in after):
        return None  # downstream of a node that is not cacheable
    h = hashlib.sha256(_VERSION)
    h.update(code(plan._specs[i].fn).encode())
    h.update(_template_token(plan._args[i], token, constant).encode())
    kw = plan._kwargs[i]
    h.update(b"\0" if kw is None else _template_token(kw, token, constant).encode())
    # values put at top-level places (a template holds None there)
    for p, s in plan._fills[i]:
        h.update(f"\0{p}={token(s)}".encode())
    for name, s in plan._kwfills[i]:
        h.update(f"\0{name}={token(s)}".encode())
    for d in after:
        h.update(b"after:" + (keys[d] or "").encode())
    return h.hexdigest()


def log_uncached(plan: CompiledGraph, keys: _Keys, selected: list[bool]) -> None:
    """Say at WARNING, once per node, why a selected node has no cache key of its own
    (a value it needs does not pickle): it runs every time, and so does what needs it."""
    import logging

    log = logging.getLogger("dagexec.cache")
    for i, why in enumerate(keys.why):
        if why is not None and selected[i]:
            log.warning("node %r is not cached: it has no cache key: %s", plan._keys[i], why)


def _blank(slot: int) -> str:
    return ""


def _constants_digest(plan: CompiledGraph, i: int) -> str:
    """A digest of the constants written in node ``i``'s call (what flows in left out)."""
    text = _template_token(plan._args[i], _blank, value_token) + _template_token(
        plan._kwargs[i], _blank, value_token
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _template_token(value: Any, slot_token: Any, leaf: Callable[[Any], str]) -> str:
    """The token of an argument template: each ``_Ref`` replaced by its slot's token,
    containers walked as the graph builder walks them (namedtuples included), and
    every other value given by ``leaf``."""
    t = type(value)
    if t is _Ref:
        return f"@{slot_token(value.slot)}"
    if t is list or t is tuple:
        return f"{t.__name__}({','.join(_template_token(v, slot_token, leaf) for v in value)})"
    if t is dict:
        return (
            "dict("
            + ",".join(f"{leaf(k)}:{_template_token(v, slot_token, leaf)}" for k, v in value.items())
            + ")"
        )
    if t is set or t is frozenset:
        return f"{t.__name__}(" + ",".join(sorted(_template_token(v, slot_token, leaf) for v in value)) + ")"
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        items = ",".join(_template_token(v, slot_token, leaf) for v in value)
        return f"{t.__module__}.{t.__qualname__}({items})"
    return leaf(value)


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
            runs), ``"run"`` or ``"skipped"`` (left out by ``only``/``skip``).
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
    previous = _latest_entries(store, plan.name)
    out: list[Explanation] = []
    n = len(plan._keys)
    for i in range(n):
        key = plan._keys[i]
        ck = keys.keys[i]
        if not selected[i]:
            out.append(Explanation(key, "skipped", ("left out by only/skip",), ck))
            continue
        if decision.hit[i]:
            out.append(Explanation(key, "cached", ("in the store",), ck))
            continue
        if not decision.runs[i]:
            out.append(Explanation(key, "cached", ("needed only by cached nodes",), ck))
            continue
        out.append(Explanation(key, "run", tuple(_why(plan, i, keys, decision, previous)), ck))
    return out


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


def _latest_entries(store: CacheStore, graph: str) -> dict[str, dict[str, Any]]:
    """Node key -> the meta of the newest entry the graph ``graph`` wrote for it."""
    latest: dict[str, tuple[float, dict[str, Any]]] = {}
    for entry in store.entries():
        meta = entry.meta
        if meta.get("graph") != graph or not isinstance(meta.get("node"), str):
            continue
        node = meta["node"]
        if node not in latest or entry.created >= latest[node][0]:
            latest[node] = (entry.created, meta)
    return {k: v[1] for k, v in latest.items()}


def plan_diff(a: CompiledGraph, b: CompiledGraph) -> list[tuple[str, str, tuple[str, ...]]]:
    """The nodes added, removed, or whose cache key changed from ``a`` to ``b``, and
    which part changed: see :func:`dagexec._diff.plan_diff`."""
    from ._diff import plan_diff

    return plan_diff(a, b)


def item_keys(
    fn: Any, rest: tuple[Any, ...], kwargs: dict[str, Any] | None, items: list[Any]
) -> list[str | None]:
    """The cache key of each item of a ``task.map``: the task's code, the fixed
    arguments' values and the item's value (items are known only at run time, so their
    keys are made then, from values); None for an item that does not pickle.

    Raises:
        NoToken: when the code or a fixed argument does not pickle (no item has a key).
    """
    from ._codehash import code_digest

    base = hashlib.sha256(b"dagexec-item-1\0")
    base.update(code_digest(fn).encode())
    base.update(value_key(rest).encode())
    base.update(value_key(dict(sorted((kwargs or {}).items()))).encode())
    out: list[str | None] = []
    for item in items:
        h = base.copy()
        try:
            h.update(b"\0" + value_key(item).encode())
        except NoToken:
            out.append(None)
            continue
        out.append(h.hexdigest())
    return out
