"""The one container walker: every place that looks inside argument containers uses it.

Containers are ``list``, ``tuple``, ``set``, ``frozenset`` and ``dict`` (its values;
keys are left alone), recognised by exact type, and namedtuples (a ``tuple``
subclass with ``_fields``), rebuilt as ``type(v)(*items)``.  Anything else is a
*leaf*, including a subclass of one of those five types (an ``OrderedDict``, a
``defaultdict``, a ``list`` subclass): :func:`kind` reports it as :data:`SUBCLASS`
so that a caller can refuse it, and :func:`leaves` and :func:`exceeds` enter it
only when asked (``subclasses=True``); :func:`replace` never does, since it could
not rebuild it faithfully.

The depth of a value is the number of containers nested in it: a leaf is 0 deep,
``[1]`` is 1 and ``[[1]]`` is 2.  Any depth is walked without a RecursionError:
:func:`leaves`, :func:`exceeds` and :func:`at` never recurse, and :func:`replace`
recurses at most 100 levels, then goes on with an explicit stack.  :func:`replace`
stops with :class:`TooDeepError` past its ``max_depth``, and at a container that
holds itself (:func:`leaves` too; :func:`exceeds` just says such a value is too deep).

A *path* is a tuple of steps from a value down to one of its leaves: an index into
a list, tuple or namedtuple, a key of a dict, or, since set members have no
position, the member itself of a set or frozenset.  :func:`at` follows a path.

:func:`replace` is on the hot path of filling argument templates for every trial
with nested arguments.  What it does with a child is learnt once per type, so each
child costs one dict lookup; with ``types=`` the leaves of other types are kept
without calling ``fn``; a container in which nothing changed is returned as it is,
and a value that is no container goes straight to ``fn``.  :func:`replacer` does the
setting up once, for a caller that walks many small values the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterator
from typing import Any, Final, Literal, overload

from ._errors import DagexecError

__all__ = [
    "DICT",
    "FROZENSET",
    "LIST",
    "NAMEDTUPLE",
    "SET",
    "SUBCLASS",
    "TUPLE",
    "Path",
    "TooDeepError",
    "at",
    "exceeds",
    "kind",
    "leaves",
    "replace",
    "replacer",
]

LIST: Final = "list"
TUPLE: Final = "tuple"
SET: Final = "set"
FROZENSET: Final = "frozenset"
DICT: Final = "dict"
NAMEDTUPLE: Final = "namedtuple"
#: a subclass of list, tuple, set, frozenset or dict that is not a namedtuple: a leaf
SUBCLASS: Final = "subclass"

Path = tuple[Hashable, ...]

_BASES = (list, tuple, set, frozenset, dict)
_CACHE_MAX = 4096  # types remembered by _kinds before it starts again


class TooDeepError(DagexecError, ValueError):
    """A value's containers nest deeper than a walk allows, or a container holds itself.

    Attributes:
        limit: the deepest nesting allowed, or None when there was no limit and a
            container was met inside itself.
        depth: the depth reached (``limit + 1``), or None for a container inside itself.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.depth = None if limit is None else limit + 1
        if limit is None:
            super().__init__("containers nest without end: a container holds itself")
        else:
            super().__init__(f"containers nest more than {limit} deep")


_EXACT: dict[type, str | None] = {list: LIST, tuple: TUPLE, set: SET, frozenset: FROZENSET, dict: DICT}


def _classify(t: type) -> str | None:
    k = _EXACT.get(t)
    if k is not None:
        return k
    if issubclass(t, tuple) and hasattr(t, "_fields"):
        return NAMEDTUPLE
    return SUBCLASS if issubclass(t, _BASES) else None


# type -> its kind, learnt on first sight: one dict lookup after that.  Another thread
# may clear it at any time; a type missing is simply learnt again.
_kinds: dict[type, str | None] = dict(_EXACT)


def _learn(t: type) -> str | None:
    k = _classify(t)
    if len(_kinds) >= _CACHE_MAX:  # types made in a loop must not pile up
        _kinds.clear()
    _kinds[t] = k
    return k


