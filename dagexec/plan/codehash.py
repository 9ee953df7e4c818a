"""A hash of a function's code taken by value, for cache keys (DESIGN §7).

Nothing is run: the hash is read from code objects and the values they refer to.

Rules:

- Unwrapping: a :class:`~dagexec.Task` is replaced by its raw function (``task.fn``),
  and any other callable with ``__wrapped__`` by what it wraps. A bound method
  contributes its ``__func__`` and its ``__self__``; a ``functools.partial`` its
  ``func``, ``args`` and ``keywords``; ``staticmethod``, ``classmethod`` and
  ``property`` objects the functions they hold. A callable object without
  ``__code__`` contributes its class (so its ``__call__`` is reached when the class
  is from a by-value module) and its state, or, for a class from elsewhere, the
  class by reference followed by ``value_token`` of the object.
- A function's own digest covers its code object: ``co_code``, ``co_consts`` (nested
  code objects recursively, other constants by ``value_token``), ``co_names``,
  ``co_varnames``, ``co_freevars``, ``co_cellvars``, ``co_argcount``,
  ``co_posonlyargcount``, ``co_kwonlyargcount``, ``co_flags`` and the exception table
  (Python 3.11+); its ``__defaults__`` and ``__kwdefaults__``; the contents of its
  closure cells; and the globals its code reads, including the code of its
  comprehensions, lambdas and inner functions: every name of those ``co_names`` found
  in ``fn.__globals__`` (builtins are not hashed). It leaves out ``co_filename``,
  ``co_firstlineno``, line tables and the function's name, qualname and module, so
  moving or renaming code keeps the digest.
- By-value modules: a module that ``module_kind`` calls ``"user"``, ``__main__`` and
  ``__mp_main__``, and a module with no file that is not built-in or in the standard
  library. A function or class from one is *reached*: hashed by value as well, with
  its own digest in :func:`code_parts` and in the digest. A reached class's own digest
  covers its bases (by these same rules) and its ``__dict__``: functions,
  staticmethods, classmethods and properties are reached; other entries count by
  value, except ``__dunder__``/``_sunder_`` entries that are not callable (Python and
  metaclasses make those). An instance of such a class counts by its class and the
  state ``__reduce_ex__(4)`` gives.
- By reference: a function or class from an installed distribution contributes
  ``installed:<distribution>==<version>:<module>.<qualname>``; from the standard
  library ``stdlib:<module>.<qualname>``; from dagexec ``dagexec==<version>:<qualname>``.
  A built-in method bound to an object (``CACHE.get``) contributes its qualname and
  the object.
- A module object: a by-value module contributes, for each name of the code's
  ``co_names`` that is in the module, what that attribute contributes (``import
  helpers`` then ``helpers.f()`` reaches ``helpers.f``); an installed module
  ``installed:<distribution>==<version>:<module>``; a standard library module
  ``stdlib:<module>``; dagexec's ``dagexec==<version>:<module>``.
- Lists, tuples, dicts, sets and frozensets are walked with these rules (dicts in
  insertion order, sets sorted); a ``__slots__`` descriptor contributes its name; any
  other value contributes ``value_token(value)``.
- Where a function refers to a reached function or class, its own digest holds only
  a placeholder, ``@k`` for the k-th distinct one it refers to, so a change to a
  helper changes the helper's own digest and not its callers'. :func:`code_digest`
  is SHA-256 over the reachable graph numbered in breadth-first order from ``fn``:
  one line per reached function, its own digest then the numbers its placeholders
  stand for. The numbering depends on the code only, cycles (recursion, a method
  reaching its class) end, and swapping which helper a name or a list slot refers to
  changes the digest.
- A value that does not pickle (a lock, a connection) has no stable digest: the
  function that refers to it (by a global, a closure cell, a default, or through an
  object it reaches) gets a *problem* naming the function, the reference and the
  type, and :func:`code_digest` raises :class:`~dagexec.plan.fingerprint.NoToken` with
  it, so such code never has a cache key (two locks would otherwise look the same).
  :func:`code_parts` still lists the function, for ``diff``.
- Stability: no ``id()``, file path, line number or set iteration order is hashed,
  so digests are the same across processes, machines, folders and
  ``PYTHONHASHSEED`` values.
- Memoized per object (by id, checked by identity, holding the object) until
  :func:`forget`, which the cache calls before it computes a plan's keys: a plan of
  10,000 nodes sharing 10 functions hashes each once, and a global rebound (or a
  helper redefined) between two runs is seen by the second.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import types
from collections.abc import Callable
from typing import Any

from .._task import Task
from .._version import __version__ as dagexec_version
from .portable import INSTALLED, STDLIB, USER, _distribution_of, module_kind
from .tokens import NoToken, code_object_token, global_names, value_token

__all__ = [
    "code_digest",
    "code_parts",
    "forget",
]

_SIMPLE = (type(None), bool, int, float, complex, str, bytes)
_WALKED = (list, tuple, dict, set, frozenset, types.ModuleType)
_VALUE, _DAGEXEC = "value", "dagexec"


def code_digest(fn: Callable[..., Any], strict: bool = True) -> str:
    """Hex SHA-256 standing for ``fn``'s code by value and everything it reaches.

    Args:
        fn: a function, :class:`~dagexec.Task`, bound method, ``functools.partial``
            or other callable.
        strict: raise when the code refers to a value that does not pickle; with
            False, such values count by their type alone (``diff`` compares plans so).

    Returns:
        64 hex digits, equal for code that computes the same (see the module rules).

    Raises:
        NoToken: with ``strict``, naming the first reference to a value that does not
            pickle (``"mod:fn reads global lock: _thread.lock does not pickle"``).
        RecursionError: for values nested deeper than the interpreter's recursion limit.
    """
    digest, _, problems = _root(fn)
    if strict and problems:
        raise NoToken(problems[0])
    return digest


def code_parts(fn: Callable[..., Any]) -> tuple[tuple[str, str], ...]:
    """``(("module:qualname", own_digest), ...)``, sorted: ``fn`` and every function it
    reaches by value, each with the digest of its own code alone (not of what it
    reaches). Used to say WHICH function changed between two versions of a plan.

    Reached classes are listed too. A ``fn`` that is not a function or class hashed by
    value (a partial, a bound method, a library function) is listed as a whole, its
    name followed by its type's, e.g. ``"functools:partial <partial>"``.

    Raises:
        RecursionError: for values nested deeper than the interpreter's recursion limit.
    """
    return _root(fn)[1]


def forget() -> None:
    """Drop every memoized digest, so the next call hashes afresh and sees globals
    rebound and helpers redefined since (a notebook).  Cache keys call it once per
    computation: the memo spans one plan's keys, not the process."""
    _nodes.clear()
    _roots.clear()


