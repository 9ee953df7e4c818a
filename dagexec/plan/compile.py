"""Turn a :class:`~dagexec.Graph` into a :class:`~dagexec.CompiledGraph`.

Steps, each linear in nodes + edges:

1. resolve markers: a section's PARAM and FINISH nodes stand for a Node, an input
   or a constant; a FINISH over a container of Nodes becomes a small "pack" node;
2. order the runnable nodes topologically (creation order already is one unless
   ``after()`` points forward; then Kahn's algorithm, stable on creation order);
3. validate, collecting every problem: cycles (reported at the ``after()`` calls
   that closed them), constants and constant map items against annotations, edges
   between plain classes, an empty graph; record what does not pickle;
4. lay the plan out as flat tuples (see ``compiled``).

The ordering helpers (step 2's topological sort and the cycle report) are in
``order``; the checks of step 3 in ``checks``.  The functions of the nodes that are
no task's call, ``getitem`` for ``node[k]`` and ``_pack`` for a packed section
value, stay defined in ``dagexec._compile``: plans name them by that module, in
their fingerprint, their manifest and their pickles.
"""

from __future__ import annotations

import gc
import inspect
from typing import Any

from .. import _graph as G
from .._callsite import format_site
from .._compile import _pack, getitem
from .._cond import choose
from .._errors import GraphError, Problem
from .._typecheck import short_repr
from .._walk import replacer
from . import checks as C
from .checks import CONST, INPUT, NODE, SIMPLE, TPL
from .compiled import CompiledGraph
from .order import _kahn, _runnable_deps, _section_members
from .specs import InputSpec, NodeSpec, SectionInfo, _Ref, collect_refs

__all__ = ["compile_graph"]

#: the walk substitute makes: a call back at each Node only, every container copied
_walk_nodes = replacer(types=G.NODE_TYPES, copy=True)

# resolution of a graph node: (NODE, new-or-old idx) | (INPUT, input idx) | (CONST, value)
_NODE, _INPUT, _CONST, _TPL = NODE, INPUT, CONST, TPL

_SIMPLE = SIMPLE


#: the functions of the nodes that are no task's call
_BUILTIN = {G.GETITEM: (getitem, "getitem"), G.FINISH: (_pack, "pack"), G.SELECT: (choose, "cond")}


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
    rows = c.layout()
    return c.freeze(rows, portable)


