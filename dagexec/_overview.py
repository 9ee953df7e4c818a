"""The picture of a large plan in an HTML page: its nodes drawn in groups.

A page that drew each node of a 10,000-node plan would hold 18 MB of SVG that ``dot``
lays out in most of a minute and a browser draws in seconds; DESIGN §8 asks such a
page to stay under 5 MB and open in under 2 s.  So past :data:`LARGE_PAGE` nodes a
page draws one box per *group* of nodes, and lists a group's nodes when it is
clicked.  The groups, coarser as they must be to stay at most :data:`MAX_GROUPS`:

1. the nodes of one task in one section (``transform x 9,000``, with a multiplication sign), sections drawn as
   clusters, as in every picture;
2. else the nodes of one band of depths in one section (``levels 4-7``), the depth
   of a node being the length of the longest path of dependencies that ends at it,
   the bands as narrow as the bound allows;
3. else the nodes of one band of depths, sections left out.

A group's box counts its nodes by state and is striped with the states' colours in
proportion (every present state at least a sliver, so none is invisible; the counts
are written too, so colour is never the only cue).  An edge joins two groups where
a node of one feeds a node of the other, labelled with how many such pairs.  The
DOT text::

    digraph <plan name> {
        title: the plan's name, "10,000 nodes in 3 groups: one per task in each section"
        g<n>   one box per group                         id "group:<n>"
        subgraph cluster_s<k> { the groups of a section, nested as sections are }
        g<a> -> g<b>  [label "x 500" (a multiplication sign)]
    }
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._dot import (
    _PENDING_COLOUR,
    _WORST_FIRST,
    PAGE_COLOURS,
    _add_sections,
    _digraph,
    _label,
    _node_state,
    format_duration,
)

if TYPE_CHECKING:
    import graphviz

    from ._result import RunResult
    from .plan.compiled import CompiledGraph
    from .plan.specs import NodeInfo

__all__ = ["LARGE_PAGE", "MAX_GROUPS", "Overview", "overview"]

#: past this many nodes, a page draws its plan in groups (the limit of to_dot's expansion)
LARGE_PAGE = 1000
#: at most this many groups are drawn
MAX_GROUPS = 200
#: the narrowest stripe of a state in a group's box, as a share of its width
_SLIVER = 0.04


@dataclass(frozen=True)
class Overview:
    """A large plan drawn in groups: the picture, each node's group (by node index),
    each group's name and section, and how the nodes were grouped."""

    digraph: graphviz.Digraph
    group_of: list[int]
    names: list[str]
    sections: list[str]
    how: str


def _depths(plan: CompiledGraph) -> list[int]:
    """Per node: the length of the longest path of dependencies that ends at it (the
    plan's nodes come after the nodes they depend on)."""
    n = len(plan._keys)
    depth = [0] * n
    for i, deps in enumerate(plan._deps):
        depth[i] = 1 + max((depth[d] for d in deps if d < n), default=-1)
    return depth


def _bands(
    infos: Sequence[NodeInfo], depth: list[int], width: int, in_sections: bool
) -> list[tuple[str, str]]:
    """Per node ``(section path or "", "levels 4-7")``: the band of depths ``width``
    wide it falls in, named by the depths its nodes have."""
    band = [(info.section if in_sections else "", d // width) for info, d in zip(infos, depth, strict=True)]
    seen: dict[tuple[str, int], list[int]] = {}
    for b, d in zip(band, depth, strict=True):
        lo_hi = seen.setdefault(b, [d, d])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], d), max(lo_hi[1], d)
    names = {b: f"level {lo}" if lo == hi else f"levels {lo}-{hi}" for b, (lo, hi) in seen.items()}
    return [(b[0], names[b]) for b in band]


def grouping(plan: CompiledGraph) -> tuple[list[tuple[str, str]], str]:
    """Per node its group as ``(section path, name)``, and how the nodes were grouped."""
    infos = plan.nodes
    by_task = [(info.section, info.task) for info in infos]
    if len(set(by_task)) <= MAX_GROUPS:
        return by_task, "one per task in each section"
    depth = _depths(plan)
    deepest = max(depth, default=0) + 1
    for in_sections in (True, False):
        width = 1
        while True:
            groups = _bands(infos, depth, width, in_sections)
            if len(set(groups)) <= MAX_GROUPS or width >= deepest:
                break
            width *= 2
        if len(set(groups)) <= MAX_GROUPS:
            break
    return groups, "one per band of depths" + (" in each section" if in_sections else "")


def _stripes(words: Counter[str]) -> str:
    """Graphviz's ``fillcolor`` for a striped box: each state's colour in proportion
    to its nodes, worst first, none thinner than a sliver."""
    total = sum(words.values())
    present = [w for w in _WORST_FIRST if words[w]]
    shares = [max(_SLIVER, words[w] / total) for w in present]
    scale = 1 / sum(shares)
    parts = [
        f"{PAGE_COLOURS.get(w, _PENDING_COLOUR)};{share * scale:.3f}"
        for w, share in zip(present, shares, strict=True)
    ]
    return ":".join(parts)


def overview(plan: CompiledGraph, result: RunResult | None) -> Overview:
    """``plan`` (coloured by ``result``'s states when given) drawn in groups."""
    import graphviz

    keyed, how = grouping(plan)
    index: dict[tuple[str, str], int] = {}
    group_of = [index.setdefault(g, len(index)) for g in keyed]
    groups = list(index)
    members = Counter(group_of)
    words: list[Counter[str]] = [Counter() for _ in groups]
    spent = [0.0] * len(groups)
    if result is not None:
        trials = result.trials
        for key, g in zip(plan._keys, group_of, strict=True):
            own = trials.get(key, ())
            words[g][_node_state(result.states[key], own)] += 1
            spent[g] += sum(t.duration for t in own if t.duration is not None)
    n = len(plan._keys)
    title = f"{n:,} nodes in {len(groups)} groups: {how}; click a group to list its nodes"
    dot = _digraph(graphviz, plan, [], auto=False)  # the attributes every picture has
    dot.attr("graph", label=_label(plan.name, title))
    body: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for g, (section, name) in enumerate(groups):
        lines = [name, f"\u00d7 {members[g]:,}"]
        attrs = {"id": f"group:{g}"}
        if result is not None:
            lines.append(", ".join(f"{words[g][w]:,} {w}" for w in _WORST_FIRST if words[g][w]))
            lines.append(format_duration(spent[g]))
            attrs.update(style="striped", fillcolor=_stripes(words[g]))
        attrs["label"] = _label(*lines)
        body.setdefault(section, []).append((f"g{g}", attrs))
    _add_sections(dot, plan.sections if how.endswith("section") else (), {}, body)
    pairs = Counter(
        (group_of[d], group_of[i])
        for i, deps in enumerate(plan._deps)
        for d in deps
        if d < n and group_of[d] != group_of[i]
    )
    for (a, b), count in pairs.items():
        dot.edge(f"g{a}", f"g{b}", label=f"\u00d7 {count:,}")
    return Overview(dot, group_of, [name for _, name in groups], [section for section, _ in groups], how)
