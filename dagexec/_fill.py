"""Filling argument templates whose values sit inside containers."""

from __future__ import annotations

from typing import Any

from ._plan import _Ref


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
