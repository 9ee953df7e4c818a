"""What the master needs to call a plain node's function directly, one tuple per node.

A serial run, and a threads run for the functions it measured tiny, runs a plain
node's first trial in the master with no call object (:mod:`dagexec.run.here`).
A plain node is not a map node, fills no container in its call, is not ``async`` and
has no timeout.  For each, the plan keeps one :data:`Direct` tuple holding what that
trial reads of the plan: in a run that visits nodes depth-first over a wide graph,
consecutive trials are far apart in the plan, and one tuple per node is one place in
memory to reach where reading each of the plan's columns at the node's index was ten.

Most nodes are called with the values of the nodes they read, in order, and nothing
else: their arguments are made by one C-level ``itemgetter`` over the run's values
(``get``; for one value, a getter of a one-item slice, so that what it returns is
always a sequence).  The others keep their template and fills.

The tuples are made the first time a run asks (``CompiledGraph._plain_units``), and
kept on the plan: a 10,000-node plan's take about 2 MB.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compiled import CompiledGraph

__all__ = ["Direct", "direct_calls"]

#: ``(fn, checks, ret, get, args, fills, kwargs, kwfills, reads, dependents)``: the
#: node's function, its spec's run-time checks and return annotation, the getter of
#: its arguments (None: fill ``args`` from ``fills``), its keyword template and fills,
#: the slots it reads, the nodes that wait for it
Direct = tuple[Any, Any, Any, Any, Any, Any, Any, Any, tuple[int, ...], tuple[int, ...]]


def direct_calls(plan: CompiledGraph) -> tuple[Direct | None, ...]:
    """Per node of ``plan``, its :data:`Direct` tuple, or None when it is not plain."""
    out: list[Direct | None] = []
    append = out.append
    for spec, nested, args, fills, kwargs, kwfills, reads, dependents in zip(
        plan._specs,
        plan._nested,
        plan._args,
        plan._fills,
        plan._kwargs,
        plan._kwfills,
        plan._reads,
        plan._dependents,
        strict=True,
    ):
        if nested or spec.coro or spec.timeout is not None:
            append(None)
            continue
        get = _getter(args, fills) if kwargs is None else None
        append((spec.fn, spec.checks, spec.ret, get, args, fills, kwargs, kwfills, reads, dependents))
    for m in plan._maps:  # a map node expands in the loop
        out[m] = None
    streams = plan._stream_feeds()
    for i in streams.producers | streams.fed:  # in a pipe, or fed an iterator over a list
        out[i] = None
    for i in plan._gates:  # its arguments stand for how its upstreams ended (run/triggers.py)
        out[i] = None
    return tuple(out)


def _getter(args: tuple[Any, ...], fills: tuple[tuple[int, int], ...]) -> Any:
    """The getter of a call whose arguments are values only, given in slot order
    ``fills`` for every position; None for any other call."""
    k = len(fills)
    if not k or k != len(args) or any(p != j for j, (p, _) in enumerate(fills)):
        return None
    if k == 1:
        s = fills[0][1]
        return itemgetter(slice(s, s + 1))
    return itemgetter(*[s for _, s in fills])
