"""``@section``: a reusable subgraph that is one Node to the outside."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, SupportsIndex, TypeVar, overload

import wrapt

from . import _graph
from ._callsite import format_site, user_frame
from ._errors import CallError, GraphError, Problem
from ._graph import FINISH, PARAM, Graph, Node, SectionNode, _Scope
from ._task import _import_task, _tuple_arity, _type_hints, module_attribute, validate_options

__all__ = ["Section", "section"]

F = TypeVar("F", bound=Callable[..., Any])


class Section(wrapt.ObjectProxy):  # type: ignore[misc,type-arg]
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

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # as for Task: cloudpickle must not take a Section for a plain function
        return type(self)

    @property
    def fn(self) -> Callable[..., Any]:
        """The raw function."""
        return self.__wrapped__  # type: ignore[no-any-return]

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
            _graph.reject_nodes_outside(self._self_name, args, kwargs)
            return self.__wrapped__(*args, **kwargs)
        return call_section(graph, self, args, kwargs)

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


def call_section(graph: Graph, section: Section, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Node:
    """Trace ``section``'s body into ``graph`` in a scope of its own; its SectionNode."""
    site = user_frame()
    where = format_site(site)
    sig = section.signature
    name = section.section_name
    try:
        ba = sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise CallError(f"section {name!r}: {exc} (called at {where})", name, where) from None
    ba.apply_defaults()
    path = graph._next_key(name)
    graph._used.add(path)
    parent = graph._scope
    defaults = dict(parent.defaults) if parent is not None else {}
    defaults.update(section.default_options)
    scope = _Scope(path, name, parent, defaults, section, site)
    mark = (len(graph._keys), len(graph._sections), len(graph._outputs))
    graph._sections.append(scope)
    try:
        return _trace(graph, section, ba, scope, site)
    except BaseException:
        graph._rollback(*mark)
        graph._used.discard(path)
        raise


def _trace(
    graph: Graph, section: Section, ba: inspect.BoundArguments, scope: _Scope, site: tuple[str, int]
) -> Node:
    where = format_site(site)
    sig = section.signature
    path = scope.path
    parent = scope.parent
    call_args: list[Any] = []
    call_kwargs: dict[str, Any] = {}
    for pname, value in ba.arguments.items():
        p = sig.parameters[pname]
        if p.kind is p.VAR_POSITIONAL:
            call_args.extend(_add_param(graph, scope, f"{pname}[{i}]", v, site) for i, v in enumerate(value))
        elif p.kind is p.VAR_KEYWORD:
            for k, v in value.items():
                call_kwargs[k] = _add_param(graph, scope, f"{pname}[{k}]", v, site)
        elif p.kind is p.KEYWORD_ONLY:
            call_kwargs[pname] = _add_param(graph, scope, pname, value, site)
        else:
            call_args.append(_add_param(graph, scope, pname, value, site))
    graph._scope = scope
    try:
        ret = section.__wrapped__(*call_args, **call_kwargs)
    finally:
        graph._scope = parent
    if ret is None:
        raise GraphError(
            Problem(
                f"section {path!r} returned None; a section must return its Node(s) (called at {where})",
                key=path,
                call_site=where,
            )
        )
    args2, _, deps, nested = graph._scan((ret,), None, path, site)
    idx = graph._append(path, FINISH, None, None, args2, None, deps, nested, site, parent)
    scope.finish = idx
    return SectionNode(graph, idx)


def _add_param(graph: Graph, scope: _Scope, pname: str, value: Any, site: tuple[str, int]) -> Node:
    """The Start marker of one parameter: a Node standing for the argument."""
    key = f"{scope.path}:{pname}"
    args, _, deps, nested = graph._scan((value,), None, key, site)
    idx = graph._append(key, PARAM, None, None, args, None, deps, nested, site, scope)
    scope.params[pname] = idx
    return Node(graph, idx)


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
    if fn is not None:
        if options:
            raise TypeError("use @section(**options) or @section, not both")
        return Section(fn, {})
    validate_options(options)

    def decorate(f: Callable[..., Any]) -> Section:
        return Section(f, options)

    return decorate