def kind(value: Any) -> str | None:
    """What container ``value`` is, by its type.

    Returns:
        :data:`LIST`, :data:`TUPLE`, :data:`SET`, :data:`FROZENSET`, :data:`DICT` or
        :data:`NAMEDTUPLE` for a container the walker enters; :data:`SUBCLASS` for
        another subclass of those types (a leaf, which a caller may refuse); None for
        any other value.

    Raises:
        Nothing.
    """
    t = type(value)
    try:
        return _kinds[t]
    except KeyError:
        return _learn(t)


# -- replace --------------------------------------------------------------------------------

# What replace does with a leaf or container of a given type, learnt on first sight so
# that each child costs one dict lookup: _CALL (pass it to fn), None (keep it), or the
# kind of a container to walk.  One table per ``types`` given (None: every leaf).
_CALL: Final = "call"
_tables: dict[frozenset[type] | None, dict[type, str | None]] = {}


def _table(only: frozenset[type] | None) -> dict[type, str | None]:
    if len(_tables) >= 64:  # ``types`` made afresh on each call must not pile up
        _tables.clear()
    table: dict[type, str | None] = {}
    _tables[only] = table
    return table


def _action(table: dict[type, str | None], only: frozenset[type] | None, t: type) -> str | None:
    if only is not None and t in only:
        a: str | None = _CALL
    else:
        try:
            a = _kinds[t]
        except KeyError:
            a = _learn(t)
        if a is None or a is SUBCLASS:
            a = _CALL if only is None else None
    if len(table) >= _CACHE_MAX:
        table.clear()
    table[t] = a
    return a


@overload
def replace(
    value: Any,
    fn: Callable[[Any], Any],
    *,
    paths: Literal[False] = False,
    max_depth: int | None = None,
    copy: bool = False,
    set_fn: Callable[[Any], Any] | None = None,
    types: Collection[type] | None = None,
) -> Any: ...


@overload
def replace(
    value: Any,
    fn: Callable[[Any], Any],
    *,
    paths: Literal[True],
    max_depth: int | None = None,
    copy: bool = False,
    set_fn: Callable[[Any], Any] | None = None,
    types: Collection[type] | None = None,
) -> tuple[Any, list[Path]]: ...


def replace(
    value: Any,
    fn: Callable[[Any], Any],
    *,
    paths: bool = False,
    max_depth: int | None = None,
    copy: bool = False,
    set_fn: Callable[[Any], Any] | None = None,
    types: Collection[type] | None = None,
) -> Any:
    """``value`` with each leaf ``x`` replaced by ``fn(x)``, copying only what changed.

    A leaf counts as replaced when ``fn(x) is not x``.  A container in which no leaf
    was replaced is returned as it is (``replace(v, lambda x: x) is v``); the others
    are rebuilt with their own type.  A ``value`` that is itself a leaf gives ``fn(value)``.

    Args:
        value: any value.
        fn: called once for each leaf, in order (depth first, left to right; a set's
            members in its iteration order).
        paths: also return the path (in ``value``) of each replaced leaf, in order.
        max_depth: the deepest nesting allowed (``[[x]]`` is 2 deep); None for any.
        copy: rebuild every container, even where nothing changed (a snapshot that
            later changes to ``value`` do not reach).
        set_fn: called instead of ``fn`` for the leaves inside a set or frozenset (at
            any depth below it); the leaves it replaces are not listed in ``paths``.
        types: when given, only leaves of exactly these types (best a frozenset,
            made once) are passed to ``fn`` or ``set_fn``; the other leaves are kept
            without a call, which is much faster than testing the type inside ``fn``.
            A type listed here is a leaf even if it is a container type.

    Returns:
        The new value, or ``(new value, paths)`` when ``paths`` is true.

    Raises:
        TooDeepError: past ``max_depth``, or at a container that holds itself.

    Example::

        >>> replace([1, (2, {"k": 3})], lambda x: x * 10)
        [10, (20, {'k': 30})]
    """
    only: frozenset[type] | None = (
        types if types is None or type(types) is frozenset else frozenset(types)  # type: ignore[assignment]
    )
    try:
        table = _tables[only]
    except KeyError:
        table = _table(only)
    t = type(value)
    try:
        a = table[t]
    except KeyError:
        a = _action(table, only, t)
    if a is None or a is _CALL:
        new = value if a is None else fn(value)
        return (new, [] if new is value else [()]) if paths else new
    if max_depth is not None and max_depth < 1:
        raise TooDeepError(max_depth)
    if paths or set_fn is not None:
        return _replace_deep(value, a, fn, table, only, paths, max_depth, copy, set_fn, 0)
    return _replace(value, a, fn, table, only, 1, max_depth, copy)


