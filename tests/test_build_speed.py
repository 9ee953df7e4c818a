"""What keeps building and compiling big graphs cheap, checked by what it must not change.

No timing here (bench/ measures it): these tests pin the behaviour of the shortcuts
that make building and compiling fast, where a shortcut could go wrong: the call-site
table (one lookup per place, never the wrong place), the compact record of a call
given Nodes only (it keeps no Node alive, and the checks that need the Nodes still
see them), the plan laid out straight from the records (the same plan as a
node-by-node layout gives, with or without inputs, forward ``after()`` calls and
constants), and keys kept by their bases' counters instead of a set of every key
(the same keys as that set gives, keys given back by a failed call included).
"""

from __future__ import annotations

import gc
import random
import sys

import pytest

import dagexec as dx
from dagexec._node import Node


@dx.task
def inc(x):
    return x + 1


@dx.task
def add(*xs):
    return sum(xs)


@dx.task
def typed(x: int) -> int:
    return x


def _line() -> int:
    return sys._getframe(1).f_lineno


def _first(graph: dx.Graph) -> dx.Node:
    return inc(1)


def _second(graph: dx.Graph) -> dx.Node:
    return inc(2)


def test_calls_at_the_same_offset_of_two_functions_keep_their_own_call_sites() -> None:
    # the two helpers have the same bytecode, so the call sits at the same offset in both
    assert _first.__code__.co_code == _second.__code__.co_code
    with dx.Graph("g") as g:
        a = [_first(g) for _ in range(3)]
        b = [_second(g) for _ in range(3)]
    first_line = _first.__code__.co_firstlineno + 1
    second_line = _second.__code__.co_firstlineno + 1
    assert {n.call_site for n in a} == {f"tests/test_build_speed.py:{first_line}"}
    assert {n.call_site for n in b} == {f"tests/test_build_speed.py:{second_line}"}


def test_calls_on_two_lines_of_a_loop_keep_their_own_call_sites() -> None:
    line = _line()
    with dx.Graph("g") as g:
        nodes = []
        for _ in range(3):
            x = inc(1)
            nodes.append((x, add(x, x)))
    plan = g.compile()
    sites = {plan.node(x.key).call_site for x, _ in nodes}, {plan.node(y.key).call_site for _, y in nodes}
    assert sites == ({f"tests/test_build_speed.py:{line + 4}"}, {f"tests/test_build_speed.py:{line + 5}"})


def test_a_graph_keeps_no_node_alive_that_the_user_dropped() -> None:
    gc.collect()
    before = sum(type(o) is Node for o in gc.get_objects())
    with dx.Graph("chain") as g:
        x = inc(0)
        for _ in range(2_000):
            x = add(x, inc(x))
    gc.collect()
    alive = sum(type(o) is Node for o in gc.get_objects()) - before
    assert len(g) == 4_001
    assert alive == 1  # x: the records hold indices, not the Nodes the calls were given
    del x


def test_a_node_given_an_input_is_type_checked_against_it() -> None:
    line = _line()
    with dx.Graph("g") as g:
        s = g.input("s", str)
        typed(s)
    with pytest.raises(dx.GraphError) as info:
        g.compile()
    assert str(info.value) == (
        f"node 'typed': parameter 'x' expects int but input 's' is str (called at tests/test_build_speed.py:{line + 3})"
    )


