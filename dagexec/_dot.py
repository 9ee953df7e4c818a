"""Pictures: graphs, plans and run results as ``graphviz.Digraph`` objects.

Every picture is drawn from a compiled plan (a :class:`~dagexec.Graph` is compiled
first, so section markers are already resolved) and, for a run result, from its
states and trials. The layout of the DOT text::

    digraph <plan name> {
        graph/node/edge defaults, the title (plus the collapse note)
        {rank=source  in<j>   one ellipse per graph input      id "input:<name>"
                      legend  (results only) the state colours id "legend"
                              with how many nodes have each, and a
                              map's items counted apart, as summary() does}
        n<idx>        one box per node outside any section     id "node:<key>"
        subgraph cluster_s<k> { one per drawn section, nested  id "section:<path>"
            n<idx> ... and the clusters of its subsections }
        s<k>          a collapsed section: one box3d           id "section:<path>"
        {rank=sink    out<j>  one doubleoctagon per output     id "output:<name>"}
        edges         one per (source, target) picture node, labelled with the
                      parameters they feed; after() edges are dashed
    }

DOT names are short (``n12``) so keys never need to be valid DOT ids; the ``id``
attribute carries the key, and is what SVG output uses for each ``<g>`` element.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._graph import Graph
from ._result import RunResult, _by_state
from ._state import State, Trial
from ._typecheck import format_type, short_repr
from .plan.compiled import CompiledGraph
from .plan.specs import SectionInfo, collect_refs

if TYPE_CHECKING:
    import graphviz

__all__ = ["EXPAND_LIMIT", "STATE_COLOURS", "format_duration", "repr_mimebundle", "to_dot"]

logger = logging.getLogger(__name__)

#: Past this many nodes, sections are collapsed unless ``expand=True``.
EXPAND_LIMIT = 1000

#: Fill colour of a node of a run result, by state; ``timed_out`` is a failed node
#: whose last trial timed out.
STATE_COLOURS: dict[str, str] = {
    "succeeded": "#b7e1a1",
    "failed": "#f4a09c",
    "timed_out": "#e69138",
    "upstream_failed": "#f9e08b",
    "skipped": "#e4e4e4",
    "cached": "#a9cdf2",
    "cancelled": "#a89bc9",
}
#: Colours of the states only pages show: a trial that crashed (the timeline), a node
#: still running (a live report).
PAGE_COLOURS: dict[str, str] = {**STATE_COLOURS, "crashed": "#9e59b3", "running": "#4f8fd6"}
_PENDING_COLOUR = "#ffffff"
# a collapsed section takes the colour of the first of these among its nodes
_WORST_FIRST = "failed timed_out upstream_failed cancelled pending running skipped cached succeeded".split()

_CONST_LINES = 3  # constant arguments listed in a node's label before "+N more"
_CONST_WIDTH = 24  # characters of each constant's repr


def format_duration(seconds: float) -> str:
    """``0.31 s``, ``12.5 s``, ``125 s``: three significant figures at most."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 100:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def _label(*lines: str) -> str:
    import graphviz

    # escape() keeps backslashes literal; "\n" between lines is DOT's centred line break
    return "\\n".join(graphviz.escape(line) for line in lines)