def replacer(
    *, types: Collection[type] | None = None, copy: bool = False
) -> Callable[[Any, Callable[[Any], Any]], Any]:
    """:func:`replace` made ready for one ``types`` and ``copy``, for a hot path.

    ``replacer(types=T, copy=c)(value, fn)`` gives what ``replace(value, fn, types=T,
    copy=c)`` gives, without the setting up that :func:`replace` does on each call
    (which costs as much as walking a small container).  No paths, ``max_depth`` or
    ``set_fn``; a container that holds itself is a :class:`TooDeepError` as ever.

    Raises:
        Nothing here; the function made raises :class:`TooDeepError` as :func:`replace`.
    """
    only = None if types is None else frozenset(types)
    table: dict[type, str | None] = {}  # its own: _tables may drop one at any time

    def run(value: Any, fn: Callable[[Any], Any]) -> Any:
        t = type(value)
        try:
            a = table[t]
        except KeyError:
            a = _action(table, only, t)
        if a is None:
            return value
        if a is _CALL:
            return fn(value)
        return _replace(value, a, fn, table, only, 1, None, copy)

    return run


_BUDGET: Final = 100  # levels _replace walks by recursion before _replace_deep takes over


def _replace(
    value: Any,
    k: str,
    fn: Callable[[Any], Any],
    table: dict[type, str | None],
    only: frozenset[type] | None,
    depth: int,
    max_depth: int | None,
    copy: bool,
) -> Any:
    """:func:`replace` without paths or ``set_fn``, by recursion, for ``value`` (a
    container of kind ``k``) at nesting level ``depth``."""
    if depth >= _BUDGET:
        return _replace_deep(value, k, fn, table, only, False, max_depth, copy, None, depth - 1)
    # The dict loop and the sequence loop below are twins on purpose: merged into one
    # (``items()`` or ``enumerate``), a call on a 4-tuple took 15-50% longer here.
    if k is DICT:
        out_d: dict[Any, Any] | None = dict(value) if copy else None
        for key, x in value.items():
            t = type(x)
            try:
                a = table[t]
            except KeyError:
                a = _action(table, only, t)
            if a is _CALL:
                new = fn(x)
            elif a is None:
                continue
            elif max_depth is not None and depth >= max_depth:
                raise TooDeepError(max_depth)
            else:
                new = _replace(x, a, fn, table, only, depth + 1, max_depth, copy)
            if new is not x:
                if out_d is None:
                    out_d = value.copy()
                out_d[key] = new
        return value if out_d is None else out_d
    out: list[Any] | None = list(value) if copy else None
    i = -1
    for x in value:
        i += 1
        t = type(x)
        try:
            a = table[t]
        except KeyError:
            a = _action(table, only, t)
        if a is _CALL:
            new = fn(x)
        elif a is None:
            continue
        elif max_depth is not None and depth >= max_depth:
            raise TooDeepError(max_depth)
        else:
            new = _replace(x, a, fn, table, only, depth + 1, max_depth, copy)
        if new is not x:
            if out is None:
                out = list(value)
            out[i] = new
    if out is None:
        return value
    if k is LIST:
        return out
    if k is TUPLE:
        return tuple(out)
    if k is NAMEDTUPLE:
        return type(value)(*out)
    return set(out) if k is SET else frozenset(out)