# -- the reachable graph ------------------------------------------------------------------


class _Node:
    """One function or class hashed by value."""

    __slots__ = ("edges", "name", "own", "problems")

    def __init__(self, name: str, own: str, edges: list[Any], problems: list[str]) -> None:
        self.name = name  # "module:qualname", for code_parts only
        self.own = own  # hex digest of its own code, with @k placeholders for edges
        self.edges = edges  # the reached objects @0, @1, ... stand for
        self.problems = problems  # references to values that do not pickle


_Parts = tuple[tuple[str, str], ...]
_nodes: dict[int, tuple[Any, _Node]] = {}
_roots: dict[int, tuple[Any, str, _Parts, tuple[str, ...]]] = {}


def _root(fn: Any) -> tuple[str, _Parts, tuple[str, ...]]:
    hit = _roots.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1], hit[2], hit[3]
    start = _unwrap(fn)
    order, index, lines = [start], {id(start): 0}, []
    for obj in order:  # grows while iterating: breadth-first numbering
        node = _node(obj)
        for target in node.edges:
            if id(target) not in index:
                index[id(target)] = len(order)
                order.append(target)
        lines.append(f"{node.own} {','.join(str(index[id(t)]) for t in node.edges)}")
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    nodes = [_node(obj) for obj in order]
    parts = tuple(sorted({(n.name, n.own) for n in nodes}))
    problems = tuple(p for n in nodes for p in n.problems)
    _roots[id(fn)] = (fn, digest, parts, problems)
    return digest, parts, problems


def _node(obj: Any) -> _Node:
    hit = _nodes.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    if isinstance(obj, types.FunctionType) and _kind(obj.__module__) == _VALUE:
        node = _function_node(obj)
    elif isinstance(obj, type) and _kind(obj.__module__) == _VALUE:
        node = _class_node(obj)
    else:  # a root hashed by reference or by value as a whole
        t = type(obj)
        module = getattr(obj, "__module__", None) or t.__module__
        name = f"{module}:{getattr(obj, '__qualname__', t.__qualname__)} <{t.__name__}>"
        ctx = _Context(frozenset(), name.partition(" ")[0])
        node = _Node(name, _sha("value", ctx.ref(obj)), ctx.edges, ctx.problems)
    _nodes[id(obj)] = (obj, node)
    return node


