"""``Graph``: recording task calls as Nodes without running them.

Inside ``with graph:`` a task call, ``graph.input()``, ``node[k]``, a section call
and ``dx.cond`` append one record each to the graph's flat lists (the record and
the :class:`~dagexec._node.Node` that stands for it are :mod:`dagexec._node`'s);
:func:`~dagexec.Graph.compile` reads those lists.

Arguments are walked (by :mod:`dagexec._walk`) to find Nodes in containers, up to
:data:`MAX_NESTING` levels: past it the call is a GraphError naming the depth,
so no later step (checks, pickling, hashing, filling templates) meets a
RecursionError.  The walk enters lists, tuples, sets, frozensets, dicts and
namedtuples only; a Node inside a subclass of those (an ``OrderedDict``, a
``defaultdict``) would reach the task as the Node itself, so it is a GraphError at
the call.  ``after()`` records where it was called, so a cycle is reported
at the call that closed it.

Recording a task call is the hot path of building (a graph of 1,000,000 nodes is
1,000,000 of them), so :func:`call_task`, which is ``Task.__call__`` itself, does it
inline: the call site comes from a table keyed by the caller's code and offset
(:mod:`dagexec._callsite`); what is per task (name, arity bounds, the form of its
calls outside sections) from a tuple the graph keeps by ``id(task)`` (reading an
attribute of the task, a wrapt proxy, costs more than that dict lookup); the key
from the counter of its base (:meth:`Graph._taken` says why no set of every key is
needed); and a call given distinct Nodes only stores no tuple of them (its record's
dependencies are they, in order).  The record holds no object the cyclic collector
must walk (``dagexec._node``) and the graph no set of every key, so what a node
costs hardly grows with the graph: the collector's full passes, which walk every
tracked object, meet the user's Nodes but not the records.
"""

from __future__ import annotations

import contextvars
import operator
from collections.abc import Sequence
from sys import _getframe
from typing import TYPE_CHECKING, Any

from ._callsite import format_site, site_at, sites_at, user_frame
from ._errors import CallError, GraphError, Problem
from ._mapping import Mapped
from ._node import (
    _CONTAINER_BASES,
    FINISH,
    GETITEM,
    INPUT,
    MAP,
    MAX_NESTING,
    NODE_TYPES,
    PARAM,
    R_ARGS,
    R_DEPS,
    R_FORM,
    R_KIND,
    R_KWARGS,
    R_NESTED,
    R_SITE,
    SELECT,
    SWITCH,
    TASK,
    Form,
    Node,
    Rec,
    SectionNode,
    _Scope,
    holds_node,
    nesting_exceeds,
    record_args,
    reject_nodes_outside,
    scan,
)
from ._typecheck import short_repr, unknown_keywords

if TYPE_CHECKING:
    from ._task import Task, TaskOptions
    from .plan.compiled import CompiledGraph

__all__ = ["Graph", "Node", "SectionNode", "call_task", "current_graph"]
# and, for the modules that read records through this one, what dagexec._node defines
__all__ += ["FINISH", "GETITEM", "INPUT", "MAP", "MAX_NESTING", "NODE_TYPES", "PARAM", "R_KIND"]
__all__ += [
    "R_ARGS",
    "R_DEPS",
    "R_FORM",
    "R_KWARGS",
    "R_NESTED",
    "R_SITE",
    "SELECT",
    "SWITCH",
    "TASK",
]
__all__ += ["holds_node", "nesting_exceeds", "record_args", "reject_nodes_outside"]


