"""Step 4 of compiling: the plan's per-node columns, laid out in one pass over the nodes.

Most nodes of a big graph are task calls whose positional arguments are distinct
Nodes that run, or constants only, and most follow a node of the same task.  For
those the pass does little: the slots it reads are the dependencies' tuple itself,
and what the spec needs of the task (function, run-time checks, timeout) is still at
hand from the node before.  Every other node (keywords, containers, a Node given
twice, markers or inputs in between) takes the general path, :func:`_template`.
What follows from the slots read alone is made a column at a time after the pass (a
template of ``k`` Nodes is ``k`` Nones, one tuple shared by every such node, filled
from the slots in order), and so is what follows from a node's form and call site
(options, task name, route, section, call site text): one C-level ``map`` per
column instead of a list append per node and column.

The checks that look at a node's own call (constants and edges against annotations,
functions and constants that do not pickle) are made only for the nodes that have
something to check: the first node of each task and options, the nodes of a task
whose calls are type-checked or whose function does not pickle, and the nodes whose
template holds constants.  They run in plan order, so problems are listed node by node.
"""

from __future__ import annotations

import inspect
from itertools import compress, count
from operator import is_not, itemgetter
from typing import TYPE_CHECKING, Any

from .. import _graph as G
from .._callsite import format_site
from .._compile import _pack, getitem
from .._cond import choose, choose_case
from .._mapping import Mapped
from . import checks as C
from .checks import CONST, NODE, TPL
from .specs import NodeSpec, collect_refs
from .triggers import gate_of, map_gate_problem

if TYPE_CHECKING:
    from .compile import _Compiler

__all__ = ["BUILTIN", "Columns", "dependents", "lay_out", "readers"]

#: the functions of the nodes that are no task's call
BUILTIN: dict[int, tuple[Any, str]] = {
    G.GETITEM: (getitem, "getitem"),
    G.FINISH: (_pack, "pack"),
    G.SELECT: (choose, "cond"),
    G.SWITCH: (choose_case, "switch"),
}


class _Nones(dict[int, tuple[None, ...]]):
    """``k`` -> the template of a call of ``k`` Nodes, shared by every such call."""

    def __missing__(self, k: int) -> tuple[None, ...]:
        t = self[k] = (None,) * k
        return t


_NONES = _Nones()


class Columns:
    """The per-node columns :func:`lay_out` makes, each a list indexed by plan idx."""

    __slots__ = (
        "args",
        "deps",
        "fills",
        "gates",
        "kwargs",
        "kwfills",
        "maps",
        "names",
        "nested",
        "opts",
        "reads",
        "routes",
        "sections",
        "sites",
        "specs",
    )

    def __init__(self, n: int, deps: list[tuple[int, ...]]) -> None:
        self.deps = deps
        self.args: list[tuple[Any, ...]] = []
        self.fills: list[tuple[tuple[int, int], ...]] = []
        self.reads: list[tuple[int, ...]] = []
        self.kwargs: list[dict[str, Any] | None] = [None] * n
        self.kwfills: list[tuple[tuple[str, int], ...]] = [()] * n
        self.nested: list[bool] = [False] * n
        self.specs: list[NodeSpec] = []
        self.opts: list[Any] = []
        self.names: list[str] = []
        self.routes: list[str] = []
        self.sites: list[str] = []
        self.sections: list[str] = []
        self.maps: list[int] = []
        self.gates: dict[int, tuple[str, tuple[int | str, ...]]] = {}