class _Compiler:
    """The state of one compile, phase by phase (see the module docstring)."""

    def __init__(self, graph: G.Graph) -> None:
        self.g = graph
        self.recs = graph._recs
        self.problems: list[Problem] = []
        self.input_pos = {i: p for p, i in enumerate(graph._inputs.values())}
        self.consts: list[Any] = []

    def fail(self) -> GraphError:
        return GraphError(self.problems, what=f"graph {self.g.name!r}")

    # 1. markers -----------------------------------------------------------------------
    def resolve(self) -> None:
        """``res[i]``: (_NODE, i) runs; (_INPUT, i); (_CONST, value); or (_TPL,
        (container, deps)) for a section parameter given a container holding Nodes,
        which its readers rebuild themselves."""
        recs = self.recs
        res: list[tuple[int, Any]] = [(_CONST, None)] * len(recs)
        runnable: list[int] = []  # graph idxs that become plan nodes, in creation order
        has_tpl = False
        for i, rec in enumerate(recs):
            kind = rec[0]
            if kind == G.TASK or kind == G.GETITEM or kind == G.SELECT or kind == G.MAP:
                res[i] = (_NODE, i)
                runnable.append(i)
            elif kind == G.INPUT:
                res[i] = (_INPUT, i)
            else:
                value = rec[3][0]
                if rec[6] and kind == G.PARAM:
                    res[i] = (_TPL, (value, tuple(_runnable_deps(rec[5], res))))
                    has_tpl = True
                elif rec[6] or (kind == G.FINISH and isinstance(value, G.Node) and res[value._i][0] == _TPL):
                    res[i] = (_NODE, i)  # a section's value built from several Nodes
                    runnable.append(i)
                else:
                    res[i] = res[value._i] if isinstance(value, G.Node) else (_CONST, value)
        if not any(recs[i][0] == G.TASK or recs[i][0] == G.MAP for i in runnable):
            self.problems.append(
                Problem(f"graph {self.g.name!r} is empty: call tasks inside 'with graph:' before compile()")
            )
            raise self.fail()
        self.res = res
        self.runnable = runnable
        self.has_tpl = has_tpl

    # 2. dependencies and order ----------------------------------------------------------
    def dependencies(self) -> None:
        """``dep_lists[i]``: the runnable nodes runnable ``i`` waits for (graph idxs)."""
        recs, res, has_tpl = self.recs, self.res, self.has_tpl
        after = self.g._after
        members = _section_members(self.g, self.runnable) if after else {}
        dep_lists: dict[int, tuple[int, ...]] = {}
        forward = False
        for i in self.runnable:
            gd = recs[i][5]
            if len(gd) == 1 and not has_tpl and i not in after:
                r = res[gd[0]]
                dep_lists[i] = (r[1],) if r[0] == _NODE else ()
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
                        forward = forward or t >= i
            dep_lists[i] = tuple(ds)
        self.dep_lists = dep_lists
        self.forward = forward  # an after() edge points to a later node: creation order may not do

    def order(self) -> None:
        """Topological order; ``pos[graph idx]`` is the plan idx of a runnable node."""
        if self.forward:
            order = _kahn(self.g, self.runnable, self.dep_lists, self.problems, self.res)
            if order is None:
                raise self.fail()
        else:
            order = self.runnable
        pos = [0] * len(self.recs)
        for p, gi in enumerate(order):
            pos[gi] = p
        self.order_ = order
        self.pos = pos
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

    # 3. layout --------------------------------------------------------------------------
    def layout(self) -> list[tuple[Any, ...]]:
        """One row per plan node, with checks made on the way.

        A row is ``(key, spec, args, fills, kwargs, kwfills, nested, deps, reads,
        opts, task name, call site, section path)``; :meth:`freeze` transposes them.
        """
        g, recs, res, pos, dep_lists = self.g, self.recs, self.res, self.pos, self.dep_lists
        n = self.n
        has_tpl = self.has_tpl
        slot_of = self.slot_of
        rows: list[tuple[Any, ...]] = []
        n_readers: list[int] = [0] * (n + self.n_inputs)
        dependents: list[list[int]] = [[] for _ in range(n)]
        routes: list[str] = []
        self.n_readers, self.dependents, self.routes = n_readers, dependents, routes
        self.pickle_problems: list[Problem] = []
        self._pickled_fns: dict[int, str | None] = {}  # id(fn) -> what stops it pickling, or None
        site_cache: dict[tuple[str, int], str] = {}
        Node = G.Node
        TASK, MAP = G.TASK, G.MAP
        maps: list[int] = []
        coros: dict[Any, bool] = {}  # function -> whether it is an async def, asked once each
        for p, gi in enumerate(self.order_):
            key = g._keys[gi]
            kind, task, opts, raw_args, raw_kwargs, _, nested, site, scope = recs[gi]
            where = site_cache.get(site)
            if where is None:
                where = site_cache[site] = format_site(site)
            if has_tpl and not nested:
                nested = any(res[d][0] == _TPL for d in recs[gi][5])
            fills: list[tuple[int, int]] = []
            reads: dict[int, None] = {}
            kwfills: tuple[tuple[str, int], ...] = ()
            kw: dict[str, Any] | None = None
            if nested:
                a = tuple(self.substitute(v) for v in raw_args)
                kw = {k: self.substitute(v) for k, v in raw_kwargs.items()} if raw_kwargs else None
                collect_refs(a, reads)
                if kw:
                    collect_refs(kw, reads)
            else:  # the common case, inline: Nodes as direct arguments
                al = list(raw_args)
                for j, v in enumerate(al):
                    if isinstance(v, Node):
                        r = res[v._i]
                        if r[0] == _CONST:
                            al[j] = r[1]
                        else:
                            s = pos[r[1]] if r[0] == _NODE else slot_of(r)
                            al[j] = None
                            fills.append((j, s))
                            reads[s] = None
                a = tuple(al)
                if raw_kwargs:
                    kw, kwfills = self._kw_template(raw_kwargs, reads)
            for s in reads:
                n_readers[s] += 1
            deps = tuple([pos[d] for d in dep_lists[gi]])
            for d in deps:
                dependents[d].append(p)
            if kind == TASK or kind == MAP:
                assert task is not None and opts is not None
                fn = task.__wrapped__
                tname = opts.name
                checks, ret = self._task_checks(gi, key, where, a, kw)
                timeout = opts.timeout
                resources = opts.resources
                route = opts.executor or "default"
            else:  # node[k] and a section's packed value run where their producer runs
                fn, tname = _BUILTIN[kind]
                checks, ret, timeout, resources = (), None, None, None
                route = routes[deps[0]] if deps else "default"
            routes.append(route)
            if kind == MAP:
                maps.append(p)
            coro = coros.get(fn)
            if coro is None:
                coro = coros[fn] = inspect.iscoroutinefunction(fn)
            rows.append(
                (key, NodeSpec(key, fn, task, checks, ret, timeout, resources, coro), a, tuple(fills), kw, kwfills,
                 nested, deps, tuple(reads), opts, tname, where, scope.path if scope is not None else "")
            )  # fmt: skip
        self.maps = frozenset(maps)
        return rows

    def _kw_template(
        self, raw_kwargs: dict[str, Any], reads: dict[int, None]
    ) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
        kw = dict(raw_kwargs)
        kwf: list[tuple[str, int]] = []
        for name, v in kw.items():
            if isinstance(v, G.Node):
                r = self.res[v._i]
                if r[0] == _CONST:
                    kw[name] = r[1]
                else:
                    s = self.slot_of(r)
                    kw[name] = None
                    kwf.append((name, s))
                    reads[s] = None
        return kw, tuple(kwf)

    def _task_checks(
        self, gi: int, key: str, where: str, a: tuple[Any, ...], kw: dict[str, Any] | None
    ) -> tuple[tuple[tuple[int | str, str, Any], ...], Any]:
        """Compile-time checks of task node ``gi`` (its arguments' template ``a`` and
        ``kw``); returns its run-time checks."""
        checks: tuple[tuple[int | str, str, Any], ...] = ()
        ret: Any = None
        kind, task, opts, raw_args, raw_kwargs = self.recs[gi][:5]
        assert task is not None and opts is not None  # a TASK or MAP record
        meta = task._self_meta or task.meta
        if meta.hints and opts.typecheck:
            # a map's first argument is the list of items: each item is checked on its own
            skip = 1 if kind == G.MAP else 0
            C.check_constants(
                self.g, gi, key, where, task, raw_args, raw_kwargs, self.res, self.problems, skip
            )
            if skip:
                C.check_map_items(self.g, key, where, task, raw_args[0], self.res, self.problems)
            checks, ret = C.runtime_checks(meta, len(a), kw)
        fn = task.__wrapped__
        fid = id(fn)
        if fid not in self._pickled_fns:
            self._pickled_fns[fid] = C.pickles(task, key, where, self.pickle_problems)
        else:
            because = self._pickled_fns[fid]
            if because is not None:  # the same function again: named, without the error twice
                self.pickle_problems.append(
                    C.pickle_problem(key, where, f"task function {C.qual(fn)}", None, because)
                )
        simple = _SIMPLE
        for v in a:
            if type(v) not in simple:
                C.check_constant_pickles(key, where, task, a, kw, self.pickle_problems)
                break
        else:
            if kw:
                C.check_constant_pickles(key, where, task, a, kw, self.pickle_problems)
        return checks, ret

    # 4. the plan ------------------------------------------------------------------------
    def freeze(self, rows: list[tuple[Any, ...]], portable: bool) -> CompiledGraph:
        """Transpose the rows into the plan's tuples, with inputs, outputs and sections."""
        g, n = self.g, self.n
        cols: list[tuple[Any, ...]] = list(zip(*rows, strict=True))
        del rows
        (keys, specs, args_t, fills_t, kwargs_t, kwfills_t, nested_t, deps_t, reads_t, opts_t,
         names_t, sites_t, section_t) = cols  # fmt: skip
        inputs = self._inputs(keys, reads_t)
        outputs = self._outputs(keys, reads_t, deps_t, names_t)
        aliases: dict[str, int] = {}  # section keys -> the slot they stand for
        for sc in g._sections:
            r = self.res[sc.finish]
            if r[0] != _NODE or g._keys[r[1]] != sc.path:
                aliases[sc.path] = self.slot_of(r)
        sections = _section_infos(g, self.res, self.pos, keys, section_t)
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
            _index={k: i for i, k in enumerate(keys)},
            _specs=specs,
            _args=args_t,
            _fills=fills_t,
            _kwargs=kwargs_t,
            _kwfills=kwfills_t,
            _nested=nested_t,
            _deps=deps_t,
            _dependents=tuple([tuple(d) for d in self.dependents]),
            _reads=reads_t,
            _n_readers=tuple(self.n_readers),
            _opts=opts_t,
            _routes=tuple(self.routes),
            _task_names=names_t,
            _sites=sites_t,
            _section_of=section_t,
            _inputs=inputs,
            _outputs=outputs,
            _consts=tuple(self.consts),
            _aliases=aliases,
            _sections=sections,
            _conds=self._conds(),
            _maps=self.maps,
            _pickle_problems=tuple(self.pickle_problems),
            _fingerprint=None,
            _links=None,
        )
        assert len(keys) == n
        return plan

    def _conds(self) -> tuple[tuple[int, int, tuple[int, ...], tuple[int, ...]], ...]:
        """Per ``dx.cond``: (its plan idx, its predicate's slot, the plan idxs of the
        then-branch's nodes, of the otherwise-branch's)."""
        res, pos = self.res, self.pos

        def nodes(lo: int, hi: int) -> tuple[int, ...]:
            return tuple(pos[gi] for gi in range(lo, hi) if res[gi][0] == _NODE and res[gi][1] == gi)

        return tuple(
            (pos[sel], self.slot_of(res[pred]), nodes(lo, mid), nodes(mid, hi))
            for sel, pred, lo, mid, hi in self.g._conds
        )

    def _inputs(self, keys: tuple[str, ...], reads_t: tuple[tuple[int, ...], ...]) -> tuple[InputSpec, ...]:
        n = self.n
        readers_of: dict[int, list[str]] = {}
        for p in range(n):
            for s in reads_t[p]:
                if s >= n:
                    readers_of.setdefault(s, []).append(keys[p])
        out = []
        for name, gi in self.g._inputs.items():
            typ, default = self.g._input_specs[gi]
            slot = n + self.input_pos[gi]
            out.append(InputSpec(name, typ, default, slot, tuple(readers_of.get(slot, ()))))
        return tuple(out)

    def _outputs(
        self,
        keys: tuple[str, ...],
        reads_t: tuple[tuple[int, ...], ...],
        deps_t: tuple[tuple[int, ...], ...],
        names_t: tuple[str, ...],
    ) -> tuple[tuple[str, int], ...]:
        """The marked outputs, or else the nodes nobody reads (``node[k]`` items last)."""
        if self.g._outputs:
            return tuple((name, self.slot_of(self.res[gi])) for name, gi in self.g._outputs)
        n = self.n
        has_reader = [False] * n
        for p in range(n):
            for s in reads_t[p]:
                if s < n:
                    has_reader[s] = True
            for d in deps_t[p]:
                has_reader[d] = True
        outputs = [(keys[p], p) for p in range(n) if not has_reader[p] and names_t[p] != "getitem"]
        if not outputs:
            outputs = [(keys[p], p) for p in range(n) if not has_reader[p]]
        return tuple(outputs)


def _section_infos(
    g: G.Graph,
    res: list[tuple[int, Any]],
    pos: list[int],
    keys: tuple[str, ...],
    section_of: tuple[str, ...],
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
