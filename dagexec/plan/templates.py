"""Filling argument templates whose values sit inside containers.

A plan's argument template holds ``_Ref(slot)`` where a value goes (``specs``).  A
value given as a whole argument is put in place by index; one nested inside a list,
tuple, set, dict or namedtuple is put in place by :func:`fill`, which the run calls
for the nodes whose ``nested`` flag is set, once per argument of every trial.  The
walk is :func:`dagexec._walk.replace`, set up once (``replacer``) and told to call
back only at a ``_Ref``; it copies every container, so a task that changes its
argument changes no template and no other trial's argument.  A ``_Ref`` or a
constant given whole is answered without entering the walk.  A keyword argument
given whole is put in place by name (:func:`with_values`).
"""

from __future__ import annotations

from typing import Any, Final

from .._walk import replacer
from .specs import _Ref

#: the walk fill makes: a call back at each ``_Ref`` only, every container copied
_walk_refs: Final = replacer(types=(_Ref,), copy=True)
_WALKED: Final = frozenset({list, tuple, set, frozenset, dict})


def fill(value: Any, vals: list[Any]) -> Any:
    """A copy of the template ``value`` with each ``_Ref`` replaced by its value."""
    t = type(value)
    if t is _Ref:
        return vals[value.slot]
    if t in _WALKED or isinstance(value, tuple):  # a namedtuple, perhaps
        return _walk_refs(value, lambda ref: vals[ref.slot])
    return value  # a constant


def with_values(kwargs: dict[str, Any], fills: Any, vals: list[Any]) -> dict[str, Any]:
    """A copy of a call's keyword arguments with the value of each slot it reads put
    in place (``fills``: ``(name, slot)`` pairs)."""
    kw = dict(kwargs)
    for name, s in fills:
        kw[name] = vals[s]
    return kw
