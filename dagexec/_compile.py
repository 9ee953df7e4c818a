"""Turn a :class:`~dagexec.Graph` into a :class:`~dagexec.CompiledGraph`.

Steps, each linear in nodes + edges:

1. resolve markers: a section's PARAM and FINISH nodes stand for a Node, an input
   or a constant; a FINISH over a container of Nodes becomes a small "pack" node;
2. order the runnable nodes topologically (creation order already is one unless
   ``after()`` points forward; then Kahn's algorithm, stable on creation order);
3. validate, collecting every problem: cycles, constants against annotations,
   edges between plain classes, an empty graph; record what does not pickle;
4. lay the plan out as flat tuples (see ``_plan``).
"""

from __future__ import annotations

import heapq
import pickle
from typing import Any

from . import _graph as G
from ._callsite import format_site
from ._errors import GraphError, Problem
from ._plan import CompiledGraph, InputSpec, NodeSpec, SectionInfo, _Ref
from ._typecheck import describe_mismatch, format_type, short_repr, static_compatible

__all__ = ["compile_graph"]

# resolution of a graph node: (NODE, new-or-old idx) | (INPUT, input idx) | (CONST, value)
_NODE, _INPUT, _CONST = 0, 1, 2

_SIMPLE = frozenset({int, float, str, bytes, bool, type(None), complex})


def _pack(value: Any) -> Any:
    """The function of a section output that is a container of Nodes."""
    return value


def _getitem(obj: Any, k: Any) -> Any:
    return obj[k]


_getitem.__qualname__ = _getitem.__name__ = "getitem"


