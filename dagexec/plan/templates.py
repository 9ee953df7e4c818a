"""Filling argument templates whose values sit inside containers.

A plan's argument template holds ``_Ref(slot)`` where a value goes (``specs``).  A
value given as a whole argument is put in place by index; one nested inside a list,
tuple, set, dict or namedtuple is put in place by :func:`fill`, which the run calls
for the nodes whose ``nested`` flag is set.  The walk is :func:`dagexec._walk.replace`,
told to call back only at a ``_Ref``; it copies every container, so a task that
changes its argument changes no template and no other trial's argument.
"""

from __future__ import annotations

from typing import Any, Final

from .._walk import replacer
from .specs import _Ref

#: the walk fill makes: a call back at each ``_Ref`` only, every container copied
_walk_refs: Final = replacer(types=(_Ref,), copy=True)


def fill(value: Any, vals: list[Any]) -> Any:
    """A copy of the template ``value`` with each ``_Ref`` replaced by its value."""
    if type(value) is _Ref:  # a whole argument: no walk
        return vals[value.slot]
    return _walk_refs(value, lambda ref: vals[ref.slot])
