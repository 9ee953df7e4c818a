"""``@task``: a plain function plus its options.

A :class:`Task` is a transparent wrapt proxy around the user's function: name,
docstring, signature and annotations are the function's own.  Called outside any
:class:`~dagexec.Graph` it is the plain function; called inside one it records a
Node and runs nothing.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any, SupportsIndex, TypeVar, overload

import wrapt

from . import _graph
from ._errors import CallError
from ._mapping import Mapped, Partial, named_items

__all__ = ["Task", "TaskOptions", "task"]

F = TypeVar("F", bound=Callable[..., Any])

#: Every task option with its default value (DESIGN §2).
DEFAULTS: dict[str, Any] = {
    "name": None,
    "retries": 0,
    "retry_delay": 0.0,
    "retry_backoff": 1.0,
    "retry_jitter": 0.0,
    "retry_on": (Exception,),
    "timeout": None,
    "executor": None,
    "cache": True,
    "typecheck": True,
    "nout": None,
    "tags": (),
    "resources": None,
    "chunksize": None,
    "buffer": 64,
    "trigger": "all_succeeded",
}

#: the trigger rules a task may have (DESIGN §17): when its node runs, given how its
#: upstream nodes ended
TRIGGERS = ("all_succeeded", "all_done", "none_failed")

#: Options added after plan fingerprints were first pinned: a plan's fingerprint counts
#: each only where it differs from its default, so plans written before keep theirs.
LATER_OPTIONS = frozenset({"buffer", "trigger"})


def _check_number(name: str, value: Any, *, minimum: float, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        bound = "a number" if minimum == float("-inf") else f"a number >= {minimum:g}"
        raise ValueError(f"task option {name!r} must be {bound}, got {value!r}")


def validate_options(options: dict[str, Any]) -> dict[str, Any]:
    """Check option names and values; return them normalised.

    Raises:
        TypeError: for an unknown option name.
        ValueError: for a value the option cannot take.
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown task option {unknown[0]!r}; valid options: {', '.join(sorted(DEFAULTS))}")
    out = dict(options)
    if "name" in out:
        name = out["name"]
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"task option 'name' must be a non-empty str without '/', got {name!r}")
    if "retries" in out:
        r = out["retries"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise ValueError(f"task option 'retries' must be an int >= 0, got {r!r}")
    if "retry_delay" in out:
        d = out["retry_delay"]
        if isinstance(d, (list, tuple)):
            for x in d:
                _check_number("retry_delay", x, minimum=0)
            out["retry_delay"] = tuple(float(x) for x in d)
        else:
            _check_number("retry_delay", d, minimum=0)
    if "retry_backoff" in out:
        _check_number("retry_backoff", out["retry_backoff"], minimum=0)
    if "retry_jitter" in out:
        _check_number("retry_jitter", out["retry_jitter"], minimum=0)
    if "timeout" in out:
        t = out["timeout"]
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0):
            raise ValueError(f"task option 'timeout' must be a number > 0 or None, got {t!r}")
    if "retry_on" in out:
        ro = out["retry_on"]
        if isinstance(ro, type):
            ro = (ro,)
        if isinstance(ro, (tuple, list)):
            if not all(isinstance(x, type) and issubclass(x, BaseException) for x in ro):
                raise ValueError(f"task option 'retry_on' must be exception types or a predicate, got {ro!r}")
            ro = tuple(ro)
        elif not callable(ro):
            raise ValueError(f"task option 'retry_on' must be exception types or a predicate, got {ro!r}")
        out["retry_on"] = ro
    if "executor" in out:
        e = out["executor"]
        if e is not None and not isinstance(e, str):
            raise ValueError(f"task option 'executor' must be a route name (str), got {e!r}")
    for flag in ("cache", "typecheck"):
        if flag in out and not isinstance(out[flag], bool):
            raise ValueError(f"task option {flag!r} must be True or False, got {out[flag]!r}")
    if "chunksize" in out:
        c = out["chunksize"]
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise ValueError(f"task option 'chunksize' must be an int >= 1 or None, got {c!r}")
    if "buffer" in out:
        b = out["buffer"]
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"task option 'buffer' must be an int >= 1, got {b!r}")
    if "trigger" in out and out["trigger"] not in TRIGGERS:
        known = ", ".join(map(repr, TRIGGERS))
        raise ValueError(f"task option 'trigger' must be one of {known}, got {out['trigger']!r}")
    if "nout" in out:
        n = out["nout"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"task option 'nout' must be an int >= 1 or None, got {n!r}")
    if "tags" in out:
        tags = out["tags"]
        if isinstance(tags, str):
            tags = (tags,)
        if not all(isinstance(t, str) for t in tags):
            raise ValueError(f"task option 'tags' must be strings, got {tags!r}")
        out["tags"] = tuple(tags)
    if "resources" in out:
        res = out["resources"]
        if res is not None:
            if not isinstance(res, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) for k, v in res.items()
            ):
                raise ValueError(f"task option 'resources' must map names to numbers, got {res!r}")
            out["resources"] = dict(res)
    return out


