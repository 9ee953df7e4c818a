"""``plan.fingerprint``: a hash of structure, constants and task code.

Stable across processes, machines and ``PYTHONHASHSEED``: file paths and line
numbers are left out, sets are hashed in sorted order, and objects without a
stable form are hashed by their pickled bytes.

A value that does not pickle has no token of its own: ``value_token`` then gives
one text per type (enough to tell plans apart), and ``value_token(..., strict=True)``
raises :class:`NoToken` instead.  Cache keys are strict: two such values must never
share a key, so a node whose key would need one is not cached (``dagexec._cache``).
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .specs import _Ref

if TYPE_CHECKING:
    from .compiled import CompiledGraph

__all__ = ["NoToken", "code_token", "plan_fingerprint", "type_name", "value_token"]

_SIMPLE = (type(None), bool, int, float, complex, str, bytes)


class NoToken(Exception):
    """A value has no stable token (it does not pickle); the message says which
    value and its type, e.g. ``"input conn: app.Conn does not pickle"``."""


def type_name(value: Any) -> str:
    """``module.qualname`` of ``value``'s type (``builtins.`` left out)."""
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def value_token(value: Any, strict: bool = False, code: Callable[[Any], str] | None = None) -> str:
    """A deterministic text standing for ``value``.

    Args:
        value: any value; containers are walked.
        strict: raise :class:`NoToken` for a value that does not pickle, instead of
            giving every such value of a type the same text.
        code: the token of a function met on the way (default :func:`code_token`,
            its own code alone).
    """
    t = type(value)
    if t in _SIMPLE:
        return repr(value)
    if t is _Ref:
        return f"@{value.slot}"
    # containers walked here, as cache/keys.py's _template_token walks them: one frame and
    # a generator's per level, so values nested MAX_NESTING deep stay inside the recursion
    # limit (a shared walker with a callback takes two more per level, and one function
    # with the template's hooks as arguments made a 20,000-node fingerprint 20% slower)
    if t is list or t is tuple:
        return f"{t.__name__}({','.join(value_token(v, strict, code) for v in value)})"
    if t is dict:
        return (
            "dict("
            + ",".join(
                f"{value_token(k, strict, code)}:{value_token(v, strict, code)}" for k, v in value.items()
            )
            + ")"
        )
    if t is set or t is frozenset:
        return f"{t.__name__}(" + ",".join(sorted(value_token(v, strict, code) for v in value)) + ")"
    if isinstance(value, tuple) and hasattr(t, "_fields"):
        # a namedtuple: walked as the graph builder walks it, so a set inside it is
        # sorted here too (its pickle lists a set in hash-seed order)
        return f"{t.__module__}.{t.__qualname__}({','.join(value_token(v, strict, code) for v in value)})"
    if isinstance(value, type):
        return f"class:{value.__module__}.{value.__qualname__}"
    if callable(value) and hasattr(value, "__code__"):
        return (code or code_token)(value)
    try:
        import cloudpickle

        return f"{t.__module__}.{t.__qualname__}:" + hashlib.sha256(cloudpickle.dumps(value)).hexdigest()
    except Exception:
        if strict:
            raise NoToken(f"{type_name(value)} does not pickle") from None
        return f"{t.__module__}.{t.__qualname__}:unpicklable"


_code_cache: dict[int, tuple[Any, str]] = {}


def code_token(fn: Any) -> str:
    """A hash of a function's code, name and defaults (not its file or line numbers); the
    code is walked by :func:`dagexec.plan.codehash.feed_code`, in its fingerprint form."""
    hit = _code_cache.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    h = hashlib.sha256()
    h.update(f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}".encode())
    code = getattr(fn, "__code__", None)
    if isinstance(code, types.CodeType):
        from .codehash import FINGERPRINT_FORM, feed_code  # it imports this module

        feed_code(h, code, FINGERPRINT_FORM)
        defaults = getattr(fn, "__defaults__", None)
        if defaults:
            h.update(value_token(defaults).encode())
        kwdefaults = getattr(fn, "__kwdefaults__", None)
        if kwdefaults:
            h.update(value_token(dict(sorted(kwdefaults.items()))).encode())
    else:
        h.update(value_token(fn).encode())
    token = "code:" + h.hexdigest()
    _code_cache[id(fn)] = (fn, token)
    return token


def plan_fingerprint(plan: CompiledGraph) -> str:
    """The SHA-256 hex digest identifying ``plan``."""
    h = hashlib.sha256()
    upd = h.update
    upd(f"graph:{plan.name}\n".encode())
    for inp in plan._inputs:
        upd(f"input:{inp.name}:{value_token(inp.type)}:{value_token(inp.default)}\n".encode())
    opts_tokens: dict[int, str] = {}
    for i, key in enumerate(plan._keys):
        opts = plan._opts[i]
        otok = opts_tokens.get(id(opts))
        if otok is None:
            otok = value_token(sorted(opts.to_dict().items())) if opts is not None else ""
            opts_tokens[id(opts)] = otok
        args = plan._args[i]
        kwargs = plan._kwargs[i]
        atok = value_token(args) if args else ""
        ktok = value_token(kwargs) if kwargs else ""
        upd(
            f"node:{key}:{code_token(plan._specs[i].fn)}:{atok}:{plan._fills[i]}:{ktok}:"
            f"{plan._kwfills[i]}:{plan._deps[i]}:{otok}\n".encode()
        )
    for name, slot in plan._outputs:
        upd(f"output:{name}:{slot}\n".encode())
    for c in plan._consts:
        upd(f"const:{value_token(c)}\n".encode())
    for s in plan._sections:
        upd(f"section:{s.path}:{s.output}:{sorted(s.inputs.items())}\n".encode())
    for c in plan._conds:
        upd(f"cond:{c}\n".encode())
    if plan._maps:
        upd(f"maps:{sorted(plan._maps)}\n".encode())
    return h.hexdigest()
