"""``dagexec diff``: the nodes whose cache keys two plans give differently, and why
(DESIGN §7).

Graph input values are not known when two plans are compared, so each node gets a
*plan key*: the Merkle hash of ``cache.keys.merkle_key`` with each graph input standing
for its name and default instead of its value, and values that do not pickle counted
by their type.  A node with ``cache=False`` (which has no cache key) gets one too,
marked as such where its dependents' keys take it in: its dependents have no cache
key either, and turning its ``cache`` option on or off changes theirs.  For the same
input values, two cacheable nodes' cache keys are equal exactly when their plan keys
are; so a node is ``changed`` exactly when its plan key changed (or its ``cache``
option did), and nothing else counts: module names, file paths, line numbers and
the node keys of upstream nodes are not part of a key.

What changed is said part by part, matching what goes into a key:

* ``code: mod:fn`` — a function of the new plan (the task's, or one it reaches)
  whose own code the old one does not have; the task's function when only which
  function a name refers to changed (a helper dropped shows in its caller's code);
* ``constants`` — an argument written in the call;
* ``inputs: a, b`` — which graph inputs it reads (``inputs: none``);
  ``input default: a`` — the default of one it reads;
* ``upstream: key`` — a node it reads or waits for whose key changed, or that it
  did not read before; ``no longer reads: key`` — one it read before and does not;
* ``arguments`` — the same values go in, to other parameters;
* ``cache=False`` / ``cache=True`` — the task's ``cache`` option (whether the node
  has a key at all).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..plan.tokens import value_token
from .keys import _constants_digest, merkle_key

if TYPE_CHECKING:
    from .._plan import CompiledGraph

__all__ = ["plan_diff"]

Change = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True)
class _Signature:
    """What a node's plan key is made of, part by part."""

    key: str
    cached: bool
    code: str  # the digest of its function by value
    functions: dict[str, str]  # "mod:fn" -> its own digest, for every function reached
    function: str  # the task's function, "mod:qualname"
    constants: str
    inputs: tuple[tuple[str, str], ...]  # (name, token) of the graph inputs it reads
    upstream: dict[str, str]  # node key -> plan key, of the nodes it reads or waits for


def plan_diff(a: CompiledGraph, b: CompiledGraph) -> list[Change]:
    """``(change, key, details)`` for each node added, removed or changed from ``a``
    to ``b``: in ``b``'s order, the removed ones last.  ``change`` is ``"added"``,
    ``"removed"`` or ``"changed"``; ``details`` name the parts of a changed node's key
    that changed (see the module's docstring)."""
    sa, sb = _signatures(a), _signatures(b)
    out: list[Change] = []
    for key, sig in sb.items():
        old = sa.get(key)
        if old is None:
            out.append(("added", key, ()))
            continue
        details = _changes(old, sig)
        if details:
            out.append(("changed", key, tuple(details)))
    out += [("removed", key, ()) for key in sa if key not in sb]
    return out


def _changes(old: _Signature, new: _Signature) -> list[str]:
    details: list[str] = []
    if old.key != new.key:
        if old.code != new.code:
            details += _code_changes(old, new)
        if old.constants != new.constants:
            details.append("constants")
        details += _input_changes(old.inputs, new.inputs)
        details += _upstream_changes(old.upstream, new.upstream)
        if not details:
            details.append("arguments")
    if old.cached != new.cached:
        details.append(f"cache={new.cached}")
    return details


def _code_changes(old: _Signature, new: _Signature) -> list[str]:
    """The functions of ``new`` whose own code ``old`` does not have, matched by
    digest, not by name (code moved to another module is the same code); the task's
    function when only which function a name refers to changed."""
    before = set(old.functions.values())
    names = sorted(name for name, own in new.functions.items() if own not in before)
    return [f"code: {name}" for name in names] or [f"code: {new.function}"]


def _input_changes(old: tuple[tuple[str, str], ...], new: tuple[tuple[str, str], ...]) -> list[str]:
    names = [name for name, _ in new]
    if [name for name, _ in old] != names:
        return ["inputs: " + (", ".join(dict.fromkeys(names)) or "none")]
    return [f"input default: {n}" for (n, t), (_, u) in zip(old, new, strict=True) if t != u]


def _upstream_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    before, after = set(old.values()), set(new.values())
    details = [f"upstream: {key}" for key, k in new.items() if k not in before]
    details += [f"no longer reads: {key}" for key, k in old.items() if k not in after and key not in new]
    return details


def _signatures(plan: CompiledGraph) -> dict[str, _Signature]:
    from ..plan.codehash import code_digest, code_parts, forget

    forget()
    n = len(plan._keys)
    n_in = len(plan._inputs)
    inputs = [_input_token(inp) for inp in plan._inputs]
    tokens: dict[int, str] = {}

    def token(slot: int) -> str | None:
        if slot < n:
            return keys[slot]
        tok = tokens.get(slot)
        if tok is None:
            value = inputs[slot - n] if slot < n + n_in else plan._consts[slot - n - n_in]
            tok = tokens[slot] = hashlib.sha256(_leaf(value).encode()).hexdigest()
        return tok

    keys: list[str | None] = [None] * n
    out: dict[str, _Signature] = {}
    for i, key in enumerate(plan._keys):
        k = merkle_key(plan, i, keys, token, _function_code, _leaf)
        assert k is not None  # every node has a plan key
        opts = plan._opts[i]
        cached = opts is None or bool(opts.cache)
        keys[i] = k if cached else "uncached:" + k  # as its dependents take it in
        fn = plan._specs[i].fn
        out[key] = _Signature(
            key=k,
            cached=cached,
            code=code_digest(fn, strict=False),
            functions=dict(code_parts(fn)),
            function=_name_of(fn),
            constants=_constants_digest(plan, i),
            inputs=tuple(
                (plan._inputs[s - n].name, token(s) or "") for s in plan._reads[i] if n <= s < n + n_in
            ),
            upstream={plan._keys[d]: keys[d] or "" for d in plan._deps[i]},
        )
    return out


class _InputStandIn:
    """A graph input in a plan key: its name and default, not a value."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _input_token(inp: Any) -> _InputStandIn:
    default = "required" if inp.required else value_token(inp.default)
    return _InputStandIn(f"input:{inp.name}={default}")


def _leaf(value: Any) -> str:
    if type(value) is _InputStandIn:
        return value.text
    return value_token(value, code=_code)


def _code(fn: Any) -> str:
    """A function met as a value: as ``cache.keys.value_key`` counts it."""
    return "code:" + _function_code(fn)


def _function_code(fn: Any) -> str:
    from ..plan.codehash import code_digest

    return code_digest(fn, strict=False)


def _name_of(fn: Any) -> str:
    from ..plan.codehash import _unwrap

    raw = _unwrap(fn)
    return f"{getattr(raw, '__module__', '?')}:{getattr(raw, '__qualname__', type(raw).__qualname__)}"