class TaskOptions:
    """The resolved options of a node's task (defaults, section defaults, own options)."""

    __slots__ = tuple(DEFAULTS)

    name: str
    retries: int
    retry_delay: float | tuple[float, ...]
    retry_backoff: float
    retry_jitter: float
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool]
    timeout: float | None
    executor: str | None
    cache: bool
    typecheck: bool
    nout: int | None
    tags: tuple[str, ...]
    resources: dict[str, float] | None
    chunksize: int | None
    buffer: int
    trigger: str

    def __init__(self, values: dict[str, Any]) -> None:
        for k, v in DEFAULTS.items():
            object.__setattr__(self, k, values.get(k, v))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("TaskOptions is immutable; use task.options(...) for a copy")

    def to_dict(self) -> dict[str, Any]:
        """The options as a dict."""
        return {k: getattr(self, k) for k in DEFAULTS}

    def fingerprinted(self) -> dict[str, Any]:
        """The options a plan's fingerprint counts: all but those of
        :data:`LATER_OPTIONS` left at their default."""
        return {k: v for k, v in self.to_dict().items() if k not in LATER_OPTIONS or v != DEFAULTS[k]}

    def __repr__(self) -> str:
        changed = {k: getattr(self, k) for k, v in DEFAULTS.items() if getattr(self, k) != v}
        return f"TaskOptions({changed})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskOptions, (self.to_dict(),))


_NO_HINTS: dict[str, Any] = {}


class _Meta:
    """What a task knows about its function, worked out once per Task."""

    __slots__ = (
        "has_varargs",
        "hints",
        "kwonly",
        "max_fast",
        "max_pos",
        "n_required_pos",
        "params",
        "pos_params",
        "signature",
        "tuple_arity",
    )

    def __init__(self, fn: Callable[..., Any]) -> None:
        sig = inspect.signature(fn)
        self.signature = sig
        self.params = sig.parameters
        pos: list[str] = []
        required = 0
        self.has_varargs = False
        self.kwonly = False
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                pos.append(p.name)
                if p.default is p.empty:
                    required = len(pos)
            elif p.kind is p.VAR_POSITIONAL:
                self.has_varargs = True
            elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
                self.kwonly = True  # a required keyword-only parameter
        self.pos_params = tuple(pos)
        self.max_pos = len(pos)
        # most positional arguments a call may give and still be bound as is
        self.max_fast = sys.maxsize if self.has_varargs else len(pos)
        self.n_required_pos = required
        self.hints = _type_hints(fn)
        self.tuple_arity = _tuple_arity(self.hints.get("return"))


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Annotations with strings resolved; those that cannot be resolved are left out."""
    raw = getattr(fn, "__annotations__", None)
    if not raw:
        return _NO_HINTS
    try:
        return typing.get_type_hints(fn)
    except Exception:
        out: dict[str, Any] = {}
        globalns = getattr(fn, "__globals__", {})
        for name, ann in raw.items():
            if isinstance(ann, str):
                try:
                    ann = eval(ann, globalns)
                except Exception:
                    continue
            out[name] = ann
        return out


def _tuple_arity(ann: Any) -> int | None:
    if typing.get_origin(ann) is tuple:
        args = typing.get_args(ann)
        if args and Ellipsis not in args and args != ((),):
            return len(args)
    return None


class DecoratedFunction(wrapt.ObjectProxy):  # type: ignore[misc,type-arg]
    """A function decorated by dagexec (a :class:`Task` or a :class:`~dagexec.Section`):
    a proxy that passes for the function everywhere but in ``isinstance`` and pickles."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # The proxy would report the function's class, so cloudpickle would take a
        # Task or a Section for a plain function, pickle that by value and lose the
        # wrapper (and its options); reporting the wrapper's class makes it use
        # __reduce_ex__.
        return type(self)

    @property
    def fn(self) -> Callable[..., Any]:
        """The raw function."""
        return self.__wrapped__  # type: ignore[no-any-return]