def _function_node(fn: types.FunctionType) -> _Node:
    code = fn.__code__
    me = f"{fn.__module__}:{fn.__qualname__}"
    ctx = _Context(frozenset(global_names(code)), f"{me} has a default")
    lines = [code_object_token(code), "defaults:" + ctx.ref(fn.__defaults__ or ())]
    lines.append("kwdefaults:" + ctx.ref(dict(sorted((fn.__kwdefaults__ or {}).items()))))
    for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
        try:
            contents = cell.cell_contents
        except ValueError:  # a cell not yet assigned
            lines.append(f"closure:{name}:empty")
        else:
            ctx.where = f"{me} closes over {name}"
            lines.append(f"closure:{name}={ctx.ref(contents)}")
    g = fn.__globals__
    for name in sorted(ctx.names):
        if name in g:
            ctx.where = f"{me} reads global {name}"
            lines.append(f"global:{name}={ctx.ref(g[name])}")
    return _Node(me, _sha("function", *lines), ctx.edges, ctx.problems)


def _class_node(cls: type) -> _Node:
    me = f"{cls.__module__}:{cls.__qualname__}"
    ctx = _Context(frozenset(), me)
    lines = ["bases:" + ctx.ref(cls.__bases__)]
    for name, value in sorted(vars(cls).items()):
        made_by_python = name[:1] == "_" and name[-1:] == "_"
        if not made_by_python or callable(value) or isinstance(value, _DESCRIPTORS):
            ctx.where = f"{me} has attribute {name}"
            lines.append(f"{name}={ctx.ref(value)}")
    return _Node(me, _sha("class", *lines), ctx.edges, ctx.problems)


_DESCRIPTORS = (staticmethod, classmethod, property, functools.cached_property)


def _sha(*lines: str) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# -- what a referenced value contributes --------------------------------------------------


class _Context:
    """The edges met while working out one node's own digest, and the references to
    values that do not pickle (its problems)."""

    __slots__ = ("active", "edges", "index", "names", "problems", "where")

    def __init__(self, names: frozenset[str], where: str = "") -> None:
        self.names = names  # attributes of by-value modules to follow
        self.edges: list[Any] = []
        self.index: dict[int, int] = {}  # id(edge) -> its k; the edges list keeps them alive
        self.active: set[int] = set()  # containers, modules and objects being walked
        self.problems: list[str] = []
        self.where = where  # the reference being walked, for problems

    def value(self, v: Any) -> str:
        """``value_token(v)``; a value that does not pickle is a problem (and counts
        by its type)."""
        try:
            return value_token(v, strict=True)
        except NoToken as exc:
            self.problems.append(f"{self.where}: {exc}")
            return value_token(v)

    def edge(self, obj: Any) -> str:
        k = self.index.get(id(obj))
        if k is None:
            k = self.index[id(obj)] = len(self.edges)
            self.edges.append(obj)
        return f"@{k}"

    def ref(self, v: Any) -> str:
        t = type(v)
        if t in _SIMPLE:
            return repr(v)
        if t not in _WALKED:
            unwrapped = _unwrap(v)
            if unwrapped is not v:
                return self.ref(unwrapped)
        if t in _WALKED or _by_value_instance(v):
            if id(v) in self.active:
                return "cycle"
            self.active.add(id(v))
            try:
                return self._walk(v)
            finally:
                self.active.discard(id(v))
        return self._callable(v)

    def _walk(self, v: Any) -> str:
        t = type(v)
        if t is list or t is tuple:
            return f"{t.__name__}({','.join(self.ref(x) for x in v)})"
        if t is dict:
            return "dict(" + ",".join(f"{self.ref(k)}:{self.ref(x)}" for k, x in v.items()) + ")"
        if t is set or t is frozenset:
            return f"{t.__name__}({','.join(sorted(self.ref(x) for x in v))})"
        if t is types.ModuleType:
            return self._module(v)
        try:
            reduced = v.__reduce_ex__(4)
        except Exception:
            return f"object({self.ref(t)},{self.value(v)})"
        if isinstance(reduced, str):
            return f"object({self.ref(t)},{reduced})"
        state = [*reduced[:3], *(None if x is None else list(x) for x in reduced[3:5])]
        return f"object({self.ref(t)},{self.ref(state)})"

    def _module(self, m: types.ModuleType) -> str:
        kind = _kind(m.__name__)
        if kind != _VALUE:
            return _by_reference(kind, m.__name__, None)
        d = vars(m)
        return "module(" + ",".join(f"{a}={self.ref(d[a])}" for a in sorted(self.names) if a in d) + ")"

    def _callable(self, v: Any) -> str:
        if isinstance(v, types.MethodType):
            return f"method({self.ref(v.__func__)},{self.ref(v.__self__)})"
        if isinstance(v, (staticmethod, classmethod)):
            return f"{type(v).__name__}({self.ref(v.__func__)})"
        if isinstance(v, property):
            return f"property({self.ref(v.fget)},{self.ref(v.fset)},{self.ref(v.fdel)})"
        if isinstance(v, functools.cached_property):
            return f"cached_property({self.ref(v.func)})"
        if isinstance(v, functools.partial):
            return (
                f"partial({self.ref(v.func)},{self.ref(v.args)},{self.ref(dict(sorted(v.keywords.items())))})"
            )
        if isinstance(v, (types.FunctionType, type)):
            kind = _kind(v.__module__)
            return self.edge(v) if kind == _VALUE else _by_reference(kind, v.__module__, v.__qualname__)
        if isinstance(v, types.BuiltinFunctionType):
            owner = v.__self__
            if owner is None or isinstance(owner, types.ModuleType):
                return _by_reference(_kind(v.__module__), v.__module__ or "", v.__qualname__)
            return f"builtin_method({v.__qualname__},{self.ref(owner)})"
        if isinstance(v, (types.MemberDescriptorType, types.GetSetDescriptorType)):
            return f"{type(v).__name__}:{v.__name__}"  # a __slots__ entry
        if callable(v):
            t = type(v)
            return f"{_by_reference(_kind(t.__module__), t.__module__, t.__qualname__)}|{self.value(v)}"
        return self.value(v)