# A frame of the walk in _replace_deep: the container, its kind, its children, the new
# children (None while none changed), the next child (while a child container is walked,
# that child), the dict's keys, whether it sits inside a set.
_F_VALUE, _F_KIND, _F_KIDS, _F_OUT, _F_NEXT, _F_KEYS, _F_IN_SET = range(7)


def _frame(value: Any, k: str, in_set: bool) -> list[Any]:
    if k is DICT:
        return [value, k, list(value.values()), None, 0, list(value), in_set]
    if k is LIST or k is TUPLE or k is NAMEDTUPLE:
        return [value, k, value, None, 0, None, in_set]
    return [value, k, list(value), None, 0, None, True]


def _step(f: list[Any], i: int) -> Hashable:
    k = f[_F_KIND]
    if k is DICT:
        return f[_F_KEYS][i]  # type: ignore[no-any-return]
    if k is SET or k is FROZENSET:
        return f[_F_KIDS][i]  # type: ignore[no-any-return]
    return i


def _path(stack: list[list[Any]], i: int) -> Path:
    """The path of child ``i`` of the innermost frame (made only for a leaf recorded,
    so that walking deep stays linear)."""
    return (*[_step(f, f[_F_NEXT]) for f in stack[:-1]], _step(stack[-1], i))


def _build(f: list[Any], copy: bool) -> Any:
    out = f[_F_OUT]
    if out is None:
        if not copy:
            return f[_F_VALUE]
        out = f[_F_KIDS]
    k = f[_F_KIND]
    if k is LIST:
        return list(out)
    if k is DICT:
        return dict(zip(f[_F_KEYS], out, strict=True))
    if k is NAMEDTUPLE:
        return type(f[_F_VALUE])(*out)
    if k is TUPLE:
        return tuple(out)
    return set(out) if k is SET else frozenset(out)


def _replace_deep(
    value: Any,
    k: str,
    fn: Callable[[Any], Any],
    table: dict[type, str | None],
    only: frozenset[type] | None,
    paths: bool,
    max_depth: int | None,
    copy: bool,
    set_fn: Callable[[Any], Any] | None,
    base: int,
) -> Any:
    """:func:`replace` by an explicit stack, for ``value`` (a container of kind ``k``)
    ``base`` levels down: any depth, and a container inside itself is a TooDeepError."""
    found: list[Path] = []
    stack = [_frame(value, k, k is SET or k is FROZENSET)]
    open_ids = {id(value)}
    while True:
        f = stack[-1]
        kids, i, in_set = f[_F_KIDS], f[_F_NEXT], f[_F_IN_SET]
        leaf_fn = set_fn if in_set and set_fn is not None else fn
        listed = paths and not (in_set and set_fn is not None)
        n = len(kids)
        while i < n:
            x = kids[i]
            t = type(x)
            try:
                a = table[t]
            except KeyError:
                a = _action(table, only, t)
            if a is not _CALL:
                if a is None:
                    i += 1
                    continue
                break  # a container
            new = leaf_fn(x)
            if new is not x:
                if f[_F_OUT] is None:
                    f[_F_OUT] = list(kids)
                f[_F_OUT][i] = new
                if listed:
                    found.append(_path(stack, i))
            i += 1
        f[_F_NEXT] = i
        if i < n:  # walk the container first
            if (max_depth is not None and base + len(stack) >= max_depth) or id(x) in open_ids:
                raise TooDeepError(max_depth)
            open_ids.add(id(x))
            assert a is not None
            stack.append(_frame(x, a, in_set))
            continue
        stack.pop()
        open_ids.discard(id(f[_F_VALUE]))
        new = _build(f, copy)
        if not stack:
            return (new, found) if paths else new
        parent = stack[-1]
        j = parent[_F_NEXT]
        if new is not parent[_F_KIDS][j]:
            if parent[_F_OUT] is None:
                parent[_F_OUT] = list(parent[_F_KIDS])
            parent[_F_OUT][j] = new
        parent[_F_NEXT] = j + 1


