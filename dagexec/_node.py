"""``Node``: one recorded call inside a :class:`~dagexec.Graph`, and the record it reads.

A Graph stores its nodes in two lists indexed by ``idx`` (creation order):
``_keys[idx]`` and ``_recs[idx]``, a tuple
``(kind, form, args, kwargs, deps, nested, site)`` (see the ``R_*`` indices), where
``form`` indexes the graph's ``_forms``, the ``(task, options, scope)`` its calls
share (:data:`Form`).  A :class:`Node` is only ``(graph, idx)``; everything it knows
lives in those lists, so building 100,000 nodes stays cheap and
:func:`~dagexec.Graph.compile` reads flat data.  A record holds ints, strings and
tuples of them (and the constants a call was given), never a task, options or scope
object: the cyclic collector untracks such a tuple the first time it meets it, so the
records of a big graph cost it nothing while the graph grows.

Node kinds:

* ``TASK``     a call of a task;
* ``INPUT``    a graph input, given a value when the plan runs;
* ``GETITEM``  ``node[k]`` (also what unpacking makes);
* ``PARAM``    a section's Start marker for one parameter: stands for the argument;
* ``FINISH``   a section's Finish marker: stands for what the body returned;
* ``SELECT``   a ``dx.cond``: the taken branch's value (``_conds`` holds its branches);
* ``SWITCH``   a ``dx.switch``: the chosen case's value (``_conds`` holds its cases);
* ``MAP``      ``task.map(items, **fixed)``: a task call per item, made at run time.

``PARAM`` and ``FINISH`` are markers: compile resolves them to what they stand
for, so they cost nothing at run time.

A Node offers ``node[k]``, unpacking, ``.key`` and ``.after()`` (DESIGN §12):
comparisons, arithmetic and other operators raise :class:`~dagexec.CallError`,
an unknown public attribute :class:`~dagexec.NodeAttributeError`, each saying
that a Node has no value until the plan runs and what to write instead.  ``==``
and hashing keep their identity meaning, so Nodes work in sets, dicts and ``in``.

:func:`scan` finds the Nodes in a call's arguments (walked by :mod:`dagexec._walk` up
to :data:`MAX_NESTING` levels; a Node inside a subclassed container, which the walk does
not enter, is a GraphError at the call).  Recording calls (keys, inputs, outputs,
sections) is :mod:`dagexec._graph`'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._callsite import format_site, user_frame
from ._errors import CallError, GraphError, NodeAttributeError, Problem
from ._walk import TooDeepError, exceeds, leaves, replace

if TYPE_CHECKING:
    from ._graph import Graph
    from ._section import Section
    from ._task import Task, TaskOptions

__all__ = [
    "MAX_NESTING",
    "NODE_TYPES",
    "Node",
    "SectionNode",
    "holds_node",
    "nesting_exceeds",
    "record_args",
    "reject_nodes_outside",
    "scan",
]


TASK, INPUT, GETITEM, PARAM, FINISH, SELECT, MAP, SWITCH = range(8)
KIND_NAMES = ("task", "input", "getitem", "param", "finish", "select", "map", "switch")

# fields of a node record in Graph._recs
R_KIND: Final = 0
R_FORM: Final = 1
R_ARGS: Final = 2
R_KWARGS: Final = 3
R_DEPS: Final = 4
R_NESTED: Final = 5
R_SITE: Final = 6

#: ``(kind, form, args, kwargs, deps, nested, site)``; ``args`` is None for a task call
#: given distinct Nodes only, positionally: they are ``deps``, in order
#: (:func:`record_args`), and the record keeps no tuple of Nodes alive
Rec = tuple[
    int,
    int,
    "tuple[Any, ...] | None",
    "dict[str, Any] | None",
    tuple[int, ...],
    bool,
    tuple[str, int],
]

#: what records share, in ``Graph._forms``: ``(task, options, scope)``; the task and
#: options are None for nodes that are no task's call, the scope None outside sections
Form = tuple["Task | None", "TaskOptions | None", "_Scope | None"]


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


def _is_node(value: Any) -> bool:
    return isinstance(value, Node)


def record_args(graph: Graph, rec: Rec) -> tuple[Any, ...]:
    """The positional arguments of record ``rec`` of ``graph``, Nodes where Nodes were given."""
    args = rec[R_ARGS]
    if args is None:
        return tuple([Node(graph, d) for d in rec[R_DEPS]])
    return args


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
            task, opts, _ = g._forms[rec[R_FORM]]
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


def nesting_exceeds(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether containers (list, tuple, set, frozenset, dict values, and their subclasses)
    nest in ``value`` deeper than ``limit`` (``[[1]]`` is 2 deep); any depth is measured."""
    return exceeds(value, limit, subclasses=True)