def _unwrap(fn: Any) -> Any:
    """The raw function behind a Task or a chain of ``__wrapped__``."""
    for _ in range(100):  # a proxy may wrap itself
        if isinstance(fn, Task):
            fn = fn.fn
            continue
        if isinstance(fn, (type, types.MethodType, staticmethod, classmethod)) or not callable(fn):
            return fn
        try:
            inner = getattr(fn, "__wrapped__", None)
        except Exception:
            return fn
        if inner is None or inner is fn:
            return fn
        fn = inner
    return fn


def _by_value_instance(v: Any) -> bool:
    t = type(v)
    return not issubclass(t, (type, types.FunctionType)) and _kind(t.__module__) == _VALUE


# -- where code comes from ----------------------------------------------------------------


def _kind(module: str | None) -> str:
    """``"value"``, ``"installed"``, ``"stdlib"`` or ``"dagexec"`` for a module name."""
    if not module or module in ("__main__", "__mp_main__"):
        return _VALUE
    if module == "dagexec" or module.startswith("dagexec."):
        return _DAGEXEC
    m = sys.modules.get(module)
    if isinstance(getattr(m, "__file__", None), str):
        kind = module_kind(module, m)
        if kind in (USER, INSTALLED, STDLIB):
            return _VALUE if kind == USER else kind
    if module.partition(".")[0] in sys.stdlib_module_names or module in sys.builtin_module_names:
        return STDLIB
    return _VALUE


def _by_reference(kind: str, module: str, qualname: str | None) -> str:
    name = module if qualname is None else f"{module}.{qualname}"
    if kind == INSTALLED:
        return f"installed:{_installed(module)}:{name}"
    if kind == _DAGEXEC:
        return f"dagexec=={_installed('dagexec')}:{qualname or module}"
    if kind == STDLIB:
        return f"stdlib:{name}"
    return f"ref:{name}"  # a compiled extension in the user's own tree


@functools.cache
def _installed(module: str) -> str:
    """``distribution==version`` for the distribution providing ``module`` (dagexec: its version)."""
    if module == "dagexec":
        return dagexec_version
    import importlib.metadata

    dist = _distribution_of(module) or module.partition(".")[0]
    try:
        version = importlib.metadata.version(dist)
    except Exception:
        version = "unknown"
    return f"{dist}=={version}"


def _token(value: Any) -> str:
    """What ``value`` contributes where a function refers to it (``@k`` for reached code)."""
    return _Context(frozenset()).ref(value)
