"""Tokens: deterministic texts standing for values and for code.

``value_token`` gives a text for any value (containers walked, a function by its
code, anything else by its pickled bytes); ``code_token`` hashes a function's code,
name and defaults; ``feed_code`` is the one walk of code objects, in two forms: the
one plan fingerprints use and the one cache keys' code digests use
(:mod:`dagexec.plan.codehash`).  The three call one another (a constant in code is a
value, a function value is code), so they live together here, below both users.

Stable across processes, machines and ``PYTHONHASHSEED``: file paths and line numbers
are left out, sets are hashed in sorted order, and objects without a stable form are
hashed by their pickled bytes.  A value that does not pickle has no token of its own:
``value_token`` then gives one text per type (enough to tell plans apart), and
``value_token(..., strict=True)`` raises :class:`NoToken` instead.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from .specs import _Ref

__all__ = [
    "DIGEST_FORM",
    "FINGERPRINT_FORM",
    "CodeForm",
    "NoToken",
    "code_object_token",
    "code_token",
    "feed_code",
    "global_names",
    "in_file",
    "type_name",
    "value_token",
]

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
    code is walked by :func:`feed_code`, in its fingerprint form."""
    hit = _code_cache.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    h = hashlib.sha256()
    h.update(f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}".encode())
    code = getattr(fn, "__code__", None)
    if isinstance(code, types.CodeType):
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


class CodeForm(NamedTuple):
    """What :func:`feed_code` hashes of a code object, and how."""

    fields: Callable[[types.CodeType], tuple[Any, ...]]  # hashed as their repr
    exceptions: bool  # the exception table (Python 3.11+) too
    sep: bytes  # before each constant
    inline: bool  # a nested code object fed into the same hash, not by its own digest


#: the form of :func:`code_digest` (cache keys)
DIGEST_FORM: Final = CodeForm(
    lambda c: (c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars, c.co_argcount,
               c.co_posonlyargcount, c.co_kwonlyargcount, c.co_flags, len(c.co_code)),
    exceptions=True, sep=b"\n", inline=False,
)  # fmt: skip
#: the form of :func:`code_token` (plan fingerprints), kept as it
#: was first written so that saved plans keep their fingerprints
FINGERPRINT_FORM: Final = CodeForm(
    lambda c: (c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars, c.co_argcount,
               c.co_kwonlyargcount, c.co_flags),
    exceptions=False, sep=b"", inline=True,
)  # fmt: skip


def feed_code(h: Any, code: types.CodeType, form: CodeForm) -> None:
    """Feed ``code`` to the hash ``h``: its bytecode, ``form.fields`` and each constant
    (nested code objects by ``form``, other constants by ``value_token``); no file name,
    line number or name of the function.  The one walk of code objects in dagexec."""
    h.update(code.co_code)
    if form.exceptions:
        h.update(getattr(code, "co_exceptiontable", b""))
    h.update(repr(form.fields(code)).encode())
    for c in code.co_consts:
        if not isinstance(c, types.CodeType):
            text = value_token(c)
        elif form.inline:
            feed_code(h, c, form)
            continue
        else:
            text = f"code:{code_object_token(c)}"
        h.update(form.sep + text.encode())


def code_object_token(code: types.CodeType) -> str:
    """The digest of one code object in the form of :func:`~dagexec.plan.codehash.code_digest`."""
    h = hashlib.sha256()
    feed_code(h, code, DIGEST_FORM)
    return h.hexdigest()


def global_names(code: types.CodeType) -> list[str]:
    """``co_names`` of ``code`` and of the code objects nested in it, in order, once each:
    the globals (and attributes) the code may read."""
    names: dict[str, None] = dict.fromkeys(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names.update(dict.fromkeys(global_names(c)))
    return list(names)


def in_file(code: types.CodeType, path: str) -> types.CodeType:
    """``code``, and the code objects nested in it, with ``path`` as their file name (what
    tracebacks show): for code that came by value (:mod:`dagexec.executors._byvalue`)."""
    consts = tuple(in_file(c, path) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=path, co_consts=consts)
