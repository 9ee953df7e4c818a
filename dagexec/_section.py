"""``@section``: a reusable subgraph that is one Node to the outside.

Sections nest by the user's own recursion: a section's body calls the next
section.  While a body runs, only ``Section.__call__`` and the body are on the
stack (binding the call and recording its markers happen in helpers that have
returned), and Python counts two levels for the call itself (the proxy's C slot
and ``__call__``).  So that sections nest as deep as plain function calls would,
each call grows the recursion limit by those two while its body runs, for the
first 1,000 levels (past them, growing it further would let a raised limit reach
C stack that RecursionError protects).  At the default limit of 1,000 that is
about 900 levels.  A RecursionError met while sections are nested more than a
tenth of the limit deep becomes a GraphError naming the depth and
``sys.setrecursionlimit()``; a shallower one is the user's own recursion and is
left as it is.  Either way the graph is rolled back whole.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any, SupportsIndex, TypeVar, overload

from . import _graph
from ._callsite import format_site, user_frame
from ._errors import CallError, GraphError, Problem
from ._graph import Graph
from ._node import FINISH, PARAM, Node, SectionNode, _Scope, reject_nodes_outside
from ._task import (
    DecoratedFunction,
    _import_task,
    _tuple_arity,
    _type_hints,
    decorator,
    module_attribute,
    validate_options,
)
from ._typecheck import unknown_keywords

__all__ = ["Section", "section"]

F = TypeVar("F", bound=Callable[..., Any])


class Section(DecoratedFunction):
    """A function decorated with :func:`section`.

    Called inside a graph, its body is traced once in a scope of its own and a
    :class:`~dagexec.SectionNode` is returned; called anywhere else it runs the
    function (and so the plain tasks inside it).
    """

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        super().__init__(fn)
        opts = validate_options(options)
        self._self_name: str = opts.pop("name", None) or fn.__name__
        self._self_nout: int | None = opts.pop("nout", None)
        self._self_defaults: dict[str, Any] = opts
        self._self_signature = inspect.signature(fn)

    @property
    def section_name(self) -> str:
        """The name the section's scope is keyed by."""
        return self._self_name

    @property
    def signature(self) -> inspect.Signature:
        """The function's signature."""
        return self._self_signature

    @property
    def default_options(self) -> dict[str, Any]:
        """Task options given to every task inside (a task's own options win)."""
        return self._self_defaults

    @property
    def nout(self) -> int | None:
        """How many values the section node unpacks to, or None."""
        if self._self_nout is not None:
            return self._self_nout
        return _tuple_arity(_type_hints(self.__wrapped__).get("return"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = _graph.current_graph()
        if graph is None:
            reject_nodes_outside(self._self_name, args, kwargs)
            return self.__wrapped__(*args, **kwargs)
        # Sections nest by the user's own recursion (module docstring): the helpers
        # return before the body is called and after it returned, and the recursion
        # limit grows by what this call adds to the stack while the body runs.
        scope, mark, call_args, call_kwargs = _open_scope(graph, self, args, kwargs)
        graph._scope = scope
        grow = _FRAMES_PER_CALL if scope.depth <= _GROWN_LEVELS else 0
        _grow_recursion_limit(grow)
        try:
            ret = self.__wrapped__(*call_args, **call_kwargs)
            graph._scope = scope.parent
            return _close_scope(graph, scope, ret)
        except BaseException as exc:
            graph._scope = scope.parent
            graph._rollback(*mark)
            graph._release(scope.path)
            if isinstance(exc, RecursionError) and scope.parent is None:
                raise _too_deep(graph, scope) or exc from None
            raise
        finally:
            _grow_recursion_limit(-grow)

    def graph(self, name: str | None = None) -> _graph.Graph:
        """This section alone as a Graph whose inputs are the section's parameters.

        Args:
            name: the graph's name (default: the section's name).

        Returns:
            A Graph with one input per parameter (its annotation as type, its default
            as default) and the section's value as the output named after the section.

        Raises:
            GraphError: when the section has ``*args`` or ``**kwargs`` parameters.
        """
        from ._errors import GraphError

        hints = _type_hints(self.__wrapped__)
        g = _graph.Graph(name or self._self_name)
        with g:
            args: list[Any] = []
            kwargs: dict[str, Any] = {}
            for p in self._self_signature.parameters.values():
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    raise GraphError(
                        f"section {self._self_name!r}: parameter {p.name!r} is *args/**kwargs "
                        "and cannot become a graph input"
                    )
                default = _graph.MISSING if p.default is p.empty else p.default
                node = g.input(p.name, hints.get(p.name, Any), default=default)
                if p.kind is p.KEYWORD_ONLY:
                    kwargs[p.name] = node
                else:
                    args.append(node)
            g.output(self(*args, **kwargs), name=self._self_name)
        return g

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        found = module_attribute(self.__wrapped__)
        if found is not None and found[2] is self:
            # the raw function is only reachable through the Section
            return (_import_task, (found[0], found[1]))
        opts = dict(self._self_defaults)
        opts["name"] = self._self_name
        if self._self_nout is not None:
            opts["nout"] = self._self_nout
        return (Section, (self.__wrapped__, opts))

    def __repr__(self) -> str:
        return f"<Section {self._self_name!r}>"


# -- tracing a section call into a graph ---------------------------------------------


def _open_scope(
    graph: Graph, section: Section, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[_Scope, tuple[int, int, int], list[Any], dict[str, Any]]:
    """Bind a section call and open its scope in ``graph``: ``(scope, rollback mark,
    the body's arguments, its keyword arguments)``, each parameter a Start marker."""
    site = user_frame()
    where = format_site(site)
    sig = section.signature
    name = section.section_name
    try:
        ba = sig.bind(*args, **kwargs)
    except TypeError as exc:
        why = unknown_keywords(name, sig.parameters, kwargs) or exc
        raise CallError(f"section {name!r}: {why} (called at {where})", name, where) from None
    ba.apply_defaults()
    path = graph._next_key(name)
    parent = graph._scope
    defaults = dict(parent.defaults) if parent is not None else {}
    defaults.update(section.default_options)
    scope = _Scope(path, name, parent, defaults, section, site)
    if parent is None or scope.depth > graph._section_depth:
        graph._section_depth = scope.depth
    mark = (len(graph._keys), len(graph._sections), len(graph._outputs))
    graph._sections.append(scope)
    try:
        call_args: list[Any] = []
        call_kwargs: dict[str, Any] = {}
        for pname, value in ba.arguments.items():
            p = sig.parameters[pname]
            if p.kind is p.VAR_POSITIONAL:
                call_args.extend(
                    _add_param(graph, scope, f"{pname}[{i}]", v, site) for i, v in enumerate(value)
                )
            elif p.kind is p.VAR_KEYWORD:
                for k, v in value.items():
                    call_kwargs[k] = _add_param(graph, scope, f"{pname}[{k}]", v, site)
            elif p.kind is p.KEYWORD_ONLY:
                call_kwargs[pname] = _add_param(graph, scope, pname, value, site)
            else:
                call_args.append(_add_param(graph, scope, pname, value, site))
    except BaseException:
        graph._rollback(*mark)
        graph._release(path)
        raise
    return scope, mark, call_args, call_kwargs


def _close_scope(graph: Graph, scope: _Scope, ret: Any) -> Node:
    """Record the Finish marker of ``scope`` over what its body returned: the SectionNode."""
    path = scope.path
    site = scope.call_site
    if ret is None:
        where = format_site(site)
        raise GraphError(
            Problem(
                f"section {path!r} returned None; a section must return its Node(s) (called at {where})",
                key=path,
                call_site=where,
            )
        )
    args2, _, deps, nested = graph._scan((ret,), None, path, site, label="the value it returns")
    idx = graph._append(path, FINISH, None, None, args2, None, deps, nested, site, scope.parent)
    scope.finish = idx
    return SectionNode(graph, idx)


def _add_param(graph: Graph, scope: _Scope, pname: str, value: Any, site: tuple[str, int]) -> Node:
    """The Start marker of one parameter: a Node standing for the argument."""
    key = f"{scope.path}:{pname}"
    args, _, deps, nested = graph._scan((value,), None, key, site, (pname,))
    idx = graph._append(key, PARAM, None, None, args, None, deps, nested, site, scope)
    scope.params[pname] = idx
    return Node(graph, idx)


#: What a section call adds to the stack while its body runs, as Python counts it for
#: the recursion limit: calling the proxy (a C slot) and ``Section.__call__``.
_FRAMES_PER_CALL = 2
#: The section levels whose calls grow the limit: past them (about 1,000 levels at the
#: default limit) the stack is the user's to raise.  Unbounded growth would let a
#: raised limit reach C stack a plain RecursionError protects (a segfault past
#: ~10,000 levels).
_GROWN_LEVELS = 1000
_limit_lock = threading.Lock()


def _grow_recursion_limit(by: int) -> None:
    """Move the recursion limit by ``by``: relative and under a lock, so section calls in
    several threads undo exactly what they did."""
    if by:
        with _limit_lock:
            sys.setrecursionlimit(sys.getrecursionlimit() + by)


def _too_deep(graph: Graph, scope: _Scope) -> GraphError | None:
    """The error for a RecursionError met while tracing sections nested deep enough to
    be the cause (past a tenth of the recursion limit); None when they are not, and the
    user's own recursion is to blame."""
    limit = sys.getrecursionlimit() - _FRAMES_PER_CALL  # this call's growth is not undone yet
    deepest = graph._section_depth
    if deepest <= limit // 10:
        return None
    where = format_site(scope.call_site)
    return GraphError(
        Problem(
            f"section {scope.path!r}: sections nested {deepest} deep, with what their bodies call, "
            f"exceed Python's recursion limit ({limit}); nest less, or raise the limit with "
            f"sys.setrecursionlimit() (called at {where})",
            key=scope.path,
            call_site=where,
        )
    )


@overload
def section(fn: F, /) -> F: ...
@overload
def section(fn: None = None, /, **options: Any) -> Callable[[F], F]: ...
def section(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function building part of a graph a reusable section.

    Args:
        fn: the function (when used as ``@section`` without parentheses).
        **options: ``name``, ``nout``, and task options given as defaults to every
            task inside.

    Returns:
        A :class:`Section`, or a decorator making one.

    Raises:
        TypeError: for an unknown option.
        ValueError: for a bad option value.
    """
    return decorator(Section, "section", fn, options)
