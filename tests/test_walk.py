"""The one container walker (``dagexec._walk``): what it enters, what it rebuilds,
paths, depth limits and self-holding containers, checked against plain recursive
reference walks on generated values."""

from __future__ import annotations

import collections
import sys
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagexec import DagexecError
from dagexec import _walk as W
from dagexec._walk import TooDeepError, at, exceeds, kind, leaves, replace, replacer

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Mark:
    """A leaf to replace; hashable by identity, so it can sit in sets."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Mark({self.n})"


P = collections.namedtuple("P", "x y")


class Q(NamedTuple):
    a: Any
    b: Any = 0


class Done:
    """What a Mark becomes: hashable by value, so results compare with ``==``."""

    __slots__ = ("how", "n")

    def __init__(self, n: int, how: str = "fn") -> None:
        self.n, self.how = n, how

    def __eq__(self, other: object) -> bool:
        return type(other) is Done and (self.n, self.how) == (other.n, other.how)

    def __hash__(self) -> int:
        return hash((self.n, self.how))

    def __repr__(self) -> str:
        return f"Done({self.n}, {self.how!r})"


def swap(x: Any) -> Any:
    """Marks become Done; every other leaf stays the same object."""
    return Done(x.n) if type(x) is Mark else x


def swap_in_set(x: Any) -> Any:
    return Done(x.n, "set") if type(x) is Mark else x


# -- reference walks, written the plain recursive way --------------------------------------


def is_namedtuple(v: Any) -> bool:
    return isinstance(v, tuple) and hasattr(v, "_fields")


def ref_replace(v: Any, fn: Any) -> Any:
    t = type(v)
    if t in (list, tuple, set, frozenset):
        return t(ref_replace(x, fn) for x in v)
    if t is dict:
        return {k: ref_replace(x, fn) for k, x in v.items()}
    if is_namedtuple(v):
        return t(*[ref_replace(x, fn) for x in v])
    return fn(v)


def ref_leaves(v: Any) -> list[Any]:
    t = type(v)
    if t in (list, tuple, set, frozenset) or is_namedtuple(v):
        return [leaf for x in v for leaf in ref_leaves(x)]
    if t is dict:
        return [leaf for x in v.values() for leaf in ref_leaves(x)]
    return [v]


def ref_depth(v: Any) -> int:
    t = type(v)
    if t in (list, tuple, set, frozenset) or is_namedtuple(v):
        return 1 + max((ref_depth(x) for x in v), default=0)
    if t is dict:
        return 1 + max((ref_depth(x) for x in v.values()), default=0)
    return 0


def shape(v: Any) -> Any:
    """A comparable picture of ``v`` that tells list, tuple, namedtuple and set types apart."""
    t = type(v)
    if t in (set, frozenset):
        return (t.__name__, sorted((shape(x) for x in v), key=repr))
    if t in (list, tuple) or is_namedtuple(v):
        return (t.__name__, [shape(x) for x in v])
    if t is dict:
        return ("dict", [(k, shape(x)) for k, x in v.items()])
    return (t.__name__, id(v) if t is Mark else (v.n, v.how) if t is Done else v)


def has_mark(v: Any) -> bool:
    return any(type(leaf) is Mark for leaf in ref_leaves(v))


def assert_shared(old: Any, new: Any) -> None:
    """Every container holding no Mark is the very object it was; the others are new."""
    t = type(old)
    if not (t in (list, tuple, set, frozenset, dict) or is_namedtuple(old)):
        return
    if not has_mark(old):
        assert new is old
        return
    assert new is not old and type(new) is t
    if t in (set, frozenset):
        return  # members have no position to pair them by
    pairs = zip(old.values(), new.values(), strict=True) if t is dict else zip(old, new, strict=True)
    for o, n in pairs:
        assert_shared(o, n)


# -- generated values ----------------------------------------------------------------------


def recorder(seen: list[Any], then: Any = lambda x: x) -> Any:
    """A replacing function that notes each leaf it is given, then applies ``then``."""

    def fn(x: Any) -> Any:
        seen.append(x)
        return then(x)

    return fn


_counter = iter(range(10**9))
marks = st.builds(lambda: Mark(next(_counter)))
scalars = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.floats(allow_nan=False), marks)


def _hashables(children: Any) -> Any:
    return st.one_of(
        st.tuples(children, children),
        st.frozensets(children, max_size=3),
        st.builds(P, children, children),
    )


hashables = st.recursive(st.one_of(st.integers(-5, 5), st.text(max_size=3), marks), _hashables, max_leaves=8)


def _containers(children: Any) -> Any:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=2), children, max_size=4),
        st.builds(P, children, children),
        st.builds(Q, children, children),
        st.sets(hashables, max_size=3),
        st.frozensets(hashables, max_size=3),
    )


values = st.recursive(scalars, _containers, max_leaves=25)


# -- properties ----------------------------------------------------------------------------


@SETTINGS
@given(values)
def test_replace_with_identity_returns_the_same_object(v: Any) -> None:
    assert replace(v, lambda x: x) is v
    assert replace(v, lambda x: x, types=frozenset({Mark})) is v
    new, paths = replace(v, lambda x: x, paths=True)
    assert new is v and paths == []


@SETTINGS
@given(values)
def test_replace_equals_the_reference_and_copies_only_what_changed(v: Any) -> None:
    expected = shape(ref_replace(v, swap))
    for new in (
        replace(v, swap),
        replace(v, swap, types={Mark}),
        replace(v, swap, paths=True)[0],
    ):
        assert shape(new) == expected
        assert_shared(v, new)


@SETTINGS
@given(values)
def test_copy_rebuilds_every_container(v: Any) -> None:
    new = replace(v, swap, copy=True)
    assert shape(new) == shape(ref_replace(v, swap))
    stack = [(v, new)]
    while stack:
        old, cur = stack.pop()
        t = type(old)
        if t in (list, tuple, set, frozenset, dict) or is_namedtuple(old):
            assert type(cur) is t
            if t is list or t is dict or t is set:  # mutable: must be a copy to be a snapshot
                assert cur is not old
            if t is dict:
                stack.extend(zip(old.values(), cur.values(), strict=True))
            elif t not in (set, frozenset):
                stack.extend(zip(old, cur, strict=True))


@SETTINGS
@given(values)
def test_replacer_gives_what_replace_gives(v: Any) -> None:
    for copy in (False, True):
        for types in (None, {Mark}):
            seen_r: list[Any] = []
            seen_p: list[Any] = []
            by_replace = replace(v, recorder(seen_r, swap), copy=copy, types=types)
            by_replacer = replacer(types=types, copy=copy)(v, recorder(seen_p, swap))
            assert shape(by_replacer) == shape(by_replace)
            assert seen_p == seen_r
            if copy:
                assert (by_replacer is v) == (by_replace is v)
            else:
                assert_shared(v, by_replacer)


@SETTINGS
@given(values)
def test_fn_sees_each_leaf_once_in_the_order_leaves_gives(v: Any) -> None:
    seen: list[Any] = []
    replace(v, recorder(seen))
    assert [id(x) for x in seen] == [id(x) for x in leaves(v)]
    assert [id(x) for x in leaves(v)] == [id(x) for x in ref_leaves(v)]
    assert [id(x) for x in leaves(v, lambda x: type(x) is Mark)] == [
        id(x) for x in ref_leaves(v) if type(x) is Mark
    ]


@SETTINGS
@given(values)
def test_paths_and_at_round_trip(v: Any) -> None:
    new, paths = replace(v, swap, paths=True)
    pairs = list(leaves(v, lambda x: type(x) is Mark, paths=True))
    assert paths == [p for p, _ in pairs]
    for p, leaf in pairs:
        assert at(v, p) is leaf
        if not any(isinstance(at(v, p[:i]), (set, frozenset)) for i in range(len(p))):
            assert at(new, p) == swap(leaf)  # positions are the same in the new value
    for p, leaf in leaves(v, paths=True):
        assert at(v, p) is leaf


@SETTINGS
@given(values)
def test_set_fn_takes_the_leaves_under_sets_and_keeps_them_out_of_paths(v: Any) -> None:
    new, paths = replace(v, swap, paths=True, set_fn=swap_in_set)
    for p in paths:
        assert not any(isinstance(at(v, p[:i]), (set, frozenset)) for i in range(len(p)))
        assert at(new, p) == swap(at(v, p))
    outside, inside = positions(v)
    assert paths == outside
    assert sorted(x.n for x in ref_leaves(new) if type(x) is Done and x.how == "set") == sorted(
        x.n for x in inside
    )
    assert all(type(leaf) is not Mark for leaf in ref_leaves(new))


def positions(v: Any) -> tuple[list[Any], list[Mark]]:
    """The paths of the Marks not under a set, and the Marks under one (recursively)."""
    outside: list[Any] = []
    inside: list[Mark] = []

    def walk(x: Any, path: tuple[Any, ...], in_set: bool) -> None:
        t = type(x)
        if t in (set, frozenset):
            for m in x:
                walk(m, (*path, m), True)
        elif t is dict:
            for k, c in x.items():
                walk(c, (*path, k), in_set)
        elif t in (list, tuple) or is_namedtuple(x):
            for i, c in enumerate(x):
                walk(c, (*path, i), in_set)
        elif t is Mark:
            (inside.append(x) if in_set else outside.append(path))

    walk(v, (), False)
    return outside, inside


@SETTINGS
@given(values)
def test_exceeds_agrees_with_a_recursive_depth(v: Any) -> None:
    d = ref_depth(v)
    for limit in range(d + 2):
        assert exceeds(v, limit) is (d > limit)
    if d:
        with pytest.raises(TooDeepError):
            replace(v, swap, max_depth=d - 1)
    assert shape(replace(v, swap, max_depth=max(d, 1))) == shape(ref_replace(v, swap))


# -- kinds ---------------------------------------------------------------------------------


class MyList(list):  # type: ignore[type-arg]
    pass


class MyTuple(tuple):  # type: ignore[type-arg]
    pass


class MySet(set):  # type: ignore[type-arg]
    pass


class PlusP(P):
    """A namedtuple subclass: still a namedtuple."""

    def total(self) -> Any:
        return self.x + self.y


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], W.LIST),
        ((), W.TUPLE),
        (set(), W.SET),
        (frozenset(), W.FROZENSET),
        ({}, W.DICT),
        (P(1, 2), W.NAMEDTUPLE),
        (Q(1), W.NAMEDTUPLE),
        (PlusP(1, 2), W.NAMEDTUPLE),
        (collections.OrderedDict(), W.SUBCLASS),
        (collections.defaultdict(int), W.SUBCLASS),
        (collections.Counter(), W.SUBCLASS),
        (MyList(), W.SUBCLASS),
        (MyTuple(), W.SUBCLASS),
        (MySet(), W.SUBCLASS),
        (collections.UserDict(), None),
        (collections.deque(), None),
        ("ab", None),
        (b"ab", None),
        (3, None),
        (None, None),
        (Mark(0), None),
    ],
)
def test_kind(value: Any, expected: str | None) -> None:
    assert kind(value) == expected


def test_namedtuples_are_rebuilt_with_their_own_type() -> None:
    m1, m2, m3 = Mark(1), Mark(2), Mark(3)
    v = [P(m1, [m2]), Q(a=(m3,)), PlusP(m1, 5), P(1, 2)]
    new = replace(v, lambda x: x.n * 10 if type(x) is Mark else x)
    assert new == [P(10, [20]), Q(a=(30,), b=0), PlusP(10, 5), P(1, 2)]
    assert [type(x) for x in new] == [P, Q, PlusP, P]
    assert new[2].total() == 15
    assert new[3] is v[3]


def test_sets_of_frozensets() -> None:
    m = Mark(7)
    inner = frozenset({m, 1})
    untouched = frozenset({2, 3})
    v = {inner, untouched}
    new = replace(v, lambda x: "seven" if x is m else x)
    assert type(new) is set and new == {frozenset({"seven", 1}), frozenset({2, 3})}
    assert any(x is untouched for x in new)
    again, paths = replace(v, lambda x: "seven" if x is m else x, paths=True)
    assert again == new
    assert paths == [(inner, m)]
    assert at(v, (inner, m)) is m
    fs = frozenset({frozenset({m})})
    assert replace(fs, lambda x: 0 if x is m else x) == frozenset({frozenset({0})})


def test_dict_keys_are_left_alone() -> None:
    k = Mark(1)
    v = {k: Mark(2), "x": 1}
    new = replace(v, lambda x: "new" if type(x) is Mark else x)
    assert list(new) == [k, "x"] and new[k] == "new"
    assert list(leaves(v)) == [v[k], 1]


def test_replacer_on_a_leaf() -> None:
    only_marks = replacer(types={Mark})
    m = Mark(1)
    assert only_marks(m, lambda x: x.n * 10) == 10
    assert only_marks(5, lambda x: 0) == 5
    assert replacer()(5, lambda x: x + 1) == 6
    assert only_marks([m, 2, (m,)], lambda x: x.n) == [1, 2, (1,)]


def test_a_leaf_alone_is_passed_to_fn() -> None:
    m = Mark(1)
    assert replace(m, swap) == Done(1)
    assert replace(m, swap, paths=True) == (Done(1), [()])
    assert replace(5, swap, paths=True) == (5, [])
    assert replace(m, swap, types={int}) is m
    assert list(leaves(m, paths=True)) == [((), m)]
    assert at(m, ()) is m
    assert exceeds(m, 0) is False


def test_types_passes_only_those_leaves_to_fn() -> None:
    seen: list[Any] = []

    def fn(x: Any) -> Any:
        seen.append(x)
        return x

    m = Mark(1)
    v = [1, "a", m, (2.0, m), {"k": [None, m]}, collections.OrderedDict(z=m)]
    replace(v, fn, types=frozenset({Mark}))
    assert seen == [m, m, m]  # not the one inside the OrderedDict, a leaf
    seen.clear()
    replace(v, fn, types=[collections.OrderedDict, float])
    assert seen == [2.0, v[5]]
    seen.clear()
    replace(v, fn, types={tuple})  # a container type named in types is a leaf
    assert seen == [v[3]]


def test_subclassed_containers_are_leaves_unless_asked() -> None:
    m = Mark(1)
    od = collections.OrderedDict(a=m)
    dd = collections.defaultdict(list, b=[m])
    ml = MyList([m])
    v = [od, dd, ml]
    seen: list[Any] = []
    assert replace(v, recorder(seen)) is v
    assert seen == [od, dd, ml]
    assert [x for x in leaves(v) if kind(x) is W.SUBCLASS] == [od, dd, ml]
    found = list(leaves(v, lambda x: type(x) is Mark, paths=True, subclasses=True))
    assert found == [((0, "a"), m), ((1, "b", 0), m), ((2, 0), m)]
    assert all(at(v, p) is m for p, _ in found)
    assert exceeds(v, 1) is False
    assert exceeds(v, 1, subclasses=True) is True
    assert exceeds(v, 3, subclasses=True) is False


def test_set_fn_alone() -> None:
    m1, m2 = Mark(1), Mark(2)
    v = {"a": [m1], "b": {(m2, 3)}}
    new, paths = replace(
        v,
        lambda x: "fn" if type(x) is Mark else x,
        set_fn=lambda x: "set" if type(x) is Mark else x,
        paths=True,
    )
    assert new == {"a": ["fn"], "b": {("set", 3)}}
    assert paths == [("a", 0)]


def test_at_errors() -> None:
    v = {"a": [1, {2}]}
    assert at(v, ("a", 1, 2)) == 2
    with pytest.raises(KeyError):
        at(v, ("b",))
    with pytest.raises(IndexError):
        at(v, ("a", 5))
    with pytest.raises(KeyError):
        at(v, ("a", 1, 3))


# -- depth ---------------------------------------------------------------------------------


def nest(depth: int, leaf: Any = 1, make: Any = lambda x: [x]) -> Any:
    value = leaf
    for _ in range(depth):
        value = make(value)
    return value


MAKERS = {
    "list": lambda x: [x],
    "tuple": lambda x: (x,),
    "dict": lambda x: {"k": x},
    "namedtuple": lambda x: P(x, 0),
    "frozenset": lambda x: frozenset({x}),
    "mixed": lambda x: [{"k": (x, 1)}] if type(x) is not list else P(x, 2),
}


@pytest.mark.parametrize("how", sorted(MAKERS))
def test_10000_deep(how: str) -> None:
    m = Mark(1)
    v = nest(10_000, m, MAKERS[how])
    d = ref_depth(nest(50, m, MAKERS[how])) // 50 * 10_000  # levels per step, scaled
    assert exceeds(v, d) is False and exceeds(v, d - 1) is True
    assert list(leaves(v, lambda x: type(x) is Mark)) == [m]
    with pytest.raises(TooDeepError) as e:
        replace(v, swap, max_depth=200)
    assert e.value.args == ("containers nest more than 200 deep",)
    assert (e.value.limit, e.value.depth) == (200, 201)
    assert isinstance(e.value, DagexecError) and isinstance(e.value, ValueError)
    assert replace(v, lambda x: x) is v  # any depth without a limit
    new, paths = replace(v, swap, paths=True)
    assert len(paths) == 1 and at(v, paths[0]) is m
    if how != "frozenset":  # a set step names the old member, so only positions hold in new
        assert at(new, paths[0]) == Done(1)
    assert list(leaves(new, lambda x: type(x) is Done)) == [Done(1)]


@pytest.mark.parametrize("depth", [1, 2, 99, 100, 101, 150, 250])
def test_max_depth_is_exact(depth: int) -> None:
    v = nest(depth, Mark(1))
    assert ref_depth(v) == depth
    assert replace(v, swap, max_depth=depth) == nest(depth, Done(1))
    for kw in ({}, {"paths": True}, {"copy": True}, {"set_fn": swap}):
        with pytest.raises(TooDeepError) as e:
            replace(v, swap, max_depth=depth - 1, **kw)
        assert e.value.limit == depth - 1


def test_deep_walk_past_the_recursion_budget_matches_the_reference() -> None:
    """Past 100 levels the walk goes on with an explicit stack: same calls, same result."""
    v: Any = [Mark(0), "leaf"]
    for i in range(1, 160):
        v = [Mark(i), v, (i, {"k": Mark(-i)}), P(Mark(1000 + i), frozenset({i}))]
    seen: list[Any] = []
    new = replace(v, recorder(seen, swap))
    assert [id(x) for x in seen] == [id(x) for x in ref_leaves(v)]
    assert shape(new) == shape(ref_replace(v, swap))
    assert_shared(v, new)
    assert exceeds(v, ref_depth(v) - 1) and not exceeds(v, ref_depth(v))


def test_no_recursion_error_under_a_low_recursion_limit() -> None:
    v = nest(3000, Mark(1), lambda x: {"k": [x]})
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200 + len(__import__("inspect").stack()))
    try:
        assert exceeds(v, 6000) is False
        assert sum(1 for _ in leaves(v)) == 1
        assert replace(v, lambda x: x) is v
    finally:
        sys.setrecursionlimit(old)


def test_a_container_that_holds_itself() -> None:
    a: list[Any] = [1]
    a.append(a)
    d: dict[str, Any] = {}
    d["self"] = [d]
    for v in (a, d, [[a]]):
        with pytest.raises(TooDeepError) as e:
            replace(v, lambda x: x)
        assert e.value.args == ("containers nest without end: a container holds itself",)
        assert (e.value.limit, e.value.depth) == (None, None)
        with pytest.raises(TooDeepError) as e:
            replace(v, lambda x: x, max_depth=50)
        assert e.value.limit == 50
        with pytest.raises(TooDeepError):
            list(leaves(v))
        assert exceeds(v, 500) is True
    shared = [1]
    assert replace([shared, [shared]], lambda x: x) is not None  # shared, not cyclic
    for v in (a, d, [[a]]):
        with pytest.raises(TooDeepError) as e:
            replacer(copy=True)(v, lambda x: x)
        assert e.value.limit is None


def test_the_type_cache_stays_bounded() -> None:
    classes = [type(f"C{i}", (), {}) for i in range(W._CACHE_MAX + 500)]
    for c in classes:
        assert kind(c()) is None
        replace([c()], lambda x: x)
    assert len(W._kinds) <= W._CACHE_MAX
    assert all(len(t) <= W._CACHE_MAX for t in W._tables.values())
    assert kind([]) is W.LIST and kind(collections.OrderedDict()) is W.SUBCLASS