class Task(DecoratedFunction):
    """A function decorated with :func:`task`.

    Calling it inside a :class:`~dagexec.Graph` returns a :class:`~dagexec.Node`;
    calling it anywhere else runs the function.
    """

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        if isinstance(fn, Task):
            options = {**fn._self_explicit, **options}
            fn = fn.__wrapped__
        if not callable(fn):
            raise TypeError(f"@task needs a callable, got {fn!r}")
        super().__init__(fn)
        self._self_explicit: dict[str, Any] = validate_options(options)
        self._self_name: str = str(self._self_explicit.get("name") or getattr(fn, "__name__", "task"))
        self._self_meta: _Meta | None = None
        self._self_fast: tuple[str, int, int, TaskOptions] | None = None
        self._self_resolved: dict[str, tuple[dict[str, Any] | None, TaskOptions]] = {}

    # -- identity --------------------------------------------------------------
    @property
    def task_name(self) -> str:
        """The name nodes of this task are keyed by (option ``name`` or ``__name__``)."""
        return self._self_name

    @property
    def explicit_options(self) -> dict[str, Any]:
        """The options given to this task itself (not the defaults)."""
        return dict(self._self_explicit)

    @property
    def meta(self) -> _Meta:
        """Signature facts, computed on first use."""
        meta = self._self_meta
        if meta is None:
            meta = self._self_meta = _Meta(self.__wrapped__)
        return meta

    def fast_facts(self) -> tuple[str, int, int, TaskOptions]:
        """What recording a call needs of this task, worked out on its first call:
        ``(name, lo, hi, options outside any section)``; a call with ``lo`` to ``hi``
        positional arguments and no keywords is bound as it is (``hi`` is -1 when a
        keyword-only parameter is required, so no call is)."""
        meta = self.meta
        hi = -1 if meta.kwonly else meta.max_fast
        fast = self._self_fast = (self._self_name, meta.n_required_pos, hi, self.resolve(None))
        return fast

    def resolve(self, defaults: dict[str, Any] | None, defaults_key: str | None = None) -> TaskOptions:
        """The options for a node of this task inside a scope with ``defaults``.

        Args:
            defaults: the task options the enclosing sections give.
            defaults_key: a text standing for the content of ``defaults`` (worked
                out here when not given).

        Returns:
            The resolved options; the same object for equal ``defaults``.
        """
        if not defaults:
            defaults, key = None, ""
        elif defaults_key is None:
            key = repr(sorted(defaults.items()))
        else:
            key = defaults_key
        # keyed by content, not id(): a scope's dict dies with its graph and its
        # id may come back for other defaults; the equality check covers reprs
        # that are equal for different values
        hit = self._self_resolved.get(key)
        if hit is not None and (hit[0] is defaults or hit[0] == defaults):
            return hit[1]
        merged = dict(defaults) if defaults else {}
        merged.pop("name", None)
        merged.update(self._self_explicit)
        merged["name"] = self.task_name
        opts = TaskOptions(merged)
        self._self_resolved[key] = (defaults, opts)
        return opts

    def options(self, **overrides: Any) -> Task:
        """A copy of this task with other options, e.g. ``clean.options(retries=2)``.

        Raises:
            TypeError: for an unknown option name.
            ValueError: for a value an option cannot take.
        """
        return Task(self.__wrapped__, {**self._self_explicit, **overrides})

    # -- calling ---------------------------------------------------------------
    #: inside a graph, record the call as a Node; anywhere else, run the function
    #: (one frame deep, the hot path of building: see ``dagexec._graph``)
    __call__ = _graph.call_task

    def map(self, *items: Any, product: bool = False, **kwargs: Any) -> Any:
        """One trial per item: ``task.map(items, **fixed)`` calls the task with each item
        as its first argument; ``task.map(x=xs, y=ys)`` maps every keyword, the lists
        zipped (of equal lengths), or crossed with ``product=True`` (the first keyword
        varying slowest); ``task.partial(**fixed).map(...)`` adds fixed keywords.

        Inside a graph, returns a Node for the list of results, in item order; the
        items, or each mapped list, are a Node whose value is a list (known only at run
        time) or a list.  Fixed arguments (Nodes or constants) are the same for every
        item.  Each item is its own trial, key ``task[k]``: retried, timed out and
        recorded on its own (``docs/dynamic.md``).  Outside a graph, the plain list
        comprehension.

        Raises:
            CallError: when the task's signature rejects the call (an unknown keyword
                is named, with the task's parameters).
            TypeError: for items given both ways, or ``product`` without mapped keywords.
        """
        if not items and "items" in kwargs and "items" not in self.meta.params:
            items = (kwargs.pop("items"),)  # task.map(items=xs): the first parameter, as before
        if not items:
            return self._map_by_name(kwargs, {}, product)
        if len(items) > 1 or product:
            raise TypeError("map: give one list of items for the first parameter, or mapped keywords (product=True)")
        from ._graph import current_graph

        graph = current_graph()
        if graph is None:
            fn = self.__wrapped__
            return [fn(item, **kwargs) for item in items[0]]
        return graph._add_map_call(self, items[0], kwargs)

    def partial(self, **fixed: Any) -> Partial:
        """This task with keywords fixed for every item of a map: ``.partial(y=2).map(x=xs)``."""
        return Partial(self, fixed)

    def _map_by_name(self, mapped: dict[str, Any], fixed: dict[str, Any], product: bool) -> Any:
        from ._graph import current_graph

        if not mapped:
            raise TypeError("map: give the items, or the mapped keywords (task.map(x=xs))")
        how = Mapped(tuple(mapped), product, tuple(mapped.values()))
        graph = current_graph()
        if graph is None:
            fn = self.__wrapped__
            return [fn(**fixed, **item) for item in named_items(how)]
        return graph._add_map_call(self, how, fixed)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Bind a call against the signature: canonical ``(args, kwargs)``.

        Raises:
            TypeError: when the signature rejects the call.
        """
        meta = self.meta
        if not kwargs and not meta.kwonly and meta.n_required_pos <= len(args) <= meta.max_fast:
            return args, kwargs
        ba = meta.signature.bind(*args, **kwargs)
        return ba.args, ba.kwargs

    # -- pickling --------------------------------------------------------------
    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        fn = self.__wrapped__
        found = module_attribute(fn)
        if found is not None:
            module, qualname, obj = found
            if obj is self:
                return (_import_task, (module, qualname))
            if isinstance(obj, Task) and obj.__wrapped__ is fn:
                # a copy with other options (task.options(...)): the raw function is
                # only reachable through the module's task (DESIGN §11)
                return (_import_task_copy, (module, qualname, self._self_explicit))
        return (_rebuild_task, (fn, self._self_explicit))

    def __copy__(self) -> Task:
        return Task(self.__wrapped__, self._self_explicit)

    def __deepcopy__(self, memo: dict[int, Any]) -> Task:
        return Task(self.__wrapped__, self._self_explicit)

    def __repr__(self) -> str:
        fn = self.__wrapped__
        return (
            f"<Task {self.task_name!r} {getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}>"
        )


def module_attribute(fn: Any) -> tuple[str, str, Any] | None:
    """``(module, qualname, object)`` found at ``fn``'s module path, when its module
    is importable by reference; None for ``__main__``, local functions and modules
    registered with cloudpickle to travel by value."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or not _by_reference(module):
        return None
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return module, qualname, obj


