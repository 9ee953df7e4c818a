"""What keeps building and compiling big graphs cheap, checked by what it must not change.

No timing here (bench/ measures it): these tests pin the behaviour of the shortcuts
that make building and compiling fast, where a shortcut could go wrong: the call-site
table (one lookup per place, never the wrong place), the compact record of a call
given Nodes only (it keeps no Node alive, and the checks that need the Nodes still
see them), and the plan laid out straight from the records (the same plan as a
node-by-node layout gives, with or without inputs, forward ``after()`` calls and
constants).
"""

from __future__ import annotations

import gc
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
