"""Linear chains and levels in a compiled plan: which node continues which, and how
far each is from the nodes that wait for none.

An executor that takes batches runs a chain as one submission, the value passed
along inside the worker (DESIGN §12 Values that never travel).  Whether two nodes
chain is decided from the plan's structure alone, never from timing, so a plan
behaves the same on every run; ``CompiledGraph._chain_links`` computes it once and
keeps it beside the plan (never pickled), and ``CompiledGraph._node_levels`` the levels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compiled import CompiledGraph

__all__ = ["chain_links", "node_levels"]


def chain_links(plan: CompiledGraph) -> tuple[int, ...]:
    """Per node, the node that continues its linear chain, or -1.

    ``j`` continues ``i`` when ``j`` is ``i``'s only dependent, ``i`` is ``j``'s only
    dependency, ``j`` reads ``i``'s value (if at all) as a whole argument, not inside
    a container, neither has a timeout, neither is a coroutine function, and neither is
    a map, a stream producer, fed a stream's list or gated (a trigger rule).
    """
    deps, dependents, nested, specs = plan._deps, plan._dependents, plan._nested, plan._specs
    maps = plan._maps
    streams = plan._stream_feeds()
    apart = maps | streams.producers | streams.fed_whole | plan._gates.keys()  # a stream's producer: in its pipe
    out = [-1] * len(deps)
    for i, d in enumerate(dependents):
        if len(d) == 1:
            j = d[0]
            if (
                len(deps[j]) == 1
                and not nested[j]
                and specs[i].timeout is None
                and specs[j].timeout is None
                and not specs[i].coro
                and not specs[j].coro
                and i not in apart
                and j not in apart
            ):
                out[i] = j
    return tuple(out)


def node_levels(plan: CompiledGraph) -> tuple[int, ...]:
    """Per node, its level: 0 for a node that waits for none, else one more than the
    highest level among the nodes it waits for (the plan is in topological order).

    Nodes of one level never wait for each other; an executor that groups siblings
    (``Executor.groups``) gets those of one level that are ready together as one
    submission."""
    out: list[int] = []
    for ds in plan._deps:
        out.append(1 + max([out[d] for d in ds]) if ds else 0)
    return tuple(out)