def test_a_plan_with_inputs_and_a_forward_after_is_laid_out_in_topological_order() -> None:
    with dx.Graph("g") as g:
        n = g.input("n", int, default=1)
        a = inc(n)
        add(a, inc(3))
        c = inc(_last(g))
        late = inc(7)
        a.after(late)  # a waits for a node made after it
        add(c, n, 5)
    plan = g.compile()
    assert plan.keys == ("inc-1", "inc-3", "inc", "add", "inc-2", "add-1")
    assert plan._deps == ((), (), (1,), (2, 0), (3,), (4,))
    assert plan._args == ((3,), (7,), (None,), (None, None), (None,), (None, None, 5))
    assert plan._fills == ((), (), ((0, 6),), ((0, 2), (1, 0)), ((0, 3),), ((0, 4), (1, 6)))
    assert plan._reads == ((), (), (6,), (2, 0), (3,), (4, 6))
    assert plan._dependents == ((3,), (2,), (3,), (4,), (5,), ())
    assert plan._n_readers == (1, 0, 1, 1, 1, 0, 2)
    assert plan.outputs == ("add-1",)
    assert [i.readers for i in plan.inputs] == [("inc", "add-1")]


def _last(graph: dx.Graph) -> dx.Node:
    """The node recorded last."""
    return Node(graph, len(graph) - 1)


class _KeysBySet:
    """Keys as a set of every key taken gives them: the rule the graph keeps without one."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.counts: dict[str, int] = {}

    def key(self, base: str) -> str:
        n = self.counts.get(base, 0)
        key = base if n == 0 else f"{base}-{n}"
        while key in self.used:
            n += 1
            key = f"{base}-{n}"
        self.counts[base] = n + 1
        self.used.add(key)
        return key


def _named(name: str) -> dx.Task:
    return dx.task(name=name)(lambda *xs: 0)


def test_keys_are_those_a_set_of_every_key_would_give() -> None:
    rng = random.Random(7)
    names = ["a", "a-1", "a-2", "a-1-1", "a-01", "b", "b-3", "a-10", "a-²"]
    tasks = {name: _named(name) for name in names}
    model = _KeysBySet()
    expected, got = [], []
    with dx.Graph("g") as g:
        for _ in range(3_000):
            name = rng.choice(names)
            if rng.random() < 0.02 and name not in model.used:
                expected.append(name)
                model.used.add(name)
                got.append(g.input(name).key)
            else:
                expected.append(model.key(name))
                got.append(tasks[name]().key)
    assert got == expected
    assert len(set(got)) == len(got)


@dx.section
def _fails(x: dx.Node) -> dx.Node:
    inc(x)
    raise ValueError("no")


def _inc_then_fail(x: dx.Node) -> dx.Node:
    inc(x)
    raise ValueError("no")


def test_keys_given_back_by_a_failed_call_are_taken_again_as_before() -> None:
    with dx.Graph("g") as g:
        x = inc(0)  # inc
        with pytest.raises(ValueError):
            _fails(x)  # _fails, _fails:x and _fails/inc, all given back
        with pytest.raises(ValueError):
            dx.cond(x, then=lambda: _inc_then_fail(x))  # inc-1 given back, its number used up
        section_name = g.input("_fails")
        param_name = g.input("_fails:x")
        literal = _named("inc-1")()
        after = inc(x)
    keys = [n.key for n in (section_name, param_name, literal, after)]
    assert keys == ["_fails", "_fails:x", "inc-1", "inc-2"]
    assert len(g) == 5


def test_a_graph_keeps_no_set_of_every_key() -> None:
    with dx.Graph("chain") as g:
        x = inc(0)
        for _ in range(2_000):
            x = inc(x)
    sets = {name: len(v) for name, v in vars(g).items() if isinstance(v, (set, frozenset))}
    assert sets and max(sets.values()) == 0  # the counters say which keys are taken


def test_the_collector_walks_no_record_of_a_call_given_nodes_only_or_plain_constants() -> None:
    with dx.Graph("g") as g:
        x = inc(0)
        for i in range(1_000):
            x = add(x, inc(i))
    # the collector untracks a tuple of ints, strings and such tuples when it meets one
    # (a tuple made just before a collection may be met once before it is untracked)
    gc.collect()
    gc.collect()
    assert len(g._recs) == 2_001
    assert sum(gc.is_tracked(rec) for rec in g._recs) == 0
    assert len(g._forms) == 2  # inc and add, outside any section
