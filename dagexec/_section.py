"""``@section``: a reusable subgraph that is one Node to the outside."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, SupportsIndex, TypeVar, overload

import wrapt

from . import _graph
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
        return graph._call_section(self, args, kwargs)

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