def _function(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


# -- what to collapse ------------------------------------------------------------------
def _collapse_map(
    plan: CompiledGraph, collapse: bool | Sequence[str] | None, expand: bool
) -> tuple[dict[str, str], bool]:
    """Section path -> the collapsed section drawn in its place, and whether by default.

    Only sections inside a collapsed one (itself included) are in the map; an outer
    collapsed section wins over an inner one.

    Raises:
        ValueError: for ``expand=True`` with a ``collapse`` other than None/False, or
            an unknown section path.
    """
    sections = plan._sections
    auto = False
    if expand:
        if collapse not in (None, False):
            raise ValueError(
                f"to_dot(): expand=True draws every node; it cannot go with collapse={collapse!r}"
            )
        wanted: set[str] = set()
    elif collapse is None:
        auto = len(plan._keys) > EXPAND_LIMIT and bool(sections)
        wanted = {s.path for s in sections} if auto else set()
    elif collapse is True or collapse is False:
        wanted = {s.path for s in sections} if collapse else set()
    else:
        paths = [collapse] if isinstance(collapse, str) else list(collapse)
        known = {s.path for s in sections}
        unknown = [p for p in paths if p not in known]
        if unknown:
            raise ValueError(
                f"to_dot(): graph {plan.name!r} has no section {unknown[0]!r}; "
                f"its sections are {sorted(known) if known else 'none'}"
            )
        wanted = set(paths)
    rep: dict[str, str] = {}
    for s in sections:  # outer before inner
        outer = rep.get(s.parent)
        if outer is not None:
            rep[s.path] = outer
        elif s.path in wanted:
            rep[s.path] = s.path
    return rep, auto


# -- edge labels -------------------------------------------------------------------------
_Names = tuple[list[str], str | None]  # positional parameter names, the *args name


def _param_names(fn: Callable[..., Any], cache: dict[int, _Names]) -> _Names:
    hit = cache.get(id(fn))
    if hit is None:
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            params = []
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        star = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
        hit = cache[id(fn)] = (positional, star)
    return hit


def _positional_name(j: int, names: _Names) -> str:
    positional, star = names
    if j < len(positional):
        return positional[j]
    return star if star is not None else f"arg{j}"


def _sort(
    name: str, value: Any, found: list[int], reads: list[tuple[int, str]], consts: list[tuple[str, Any]]
) -> None:
    if found:
        reads.extend((s, name) for s in found)
    else:
        consts.append((name, value))


def _reads_and_consts(
    plan: CompiledGraph, idx: int, cache: dict[int, _Names]
) -> tuple[list[tuple[int, str]], list[tuple[str, Any]]]:
    """``(slot, parameter)`` pairs that node ``idx`` reads, and its constant arguments."""
    spec = plan._specs[idx]
    args, kwargs = plan._args[idx], plan._kwargs[idx] or {}
    if spec.task is None and plan._task_names[idx] in ("cond", "switch"):  # its predicate, each branch's value
        return _cond_reads(plan, idx), []
    if spec.task is None:  # node[k] or a section's packed value: no parameters of the user's
        label = f"[{short_repr(args[1], _CONST_WIDTH)}]" if plan._task_names[idx] == "getitem" else ""
        return [(s, label) for s in plan._reads[idx]], []
    names = _param_names(spec.fn, cache)
    reads: list[tuple[int, str]] = []
    consts: list[tuple[str, Any]] = []
    if plan._nested[idx]:
        for j, a in enumerate(args):
            found: dict[int, None] = {}
            collect_refs(a, found)
            _sort(_positional_name(j, names), a, list(found), reads, consts)
        for name, v in kwargs.items():
            found = {}
            collect_refs(v, found)
            _sort(name, v, list(found), reads, consts)
        return reads, consts
    filled = {p for p, _ in plan._fills[idx]}
    reads = [(s, _positional_name(p, names)) for p, s in plan._fills[idx]]
    consts = [(_positional_name(j, names), a) for j, a in enumerate(args) if j not in filled]
    kwfilled = {name for name, _ in plan._kwfills[idx]}
    reads += [(s, name) for name, s in plan._kwfills[idx]]
    consts += [(name, v) for name, v in kwargs.items() if name not in kwfilled]
    return reads, consts


def _cond_reads(plan: CompiledGraph, idx: int) -> list[tuple[int, str]]:
    """A cond's or switch's inputs, each edge named for what it is: a cond's ``if``
    (the predicate), ``then`` and ``otherwise``; a switch's ``switch`` (the selector),
    each case's label and ``default`` (the value of each branch)."""
    args = plan._args[idx]
    if plan._task_names[idx] == "cond":
        words = ["if", "then", "otherwise"]
    else:
        cases = args[1]
        words = ["switch", "", *(short_repr(label, _CONST_WIDTH) for label in cases.labels), "default"]
    if not plan._nested[idx]:
        return [(s, words[p]) for p, s in plan._fills[idx]]
    reads: list[tuple[int, str]] = []
    for j, a in enumerate(args):
        found: dict[int, None] = {}
        collect_refs(a, found)
        reads += [(s, words[j]) for s in found]
    return reads


def _by_value(inputs: dict[str, str]) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for param, source in inputs.items():
        out.setdefault(source, []).append(param)
    return {source: ", ".join(params) for source, params in out.items()}


# -- run results --------------------------------------------------------------------------
def _node_state(state: State, trials: Sequence[Trial]) -> str:
    if state is State.FAILED and trials and trials[-1].state is State.TIMED_OUT:
        return "timed_out"
    return state.value


def _run_line(word: str, trials: Sequence[Trial]) -> str:
    parts = [word]
    spent = [t.duration for t in trials if t.duration is not None]
    if spent:
        parts.append(format_duration(sum(spent)))
    if len(trials) > 1:
        parts.append(f"{len(trials)} attempts")
    if trials and trials[-1].items is not None:  # a stream producer's
        n = trials[-1].items
        parts.append(f"{n:,} item" if n == 1 else f"{n:,} items")
    return ", ".join(parts)


def _items_line(key: str, states: dict[str, State]) -> str:
    """A map node's items in a run: ``3 items: 2 succeeded, 1 failed``, ``20,000 items: ...``."""
    prefix = f"{key}["
    counts: dict[str, int] = {}
    for k, state in states.items():
        if k.startswith(prefix) and k.endswith("]") and k[len(prefix) : -1].isdigit():
            counts[state.value] = counts.get(state.value, 0) + 1
    n = sum(counts.values())
    detail = ", ".join(f"{c:,} {w}" for w, c in counts.items())
    return f"{n:,} item{'' if n == 1 else 's'}" + (f": {detail}" if detail else "")


def _legend(result: RunResult) -> str:
    """Each state some node has, its colour and how many nodes have it (a state no node
    has is left out); a map's items are not nodes:
    when maps ran, a last row counts them apart, as ``summary()`` does
    (``4 map items: 3 succeeded, 1 failed``)."""
    import html

    trials = result.trials
    counts: dict[str, int] = {}
    for key, state in result.states.items():
        if result._is_item(key):
            continue
        word = _node_state(state, trials.get(key, ()))
        counts[word] = counts.get(word, 0) + 1

    rows = "".join(  # the states some node has, in the usual order
        f'<tr><td bgcolor="{colour}" width="14"></td>'
        f'<td align="left">{html.escape(word)} ({counts[word]})</td></tr>'
        for word, colour in STATE_COLOURS.items()
        if counts.get(word)
    )
    if result._items:
        n = sum(len(keys) for keys in result._items.values())
        by_state = _by_state(result.states[k] for keys in result._items.values() for k in keys)
        items = f"{n} map item{'' if n == 1 else 's'}" + (f": {by_state}" if by_state else "")
        rows += f'<tr><td colspan="2" align="left">{html.escape(items)}</td></tr>'
    return f'<<table border="0" cellborder="0" cellspacing="2"><tr><td colspan="2"><b>states</b></td></tr>{rows}</table>>'


# -- the picture ---------------------------------------------------------------------------
def to_dot(
    obj: Graph | CompiledGraph | RunResult,
    *,
    collapse: bool | Sequence[str] | None = None,
    expand: bool = False,
) -> graphviz.Digraph:
    """Draw a graph, a plan or a run result as a ``graphviz.Digraph``.

    Args:
        obj: a :class:`~dagexec.Graph` (compiled first), a
            :class:`~dagexec.CompiledGraph`, or a :class:`~dagexec.RunResult`
            (nodes coloured by state, with durations, attempts and a legend).
        collapse: True to draw each outermost section as one node, False for none,
            or a list of section paths; None (the default) collapses every section
            when the plan has more than 1,000 nodes, and the title says so.
        expand: True to draw every node whatever the size.

    Returns:
        A ``graphviz.Digraph``; ``.source`` is the DOT text, ``.pipe(format="svg")``
        renders it with Graphviz's ``dot`` program.

    Raises:
        ImportError: when the ``graphviz`` package is not installed.
        GraphError: when ``obj`` is a Graph that does not compile.
        ValueError: for an unknown section path in ``collapse``, or ``expand=True``
            with ``collapse``.
    """
    import graphviz

    states: dict[str, State] | None = None
    trials: dict[str, list[Trial]] = {}
    if isinstance(obj, RunResult):
        plan, states, trials = obj._plan, obj.states, obj.trials
    elif isinstance(obj, Graph):
        plan = obj.compile()
    else:
        plan = obj
    rep, auto = _collapse_map(plan, collapse, expand)
    sec_no = {s.path: k for k, s in enumerate(plan._sections)}
    # picture node of each plan node: itself, or the collapsed section it is in
    where = [rep.get(p, "") if p else "" for p in plan._section_of]
    names = [f"s{sec_no[w]}" if w else f"n{i}" for i, w in enumerate(where)]
    dot = _digraph(graphviz, plan, where, auto)
    _add_inputs(dot, plan, obj if isinstance(obj, RunResult) else None)
    edges: dict[tuple[str, str], list[str]] = {}
    body = _node_statements(plan, rep, where, names, edges, states, trials)
    _add_sections(dot, plan._sections, rep, body)
    _add_outputs(dot, plan, names, edges)
    _add_edges(dot, edges)
    return dot


def _digraph(graphviz: Any, plan: CompiledGraph, where: list[str], auto: bool) -> graphviz.Digraph:
    """An empty picture of ``plan``, titled, with the attributes every node and edge shares."""
    hidden = sum(1 for w in where if w)
    n_collapsed = len({w for w in where if w})
    big = len(plan._keys) - hidden + n_collapsed > EXPAND_LIMIT
    title = [plan.name]
    if auto:
        title.append(f"collapsed: {hidden} nodes in {n_collapsed} sections; to_dot(expand=True) draws all")
    dot = graphviz.Digraph(name=plan.name)
    dot.attr("graph", label=_label(*title), labelloc="t", rankdir="TB", fontname="Helvetica")
    if big:
        # keep dot fast on huge pictures: x positions from the first feasible solution
        # (network simplex on every long edge's virtual nodes is what takes minutes),
        # few crossing-reduction passes, straight edges
        dot.attr("graph", nslimit="0", mclimit="0.05", remincross="false", splines="line")
    dot.attr("node", fontname="Helvetica", fontsize="11", shape="box", style="rounded")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    return dot


def _add_inputs(dot: graphviz.Digraph, plan: CompiledGraph, result: RunResult | None) -> None:
    """The graph inputs at the top, and a run result's legend beside them."""
    with dot.subgraph() as ins:
        ins.attr(rank="source")
        for j, spec in enumerate(plan._inputs):
            typ = format_type(spec.type)
            if not spec.required:
                typ += f" = {short_repr(spec.default, _CONST_WIDTH)}"
            ins.node(
                f"in{j}", _label(spec.name, typ), id=f"input:{spec.name}", shape="ellipse", style="dashed"
            )
        if result is not None:
            ins.node("legend", _legend(result), id="legend", shape="plain", style="")


def _node_statements(
    plan: CompiledGraph,
    rep: dict[str, str],
    where: list[str],
    names: list[str],
    edges: dict[tuple[str, str], list[str]],
    states: dict[str, State] | None,
    trials: dict[str, list[Trial]],
) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Node statements, grouped by the cluster they go in (``""`` is the top level), a
    collapsed section's as one; the edges between them are added to ``edges``."""
    n, m = len(plan._keys), len(plan._inputs)
    keys, sections = plan._keys, plan._sections
    sec_no = {s.path: k for k, s in enumerate(sections)}
    body: dict[str, list[tuple[str, dict[str, str]]]] = {}
    cache: dict[int, _Names] = {}
    members: dict[str, list[str]] = {}  # collapsed section path -> its nodes' states
    # a collapsed section's parameters, by the key (or input name) each one receives
    params_of = {p: _by_value(sections[sec_no[p]].inputs) for p in set(rep.values())}
    for idx, key in enumerate(keys):
        reads, consts = _reads_and_consts(plan, idx, cache)
        target = names[idx]
        for slot, param in reads:
            source = names[slot] if slot < n else f"in{slot - n}" if slot < n + m else ""
            if source and source != target:
                if where[idx]:
                    outer = keys[slot] if slot < n else plan._inputs[slot - n].name
                    param = params_of[where[idx]].get(outer, param)
                edges.setdefault((source, target), []).append(param)
        for dep in plan._deps[idx]:
            if names[dep] != target:
                edges.setdefault((names[dep], target), [])
        word = "" if states is None else _node_state(states[key], trials.get(key, ()))
        if where[idx]:
            members.setdefault(where[idx], []).append(word)
            continue
        run = None if states is None else (word, trials.get(key, ()))
        box = _node_box(plan, idx, consts, run)
        if states is not None and idx in plan._maps:
            box["label"] += "\\n" + _label(_items_line(key, states))
        body.setdefault(plan._section_of[idx], []).append((f"n{idx}", box))
    for path, words in members.items():
        sec = sections[sec_no[path]]
        body.setdefault(sec.parent, []).append((f"s{sec_no[path]}", _section_box(sec, words, states, trials)))
    return body


def _add_outputs(
    dot: graphviz.Digraph, plan: CompiledGraph, names: list[str], edges: dict[tuple[str, str], list[str]]
) -> None:
    """The graph outputs at the bottom (a constant output shows its value)."""
    n, m = len(plan._keys), len(plan._inputs)
    with dot.subgraph() as outs:
        outs.attr(rank="sink")
        for j, (name, slot) in enumerate(plan._outputs):
            lines = [name]
            if slot >= n + m:
                lines.append(short_repr(plan._consts[slot - n - m], _CONST_WIDTH))
            outs.node(f"out{j}", _label(*lines), id=f"output:{name}", shape="doubleoctagon", style="")
            if slot < n + m:
                edges.setdefault((names[slot] if slot < n else f"in{slot - n}", f"out{j}"), [])


def _map_line(plan: CompiledGraph, idx: int) -> str:
    """``map: task``, and for a map by name its mapped parameters (``over a, b``, zipped;
    ``over a, b (product)``, crossed)."""
    from ._mapping import Mapped

    args = plan._args[idx]
    how = args[0] if args else None
    if type(how) is not Mapped:
        return f"map: {plan._task_names[idx]}"
    return f"map: {plan._task_names[idx]} over {', '.join(how.names)}{' (product)' if how.product else ''}"


def _node_box(
    plan: CompiledGraph, idx: int, consts: list[tuple[str, Any]], run: tuple[str, Sequence[Trial]] | None
) -> dict[str, str]:
    """Attributes of node ``idx``'s box; ``run`` is its state word and trials in a result."""
    key = plan._keys[idx]
    lines = [key, _map_line(plan, idx) if idx in plan._maps else plan._task_names[idx]]
    gate = plan._gates.get(idx)
    trigger = gate[0] if gate is not None and gate[0] != "all_succeeded" else None
    if trigger is not None:  # a trigger rule: runs whatever (all_done) or unless (none_failed)
        lines.append(f"trigger: {trigger}")
    lines += [f"{p}={short_repr(v, _CONST_WIDTH)}" for p, v in consts[:_CONST_LINES]]
    if len(consts) > _CONST_LINES:
        lines.append(f"+{len(consts) - _CONST_LINES} more")
    attrs = {"id": f"node:{key}"}
    if trigger is not None:
        attrs["peripheries"] = "2"
    if plan._specs[idx].task is not None:
        attrs["tooltip"] = _function(plan._specs[idx].fn)
    if run is not None:
        lines.append(_run_line(*run))
        attrs.update(style="rounded,filled", fillcolor=STATE_COLOURS.get(run[0], _PENDING_COLOUR))
    attrs["label"] = _label(*lines)
    return attrs


def _section_box(
    sec: SectionInfo, words: list[str], states: dict[str, State] | None, trials: dict[str, list[Trial]]
) -> dict[str, str]:
    """Attributes of a collapsed section's box; ``words`` are its nodes' state words."""
    lines = [sec.path, f"section {sec.name}, {len(words)} nodes"]
    attrs = {"id": f"section:{sec.path}", "shape": "box3d", "style": ""}
    if states is not None:
        present = [w for w in _WORST_FIRST if w in words]
        lines.append(", ".join(f"{words.count(w)} {w}" for w in present))
        spent = [t.duration for k in sec.nodes for t in trials.get(k, ()) if t.duration is not None]
        if spent:
            lines.append(format_duration(sum(spent)))
        attrs.update(style="filled", fillcolor=STATE_COLOURS.get(present[0], _PENDING_COLOUR))
    attrs["label"] = _label(*lines)
    return attrs


def _add_edges(dot: graphviz.Digraph, edges: dict[tuple[str, str], list[str]]) -> None:
    """One edge per (source, target), labelled with the parameters it feeds."""
    for (source, target), params in edges.items():
        label = ", ".join(dict.fromkeys(p for p in params if p))
        if label:
            dot.edge(source, target, label=_label(label))
        elif params or target.startswith("out"):
            dot.edge(source, target)
        else:
            dot.edge(source, target, style="dashed")  # after(): order only, no value


def _add_sections(
    dot: graphviz.Digraph,
    sections: Iterable[SectionInfo],
    rep: dict[str, str],
    body: dict[str, list[tuple[str, dict[str, str]]]],
) -> None:
    """Add the top-level nodes, then each drawn section as a cluster, nested."""
    import graphviz

    children: dict[str, list[tuple[int, SectionInfo]]] = {}
    for k, s in enumerate(sections):
        if s.path not in rep and s.nodes:  # a section of markers only has nothing to draw
            children.setdefault(s.parent, []).append((k, s))

    def fill(graph: graphviz.Digraph, path: str) -> None:
        for name, attrs in body.get(path, ()):
            graph.node(name, **attrs)
        for k, s in children.get(path, ()):
            cluster = graphviz.Digraph(name=f"cluster_s{k}")
            cluster.attr(
                "graph", label=_label(s.path), id=f"section:{s.path}", style="rounded", color="#888888"
            )
            fill(cluster, s.path)
            graph.subgraph(cluster)

    fill(dot, "")


def repr_mimebundle(
    obj: Graph | CompiledGraph | RunResult, include: Any = None, exclude: Any = None
) -> dict[str, str]:
    """Jupyter's rich display: the picture as SVG, or ``text/plain`` without ``dot``.

    Returns:
        ``{"image/svg+xml": ..., "text/plain": repr(obj)}``, the SVG left out when
        Graphviz's ``dot`` program is missing or fails, or when ``include``/``exclude``
        ask so.

    Raises:
        Nothing: a graph that does not compile shows its error as text.
    """
    from ._errors import GraphError

    bundle = {"text/plain": repr(obj)}
    if (include is not None and "image/svg+xml" not in include) or (
        exclude is not None and "image/svg+xml" in exclude
    ):
        return bundle
    try:
        import graphviz
    except ImportError:
        return bundle
    try:
        svg = to_dot(obj).pipe(format="svg", encoding="utf-8")
    except GraphError as exc:
        bundle["text/plain"] += f"\n{exc}"
        return bundle
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as exc:
        logger.debug("no SVG for %r: %s", obj, exc)
        return bundle
    return {"image/svg+xml": svg, **bundle}
