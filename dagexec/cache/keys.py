"""Cache keys: of a plan's nodes before a run, and of a map's items during one (DESIGN §7).

A node's cache key is a Merkle hash, computed before anything runs::

    key(node) = SHA-256("dagexec-cache-1",
                        code_digest(its function),        # plan/codehash: code by value
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

The items of a ``task.map`` are known only at run time, so :func:`item_keys` makes
their keys then, from the task's code and the values.  Keys depend on the plan and
the values alone, never on a store: what a run does with them is ``cache/decide.py``.
``cache/diff.py`` builds its plan keys with :func:`merkle_key` too, so that the two
agree on what goes into a key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._plan import _Ref
from ..plan.tokens import NoToken, value_token

if TYPE_CHECKING:
    from .._plan import CompiledGraph

__all__ = ["item_keys", "log_uncached", "merkle_key", "node_keys", "value_key"]

_VERSION = b"dagexec-cache-1\0"


def value_key(value: Any) -> str:
    """The token of a value in cache keys: ``value_token`` made strict, with functions
    counted by their code by value (closures and what they call included).

    Raises:
        NoToken: for a value that does not pickle, or code that refers to one.
    """
    return value_token(value, strict=True, code=_code_key)


def _code_key(fn: Any) -> str:
    from ..plan.codehash import code_digest

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
        """What went into node ``i``'s key, for ``cache.decide.explain`` and the store's entries:
        ``{"code": {function: digest}, "inputs": {name: digest}, "upstream": {key: cache
        key}, "constants": digest}``."""
        from ..plan.codehash import code_parts

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
    from ..plan.codehash import code_digest, forget

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


def item_keys(
    fn: Any, rest: tuple[Any, ...], kwargs: dict[str, Any] | None, items: list[Any]
) -> list[str | None]:
    """The cache key of each item of a ``task.map``: the task's code, the fixed
    arguments' values and the item's value (items are known only at run time, so their
    keys are made then, from values); None for an item that does not pickle.

    Raises:
        NoToken: when the code or a fixed argument does not pickle (no item has a key).
    """
    from ..plan.codehash import code_digest

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
