"""Turn a :class:`~dagexec.Graph` into a :class:`~dagexec.CompiledGraph`.

Steps, each linear in nodes + edges:

1. resolve markers: a section's PARAM and FINISH nodes stand for a Node, an input
   or a constant; a FINISH over a container of Nodes becomes a small "pack" node;
2. order the runnable nodes topologically (creation order already is one unless
   ``after()`` points forward; then Kahn's algorithm, stable on creation order);
3. validate, collecting every problem: cycles (reported at the ``after()`` calls
   that closed them), constants and constant map items against annotations, edges
   between plain classes, an empty graph; record what does not pickle;
4. lay the plan out as flat tuples (see ``compiled``), in one pass over the nodes
   (``layout``), the checks of step 3 made on the way.

A graph whose records all run as they are (no inputs, no section markers) and
whose ``after()`` calls point back keeps its creation order: a node's plan idx is
its graph idx, and its dependencies' tuple is the plan's as it is.  The ordering
helpers (step 2's topological sort and the cycle report) are in ``order``; the
checks of step 3 in ``checks``.  The functions of the nodes that are
no task's call, ``getitem`` for ``node[k]`` and ``_pack`` for a packed section
value, stay defined in ``dagexec._compile``: plans name them by that module, in
their fingerprint, their manifest and their pickles.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from itertools import compress, pairwise
from operator import itemgetter, not_
from typing import Any

from .. import _graph as G
from .._callsite import format_site
from .._errors import GraphError, Problem
from .._typecheck import short_repr
from .._walk import replacer
from .checks import CONST, INPUT, NODE, TPL
from .compiled import CompiledGraph
from .layout import Columns, dependents, lay_out, readers
from .order import _kahn, _runnable_deps, _section_members
from .specs import InputSpec, SectionInfo, _Ref

__all__ = ["compile_graph"]

#: the walk substitute makes: a call back at each Node only, every container copied
_walk_nodes = replacer(types=G.NODE_TYPES, copy=True)

# resolution of a graph node: (NODE, new-or-old idx) | (INPUT, input idx) | (CONST, value)
_NODE, _INPUT, _CONST, _TPL = NODE, INPUT, CONST, TPL

#: the kinds of records that become plan nodes as they are
_RUNS = frozenset({G.TASK, G.GETITEM, G.SELECT, G.MAP, G.SWITCH})
_KIND, _DEPS = itemgetter(G.R_KIND), itemgetter(G.R_DEPS)


def compile_graph(graph: G.Graph, *, portable: bool = False) -> CompiledGraph:
    """Compile ``graph``; see :meth:`dagexec.Graph.compile`.

    Raises:
        GraphError: listing every problem found.
    """
    # Compiling allocates a few objects per node and frees none of them: the cyclic
    # collector would walk the growing heap again and again for nothing (it took
    # half the time of compiling 100,000 nodes), so it is paused meanwhile.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _compile(graph, portable)
    finally:
        if paused:
            gc.enable()


def _compile(graph: G.Graph, portable: bool) -> CompiledGraph:
    c = _Compiler(graph)
    c.resolve()
    c.dependencies()
    c.order()
    return c.freeze(lay_out(c), portable)


class _EveryRecordRuns(Sequence[tuple[int, Any]]):
    """``res`` of a graph whose records all run as they are: ``res[i]`` is ``(NODE, i)``,
    made when asked (most nodes never are)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [(_NODE, j) for j in range(self.n)[i]]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return (_NODE, i % self.n)