class _Form:
    """What the nodes of one task with one resolved options share (or of one kind of
    builtin node), worked out at the first of them."""

    __slots__ = ("coro", "fn", "gate", "hinted", "name", "resources", "ret_checks", "route", "timeout", "watched")

    fn: Any
    name: str
    route: Any  # a builtin node's route is its producer's, found per node
    timeout: float | None
    resources: dict[str, float] | None
    coro: bool
    gate: str | None  # its trigger rule where its nodes are gated (plan/triggers.py)
    hinted: bool  # its constants and edges are checked, and it has run-time checks
    watched: bool | None  # whether each node has checks of its own: None until the first is checked
    ret_checks: dict[int, tuple[Any, Any]]  # number of arguments -> (checks, ret), without keywords

    def __init__(self, task: Any, opts: Any, kind: int) -> None:
        self.ret_checks = {}
        if task is None:  # node[k], a section's packed value, dx.cond
            self.fn, self.name = BUILTIN[kind]
            self.timeout = self.resources = self.route = None
            self.coro = self.hinted = self.watched = False
            self.gate = None
            return
        self.fn = fn = task.__wrapped__
        self.name, self.route = opts.name, opts.executor or "default"
        self.timeout, self.resources = opts.timeout, opts.resources
        self.coro = inspect.iscoroutinefunction(fn)
        meta = task._self_meta or task.meta
        self.hinted = bool(meta.hints) and opts.typecheck
        self.watched = None
        self.gate = gate_of(meta, opts)


def lay_out(c: _Compiler) -> Columns:
    """The columns of compiler ``c``'s plan, with the checks made on the way."""
    g, order, ident, pos, is_run = c.g, c.order_, c.identity, c.pos, c.is_run
    if ident:
        recs, keys, deps = c.recs, g._keys, c.dep_lists
    else:
        recs = [c.recs[gi] for gi in order]
        keys = [g._keys[gi] for gi in order]
        deps = [tuple([pos[d] for d in c.dep_lists[gi]]) for gi in order]
    cols = Columns(c.n, deps)
    reads_l, specs_l = cols.reads, cols.specs
    args: dict[int, Any] = {}  # the templates of the nodes that are not k Nodes
    fills: dict[int, Any] = {}  # the fills of the nodes laid out by _template
    forms: dict[Any, _Form] = {}
    sites: dict[Any, str] = {}  # a record's call site -> its text
    builtins: list[int] = []  # the nodes that are no task's call
    TASK, MAP = G.TASK, G.MAP
    g_forms = g._forms
    last = last_kind = -1  # the form and kind of the node before: none yet
    last_site: Any = None
    f: Any = None  # the form of the node before
    for p, rec in enumerate(recs):
        kind, form, a, kw, gd, nested, site = rec
        if a is None:  # distinct Nodes only (dagexec._node.Rec)
            k = len(gd)
            straight = is_run is None or all(map(is_run.__getitem__, gd))
        else:
            k = len(a)
            straight = (
                kw is None
                and not nested
                and (len(gd) == k or not gd)
                and (is_run is None or all(map(is_run.__getitem__, gd)))
            )
        if straight:  # distinct Nodes that run, or constants only: straight from the record
            if gd:
                r = gd if ident else deps[p] if c.dep_lists[order[p]] is gd else tuple([pos[d] for d in gd])
                reads_l.append(r)
                plain = True
            else:
                args[p] = a
                reads_l.append(())
                plain = not a
        else:
            t = _template(c, cols, p, rec)
            args[p] = t[0]
            fills[p] = t[1]
            reads_l.append(t[2])
            plain = False
        if site is not last_site:
            last_site = site
            hit = sites.get(site)
            where = sites[site] = format_site(site) if hit is None else hit
        if form != last or kind != last_kind:
            last, last_kind = form, kind
            task, opts, _ = g_forms[form]
            shape = opts if opts is not None else kind
            f = forms.get(shape)
            if f is None:
                f = forms[shape] = _Form(task, opts, kind)
            fn, timeout, resources, coro, watched = f.fn, f.timeout, f.resources, f.coro, f.watched
            checks: Any = ()
            ret: Any = None
        if (watched is not False or not plain) and task is not None:
            tpl = args.get(p) or _NONES[k]
            checks, ret = _node_checks(c, f, p, keys[p], where, task, tpl, cols.kwargs[p])
            watched = f.watched
        if f.gate is not None:
            if kind == MAP:
                c.problems.append(map_gate_problem(keys[p], f.gate, where))
            else:
                meta = task._self_meta or task.meta  # type: ignore[union-attr]  # a gated form is a task's
                at = C.outcome_params(meta, len(args.get(p) or _NONES[k]), cols.kwargs[p])
                cols.gates[p] = (f.gate, at)
        if kind != TASK:
            if kind == MAP:
                cols.maps.append(p)
            elif task is None:
                builtins.append(p)
        specs_l.append(NodeSpec(keys[p], fn, task, checks, ret, timeout, resources, coro))
    # a straight node given k Nodes: k Nones filled from the slots it reads, in order
    cols.args = arg = list(map(_NONES.__getitem__, map(len, reads_l)))
    cols.fills = fill = list(map(tuple, map(enumerate, reads_l)))
    for p, t in args.items():
        arg[p] = t
    for p, t in fills.items():
        fill[p] = t
    _per_form_columns(cols, recs, sites, builtins, g)
    return cols