# -- reading --------------------------------------------------------------------------------


def _children(value: Any, k: str | None, subclasses: bool) -> Any:
    """The children of ``value`` if the walk enters it, else None."""
    if k is None or (k is SUBCLASS and not subclasses):
        return None
    return value.values() if isinstance(value, dict) else value


def leaves(
    value: Any,
    pred: Callable[[Any], bool] | None = None,
    *,
    paths: bool = False,
    subclasses: bool = False,
) -> Iterator[Any]:
    """The leaves of ``value`` for which ``pred`` is true (every leaf without one), in order.

    Args:
        value: any value; a leaf yields itself (path ``()``).
        pred: which leaves to yield; None for all.
        paths: yield ``(path, leaf)`` pairs instead of leaves.
        subclasses: enter subclasses of the container types as well (a dict
            subclass by its values), instead of treating them as leaves.

    Returns:
        An iterator, depth first and left to right, walking as it is consumed.

    Raises:
        TooDeepError: at a container that holds itself (with ``limit`` None).
    """
    if _children(value, kind(value), subclasses) is None:
        if pred is None or pred(value):
            yield ((), value) if paths else value
        return
    # one entry per open container: its id, the step to it, its (step, child) pairs
    stack: list[tuple[int, Hashable, Iterator[tuple[Hashable, Any]]]] = [(id(value), None, _steps(value))]
    open_ids = {id(value)}
    while stack:
        it = stack[-1][2]
        for step, x in it:
            try:  # kind(x), inline: this loop is on compile's path
                k = _kinds[type(x)]
            except KeyError:
                k = _learn(type(x))
            if k is not None and (subclasses or k is not SUBCLASS):
                if id(x) in open_ids:
                    raise TooDeepError(None)
                open_ids.add(id(x))
                stack.append((id(x), step, _steps(x)))
                break
            if pred is None or pred(x):
                yield ((*[e[1] for e in stack[1:]], step), x) if paths else x
        else:
            open_ids.discard(stack.pop()[0])


def _steps(value: Any) -> Iterator[tuple[Hashable, Any]]:
    if isinstance(value, dict):
        return iter(value.items())
    if isinstance(value, (set, frozenset)):
        return ((x, x) for x in value)
    return enumerate(value)


def exceeds(value: Any, limit: int, *, subclasses: bool = False) -> bool:
    """Whether containers nest in ``value`` more than ``limit`` deep (``[[1]]`` is 2).

    Args:
        value: any value.
        limit: the deepest nesting allowed.
        subclasses: count subclasses of the container types as containers too.

    Returns:
        True as soon as a container deeper than ``limit`` is found.

    Raises:
        Nothing: the walk is iterative and stops at ``limit + 1``, so a container
        that holds itself is simply too deep.
    """
    kids = _children(value, kind(value), subclasses)
    if kids is None:
        return limit < 0
    if limit < 1:
        return True
    stack: list[tuple[Any, int]] = [(kids, 1)]
    while stack:
        kids, depth = stack.pop()
        for x in kids:
            sub = _children(x, kind(x), subclasses)
            if sub is not None:
                if depth >= limit:
                    return True
                stack.append((sub, depth + 1))
    return False


def at(value: Any, path: Path) -> Any:
    """The leaf (or container) found by following ``path`` down from ``value``.

    Args:
        value: the value the path was taken in.
        path: steps as :func:`leaves` and :func:`replace` give them.

    Returns:
        What sits at the end of the path; ``value`` itself for ``()``.

    Raises:
        KeyError: a step names no dict key or no member of a set.
        IndexError: a step is past the end of a list or tuple.
    """
    for step in path:
        if isinstance(value, (set, frozenset)):
            if step not in value:
                raise KeyError(step)
            value = step
        else:
            value = value[step]
    return value
