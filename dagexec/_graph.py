"""``Graph`` and ``Node``: recording task calls without running them.

A Graph stores its nodes in two lists indexed by ``idx`` (creation order):
``_keys[idx]`` and ``_recs[idx]``, a tuple
``(kind, task, opts, args, kwargs, deps, nested, site, scope)`` (see the ``R_*``
indices).  A :class:`Node` is only ``(graph, idx)``; everything it knows lives in
those lists, so building 100,000 nodes stays cheap and
:func:`~dagexec.Graph.compile` reads flat data.

Node kinds:

* ``TASK``     a call of a task;
* ``INPUT``    a graph input, given a value when the plan runs;
* ``GETITEM``  ``node[k]`` (also what unpacking makes);
* ``PARAM``    a section's Start marker for one parameter: stands for the argument;
* ``FINISH``   a section's Finish marker: stands for what the body returned;
* ``SELECT``   a ``dx.cond``: the taken branch's value (``_conds`` holds its branches);
* ``MAP``      ``task.map(items, **fixed)``: a task call per item, made at run time.

``PARAM`` and ``FINISH`` are markers: compile resolves them to what they stand
for, so they cost nothing at run time.

A Node offers ``node[k]``, unpacking, ``.key`` and ``.after()`` (DESIGN §12):
comparisons, arithmetic and other operators raise :class:`~dagexec.CallError`,
an unknown public attribute :class:`~dagexec.NodeAttributeError`, each saying
that a Node has no value until the plan runs and what to write instead.  ``==``
and hashing keep their identity meaning, so Nodes work in sets, dicts and ``in``.

Arguments are walked (by :mod:`dagexec._walk`) to find Nodes in containers, up to
:data:`MAX_NESTING` levels: past it the call is a GraphError naming the depth,
so no later step (checks, pickling, hashing, filling templates) meets a
RecursionError.  The walk enters lists, tuples, sets, frozensets, dicts and
namedtuples only; a Node inside a subclass of those (an ``OrderedDict``, a
``defaultdict``) would reach the task as the Node itself, so it is a GraphError at
the call.  ``after()`` records where it was called, so a cycle is reported
at the call that closed it.
"""

from __future__ import annotations

import contextvars
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._callsite import format_site, user_frame
from ._errors import CallError, GraphError, NodeAttributeError, Problem
from ._walk import TooDeepError, exceeds, leaves, replace

if TYPE_CHECKING:
    import inspect

    from ._section import Section
    from ._task import Task, TaskOptions
    from .plan.compiled import CompiledGraph

__all__ = ["Graph", "Node", "SectionNode", "current_graph"]

TASK, INPUT, GETITEM, PARAM, FINISH, SELECT, MAP = range(7)
KIND_NAMES = ("task", "input", "getitem", "param", "finish", "select", "map")

# fields of a node record in Graph._recs
R_KIND: Final = 0
R_TASK: Final = 1
R_OPTS: Final = 2
R_ARGS: Final = 3
R_KWARGS: Final = 4
R_DEPS: Final = 5
R_NESTED: Final = 6
R_SITE: Final = 7
R_SCOPE: Final = 8

#: ``(kind, task, opts, args, kwargs, deps, nested, site, scope)``
Rec = tuple[
    int,
    "Task | None",
    "TaskOptions | None",
    tuple[Any, ...],
    "dict[str, Any] | None",
    tuple[int, ...],
    bool,
    tuple[str, int],
    "_Scope | None",
]


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


