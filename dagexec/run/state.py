"""The states a node or a map item is in while a run goes, as the small ints the loop
keeps in its flat lists, and the marker of a value released after its last reader.

The loop compares ints on its hot path; :data:`STATES` turns one into the public
:class:`~dagexec.State` when the run ends.  The loop's per-slot lists cover the whole
slot space (nodes, then graph inputs and constants, which start ``SUCCEEDED``), so a
slot's state is read the same way whatever it holds; ``kind`` tells a map node from a
plain one in one index.  :class:`RunState` holds those lists, one entry per unit of
work, and describes them once.  :func:`async_lanes` gives async tasks a lane of their
own where their executor runs them concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._state import State

if TYPE_CHECKING:
    from .._plan import CompiledGraph, NodeSpec
    from ..plan.arguments import Arguments
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
#: what a unit is (``kind[u]``): a plain node, a map node that expands into items,
#: (when map items become units) an item, or a gated node (a trigger rule: run/triggers.py)
PLAIN, EXPAND, MEMBER, GATED = range(4)


class _Released:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<released>"


#: the value of a slot after its last reader finished (unless kept)
RELEASED: Any = _Released()


def _units(slots: Any, n_slots: int, fill: Any, grows: bool) -> Any:
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


class RunState:
    """A run's state: flat lists indexed by *unit* ``u``.

    The units are first the ``n_slots`` slots (plan nodes ``[0, n)``, then graph inputs,
    then constants), then the units that expansions append during the run (a map's
    items, :meth:`add_units`).  Per unit:

    * ``vals[u]``        its value; ``RELEASED`` after the last reader finished (unless
                         ``kept``, which covers the slots); a map item's moves to its
                         map's list when it ends;
    * ``state[u]``       a small int of this module, made a State at the end; inputs
                         and constants are ``SUCCEEDED``, a map node whose items run
                         ``JOINING``;
    * ``waiting[u]``     dependencies not yet done; 0 means ready (a ``JOINING`` map
                         node's: its items not yet ended);
    * ``left[u]``        readers not yet finished (a map item's: its map's join);
    * ``attempt[u]``     the attempt number of its current or last trial;
    * ``kind[u]``        ``EXPAND`` for a map node, ``MEMBER`` for a map item,
                         ``GATED`` for a node with a trigger rule, else ``PLAIN``;
    * ``route[u]``       its lane (one per executor, one more per executor running async
                         tasks);
    * ``owner[u]``       the plan index whose function, options and retries apply (a map
                         item's is its map's, any other unit's itself);
    * ``specs``, ``args``, ``fills``, ``kwargs``, ``kwfills``, ``nested``: its call (a
                         map item's spec and arguments are made when it first runs;
                         ``specs``: with check_mutation, MutationChecks);
    * ``reads[u]``       the units whose values its call reads;
    * ``dependents[u]``  the units that wait for it (the plan's; a map item's: the items
                         of maps chained to its map).

    Collaborators keep lists of their own per unit (the trial rows, the cache's
    ``saving``, the chain links); :meth:`track` has them grow with the rest.  In a run
    whose plan has no map nothing is ever appended, and the plan's own tuples serve as
    the call's lists (copying them cost plain nodes about 2%).
    """

    def __init__(
        self, plan: CompiledGraph, arguments: Arguments, route: Sequence[int], specs: tuple[NodeSpec, ...] | None
    ) -> None:
        input_values, selected, kept = arguments
        self.inputs = input_values  # the graph inputs' values, in declaration order (for reports)
        n = self.n = len(plan._keys)
        extra = len(input_values) + len(plan._consts)  # graph inputs and constants
        n_slots = self.n_slots = n + extra
        grows = bool(plan._maps)
        self.specs: Any = _units(plan._specs if specs is None else specs, n_slots, None, grows)
        self.args: Any = _units(plan._args, n_slots, None, grows)
        self.fills: Any = _units(plan._fills, n_slots, None, grows)
        self.kwargs: Any = _units(plan._kwargs, n_slots, None, grows)
        self.kwfills: Any = _units(plan._kwfills, n_slots, None, grows)
        self.nested: Any = _units(plan._nested, n_slots, False, grows)
        self.reads: Any = _units(plan._reads, n_slots, (), grows)
        self.dependents: Any = _units(plan._dependents, n_slots, (), grows)
        self.vals: list[Any] = [None] * n + input_values + list(plan._consts)
        self.kept = kept
        self.selected = selected
        # graph inputs and constants (the slots from n on) are done from the start
        if all(selected):
            self.state = [PENDING] * n + [SUCCEEDED] * extra
        else:
            self.state = [PENDING if s else SKIPPED for s in selected] + [SUCCEEDED] * extra
        self.waiting = [*map(len, plan._deps), *([0] * extra)]
        self.left = _units(plan._n_readers, n_slots, 0, True) if grows else list(plan._n_readers)
        if not all(selected):
            for i in range(n):
                if not selected[i]:
                    for s in plan._reads[i]:
                        self.left[s] -= 1
        self.attempt = [0] * n_slots
        self.kind = [PLAIN] * n_slots
        for m in plan._maps:
            self.kind[m] = EXPAND
        for g in plan._gates:
            self.kind[g] = GATED
        self.route: Any = _units(route, n_slots, 0, True) if grows else route
        self.owner: Any = list(range(n_slots)) if grows else range(n_slots)
        self.tracked: list[tuple[list[Any], Any]] = []

    def track(self, per_unit: list[Any], fill: Any) -> None:
        """Have a collaborator's ``per_unit`` list (one entry per slot) grow with the
        units, each new one starting as ``fill``."""
        per_unit.extend([fill] * (len(self.kind) - len(per_unit)))
        self.tracked.append((per_unit, fill))

    def add_units(self, k: int, owner: int, kwargs: dict[str, Any] | None) -> range:
        """Append ``k`` pending units run as ``owner``'s trials, each read once (by its
        owner's join), and return their ids.  Their calls are made when they first run
        (``specs`` None); ``kwargs`` are the owner's fixed keyword arguments."""
        first = len(self.kind)
        none: list[Any] = [None] * k
        self.kind.extend([MEMBER] * k)
        self.route.extend([self.route[owner]] * k)
        self.owner.extend([owner] * k)
        self.state.extend([PENDING] * k)
        self.attempt.extend([0] * k)
        self.waiting.extend([0] * k)
        self.vals.extend(none)
        self.left.extend([1] * k)
        self.reads.extend([()] * k)
        self.dependents.extend([()] * k)
        self.specs.extend(none)
        self.args.extend(none)
        self.fills.extend(none)
        self.kwargs.extend([kwargs] * k)
        self.kwfills.extend(none)
        self.nested.extend([False] * k)
        for per_unit, fill in self.tracked:
            per_unit.extend([fill] * k)
        return range(first, first + k)
