"""Filling argument templates whose values sit inside containers.

A plan's argument template holds ``_Ref(slot)`` where a value goes (``specs``).  A
value given as a whole argument is put in place by index; one nested inside a list,
tuple, set, dict or namedtuple is put in place by :func:`fill`, which the run calls
for the nodes whose ``nested`` flag is set.
"""

from __future__ import annotations

from typing import Any

from .specs import _Ref


def fill(value: Any, vals: list[Any]) -> Any:
    """A copy of the template ``value`` with each ``_Ref`` replaced by its value."""
    t = type(value)
    if t is _Ref:
        return vals[value.slot]
    if t is list or t is tuple or t is set or t is frozenset:
        return t(fill(v, vals) for v in value)
    if t is dict:
        return {k: fill(v, vals) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return t(*[fill(v, vals) for v in value])
    return value
