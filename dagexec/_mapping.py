"""``task.map`` by name: mapped keywords, zipped or crossed, and ``task.partial`` (DESIGN §17).

``task.map(x=xs, y=ys)`` maps every keyword: item k calls the task with ``x=xs[k],
y=ys[k]`` (the lists of equal lengths, else the map fails naming both), or with
``product=True`` one item per combination, the first keyword varying slowest.
``task.partial(y=2).map(x=xs)`` fixes keywords for every item (Airflow's
``partial().expand()``).  ``task.map(items, **fixed)`` keeps mapping the first
parameter.

In a graph, a map by name is one map node like any other: its first argument is a
:class:`Mapped` (a namedtuple, so the Nodes in its lists are the map's inputs), which
the run turns into one dict of keywords per item (:func:`named_items`) when the lists
are known; each item's trial gets its dict as keyword arguments, with the fixed ones.
Keys stay ``task[k]``, and a cached item's key covers all its mapped values.  The name
``Mapped`` is pickled in saved plans: it never moves.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["Mapped", "Partial", "named_items"]


class Mapped(NamedTuple):
    """The mapped keywords of a map by name: their ``names``, whether the items are
    their ``product`` (else their zip), and their ``lists`` (Nodes or lists)."""

    names: tuple[str, ...]
    product: bool
    lists: tuple[Any, ...]


def named_items(mapped: Mapped) -> list[dict[str, Any]]:
    """One dict of keywords per item: the lists zipped, or crossed (the first name
    varying slowest).

    Raises:
        TypeError: a mapped value that is not a list (or a tuple).
        ValueError: zipped lists of different lengths, naming each length.
    """
    lists = []
    for name, values in zip(mapped.names, mapped.lists, strict=True):
        if not isinstance(values, (list, tuple)):
            raise TypeError(f"map: {name}= must be a list of items, got {type(values).__name__}")
        lists.append(values)
    if mapped.product:
        return [dict(zip(mapped.names, combo, strict=True)) for combo in itertools.product(*lists)]
    lengths = {len(values) for values in lists}
    if len(lengths) > 1:
        each = ", ".join(f"{name}= has {len(values)}" for name, values in zip(mapped.names, lists, strict=True))
        raise ValueError(f"map: the mapped lists differ in length ({each} items); give product=True to cross them")
    return [dict(zip(mapped.names, values, strict=True)) for values in zip(*lists, strict=True)]


class Partial:
    """``task.partial(**fixed)``: the task with keywords fixed for every item of a map."""

    def __init__(self, task: Task, fixed: dict[str, Any]) -> None:
        self.task = task
        self.fixed = fixed

    def map(self, *items: Any, product: bool = False, **mapped: Any) -> Any:
        """``task.map`` with this partial's fixed keywords: ``.map(x=xs)`` maps the
        keywords given here, ``.map(items)`` the task's first parameter."""
        if items:
            if mapped or product:
                raise TypeError("map: give the items positionally or mapped keywords, not both")
            return self.task.map(*items, **self.fixed)
        return self.task._map_by_name(mapped, self.fixed, product)

    def __repr__(self) -> str:
        return f"<Partial {self.task._self_name!r} fixed {sorted(self.fixed)}>"