class _Compiler:
    """The state of one compile, phase by phase (see the module docstring)."""

    def __init__(self, graph: G.Graph) -> None:
        self.g = graph
        self.recs = graph._recs
        self.problems: list[Problem] = []
        self.pickle_problems: list[Problem] = []
        self.pickled_fns: dict[int, str | None] = {}  # id(fn) -> what stops it pickling, or None
        self.input_pos = {i: p for p, i in enumerate(graph._inputs.values())}
        self.consts: list[Any] = []

    def fail(self) -> GraphError:
        return GraphError(self.problems, what=f"graph {self.g.name!r}")

    # 1. markers -----------------------------------------------------------------------
    def resolve(self) -> None:
        """``res[i]``: (_NODE, i) runs; (_INPUT, i); (_CONST, value); or (_TPL,
        (container, deps)) for a section parameter given a container holding Nodes,
        which its readers rebuild themselves.  ``is_run[i]``: whether record ``i`` is
        a plan node itself (None when every record is)."""
        recs = self.recs
        kinds = list(map(_KIND, recs))
        self.has_tpl = False
        if _RUNS.issuperset(kinds):  # no inputs, no markers: every record runs as it is
            self.res: Sequence[tuple[int, Any]] = _EveryRecordRuns(len(recs))
            self.runnable = list(range(len(recs)))
            self.is_run: list[bool] | None = None
        else:
            self._resolve_markers()
        if G.TASK not in kinds and G.MAP not in kinds:
            self.problems.append(
                Problem(f"graph {self.g.name!r} is empty: call tasks inside 'with graph:' before compile()")
            )
            raise self.fail()

    def _resolve_markers(self) -> None:
        recs = self.recs
        res: list[tuple[int, Any]] = [(_CONST, None)] * len(recs)
        runnable: list[int] = []  # graph idxs that become plan nodes, in creation order
        is_run = [False] * len(recs)
        for i, rec in enumerate(recs):
            kind = rec[0]
            if kind in _RUNS:
                res[i] = (_NODE, i)
                runnable.append(i)
                is_run[i] = True
            elif kind == G.INPUT:
                res[i] = (_INPUT, i)
            else:
                value = G.record_args(self.g, rec)[0]  # a marker's one argument
                if rec[G.R_NESTED] and kind == G.PARAM:
                    res[i] = (_TPL, (value, tuple(_runnable_deps(rec[G.R_DEPS], res))))
                    self.has_tpl = True
                elif rec[G.R_NESTED] or (
                    kind == G.FINISH and isinstance(value, G.Node) and res[value._i][0] == _TPL
                ):
                    res[i] = (_NODE, i)  # a section's value built from several Nodes
                    runnable.append(i)
                    is_run[i] = True
                else:
                    res[i] = res[value._i] if isinstance(value, G.Node) else (_CONST, value)
        self.res, self.runnable, self.is_run = res, runnable, is_run

    # 2. dependencies and order ----------------------------------------------------------
    def dependencies(self) -> None:
        """``dep_lists[i]``: the runnable nodes runnable ``i`` waits for (graph idxs)."""
        recs, res, is_run = self.recs, self.res, self.is_run
        after = self.g._after
        self.forward = False  # an after() edge points to a later node: creation order may not do
        if is_run is None and not after:
            self.dep_lists: list[tuple[int, ...]] = list(map(_DEPS, recs))
            return
        members = _section_members(self.g, self.runnable) if after else {}
        dep_lists: list[tuple[int, ...]] = [()] * len(recs)
        for i in self.runnable:
            gd = recs[i][G.R_DEPS]
            if i not in after and (is_run is None or all(map(is_run.__getitem__, gd))):
                dep_lists[i] = gd
                continue
            ds = _runnable_deps(gd, res)
            for d in after.get(i, ()):
                is_section = recs[d][0] == G.FINISH
                targets = members.get(d) if is_section else None
                if targets is None:
                    r = res[d]
                    targets = [r[1]] if r[0] == _NODE else list(r[1][1]) if r[0] == _TPL else []
                for t in targets:
                    if t != i or not is_section:
                        ds[t] = None
                        self.forward = self.forward or t >= i
            dep_lists[i] = tuple(ds)
        self.dep_lists = dep_lists

    def order(self) -> None:
        """Topological order; ``pos[graph idx]`` is the plan idx of a runnable node."""
        order = self.runnable
        if self.forward:
            order = _kahn(self.g, self.runnable, self.dep_lists, self.problems, self.res)  # type: ignore[assignment]
            if order is None:
                raise self.fail()
        self.identity = self.is_run is None and not self.forward  # plan idx == graph idx
        if self.identity:
            self.pos: list[int] | range = range(len(self.recs))
        else:
            pos = [0] * len(self.recs)
            for p, gi in enumerate(order):
                pos[gi] = p
            self.pos = pos
        self.order_ = order
        self.n = len(order)
        self.n_inputs = len(self.input_pos)

    def slot_of(self, r: tuple[int, Any]) -> int:
        """The value slot a resolution reads (constants get a slot of their own)."""
        if r[0] == _NODE:
            return self.pos[int(r[1])]
        if r[0] == _INPUT:
            return self.n + self.input_pos[r[1]]
        self.consts.append(r[1][0] if r[0] == _TPL else r[1])
        return self.n + self.n_inputs + len(self.consts) - 1

    def substitute(self, value: Any) -> Any:
        """A template of ``value``: Nodes inside containers become ``_Ref(slot)``
        (every container copied, as the graph's arguments are)."""
        return _walk_nodes(value, self._template_of)

    def _template_of(self, node: G.Node) -> Any:
        r = self.res[node._i]
        if r[0] == _CONST:
            return r[1]
        if r[0] == _TPL:
            return self.substitute(r[1][0])
        return _Ref(self.slot_of(r))

    # 4. the plan ------------------------------------------------------------------------
    def freeze(self, cols: Columns, portable: bool) -> CompiledGraph:
        """The plan's tuples from the columns, with inputs, outputs and sections."""
        g, n = self.g, self.n
        keys = tuple(g._keys) if self.identity else tuple([g._keys[gi] for gi in self.order_])
        inputs = self._inputs(keys, cols.reads)
        waiting = dependents(cols.deps)
        n_waiting = list(map(len, waiting))  # one pass over the tuples, wherever they lie
        n_readers, read_apart = readers(cols, n_waiting, n + self.n_inputs)
        outputs = self._outputs(keys, cols, n_waiting, read_apart)
        aliases: dict[str, int] = {}  # section keys -> the slot they stand for
        for sc in g._sections:
            r = self.res[sc.finish]
            if r[0] != _NODE or g._keys[r[1]] != sc.path:
                aliases[sc.path] = self.slot_of(r)
        sections = _section_infos(g, self.res, self.pos, keys, cols.sections)
        if self.problems:
            raise self.fail()
        if portable and self.pickle_problems:
            raise GraphError(
                self.pickle_problems,
                what=f"graph {g.name!r} (compile(portable=True) needs every task and constant to pickle)",
            )
        plan = object.__new__(CompiledGraph)
        plan._set(
            name=g.name,
            _keys=keys,
            _index=dict(zip(keys, range(n), strict=True)),
            _specs=tuple(cols.specs),
            _args=tuple(cols.args),
            _fills=tuple(cols.fills),
            _kwargs=tuple(cols.kwargs),
            _kwfills=tuple(cols.kwfills),
            _nested=tuple(cols.nested),
            _deps=tuple(cols.deps),
            _dependents=waiting,
            _reads=tuple(cols.reads),
            _n_readers=tuple(n_readers),
            _opts=tuple(cols.opts),
            _routes=tuple(cols.routes),
            _task_names=tuple(cols.names),
            _sites=tuple(cols.sites),
            _section_of=tuple(cols.sections),
            _inputs=inputs,
            _outputs=outputs,
            _consts=tuple(self.consts),
            _aliases=aliases,
            _sections=sections,
            _conds=self._conds(),
            _maps=frozenset(cols.maps),
            _gates=cols.gates,
            _pickle_problems=tuple(self.pickle_problems),
            _fingerprint=None,
            _levels=None,
            _links=None,
            _plain=None,
            _streams=None,
        )
        assert len(keys) == n
        return plan

    def _conds(self) -> tuple[tuple[Any, ...], ...]:
        """Per ``dx.cond`` or ``dx.switch``: (its plan idx, its predicate's or selector's
        slot, then per branch the plan idxs of its nodes): a cond's then-branch and
        otherwise-branch, a switch's cases and its default."""
        res, pos = self.res, self.pos

        def nodes(lo: int, hi: int) -> tuple[int, ...]:
            return tuple(pos[gi] for gi in range(lo, hi) if res[gi][0] == _NODE and res[gi][1] == gi)

        return tuple(
            (pos[sel], self.slot_of(res[pred]), *(nodes(lo, hi) for lo, hi in pairwise(bounds)))
            for sel, pred, bounds in self.g._conds
        )

    def _inputs(self, keys: tuple[str, ...], reads_l: list[tuple[int, ...]]) -> tuple[InputSpec, ...]:
        if not self.g._inputs:
            return ()
        n = self.n
        readers_of: dict[int, list[str]] = {}
        for p in range(n):
            for s in reads_l[p]:
                if s >= n:
                    readers_of.setdefault(s, []).append(keys[p])
        out = []
        for name, gi in self.g._inputs.items():
            typ, default = self.g._input_specs[gi]
            slot = n + self.input_pos[gi]
            out.append(InputSpec(name, typ, default, slot, tuple(readers_of.get(slot, ()))))
        return tuple(out)

    def _outputs(
        self, keys: tuple[str, ...], cols: Columns, n_waiting: list[int], read: set[int]
    ) -> tuple[tuple[str, int], ...]:
        """The marked outputs, or else the nodes nobody reads or waits for (``node[k]``
        items last); ``read`` holds the nodes read by a node that does not wait for them."""
        if self.g._outputs:
            return tuple((name, self.slot_of(self.res[gi])) for name, gi in self.g._outputs)
        names = cols.names
        unread = list(compress(range(self.n), map(not_, n_waiting)))  # nobody waits for them
        if read:
            unread = [p for p in unread if p not in read]
        outputs = [(keys[p], p) for p in unread if names[p] != "getitem"]
        if not outputs:
            outputs = [(keys[p], p) for p in unread]
        return tuple(outputs)


def _section_infos(
    g: G.Graph,
    res: Sequence[tuple[int, Any]],
    pos: Sequence[int],
    keys: tuple[str, ...],
    section_of: Sequence[str],
) -> tuple[SectionInfo, ...]:
    if not g._sections:
        return ()

    def name_of(r: tuple[int, Any]) -> str:
        if r[0] == _NODE:
            return keys[pos[int(r[1])]]
        if r[0] == _INPUT:
            return g._keys[int(r[1])]
        return short_repr(r[1][0] if r[0] == _TPL else r[1])  # a constant or a container

    members: dict[str, list[str]] = {s.path: [] for s in g._sections}
    for p, path in enumerate(section_of):
        while path:
            members[path].append(keys[p])
            path = path.rpartition("/")[0] if path.rpartition("/")[0] in members else ""
    out = []
    for s in g._sections:
        ins = {pname: name_of(res[pi]) for pname, pi in s.params.items()}
        out.append(
            SectionInfo(
                s.path,
                s.name,
                s.parent.path if s.parent is not None else "",
                ins,
                name_of(res[s.finish]),
                tuple(members[s.path]),
                format_site(s.call_site),
            )
        )
    return tuple(out)
