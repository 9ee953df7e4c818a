"""``plan.to_dot()``: a compiled graph as a ``graphviz.Digraph``.

One picture node per plan node, labelled with its key and its task; graph inputs
are ellipses of their own with edges to the nodes that read them; each graph output
is a ``doubleoctagon`` fed by the node (or input) it is. Picture ids are ``n<idx>``,
``in<j>`` and ``out<j>``, so keys never need to be valid DOT ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._plan import CompiledGraph

__all__ = ["to_dot"]


def _label(*lines: str) -> str:
    import graphviz

    # escape() keeps backslashes literal; "\n" between lines is DOT's centred line break
    return "\\n".join(graphviz.escape(line) for line in lines)


def to_dot(plan: CompiledGraph) -> Any:
    """Draw ``plan`` as a ``graphviz.Digraph`` (no rendering, no ``dot`` binary needed).

    Args:
        plan: the compiled graph to draw.

    Returns:
        A ``graphviz.Digraph``; ``.source`` is the DOT text.

    Raises:
        ImportError: when the ``graphviz`` package is not installed.
    """
    import graphviz

    from ._typecheck import format_type, short_repr

    dot = graphviz.Digraph(name=plan.name, graph_attr={"rankdir": "TB", "label": plan.name})
    dot.attr("node", fontname="Helvetica", fontsize="11")
    n = len(plan._keys)
    for idx, key in enumerate(plan._keys):
        dot.node(f"n{idx}", _label(key, plan._task_names[idx]), shape="box", style="rounded")
    for j, spec in enumerate(plan._inputs):
        dot.node(f"in{j}", _label(spec.name, format_type(spec.type)), shape="ellipse", style="dashed")
    for idx, deps in enumerate(plan._deps):
        for dep in deps:
            dot.edge(f"n{dep}", f"n{idx}")
    index = plan._index
    for j, spec in enumerate(plan._inputs):
        for reader in spec.readers:
            dot.edge(f"in{j}", f"n{index[reader]}")
    for j, (name, slot) in enumerate(plan._outputs):
        if slot < n:
            source: str | None = f"n{slot}"
            label = _label(name)
        elif slot < n + len(plan._inputs):
            source = f"in{slot - n}"
            label = _label(name)
        else:
            source = None
            label = _label(name, short_repr(plan._consts[slot - n - len(plan._inputs)], 40))
        dot.node(f"out{j}", label, shape="doubleoctagon")
        if source is not None:
            dot.edge(source, f"out{j}")
    return dot