def _per_form_columns(
    cols: Columns, recs: Any, sites: dict[Any, str], builtins: list[int], g: G.Graph
) -> None:
    """The columns that follow from a node's form (task, options, scope) and call site
    alone, made a column at a time; then the nodes that are no task's call get their
    names, and the route of their producer."""
    form_of = list(map(itemgetter(G.R_FORM), recs))
    forms = g._forms
    opts_of = [o for _, o, _ in forms]
    name_of = [o.name if o is not None else "" for o in opts_of]
    route_of = [(o.executor or "default") if o is not None else "" for o in opts_of]
    path_of = [s.path if s is not None else "" for _, _, s in forms]
    cols.opts = list(map(opts_of.__getitem__, form_of))
    names = cols.names = list(map(name_of.__getitem__, form_of))
    routes = cols.routes = list(map(route_of.__getitem__, form_of))
    cols.sections = list(map(path_of.__getitem__, form_of))
    cols.sites = list(map(sites.__getitem__, map(itemgetter(G.R_SITE), recs)))
    deps = cols.deps
    for p in builtins:  # node[k], a section's packed value, dx.cond: in plan order
        names[p] = BUILTIN[recs[p][G.R_KIND]][1]
        ds = deps[p]
        routes[p] = routes[ds[0]] if ds else "default"  # they run where their producer runs


def _node_checks(
    c: _Compiler,
    f: _Form,
    p: int,
    key: str,
    where: str,
    task: Any,
    a: tuple[Any, ...],
    kw: dict[str, Any] | None,
) -> tuple[Any, Any]:
    """The checks of task node ``p`` that look at its own call (constants and edges
    against annotations, its function and constants pickling); returns its run-time
    checks and return annotation."""
    checks: Any = ()
    ret: Any = None
    if f.hinted:
        gi = p if c.identity else c.order_[p]
        kind, raw_kwargs = c.recs[gi][G.R_KIND], c.recs[gi][G.R_KWARGS]
        raw_args = G.record_args(c.g, c.recs[gi])
        # a map's first argument is the list of items: each item is checked on its own
        skip = 1 if kind == G.MAP else 0
        rule = f.gate if kind != G.MAP else None
        C.check_constants(c.g, gi, key, where, task, raw_args, raw_kwargs, c.res, c.problems, skip, rule)
        by_name = skip and type(raw_args[0]) is Mapped  # each item's mapped values as keywords
        if skip and not by_name:
            C.check_map_items(c.g, key, where, task, raw_args[0], c.res, c.problems)
        if by_name:
            checks, ret = _run_checks(task, f, 0, {**(kw or {}), **dict.fromkeys(raw_args[0].names)})
        else:
            checks, ret = _run_checks(task, f, len(a), kw)
    fn = f.fn
    fid = id(fn)
    if fid not in c.pickled_fns:
        c.pickled_fns[fid] = C.pickles(task, key, where, c.pickle_problems)
    else:
        because = c.pickled_fns[fid]
        if because is not None:  # the same function again: named, without the error twice
            c.pickle_problems.append(
                C.pickle_problem(key, where, f"task function {C.qual(fn)}", None, because)
            )
    f.watched = f.hinted or c.pickled_fns[fid] is not None
    simple = C.SIMPLE
    if kw or any(type(v) not in simple for v in a):
        C.check_constant_pickles(key, where, task, a, kw, c.pickle_problems)
    return checks, ret