class _Scope:
    """One section call: keys inside it are prefixed with ``path + "/"``."""

    __slots__ = (
        "call_site",
        "defaults",
        "defaults_key",
        "depth",
        "finish",
        "name",
        "params",
        "parent",
        "path",
        "section",
    )

    def __init__(
        self,
        path: str,
        name: str,
        parent: _Scope | None,
        defaults: dict[str, Any],
        section: Section | None,
        call_site: tuple[str, int],
    ) -> None:
        self.path = path
        self.name = name
        self.parent = parent
        self.defaults = defaults
        self.defaults_key = repr(sorted(defaults.items())) if defaults else ""
        self.section = section
        self.call_site = call_site
        self.depth: int = parent.depth + 1 if parent is not None else 1  # sections around it, itself included
        self.params: dict[str, int] = {}  # parameter name -> PARAM node idx
        self.finish = -1  # FINISH node idx, once the body returned


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
        self._after: dict[int, list[int]] = {}
        # (waiting idx, awaited idx) -> where node.after() was called, for cycle reports
        self._after_sites: dict[tuple[int, int], tuple[str, int]] = {}
        # dx.cond calls: (select idx, predicate idx, then-branch start, otherwise start, end)
        self._conds: list[tuple[int, int, int, int, int]] = []
        self._used: set[str] = set()
        self._counts: dict[str, int] = {}
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

    # -- keys ------------------------------------------------------------------
    def _next_key(self, name: str, reserve: bool = True) -> str:
        scope = self._scope
        base = f"{scope.path}/{name}" if scope is not None else name
        n = self._counts.get(base, 0)
        key = base if n == 0 else f"{base}-{n}"
        used = self._used
        while key in used:
            n += 1
            key = f"{base}-{n}"
        if reserve:
            self._counts[base] = n + 1
        return key

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
        self._used.add(key)
        self._keys.append(key)
        self._recs.append((kind, task, opts, args, kwargs, deps, nested, site, scope))
        return idx

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

    def _walk(self, value: Any, deps: dict[int, None], key: str, site: tuple[str, int]) -> tuple[Any, bool]:
        """Copy containers, collecting the Nodes inside; return (copy, has_nodes).

        Past :data:`MAX_NESTING` levels raises :class:`_TooDeep`, and at a Node inside a
        subclassed container :class:`_HiddenNode` (the caller names the parameter)."""
        found = False

        def visit(x: Any) -> Any:
            nonlocal found
            if isinstance(x, Node):
                if x._g is not self:
                    self._own(x, key, site)
                deps[x._i] = None
                found = True
            elif isinstance(x, _CONTAINER_BASES) and holds_node(x):  # a leaf: a subclass
                raise _HiddenNode(type(x))
            return x

        try:
            copied = replace(value, visit, max_depth=MAX_NESTING, copy=True)
        except TooDeepError:
            raise _TooDeep from None
        return copied, found

    def _scan(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        key: str,
        site: tuple[str, int],
        params: Sequence[str] = (),
        label: str = "an argument",
    ) -> tuple[tuple[Any, ...], dict[str, Any] | None, tuple[int, ...], bool]:
        """Find dependencies: ``(args, kwargs, deps, nested)``; containers are copied.

        ``params`` name the positional arguments and ``label`` the others, in the
        error a container nested too deep raises."""
        deps: dict[int, None] = {}
        nested = False
        new_args: list[Any] | None = None
        for i, a in enumerate(args):
            if isinstance(a, Node):
                self._own(a, key, site)
                deps[a._i] = None
            elif isinstance(a, _CONTAINER_BASES):
                what = f"parameter {params[i]!r}" if i < len(params) else label
                try:
                    c, found = self._walk(a, deps, key, site)
                except _TooDeep:
                    raise _too_deep(key, what, site) from None
                except _HiddenNode as exc:
                    raise _hidden_node(key, what, exc.container, site) from None
                nested = nested or found
                if new_args is None:
                    new_args = list(args)
                new_args[i] = c
        if new_args is not None:
            args = tuple(new_args)
        if kwargs:
            kwargs = dict(kwargs)
            for name, a in kwargs.items():
                if isinstance(a, Node):
                    self._own(a, key, site)
                    deps[a._i] = None
                elif isinstance(a, _CONTAINER_BASES):
                    try:
                        c, found = self._walk(a, deps, key, site)
                    except _TooDeep:
                        raise _too_deep(key, f"parameter {name!r}", site) from None
                    except _HiddenNode as exc:
                        raise _hidden_node(key, f"parameter {name!r}", exc.container, site) from None
                    nested = nested or found
                    kwargs[name] = c
        else:
            kwargs = None
        return args, kwargs, tuple(deps), nested

    # -- recording -------------------------------------------------------------
    def _add_task_call(self, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Node:
        # the hot path of building: keep it free of extra calls
        site = user_frame(2)
        name = task._self_name
        meta = task._self_meta or task.meta
        if kwargs or meta.kwonly or not meta.n_required_pos <= len(args) <= meta.max_fast:
            args, kwargs = self._bind(task, args, kwargs, site, "")
        key = self._next_key(name)
        deps: tuple[int, ...] | None = None
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
                deps = tuple(found) if len(found) < 2 else tuple(dict.fromkeys(found))
                kw: dict[str, Any] | None = None
                nested = False
        if deps is None:
            args, kw, deps, nested = self._scan(args, kwargs, key, site, meta.pos_params)
        scope = self._scope
        opts = task.resolve(scope.defaults, scope.defaults_key) if scope is not None else task.resolve(None)
        idx = len(self._keys)
        self._used.add(key)
        self._keys.append(key)
        self._recs.append((TASK, task, opts, args, kw, deps, nested, site, scope))
        return Node(self, idx)

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
        args, kwargs = self._bind(task, (items,), fixed, site, "map: ")
        key = self._next_key(task._self_name)
        if not isinstance(items, (Node, list, tuple)):
            raise CallError(
                f"node {key!r}: map takes a Node or a list of items, got {_short(items)} "
                f"(called at {format_site(site)})",
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
        if name in self._used:
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
            self._used.discard(key)
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
            A ``graphviz.Digraph``.

        Raises:
            GraphError: when the graph does not compile.
            ImportError: when the ``graphviz`` package is not installed.
            ValueError: for an unknown section path in ``collapse``, or ``expand=True``
                with ``collapse``.
        """
        from ._dot import to_dot

        return to_dot(self, collapse=collapse, expand=expand)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter's display: the picture as SVG (``text/plain`` with the error when it does not compile)."""
        from ._dot import repr_mimebundle

        return repr_mimebundle(self, include, exclude)


#: the container types a call's arguments are walked for (their subclasses included,
#: so that a Node inside one is reported)
_CONTAINER_BASES = (list, tuple, dict, set, frozenset)

#: How deep containers may nest in a constant (a task or section argument, an input's
#: default) and, with ``run(cache=...)``, in a graph input's value.  dagexec walks such
#: values recursively to find Nodes, and type-checks, pickles and hashes them, each
#: taking a Python frame or two per level: at this depth they all stay well inside
#: Python's default recursion limit (1,000), wherever the graph is built.  Deeper
#: values raise GraphError (InputError for an input) naming the depth, never a
#: RecursionError; build them inside a task instead.
MAX_NESTING: Final = 200


class _TooDeep(Exception):
    """Raised by ``Graph._walk`` past :data:`MAX_NESTING`; turned into a GraphError."""


def _too_deep(key: str, what: str, site: tuple[str, int]) -> GraphError:
    where = format_site(site)
    return GraphError(
        Problem(
            f"node {key!r}: {what} holds containers nested more than {MAX_NESTING} deep, the most "
            "dagexec walks to find Nodes and to check, pickle and hash constants; build such a value "
            f"inside a task (called at {where})",
            key=key,
            call_site=where,
        )
    )


class _HiddenNode(Exception):
    """Raised by ``Graph._walk`` at a Node inside a subclassed container; turned into a GraphError."""

    def __init__(self, container: type) -> None:
        super().__init__(container)
        self.container = container


def _hidden_node(key: str, what: str, container: type, site: tuple[str, int]) -> GraphError:
    where = format_site(site)
    return GraphError(
        Problem(
            f"node {key!r}: {what} holds a Node inside a {container.__module__}.{container.__qualname__}, "
            "which dagexec does not look into; pass a dict, list, tuple, set or namedtuple, or build it "
            f"inside a task (called at {where})",
            key=key,
            call_site=where,
        )
    )


def _is_node(value: Any) -> bool:
    return isinstance(value, Node)


def holds_node(value: Any) -> bool:
    """Whether a Node sits anywhere in ``value``, subclassed containers entered too.  A
    container that holds itself counts as holding none (dagexec never looks into it)."""
    if not isinstance(value, _CONTAINER_BASES):  # a leaf: no walk
        return isinstance(value, Node)
    try:
        for _ in leaves(value, _is_node, subclasses=True):
            return True
    except TooDeepError:
        pass
    return False


def nesting_exceeds(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether containers (list, tuple, set, frozenset, dict values, and their subclasses)
    nest in ``value`` deeper than ``limit`` (``[[1]]`` is 2 deep); any depth is measured."""
    return exceeds(value, limit, subclasses=True)


def _short(value: Any, limit: int = 80) -> str:
    try:
        r = repr(value)
    except Exception:
        r = f"<{type(value).__qualname__}>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


class Node:
    """One call of a task (or a graph input, or ``node[k]``) inside a graph.

    A Node has no value until the plan runs: it offers ``node[k]``, unpacking
    (with ``nout`` or a ``tuple[A, B]`` return annotation), ``.key`` and
    ``.after(*nodes)``, and nothing else.  Operators raise :class:`CallError` and
    unknown attributes :class:`NodeAttributeError` (an ``AttributeError``), saying so.
    """

    __slots__ = ("_g", "_i")

    _g: Graph
    _i: int

    def __init__(self, graph: Graph, idx: int) -> None:
        object.__setattr__(self, "_g", graph)
        object.__setattr__(self, "_i", idx)

    @property
    def key(self) -> str:
        """The node's stable, readable key, e.g. ``"etl/clean-1"``."""
        return self._g._keys[self._i]

    @property
    def graph(self) -> Graph:
        """The graph this node belongs to."""
        return self._g

    @property
    def call_site(self) -> str:
        """``path/to/file.py:14`` where the node was created."""
        return format_site(self._g._recs[self._i][R_SITE])

    @property
    def nout(self) -> int | None:
        """How many values unpacking this node gives, or None when it cannot be unpacked."""
        g, i = self._g, self._i
        rec = g._recs[i]
        kind = rec[R_KIND]
        if kind == TASK:
            opts = rec[R_OPTS]
            task = rec[R_TASK]
            if opts is not None and opts.nout is not None:
                return opts.nout
            return task.meta.tuple_arity if task is not None else None
        if kind == FINISH:
            scope = next(s for s in g._sections if s.finish == i)
            return scope.section.nout if scope.section is not None else None
        return None

    def after(self, *nodes: Node) -> Node:
        """Make this node wait for ``nodes`` (ordering only; no value is passed).

        Returns:
            This node.

        Raises:
            CallError: when given something other than a Node.
            GraphError: when a node belongs to another graph.
        """
        self._g._add_after(self, nodes)
        return self

    def __getitem__(self, k: Any) -> Node:
        return self._g._add_getitem(self, k)

    def __iter__(self) -> Iterator[Node]:
        n = self.nout
        if n is None:
            raise CallError(
                f"cannot unpack node {self.key!r}: its number of outputs is unknown; "
                "give the task nout=N or a tuple[A, B] return annotation",
                self.key,
            )
        return iter([self[i] for i in range(n)])

    def __bool__(self) -> bool:
        raise CallError(
            f"node {self.key!r} has no truth value: a Node has no value until the plan runs",
            self.key,
        )

    def __contains__(self, item: object) -> bool:
        raise CallError(
            f"'in' is not supported on node {self.key!r}: a Node has no value until the plan runs",
            self.key,
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise CallError(
            f"cannot set attribute {name!r} on node {self.key!r}: a Node has no value until the plan runs",
            self.key,
        )

    def __getattr__(self, name: str) -> Any:
        # only reached for names a Node does not have; private and dunder names are
        # what libraries probe (``_repr_html_``, ``__array__``): a plain, cheap miss
        if name.startswith("_"):
            raise AttributeError(name)
        raise NodeAttributeError(
            f"node {self.key!r} has no attribute {name!r}: a Node has no value until the plan runs; "
            "use the value's attributes and methods inside a task (a Node offers only .key, "
            ".after(), node[k] and unpacking)",
            self.key,
            name,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise CallError(
            f"node {self.key!r} is not callable: a Node has no value until the plan runs; "
            "call its value inside a task",
            self.key,
        )

    def __reduce__(self) -> Any:
        raise CallError(
            f"node {self.key!r} cannot be pickled: compile the graph and pickle the plan",
            self.key,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r}>"


def _no_operator(symbol: str, hint: str) -> Any:
    """A Node method that refuses operator ``symbol`` (DESIGN §12: a Node offers no operators)."""

    def refuse(self: Node, *other: Any) -> Any:
        raise CallError(
            f"{symbol!r} is not supported on node {self.key!r}: a Node has no value until the plan runs; {hint}",
            self.key,
        )

    refuse.__name__ = f"refuse_{symbol}"
    return refuse


_COMPARE = (
    "compare inside a task, which receives the value itself, and branch on that task's Node "
    "with dx.cond(pred, then=..., otherwise=...)"
)
_COMPUTE = "compute it inside a task, which receives the value itself"

# Comparisons and arithmetic would stand for a lazy call without a readable key
# (DESIGN §12); == and != keep their identity meaning, so Nodes still work in sets,
# dicts and ``in`` tests of lists.
for _symbol, _names, _hint in (
    ("<", ("__lt__",), _COMPARE),
    ("<=", ("__le__",), _COMPARE),
    (">", ("__gt__",), _COMPARE),
    (">=", ("__ge__",), _COMPARE),
    ("+", ("__add__", "__radd__", "__pos__"), _COMPUTE),
    ("-", ("__sub__", "__rsub__", "__neg__"), _COMPUTE),
    ("*", ("__mul__", "__rmul__"), _COMPUTE),
    ("/", ("__truediv__", "__rtruediv__"), _COMPUTE),
    ("//", ("__floordiv__", "__rfloordiv__"), _COMPUTE),
    ("%", ("__mod__", "__rmod__"), _COMPUTE),
    ("**", ("__pow__", "__rpow__"), _COMPUTE),
    ("@", ("__matmul__", "__rmatmul__"), _COMPUTE),
    ("&", ("__and__", "__rand__"), _COMPUTE),
    ("|", ("__or__", "__ror__"), _COMPUTE),
    ("^", ("__xor__", "__rxor__"), _COMPUTE),
    ("<<", ("__lshift__", "__rlshift__"), _COMPUTE),
    (">>", ("__rshift__", "__rrshift__"), _COMPUTE),
    ("~", ("__invert__",), _COMPUTE),
    ("abs()", ("__abs__",), _COMPUTE),
    ("divmod()", ("__divmod__", "__rdivmod__"), _COMPUTE),
    ("round()", ("__round__",), _COMPUTE),
    ("int()", ("__int__", "__index__"), _COMPUTE),
    ("float()", ("__float__",), _COMPUTE),
    ("complex()", ("__complex__",), _COMPUTE),
    ("len()", ("__len__",), "take its length inside a task (to unpack a Node, give its task nout=N)"),
):
    for _name in _names:
        setattr(Node, _name, _no_operator(_symbol, _hint))
del _symbol, _names, _hint, _name


class SectionNode(Node):
    """The Node a section call returns: it stands for the section's Finish output."""

    __slots__ = ()


#: every Node type, for walks told to call back at exactly these types
NODE_TYPES: Final = frozenset({Node, SectionNode})


def unknown_keywords(
    name: str, params: Mapping[str, inspect.Parameter], kwargs: Mapping[str, Any]
) -> str | None:
    """``unknown parameter 'factr' (did you mean 'factor'?); scale() takes x, factor``,
    or None when every keyword names a parameter (or the function takes ``**kwargs``)."""
    import difflib

    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    unknown = [k for k in kwargs if k not in params]
    if not unknown:
        return None  # e.g. a positional-only parameter given by name: Python's message says it
    named = [n for n, p in params.items() if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)]
    text = (
        f"unknown parameter {unknown[0]!r}"
        if len(unknown) == 1
        else ("unknown parameters " + ", ".join(repr(k) for k in unknown))
    )
    close = difflib.get_close_matches(unknown[0], named, n=1)
    if close:
        text += f" (did you mean {close[0]!r}?)"
    shown: list[str] = []
    for n, p in params.items():
        if p.kind is p.KEYWORD_ONLY and not any(s.startswith("*") for s in shown):
            shown.append("*")
        shown.append(f"*{n}" if p.kind is p.VAR_POSITIONAL else n)
    return f"{text}; {name}() takes {', '.join(shown) or 'no parameters'}"


def reject_nodes_outside(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise when a Node is passed to a task or section called outside any graph."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, Node):
            site = format_site(user_frame())
            raise GraphError(
                Problem(
                    f"{name}() was called outside any graph with node {a.key!r} of graph "
                    f"{a._g.name!r} (called at {site}); call it inside 'with graph:'",
                    key=a.key,
                    call_site=site,
                )
            )


# ``node[k]`` at run time
getitem = operator.getitem
