"""Siblings sent as one: the pass of a lane that groups them, level by level.

On an executor where each submission is costly and values stay on the workers (dask:
a task costs the scheduler about a millisecond, whatever it runs), a thousand tiny
independent nodes cost a thousand tasks.  An executor with ``groups`` (and ``ahead``)
gets them instead in a few :class:`~dagexec.run.protocol.Batch`\\ es of unlinked
members, each one task on the cluster whose value holds every member's.

Which nodes go together is decided from the plan's structure alone, never from
timing (DESIGN §12, "Values that never travel"): *siblings* are the nodes of one level
(:func:`dagexec.plan.links.node_levels`: nodes of one level never wait for each other)
that are ready in the same pass, that start no chain, run their first attempt, have no
timeout, and are alike in their ``resources`` and in whether the master needs their
values (an output, a ``keep=`` key, a value the cache saves, a cond's predicate, a value
read on another executor or by a map: gathering a group brings every member's value).  Alike siblings are cut into groups of equal size, about
:data:`GROUPS_PER_SLOT` groups for each trial the executor runs at once
(``Executor.parallelism``), at most :data:`MAX_GROUP` members each: enough groups to
keep every worker busy, few enough that a tiny node costs a fraction of a task.

The pass takes the lane's ready plain nodes and walks them by level, lowest first::

    ready stack --> buckets by level
    lowest level --> chains, groups of siblings, single nodes --> submitted
                       |--> what may go ahead after them (ahead.push_dependents)
                            --> the bucket of its level (always a higher one)

so that by the time a level is cut into groups, every node of it that this pass can
send is in its bucket.  What the pass does not take (a map node, a map item) stays on
the stack for the loop's usual path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .batching import submit_batch
from .protocol import Executor
from .state import PENDING, PLAIN

if TYPE_CHECKING:
    from .loop import Loop

__all__ = ["GROUPS_PER_SLOT", "MAX_GROUP", "sibling_groups", "submit_by_level"]

#: groups of siblings made for each trial the executor runs at once
GROUPS_PER_SLOT = 2
#: the most members of one group
MAX_GROUP = 64


def submit_by_level(loop: Loop, r: int, ex: Executor, stack: list[int]) -> None:
    """Submit the ready plain nodes on lane ``r``'s ``stack``, and what may go ahead
    after them, level by level, siblings in groups; leave the rest on ``stack`` (and
    what the lane's capacity does not let go now)."""
    n, kind, state = loop.n, loop.kind, loop.state
    buckets: dict[int, list[int]] = {}
    rest: list[int] = []
    level = loop.plan._node_levels()
    for u in reversed(stack):  # the top first: the order the loop would pop them in
        if u < n and kind[u] == PLAIN and state[u] == PENDING:
            buckets.setdefault(level[u], []).append(u)
        else:
            rest.append(u)
    if not buckets:
        return
    stack[:] = rest[::-1]
    inflight, cap, width = loop.inflight, loop.caps[r], max(1, ex.parallelism)
    pushed: list[int] = []
    while buckets:
        units = buckets.pop(min(buckets))
        todo = sibling_groups(loop, units, r, width)
        for k, members in enumerate(todo):
            if inflight[r] >= cap:  # the rest goes in a later pass, lowest level on top
                links, pipe_of = loop.batches.links, loop.batches.pipe_of
                # a chain's or a pipe's first node only: the others go with it, and wait for it
                later = [
                    u for m in todo[k:] for u in (m[:1] if m[0] in pipe_of or (len(m) > 1 and links[m[0]] == m[1]) else m)
                ]
                for lvl in sorted(buckets, reverse=True):
                    stack.extend(buckets[lvl])
                stack.extend(reversed(later))
                return
            if state[members[0]] != PENDING:
                continue  # gone with a pipe submitted before it (its head)
            if len(members) > 1 or members[0] in loop.batches.pipe_of:
                submit_batch(loop, members, r, ex, pushed)
            else:
                loop.submit(members[0], r, ex, pushed)
            for d in pushed:  # in plan order: siblings run in the order they were made
                buckets.setdefault(level[d], []).append(d)
            pushed.clear()


def sibling_groups(loop: Loop, units: list[int], r: int, width: int) -> list[list[int]]:
    """``units`` (ready nodes of one level, lane ``r``) as submissions: each node that
    starts a chain with the chain (``Batching.extend_chain``); alike siblings in groups
    of equal size, about :data:`GROUPS_PER_SLOT` per ``width`` (the executor's
    parallelism), at most :data:`MAX_GROUP` each; any other node alone."""
    batching = loop.batches
    specs, attempt, kept, saving, solo = batching.specs, loop.attempt, loop.kept, loop.saving, batching.solo
    conds, route, kind, dependents = loop.conds, loop.route, loop.kind, loop.dependents
    order: list[Any] = []  # member lists, and the keys of alike siblings where they first come
    alike: dict[Any, list[int]] = {}
    for u in units:
        if solo and u in solo:
            order.append([u])
            continue
        if u in batching.pipe_of:  # a stream and what it feeds: one unit
            order.append(batching.members(u, r, []) or [u])
            continue
        members = [u]
        batching.extend_chain(members, r)
        spec = specs[u]
        if len(members) > 1 or spec.timeout is not None or attempt[u]:
            order.append(members)
            continue
        res = spec.resources
        needed = (
            kept[u]
            or (saving is not None and saving[u])
            or (conds is not None and u in conds)
            or any(route[d] != r or kind[d] != PLAIN for d in dependents[u])
        )
        key = (tuple(sorted(res.items())) if res else None, needed)
        if key not in alike:
            alike[key] = []
            order.append(key)
        alike[key].append(u)
    out: list[list[int]] = []
    for entry in order:
        if type(entry) is list:
            out.append(entry)
            continue
        group = alike[entry]
        size = min(MAX_GROUP, -(-len(group) // (GROUPS_PER_SLOT * width)))
        out.extend(group[k : k + size] for k in range(0, len(group), size))
    return out