# -- the Nodes in a call's arguments -----------------------------------------------------


def scan(
    graph: Graph,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    key: str,
    site: tuple[str, int],
    params: Sequence[str] = (),
    label: str = "an argument",
) -> tuple[tuple[Any, ...], dict[str, Any] | None, tuple[int, ...], bool]:
    """Find the dependencies of node ``key``'s call: ``(args, kwargs, deps, nested)``;
    containers are copied.

    ``params`` name the positional arguments and ``label`` the others, in the
    error a container nested too deep, or hiding a Node, raises."""
    deps: dict[int, None] = {}
    nested = False
    new_args: list[Any] | None = None
    for i, a in enumerate(args):
        if isinstance(a, Node) or isinstance(a, _CONTAINER_BASES):
            c, found = _argument(graph, a, deps, key, site, params[i] if i < len(params) else None, label)
            nested = nested or found
            if c is not a:
                if new_args is None:
                    new_args = list(args)
                new_args[i] = c
    if new_args is not None:
        args = tuple(new_args)
    if kwargs:
        kwargs = dict(kwargs)
        for name, a in kwargs.items():
            if isinstance(a, Node) or isinstance(a, _CONTAINER_BASES):
                kwargs[name], found = _argument(graph, a, deps, key, site, name, label)
                nested = nested or found
    else:
        kwargs = None
    return args, kwargs, tuple(deps), nested


def _argument(
    graph: Graph,
    a: Any,
    deps: dict[int, None],
    key: str,
    site: tuple[str, int],
    param: str | None,
    label: str,
) -> tuple[Any, bool]:
    """One argument that is a Node or a container: ``(its copy, whether it holds Nodes)``,
    its Nodes added to ``deps``; errors name ``param`` (or ``label`` when None)."""
    if isinstance(a, Node):
        graph._own(a, key, site)
        deps[a._i] = None
        return a, False
    try:
        return _walk(graph, a, deps, key, site)
    except TooDeepError:
        problem = (
            f"holds containers nested more than {MAX_NESTING} deep, the most dagexec walks to find Nodes "
            "and to check, pickle and hash constants; build such a value"
        )
    except _HiddenNode as exc:
        t = exc.container
        problem = (
            f"holds a Node inside a {t.__module__}.{t.__qualname__}, which dagexec does not look into; "
            "pass a dict, list, tuple, set or namedtuple, or build it"
        )
    where = format_site(site)
    what = label if param is None else f"parameter {param!r}"
    raise GraphError(
        Problem(f"node {key!r}: {what} {problem} inside a task (called at {where})", key=key, call_site=where)
    ) from None


class _HiddenNode(Exception):
    """Raised by :func:`_walk` at a Node inside a subclassed container; turned into a GraphError."""

    def __init__(self, container: type) -> None:
        super().__init__(container)
        self.container = container


def _walk(
    graph: Graph, value: Any, deps: dict[int, None], key: str, site: tuple[str, int]
) -> tuple[Any, bool]:
    """Copy containers, collecting the Nodes inside; return (copy, has_nodes).

    Past :data:`MAX_NESTING` levels raises :class:`~dagexec._walk.TooDeepError`, and at a
    Node inside a subclassed container :class:`_HiddenNode` (the caller names the parameter)."""
    found = False

    def visit(x: Any) -> Any:
        nonlocal found
        if isinstance(x, Node):
            if x._g is not graph:
                graph._own(x, key, site)
            deps[x._i] = None
            found = True
        elif isinstance(x, _CONTAINER_BASES) and holds_node(x):  # a leaf: a subclass
            raise _HiddenNode(type(x))
        return x

    copied = replace(value, visit, max_depth=MAX_NESTING, copy=True)
    return copied, found


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