def _run_checks(task: Any, f: _Form, k: int, kw: dict[str, Any] | None) -> tuple[Any, Any]:
    """The run-time checks of a call of ``task`` with ``k`` arguments and keywords ``kw``."""
    if kw is None:
        hit = f.ret_checks.get(k)
        if hit is None:
            hit = f.ret_checks[k] = C.runtime_checks(task.meta, k, None)
        return hit
    return C.runtime_checks(task.meta, k, kw)


def readers(cols: Columns, n_waiting: list[int], n_slots: int) -> tuple[list[int], set[int]]:
    """How many nodes read each slot (nodes and inputs), and the nodes read by a node
    that does not wait for them, given how many nodes wait for each node.  A node mostly
    reads just what it waits for (its reads are its dependencies' tuple): the nodes
    waiting for a node are its readers."""
    counts = n_waiting + [0] * (n_slots - len(n_waiting))
    apart: set[int] = set()
    reads_l, deps_l = cols.reads, cols.deps
    if len(reads_l) != len(deps_l):  # pragma: no cover - one entry per node in both
        raise AssertionError("reads and deps differ in length")
    for p in compress(count(), map(is_not, reads_l, deps_l)):  # the few nodes that differ
        for d in deps_l[p]:
            counts[d] -= 1
        reads = reads_l[p]
        for s in reads:
            counts[s] += 1
        apart.update(reads)
    return counts, apart


def dependents(deps: list[tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    """Per node, the nodes that wait for it, in plan order."""
    # a tuple grown by one per dependent: most nodes have one or two, and a list per
    # node (turned into a tuple after) cost twice as much
    out: list[tuple[int, ...]] = [()] * len(deps)
    for p, ds in enumerate(deps):
        for d in ds:
            out[d] += (p,)
    return tuple(out)


def _template(c: _Compiler, cols: Columns, p: int, rec: Any) -> tuple[tuple[Any, ...], Any, tuple[int, ...]]:
    """The general path: ``(args, fills, reads)`` of plan node ``p`` (record ``rec``),
    its keyword template, keyword fills and nesting set in ``cols``."""
    res, pos = c.res, c.pos
    _, _, _, raw_kwargs, gdeps, nested, _ = rec
    raw_args = G.record_args(c.g, rec)
    if c.has_tpl and not nested:
        nested = any(res[d][0] == TPL for d in gdeps)
    fills: list[tuple[int, int]] = []
    reads: dict[int, None] = {}
    if nested:
        a = tuple(c.substitute(v) for v in raw_args)
        kw = {k: c.substitute(v) for k, v in raw_kwargs.items()} if raw_kwargs else None
        collect_refs(a, reads)
        if kw:
            collect_refs(kw, reads)
        cols.kwargs[p], cols.nested[p] = kw, True
        return a, (), tuple(reads)
    al = list(raw_args)
    Node = G.Node
    for j, v in enumerate(al):
        if isinstance(v, Node):
            r = res[v._i]
            if r[0] == CONST:
                al[j] = r[1]
            else:
                s = pos[r[1]] if r[0] == NODE else c.slot_of(r)
                al[j] = None
                fills.append((j, s))
                reads[s] = None
    if raw_kwargs:
        cols.kwargs[p], cols.kwfills[p] = _kw_template(c, raw_kwargs, reads)
    return tuple(al), tuple(fills), tuple(reads)


def _kw_template(
    c: _Compiler, raw_kwargs: dict[str, Any], reads: dict[int, None]
) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
    kw = dict(raw_kwargs)
    kwf: list[tuple[str, int]] = []
    for name, v in kw.items():
        if isinstance(v, G.Node):
            r = c.res[v._i]
            if r[0] == CONST:
                kw[name] = r[1]
            else:
                s = c.slot_of(r)
                kw[name] = None
                kwf.append((name, s))
                reads[s] = None
    return kw, tuple(kwf)