def compile_graph(graph: G.Graph, *, portable: bool = False) -> CompiledGraph:
    """Compile ``graph``; see :meth:`dagexec.Graph.compile`.

    Raises:
        GraphError: listing every problem found.
    """
    g = graph
    n_all = len(g._keys)
    kinds = g._kinds
    gdeps = g._deps
    problems: list[Problem] = []

    # 1. resolve markers --------------------------------------------------------
    res: list[tuple[int, Any]] = [(_CONST, None)] * n_all
    runnable: list[int] = []  # graph idxs that become plan nodes, in creation order
    input_pos = {i: p for p, i in enumerate(g._inputs.values())}
    for i in range(n_all):
        kind = kinds[i]
        if kind == G.TASK or kind == G.GETITEM:
            res[i] = (_NODE, i)
            runnable.append(i)
        elif kind == G.INPUT:
            res[i] = (_INPUT, i)
        elif g._nested[i]:  # PARAM or FINISH over a container holding Nodes
            res[i] = (_NODE, i)
            runnable.append(i)
        else:
            value = g._args[i][0]
            res[i] = res[value._i] if isinstance(value, G.Node) else (_CONST, value)

    if not any(kinds[i] == G.TASK for i in runnable):
        problems.append(
            Problem(f"graph {g.name!r} is empty: call tasks inside 'with graph:' before compile()")
        )
        raise GraphError(problems, what=f"graph {g.name!r}")

    # dependencies among runnable nodes (graph idxs)
    members = _section_members(g, runnable) if g._after else None
    dep_lists: dict[int, tuple[int, ...]] = {}
    forward = False
    for i in runnable:
        ds: dict[int, None] = {}
        for d in gdeps[i]:
            r = res[d]
            if r[0] == _NODE:
                ds[r[1]] = None
        extra = g._after.get(i)
        if extra:
            assert members is not None
            for d in extra:
                targets = members.get(d) if kinds[d] == G.FINISH else None
                if targets is None:
                    r = res[d]
                    targets = [r[1]] if r[0] == _NODE else []
                for t in targets:
                    if t != i or kinds[d] != G.FINISH:
                        ds[t] = None
                        if t >= i:
                            forward = True
        dep_lists[i] = tuple(ds)

    # 2. order -------------------------------------------------------------------------
    if forward:
        order = _kahn(g, runnable, dep_lists, problems)
        if order is None:
            raise GraphError(problems, what=f"graph {g.name!r}")
    else:
        order = runnable
    n = len(order)
    pos = {gi: p for p, gi in enumerate(order)}
    n_inputs = len(input_pos)
    consts: list[Any] = []

    def slot_of(r: tuple[int, Any]) -> int:
        if r[0] == _NODE:
            return pos[r[1]]
        if r[0] == _INPUT:
            return n + input_pos[r[1]]
        consts.append(r[1])
        return n + n_inputs + len(consts) - 1

    # 3 + 4. templates, checks and layout ---------------------------------------------
    keys: list[str] = []
    specs: list[NodeSpec] = []
    args_t: list[tuple[Any, ...]] = []
    fills_t: list[tuple[tuple[int, int], ...]] = []
    kwargs_t: list[dict[str, Any] | None] = []
    kwfills_t: list[tuple[tuple[str, int], ...]] = []
    nested_t: list[bool] = []
    deps_t: list[tuple[int, ...]] = []
    reads_t: list[tuple[int, ...]] = []
    opts_t: list[Any] = []
    routes_t: list[str] = []
    names_t: list[str] = []
    sites_t: list[str] = []
    section_t: list[str] = []
    n_readers = [0] * (n + n_inputs)
    dependents: list[list[int]] = [[] for _ in range(n)]
    pickled_fns: dict[int, bool] = {}
    pickle_problems: list[Problem] = []
    site_cache: dict[tuple[str, int], str] = {}

    def substitute(value: Any) -> Any:
        if isinstance(value, G.Node):
            r = res[value._i]
            return r[1] if r[0] == _CONST else _Ref(slot_of(r))
        t = type(value)
        if t is list or t is tuple or t is set or t is frozenset:
            return t(substitute(v) for v in value)
        if t is dict:
            return {k: substitute(v) for k, v in value.items()}
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return t(*[substitute(v) for v in value])
        return value

    for p, gi in enumerate(order):
        key = g._keys[gi]
        kind = kinds[gi]
        site = g._sites[gi]
        where = site_cache.get(site)
        if where is None:
            where = site_cache[site] = format_site(site)
        scope = g._scopes[gi]
        task = g._tasks[gi]
        opts = g._opts[gi]
        raw_args = g._args[gi]
        raw_kwargs = g._kwargs[gi]
        nested = g._nested[gi]
        fills: list[tuple[int, int]] = []
        reads: dict[int, None] = {}
        if nested:
            a = tuple(substitute(v) for v in raw_args)
            kw = {k: substitute(v) for k, v in raw_kwargs.items()} if raw_kwargs else None
            _collect_refs(a, reads)
            if kw:
                _collect_refs(kw, reads)
            kwfills: tuple[tuple[str, int], ...] = ()
        else:
            al = list(raw_args)
            for j, v in enumerate(al):
                if isinstance(v, G.Node):
                    r = res[v._i]
                    if r[0] == _CONST:
                        al[j] = r[1]
                    else:
                        s = slot_of(r)
                        al[j] = None
                        fills.append((j, s))
                        reads[s] = None
            a = tuple(al)
            kw = None
            kwf: list[tuple[str, int]] = []
            if raw_kwargs:
                kw = dict(raw_kwargs)
                for name, v in kw.items():
                    if isinstance(v, G.Node):
                        r = res[v._i]
                        if r[0] == _CONST:
                            kw[name] = r[1]
                        else:
                            s = slot_of(r)
                            kw[name] = None
                            kwf.append((name, s))
                            reads[s] = None
            kwfills = tuple(kwf)
        for s in reads:
            n_readers[s] += 1
        deps = tuple(pos[d] for d in dep_lists[gi])
        for d in deps:
            dependents[d].append(p)

        checks: tuple[tuple[int | str, str, Any], ...] = ()
        ret: Any = None
        if kind == G.TASK:
            assert task is not None and opts is not None
            fn = task.__wrapped__
            tname = opts.name
            meta = task.meta
            hints = meta.hints
            if hints:
                _check_constants(g, gi, key, where, task, a, kw, raw_args, raw_kwargs, res, problems)
                if opts.typecheck:
                    checks, ret = _runtime_checks(meta, len(a), kw)
            fid = id(fn)
            if fid not in pickled_fns:
                pickled_fns[fid] = _pickles(task, key, where, pickle_problems)
            elif not pickled_fns[fid]:
                pickle_problems.append(_pickle_problem(key, where, f"task function {_qual(fn)}", None))
            _check_constant_pickles(key, where, task, a, kw, pickle_problems)
            timeout = opts.timeout
            route = opts.executor or "default"
        elif kind == G.GETITEM:
            fn, tname, timeout, route = _getitem, "getitem", None, _route_of(opts_t, deps, "default")
        else:
            fn, tname, timeout, route = _pack, "pack", None, _route_of(opts_t, deps, "default")
        keys.append(key)
        specs.append(NodeSpec(key, fn, task, checks, ret, timeout))
        args_t.append(a)
        fills_t.append(tuple(fills))
        kwargs_t.append(kw)
        kwfills_t.append(kwfills)
        nested_t.append(nested)
        deps_t.append(deps)
        reads_t.append(tuple(reads))
        opts_t.append(opts)
        routes_t.append(route)
        names_t.append(tname)
        sites_t.append(where)
        section_t.append(scope.path if scope is not None else "")

    # graph inputs
    inputs: list[InputSpec] = []
    readers_of: dict[int, list[str]] = {}
    for p in range(n):
        for s in reads_t[p]:
            if s >= n:
                readers_of.setdefault(s, []).append(keys[p])
    for name, gi in g._inputs.items():
        typ, default = g._input_specs[gi]
        slot = n + input_pos[gi]
        inputs.append(InputSpec(name, typ, default, slot, tuple(readers_of.get(slot, ()))))

    # outputs: marked ones, or the nodes nobody reads
    if g._outputs:
        outputs = [(name, slot_of(res[gi])) for name, gi in g._outputs]
    else:
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

    # aliases: section keys (and markers) -> the slot they stand for
    aliases: dict[str, int] = {}
    for scope in g._sections:
        r = res[scope.finish]
        if r[0] != _NODE or g._keys[r[1]] != scope.path:
            aliases[scope.path] = slot_of(r)
    sections = _section_infos(g, res, pos, keys, section_t, slot_of, n, inputs, consts)

    if problems:
        raise GraphError(problems, what=f"graph {g.name!r}")
    if portable and pickle_problems:
        raise GraphError(
            pickle_problems,
            what=f"graph {g.name!r} (compile(portable=True) needs every task and constant to pickle)",
        )

    plan = object.__new__(CompiledGraph)
    plan._set(
        name=g.name,
        _keys=tuple(keys),
        _index={k: i for i, k in enumerate(keys)},
        _specs=tuple(specs),
        _args=tuple(args_t),
        _fills=tuple(fills_t),
        _kwargs=tuple(kwargs_t),
        _kwfills=tuple(kwfills_t),
        _nested=tuple(nested_t),
        _deps=tuple(deps_t),
        _dependents=tuple(tuple(d) for d in dependents),
        _reads=tuple(reads_t),
        _n_readers=tuple(n_readers),
        _opts=tuple(opts_t),
        _routes=tuple(routes_t),
        _task_names=tuple(names_t),
        _sites=tuple(sites_t),
        _section_of=tuple(section_t),
        _inputs=tuple(inputs),
        _outputs=tuple(outputs),
        _consts=tuple(consts),
        _aliases=aliases,
        _sections=sections,
        _pickle_problems=tuple(pickle_problems),
        _fingerprint=None,
    )
    return plan