class _Missing:
    """The type of :data:`MISSING`: one instance, pickled by reference."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        # by reference, so `default is MISSING` still holds after a plan is
        # unpickled and its fingerprint does not depend on the process
        return "MISSING"


#: The default of a graph input that has none (the input is required).
MISSING: Any = _Missing()

_current: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("dagexec_graph", default=None)
current_graph = _current.get

# a Node made without Node.__init__'s calls, on the hot path of building
_new_node = object.__new__
_set_graph = vars(Node)["_g"].__set__  # the slots' own setters
_set_idx = vars(Node)["_i"].__set__


class Graph:
    """The container nodes are created in.

    Use it as a context manager: inside the ``with`` block, calling a task records
    a :class:`Node` instead of running the function.

    Args:
        name: a name for messages and pictures.

    Example::

        with Graph("etl") as graph:
            path = graph.input("path", str, default="data.csv")
            total(clean(load(path)))
        plan = graph.compile()
    """

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self._keys: list[str] = []
        self._recs: list[Rec] = []
        self._forms: list[Form] = []  # what records share (dagexec._node.Form)
        self._form_idx: dict[tuple[int, int, int], int] = {}  # ids of a form's parts -> its idx
        # id(task) -> (name, lo, hi, its form outside sections), for recording calls (call_task)
        self._task_facts: dict[int, tuple[str, int, int, int]] = {}
        self._after: dict[int, list[int]] = {}
        # (waiting idx, awaited idx) -> where node.after() was called, for cycle reports
        self._after_sites: dict[tuple[int, int], tuple[str, int]] = {}
        # dx.cond and dx.switch calls: (its idx, the predicate's or selector's idx, the
        # bounds of its branches: the first's start, then each one's end)
        self._conds: list[tuple[int, int, tuple[int, ...]]] = []
        self._counts: dict[str, int] = {}  # base -> the N its next key tries (see _taken)
        self._reserved: set[str] = set()  # keys taken as they are: inputs, section parameters
        self._freed: set[str] = set()  # keys a failed section call or cond gave back
        self._suffixed: set[str] = set()  # X when a key "X-N" was taken other than as X's N-th
        self._inputs: dict[str, int] = {}  # input name -> idx
        self._input_specs: dict[int, tuple[Any, Any]] = {}  # idx -> (type, default)
        self._outputs: list[tuple[str, int]] = []
        self._sections: list[_Scope] = []
        self._scope: _Scope | None = None
        self._section_depth = 0  # the deepest section opened since the outermost one began
        self._tokens: list[contextvars.Token[Graph | None]] = []

    # -- context manager -------------------------------------------------------
    def __enter__(self) -> Graph:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    def __len__(self) -> int:
        """Number of nodes recorded (markers and inputs included)."""
        return len(self._keys)

    def __repr__(self) -> str:
        return f"<Graph {self.name!r} with {len(self._keys)} nodes>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter's display: the picture as SVG (``text/plain`` with the error when it does not compile)."""
        from ._dot import repr_mimebundle

        return repr_mimebundle(self, include, exclude)

    # -- keys ------------------------------------------------------------------
    def _next_key(self, name: str, reserve: bool = True) -> str:
        scope = self._scope
        return self._key_of(f"{scope.path}/{name}" if scope is not None else name, reserve)

    def _key_of(self, base: str, reserve: bool = True) -> str:
        """``base``, or ``base-N`` with the first free N (kept as taken with ``reserve``)."""
        n = self._counts.get(base, 0)
        key = base if n == 0 else f"{base}-{n}"
        while self._taken(key):
            n += 1
            key = f"{base}-{n}"
        if reserve:
            self._counts[base] = n + 1
            self._freed.discard(key)
            self._note_suffix(base)
        return key

    # A key ``base`` or ``base-N`` made by _key_of stays taken through the counter of its
    # base, with no set of every key: "base-N" is taken when base's counter passed N.
    # Two such keys of different bases never clash (the text after the last "-" is N),
    # so a call can take ``base-N`` unchecked unless some key "base-M" was taken another
    # way (as a base of its own, an input, a section parameter): ``_suffixed`` says so.
    def _taken(self, key: str) -> bool:
        if key in self._reserved:
            return True
        if key in self._freed:
            return False
        if self._counts.get(key, 0):
            return True
        base, n = _split_suffix(key)
        return n > 0 and self._counts.get(base, 0) > n

    def _note_suffix(self, key: str) -> None:
        base, n = _split_suffix(key)
        if n > 0:
            self._suffixed.add(base)

    def _reserve(self, key: str) -> None:
        """Take ``key`` as it is (an input's name, a section parameter's marker)."""
        self._reserved.add(key)
        self._freed.discard(key)
        self._note_suffix(key)

    def _release(self, key: str) -> None:
        """Give ``key`` back (what a failed section call or cond recorded)."""
        self._reserved.discard(key)
        self._freed.add(key)

    def _append(
        self,
        key: str,
        kind: int,
        task: Task | None,
        opts: TaskOptions | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        deps: tuple[int, ...],
        nested: bool,
        site: tuple[str, int],
        scope: _Scope | None,
    ) -> int:
        idx = len(self._keys)
        if kind == INPUT or kind == PARAM:  # keys not made by _key_of
            self._reserve(key)
        form = self._form(task, opts, scope)
        self._keys.append(key)
        self._recs.append((kind, form, args, kwargs, deps, nested, site))
        return idx

    def _form(self, task: Task | None, opts: TaskOptions | None, scope: _Scope | None) -> int:
        """The idx in ``_forms`` of ``(task, opts, scope)``, added when new (the list
        keeps them alive, so their ids stand for them)."""
        ids = (id(task), id(opts), id(scope))
        form = self._form_idx.get(ids)
        if form is None:
            form = self._form_idx[ids] = len(self._forms)
            self._forms.append((task, opts, scope))
        return form

    def _facts(self, task: Task) -> tuple[str, int, int, int]:
        """What recording a call of ``task`` needs (:meth:`~dagexec._task.Task.fast_facts`),
        with the form of its calls outside sections; kept per graph by ``id(task)``."""
        name, lo, hi, opts = task._self_fast or task.fast_facts()
        facts = self._task_facts[id(task)] = (name, lo, hi, self._form(task, opts, None))
        return facts

    def _task_of(self, idx: int) -> Task | None:
        """The task of node ``idx`` (None for a node that is no task's call)."""
        return self._forms[self._recs[idx][R_FORM]][0]

    # -- arguments -------------------------------------------------------------
    def _own(self, node: Node, key: str, site: tuple[str, int]) -> None:
        if node._g is not self:
            raise GraphError(
                Problem(
                    f"node {key!r}: argument {node._g._keys[node._i]!r} belongs to graph "
                    f"{node._g.name!r}, not to graph {self.name!r} (called at {format_site(site)})",
                    key=key,
                    call_site=format_site(site),
                )
            )

    _scan = scan  # see dagexec._node.scan

    # -- recording -------------------------------------------------------------
    def _bind(
        self, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], site: tuple[str, int], what: str
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``task.bind``, its TypeError made a CallError naming the node to be and the call site."""
        try:
            return task.bind(args, kwargs)
        except TypeError as exc:
            key = self._next_key(task._self_name, reserve=False)
            why = unknown_keywords(task._self_name, task.meta.params, kwargs) or str(exc)
            raise CallError(
                f"node {key!r}: {what}{why} (called at {format_site(site)})", key, format_site(site)
            ) from None

    def _add_map_call(self, task: Task, items: Any, fixed: dict[str, Any]) -> Node:
        """Record ``task.map(items, **fixed)``: a TASK record whose first argument is the
        list of items (each item call takes one of them there)."""
        site = user_frame(2)
        if type(items) is Mapped:  # by name: each item's keywords (dagexec/_mapping.py)
            self._bind(task, (), {**fixed, **dict.fromkeys(items.names)}, site, "map: ")
            args, kwargs = (items,), dict(fixed)
        else:
            args, kwargs = self._bind(task, (items,), fixed, site, "map: ")
        key = self._next_key(task._self_name)
        for name, given in zip(items.names, items.lists, strict=True) if type(items) is Mapped else (("", items),):
            if not isinstance(given, (Node, list, tuple)):
                raise CallError(
                    f"node {key!r}: map takes a Node or a list of items{f' for {name}=' if name else ''}, got "
                    f"{_short(given)} (called at {format_site(site)})",
                    key,
                    format_site(site),
                )
        args, kw, deps, nested = self._scan(args, kwargs, key, site, task.meta.pos_params)
        scope = self._scope
        opts = task.resolve(scope.defaults, scope.defaults_key) if scope is not None else task.resolve(None)
        idx = self._append(key, MAP, task, opts, args, kw, deps, nested, site, scope)
        return Node(self, idx)

    def _add_getitem(self, node: Node, k: Any) -> Node:
        site = user_frame()
        if isinstance(k, Node):
            raise CallError(
                f"node {node.key!r}: an index must be a constant, not node {k.key!r} "
                f"(called at {format_site(site)})",
                node.key,
                format_site(site),
            )
        parent = self._keys[node._i]
        leaf = parent.rsplit("/", 1)[-1]
        key = self._next_key(f"{leaf}.{k}" if isinstance(k, (str, int)) else f"{leaf}.{k!r}")
        idx = self._append(key, GETITEM, None, None, (node, k), None, (node._i,), False, site, self._scope)
        return Node(self, idx)

    def input(self, name: str, type: Any = Any, default: Any = MISSING) -> Node:
        """Declare a graph input: a value given to ``plan.run(name=...)``.

        Args:
            name: the input's name (also its key).
            type: the annotation values are checked against at run time.
            default: the value used when ``run()`` gives none; without one the input
                is required.

        Returns:
            A Node standing for the input's value.

        Raises:
            GraphError: for a duplicate name, a name already used as a key, a
                default that does not match ``type``, or one nested deeper than
                :data:`MAX_NESTING`.
        """
        site = user_frame()
        where = format_site(site)
        if not isinstance(name, str) or not name or "/" in name:
            raise GraphError(
                Problem(
                    f"input name must be a non-empty str without '/', got {name!r} (declared at {where})",
                    call_site=where,
                )
            )
        if name in self._inputs:
            raise GraphError(
                Problem(
                    f"input {name!r} is declared twice (declared again at {where})", key=name, call_site=where
                )
            )
        if self._taken(name):
            raise GraphError(
                Problem(
                    f"input {name!r}: the name is already the key of a node (declared at {where})",
                    key=name,
                    call_site=where,
                )
            )
        if default is not MISSING and type is not Any:
            from ._typecheck import describe_mismatch

            msg = describe_mismatch(default, type)
            if msg is not None:
                raise GraphError(
                    Problem(f"input {name!r}: default {msg} (declared at {where})", key=name, call_site=where)
                )
        if default is not MISSING and nesting_exceeds(default):
            raise GraphError(
                Problem(
                    f"input {name!r}: the default holds containers nested more than {MAX_NESTING} deep, "
                    f"the most dagexec walks to check, pickle and hash constants (declared at {where})",
                    key=name,
                    call_site=where,
                )
            )
        idx = self._append(name, INPUT, None, None, (), None, (), False, site, self._scope)
        self._inputs[name] = idx
        self._input_specs[idx] = (type, default)
        return Node(self, idx)

    def output(self, node: Node, name: str | None = None) -> Node:
        """Mark ``node`` as an output of the graph, under ``name`` (default: its key).

        Returns:
            The node, so ``graph.output(total(x))`` reads naturally.

        Raises:
            GraphError: for a node of another graph or a duplicate output name.
        """
        site = user_frame()
        where = format_site(site)
        if not isinstance(node, Node):
            raise GraphError(
                Problem(
                    f"output {name!r}: expected a Node, got {_short(node)} (called at {where})",
                    call_site=where,
                )
            )
        self._own(node, name or node.key, site)
        out_name = node.key if name is None else name
        if any(n == out_name for n, _ in self._outputs):
            raise GraphError(
                Problem(
                    f"output {out_name!r} is declared twice (declared again at {where})",
                    key=out_name,
                    call_site=where,
                )
            )
        self._outputs.append((out_name, node._i))
        return node

    # -- sections --------------------------------------------------------------
    def _rollback(self, n_nodes: int, n_sections: int, n_outputs: int) -> None:
        """Forget what a failed section call recorded, so the graph stays whole.

        Key counters are left as they are: a failed call may use up a number.
        """
        for key in self._keys[n_nodes:]:
            self._release(key)
        del self._keys[n_nodes:]
        del self._recs[n_nodes:]
        del self._sections[n_sections:]
        del self._outputs[n_outputs:]
        for name, i in list(self._inputs.items()):
            if i >= n_nodes:
                del self._inputs[name]
                del self._input_specs[i]
        self._conds[:] = [c for c in self._conds if c[0] < n_nodes]
        for i, others in list(self._after.items()):
            if i >= n_nodes:
                del self._after[i]
            else:
                others[:] = [o for o in others if o < n_nodes]
                if not others:
                    del self._after[i]
        for edge in [e for e in self._after_sites if e[0] >= n_nodes or e[1] >= n_nodes]:
            del self._after_sites[edge]

    # -- ordering ----------------------------------------------------------------
    def _add_after(self, node: Node, others: tuple[Node, ...]) -> None:
        site = user_frame()
        for o in others:
            if not isinstance(o, Node):
                raise CallError(
                    f"node {node.key!r}: after() takes Nodes, got {_short(o)} "
                    f"(called at {format_site(site)})",
                    node.key,
                    format_site(site),
                )
            self._own(o, node.key, site)
            self._after.setdefault(node._i, []).append(o._i)
            self._after_sites.setdefault((node._i, o._i), site)

    # -- compile ---------------------------------------------------------------
    def compile(self, *, portable: bool = False) -> CompiledGraph:
        """Validate the graph and freeze it into a :class:`~dagexec.CompiledGraph`.

        Args:
            portable: also require every task function and constant to pickle
                (needed to save the plan or run it in processes).

        Returns:
            The compiled plan.

        Raises:
            GraphError: listing every problem found (cycles, type mismatches of
                constants and edges, an empty graph, and with ``portable=True``
                whatever does not pickle).
        """
        from .plan.compile import compile_graph

        return compile_graph(self, portable=portable)

    # -- pictures ----------------------------------------------------------------
    def to_dot(self, *, collapse: bool | Sequence[str] | None = None, expand: bool = False) -> Any:
        """The graph as a ``graphviz.Digraph``: the picture of ``self.compile()``'s plan.

        Section markers are resolved at compile time, so the picture is the plan's; see
        :meth:`dagexec.CompiledGraph.to_dot` for ``collapse`` and ``expand``.

        Returns:
            A ``graphviz.Digraph``, as :meth:`dagexec.CompiledGraph.to_dot` draws it.

        Raises:
            GraphError: when the graph does not compile; otherwise what
                :meth:`dagexec.CompiledGraph.to_dot` raises (``graphviz`` missing, a bad
                ``collapse``).
        """
        from ._dot import to_dot

        return to_dot(self, collapse=collapse, expand=expand)


def call_task(task: Task, *args: Any, **kwargs: Any) -> Any:
    """``Task.__call__``: inside a graph, record the call and return its Node; anywhere
    else, run the function.

    The hot path of building (module docstring), one frame deep: the key and the
    record are made here, inline; calls given keywords, a number of arguments the
    task does not bind as it is, or containers go the general way."""
    self = current_graph()
    if self is None:
        reject_nodes_outside(task._self_name, args, kwargs)
        return task.__wrapped__(*args, **kwargs)
    f = _getframe(1)  # the user's call
    hit = sites_at.get(f.f_lasti)
    site = hit[1] if hit is not None and hit[0] is f.f_code else site_at(f) or user_frame(1)
    facts = self._task_facts.get(id(task))
    name, lo, hi, form = facts if facts is not None else self._facts(task)
    if kwargs or not lo <= len(args) <= hi:
        args, kwargs = self._bind(task, args, kwargs, site, "")
    scope = self._scope
    if scope is None:
        base = name
    else:
        base = f"{scope.path}/{name}"
        form = self._form(task, task.resolve(scope.defaults, scope.defaults_key), scope)
    counts = self._counts
    n = counts.get(base, 0)
    if n and base not in self._suffixed:  # base-n is free (Graph._taken)
        key = f"{base}-{n}"
        counts[base] = n + 1
    else:
        key = self._key_of(base)
    deps: tuple[int, ...] | None = None
    stored: tuple[Any, ...] | None = args
    if not kwargs:  # fast path: Nodes and plain constants as positional arguments
        found: list[int] = []
        for a in args:
            if isinstance(a, Node):
                if a._g is not self:
                    self._own(a, key, site)
                found.append(a._i)
            elif isinstance(a, _CONTAINER_BASES):
                break
        else:
            deps = tuple(found)
            nd = len(deps)
            if (nd == 2 and deps[0] == deps[1]) or (nd > 2 and len(set(deps)) < nd):
                deps = tuple(dict.fromkeys(deps))
            elif nd and nd == len(args):
                stored = None  # every argument a distinct Node: the record keeps no tuple of them
            kw: dict[str, Any] | None = None
            nested = False
    if deps is None:
        stored, kw, deps, nested = self._scan(args, kwargs, key, site, task.meta.pos_params)
    keys = self._keys
    idx = len(keys)
    keys.append(key)
    self._recs.append((TASK, form, stored, kw, deps, nested, site))
    node = _new_node(Node)
    _set_graph(node, self)
    _set_idx(node, idx)
    return node


def _split_suffix(key: str) -> tuple[str, int]:
    """``("X", N)`` for a key ``"X-N"`` as _key_of makes them (N >= 1), else ``(key, 0)``."""
    base, dash, digits = key.rpartition("-")
    if dash and digits.isascii() and digits.isdigit() and digits[0] != "0":
        return base, int(digits)
    return key, 0


def _short(value: Any) -> str:
    return short_repr(value, unprintable="<{}>")


# ``node[k]`` at run time
getitem = operator.getitem