def _by_reference(module: str) -> bool:
    """Whether cloudpickle would pickle this module's functions by reference."""
    try:
        from cloudpickle import cloudpickle as _cp
    except ImportError:  # pragma: no cover
        return True
    registered = getattr(_cp, "_PICKLE_BY_VALUE_MODULES", ())
    return not any(module == m or module.startswith(m + ".") for m in registered)


def _import_task(module: str, qualname: str) -> Task:
    import importlib

    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _import_task_copy(module: str, qualname: str, options: dict[str, Any]) -> Task:
    return Task(_import_task(module, qualname).__wrapped__, options)


def _rebuild_task(fn: Callable[..., Any], options: dict[str, Any]) -> Task:
    return Task(fn, options)


@overload
def task(fn: F, /) -> F: ...
@overload
def task(fn: None = None, /, **options: Any) -> Callable[[F], F]: ...
def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a plain function a task: ``@task`` or ``@task(retries=3, timeout=60)``.

    Args:
        fn: the function (when used as ``@task`` without parentheses).
        **options: task options (DESIGN §2): ``name``, ``retries``, ``retry_delay``,
            ``retry_backoff``, ``retry_jitter``, ``retry_on``, ``timeout``, ``executor``,
            ``cache``, ``typecheck``, ``nout``, ``tags``, ``resources``, ``chunksize``, ``buffer``,
            ``trigger``.

    Returns:
        A :class:`Task`, or a decorator making one.

    Raises:
        TypeError: for an unknown option or a non-callable.
        ValueError: for a bad option value.

    Example::

        @task(retries=2)
        def fetch(url: str) -> bytes: ...
    """
    return decorator(Task, "task", fn, options)


W = TypeVar("W", bound=DecoratedFunction)


def decorator(
    cls: Callable[[Callable[..., Any], dict[str, Any]], W],
    word: str,
    fn: Callable[..., Any] | None,
    options: dict[str, Any],
) -> W | Callable[[Callable[..., Any]], W]:
    """What ``@word`` (``fn`` given) or ``@word(**options)`` (``fn`` None) makes: a
    ``cls`` wrapping ``fn``, or a decorator making one with ``options``."""
    if fn is not None:
        if options:
            raise TypeError(f"use @{word}(**options) or @{word}, not both")
        return cls(fn, {})
    validate_options(options)

    def decorate(f: Callable[..., Any]) -> W:
        return cls(f, options)

    return decorate


def raise_bad_call(task_name: str, exc: TypeError, key: str, site: str) -> typing.NoReturn:
    """Turn a signature mismatch into a :class:`CallError` at the user's line."""
    raise CallError(f"node {key!r}: {exc} in call to {task_name}() (called at {site})", key, site) from None