def _route_of(opts_t: list[Any], deps: tuple[int, ...], default: str) -> str:
    """``node[k]`` and pack nodes run where their first producer's task runs."""
    for d in deps:
        o = opts_t[d]
        if o is not None and o.executor:
            return str(o.executor)
    return default


def _collect_refs(value: Any, reads: dict[int, None]) -> None:
    if type(value) is _Ref:
        reads[value.slot] = None
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _collect_refs(v, reads)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_refs(v, reads)


def _qual(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


# -- ordering -------------------------------------------------------------------------


def _kahn(
    g: G.Graph, runnable: list[int], deps: dict[int, tuple[int, ...]], problems: list[Problem]
) -> list[int] | None:
    """Stable topological order (smallest creation idx first), or None on a cycle."""
    waiting = {i: len(deps[i]) for i in runnable}
    users: dict[int, list[int]] = {i: [] for i in runnable}
    for i in runnable:
        for d in deps[i]:
            users[d].append(i)
    heap = [i for i in runnable if waiting[i] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(heap, u)
    if len(order) == len(runnable):
        return order
    left = {i for i in runnable if waiting[i] > 0}
    cycle = _find_cycle(left, deps)
    text = " -> ".join(repr(g._keys[i]) for i in cycle)
    first = cycle[0]
    where = format_site(g._sites[first])
    problems.append(
        Problem(
            f"cycle: {text} (node {g._keys[first]!r} called at {where})", key=g._keys[first], call_site=where
        )
    )
    return None


def _find_cycle(left: set[int], deps: dict[int, tuple[int, ...]]) -> list[int]:
    """A cycle among ``left`` in data-flow order, first node repeated last."""
    start = min(left)
    path: list[int] = []
    seen: dict[int, int] = {}
    i = start
    while i not in seen:
        seen[i] = len(path)
        path.append(i)
        i = next(d for d in deps[i] if d in left)
    cycle = [*path[seen[i] :], i]
    cycle.reverse()  # deps point upstream; show the flow downstream
    return cycle


def _section_members(g: G.Graph, runnable: list[int]) -> dict[int, list[int]]:
    """FINISH idx -> the runnable nodes inside that section (nested ones included)."""
    out: dict[int, list[int]] = {s.finish: [] for s in g._sections}
    for i in runnable:
        scope = g._scopes[i]
        while scope is not None:
            out[scope.finish].append(i)
            scope = scope.parent
    return out


# -- checks ------------------------------------------------------------------------


def _param_names(meta: Any, n_args: int, kw: dict[str, Any] | None) -> list[tuple[int | str, str]]:
    out: list[tuple[int | str, str]] = []
    pos = meta.pos_params
    for j in range(n_args):
        if j < len(pos):
            out.append((j, pos[j]))
        else:
            var = next((p.name for p in meta.params.values() if p.kind is p.VAR_POSITIONAL), None)
            if var is not None:
                out.append((j, var))
    for name in kw or ():
        if name in meta.params and meta.params[name].kind is not meta.params[name].VAR_KEYWORD:
            out.append((name, name))
        else:
            var = next((p.name for p in meta.params.values() if p.kind is p.VAR_KEYWORD), None)
            if var is not None:
                out.append((name, var))
    return out


def _runtime_checks(
    meta: Any, n_args: int, kw: dict[str, Any] | None
) -> tuple[tuple[tuple[int | str, str, Any], ...], Any]:
    hints = meta.hints
    from typing import Any as _Any

    checks = tuple(
        (where, pname, hints[pname])
        for where, pname in _param_names(meta, n_args, kw)
        if pname in hints and hints[pname] is not _Any
    )
    ret = hints.get("return", None)
    if "return" in hints and ret is None:
        ret = type(None)
    if ret is _Any:
        ret = None
    return checks, ret


def _check_constants(
    g: G.Graph,
    gi: int,
    key: str,
    where: str,
    task: Any,
    a: tuple[Any, ...],
    kw: dict[str, Any] | None,
    raw_args: tuple[Any, ...],
    raw_kwargs: dict[str, Any] | None,
    res: list[tuple[int, Any]],
    problems: list[Problem],
) -> None:
    meta = task.meta
    hints = meta.hints
    for where_, pname in _param_names(meta, len(raw_args), raw_kwargs):
        ann = hints.get(pname)
        if ann is None:
            continue
        raw = raw_args[where_] if isinstance(where_, int) else (raw_kwargs or {})[where_]
        if isinstance(raw, G.Node):
            r = res[raw._i]
            if r[0] == _CONST:
                msg = describe_mismatch(r[1], ann)
                if msg:
                    problems.append(
                        Problem(
                            f"node {key!r}: parameter {pname!r} {msg} (called at {where})",
                            key=key,
                            param=pname,
                            call_site=where,
                        )
                    )
                continue
            produced, what = _produced_type(g, r)
            if produced is not _UNKNOWN and not static_compatible(produced, ann):
                problems.append(
                    Problem(
                        f"node {key!r}: parameter {pname!r} expects {format_type(ann)} but {what} "
                        f"{format_type(produced)} (called at {where})",
                        key=key,
                        param=pname,
                        call_site=where,
                    )
                )
        elif not g._nested[gi] or not _has_node(raw):
            msg = describe_mismatch(raw, ann)
            if msg:
                problems.append(
                    Problem(
                        f"node {key!r}: parameter {pname!r} {msg} (called at {where})",
                        key=key,
                        param=pname,
                        call_site=where,
                    )
                )


_UNKNOWN: Any = object()


def _produced_type(g: G.Graph, r: tuple[int, Any]) -> tuple[Any, str]:
    kind, i = r
    if kind == _INPUT:
        typ = g._input_specs[i][0]
        return (typ if typ is not Any else _UNKNOWN), f"input {g._keys[i]!r} is"
    if g._kinds[i] == G.TASK:
        task = g._tasks[i]
        hints = task.meta.hints if task is not None else {}
        if "return" in hints:
            return hints["return"], f"{g._keys[i]!r} returns"
    return _UNKNOWN, ""


def _has_node(value: Any) -> bool:
    if isinstance(value, G.Node):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_node(v) for v in value)
    if isinstance(value, dict):
        return any(_has_node(v) for v in value.values())
    return False


def _pickle_problem(key: str, where: str, what: str, exc: BaseException | None) -> Problem:
    why = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return Problem(
        f"node {key!r}: {what} cannot be pickled{why} (called at {where})", key=key, call_site=where
    )


def _pickles(task: Any, key: str, where: str, problems: list[Problem]) -> bool:
    import cloudpickle

    try:
        cloudpickle.dumps(task)
    except Exception as exc:
        problems.append(_pickle_problem(key, where, f"task function {_qual(task.__wrapped__)}", exc))
        return False
    return True


def _check_constant_pickles(
    key: str, where: str, task: Any, a: tuple[Any, ...], kw: dict[str, Any] | None, problems: list[Problem]
) -> None:
    values: list[tuple[str, Any]] = []
    pos = task.meta.pos_params
    for j, v in enumerate(a):
        if type(v) not in _SIMPLE:
            values.append((pos[j] if j < len(pos) else f"*{j}", v))
    if kw:
        values.extend((k, v) for k, v in kw.items() if type(v) not in _SIMPLE)
    for pname, v in values:
        if v is None or type(v) is _Ref:
            continue
        try:
            pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)
            continue
        except Exception:
            pass
        import cloudpickle

        try:
            cloudpickle.dumps(v)
        except Exception as exc:
            problems.append(
                Problem(
                    f"node {key!r}: parameter {pname!r}: constant {short_repr(v)} cannot be pickled: "
                    f"{type(exc).__name__}: {exc} (called at {where})",
                    key=key,
                    param=pname,
                    call_site=where,
                )
            )


# -- sections ------------------------------------------------------------------------


def _section_infos(
    g: G.Graph,
    res: list[tuple[int, Any]],
    pos: dict[int, int],
    keys: list[str],
    section_of: list[str],
    slot_of: Any,
    n: int,
    inputs: list[InputSpec],
    consts: list[Any],
) -> tuple[SectionInfo, ...]:
    if not g._sections:
        return ()

    def name_of(r: tuple[int, Any]) -> str:
        if r[0] == _NODE:
            return keys[pos[r[1]]]
        if r[0] == _INPUT:
            return g._keys[int(r[1])]
        return short_repr(r[1])  # a constant

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
