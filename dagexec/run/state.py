"""The states a node or a map item is in while a run goes, as the small ints the loop
keeps in its flat lists, and the marker of a value released after its last reader.

The loop compares ints on its hot path; :data:`STATES` turns one into the public
:class:`~dagexec.State` when the run ends.  The loop's per-slot lists cover the whole
slot space (nodes, then graph inputs and constants, which start ``SUCCEEDED``), so a
slot's state is read the same way whatever it holds; ``kind`` tells a map node from a
plain one in one index.  :func:`async_lanes` gives async tasks a lane of their own
where their executor runs them concurrently.  The unit arrays of docs/run-engine.md
(``RunState``) come here when map items become units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._state import State

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .protocol import Executor

PENDING, RUNNING, SUCCEEDED, FAILED, UPSTREAM_FAILED, SKIPPED, CACHED, CANCELLED = range(8)
#: a map node whose items run: it waits for them (internal; shows as running)
JOINING = 8
#: the states in which a node has a value
HAS_VALUE = (SUCCEEDED, CACHED)
#: each int state's public State
STATES = (
    State.PENDING,
    State.RUNNING,
    State.SUCCEEDED,
    State.FAILED,
    State.UPSTREAM_FAILED,
    State.SKIPPED,
    State.CACHED,
    State.CANCELLED,
    State.RUNNING,  # JOINING
)
#: what a unit is (``kind[u]``): a plain node, a map node that expands into items, or
#: (when map items become units) an item
PLAIN, EXPAND, MEMBER = range(3)


class _Released:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<released>"


#: the value of a slot after its last reader finished (unless kept)
RELEASED: Any = _Released()


def units(slots: Any, n_slots: int, fill: Any, grows: bool) -> Any:
    """A per-unit list of the loop: the plan's per-node (or per-slot) ``slots`` padded
    with ``fill`` to ``n_slots``, for the map items to be appended after; or, when no
    unit is ever appended (``grows`` false), ``slots`` itself."""
    return [*slots, *([fill] * (n_slots - len(slots)))] if grows else slots


def async_lanes(
    plan: CompiledGraph, execs: list[Executor], caps: list[int], route: Sequence[int]
) -> list[int]:
    """The route with the async tasks of each executor that has ``async_capacity`` on a
    lane of their own (appended to ``execs`` and ``caps``): they count against that
    capacity, not the executor's threads."""
    lanes: dict[int, int] = {}
    route = list(route)
    n_execs = len(caps)
    for i, spec in enumerate(plan._specs):
        r = route[i]
        if spec.coro and r < n_execs and execs[r].async_capacity:
            lane = lanes.get(r)
            if lane is None:
                lane = lanes[r] = len(execs)
                execs.append(execs[r])
                caps.append(execs[r].async_capacity)
            route[i] = lane
    return route
