"""Errors a new user meets while building and compiling a graph (DESIGN §2, §4, §12):
Node operators and attributes, unknown keywords, map items, cycles made by after(),
what does not pickle, and nesting too deep."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import pytest

import dagexec as dx


def _site(line: int) -> str:
    rel = os.path.relpath(__file__)
    return f"{__file__ if rel.startswith('..') else rel}:{line}"


def _next_line() -> int:
    return sys._getframe(1).f_lineno + 1


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def scale(x: int, factor: int = 1) -> int:
    return x * factor


@dx.task
def label() -> str:
    return "a"


@dx.task
def echo(value: Any) -> Any:
    return value


NO_VALUE = "a Node has no value until the plan runs"
COMPUTE = "compute it inside a task, which receives the value itself"
COMPARE = (
    "compare inside a task, which receives the value itself, and branch on that task's Node "
    "with dx.cond(pred, then=..., otherwise=...)"
)


# -- what a Node offers (DESIGN §12) ---------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "symbol", "hint"),
    [
        (lambda n: n > 2, ">", COMPARE),
        (lambda n: 2 < n, ">", COMPARE),  # reflected: int.__lt__ gives up, Node.__gt__ answers
        (lambda n: n <= n, "<=", COMPARE),
        (lambda n: n + 1, "+", COMPUTE),
        (lambda n: 1 + n, "+", COMPUTE),
        (lambda n: n * 2, "*", COMPUTE),
        (lambda n: n / 2, "/", COMPUTE),
        (lambda n: n % 2, "%", COMPUTE),
        (lambda n: -n, "-", COMPUTE),
        (lambda n: abs(n), "abs()", COMPUTE),
        (lambda n: int(n), "int()", COMPUTE),
        (lambda n: range(n), "int()", COMPUTE),
        (lambda n: len(n), "len()", "take its length inside a task (to unpack a Node, give its task nout=N)"),
    ],
)
def test_an_operator_on_a_node_says_it_has_no_value_and_what_to_write(
    expression: Any, symbol: str, hint: str
) -> None:
    with dx.Graph("ops") as graph:
        node = inc(1)
        with pytest.raises(dx.CallError) as info:
            expression(node)
    assert isinstance(info.value, TypeError)
    assert str(info.value) == f"{symbol!r} is not supported on node 'inc': {NO_VALUE}; {hint}"
    assert info.value.key == "inc"
    assert len(graph) == 1  # nothing was recorded


def test_an_attribute_of_a_node_is_an_attribute_error_naming_it() -> None:
    with dx.Graph("attrs"):
        node = inc(1)
        with pytest.raises(dx.NodeAttributeError) as info:
            node.append(4)  # type: ignore[attr-defined]
        assert not hasattr(node, "shape")  # libraries probing attributes get a plain miss
        with pytest.raises(AttributeError) as private:
            node._repr_html_  # type: ignore[attr-defined]  # noqa: B018
        with pytest.raises(dx.CallError) as called:
            node()  # type: ignore[operator]
    assert isinstance(info.value, AttributeError) and isinstance(info.value, dx.DagexecError)
    assert str(info.value) == (
        f"node 'inc' has no attribute 'append': {NO_VALUE}; use the value's attributes and methods "
        "inside a task (a Node offers only .key, .after(), node[k] and unpacking)"
    )
    assert (info.value.key, info.value.name) == ("inc", "append")
    assert str(private.value) == "_repr_html_"
    assert str(called.value) == f"node 'inc' is not callable: {NO_VALUE}; call its value inside a task"


def test_nodes_still_work_in_sets_dicts_and_membership_tests() -> None:
    with dx.Graph("identity"):
        a, b = inc(1), inc(2)
        assert a in [b, a] and {a: 1}[a] == 1 and len({a, b, a}) == 2
        assert a != b and a == a


# -- unknown keyword arguments ------------------------------------------------------------


def test_a_misspelt_keyword_of_a_map_names_it_and_the_tasks_parameters() -> None:
    with dx.Graph("typo") as graph:
        line = _next_line()
        with pytest.raises(dx.CallError) as info:
            scale.map([1, 2], factr=2)
    assert str(info.value) == (
        "node 'scale': map: unknown parameter 'factr' (did you mean 'factor'?); scale() takes x, factor "
        f"(called at {_site(line + 1)})"
    )
    assert len(graph) == 0


def test_an_unknown_keyword_of_a_call_or_section_lists_the_parameters() -> None:
    @dx.task
    def keyed(x: int, *rest: int, factor: int) -> int:
        return x * factor

    @dx.section
    def double(x: int) -> int:
        return scale(x, factor=2)

    with dx.Graph("typo"):
        line = _next_line()
        with pytest.raises(dx.CallError) as call_info:
            keyed(1, size=2, colour=3)
        with pytest.raises(dx.CallError) as section_info:
            double(1, y=2)
    assert str(call_info.value) == (
        f"node 'keyed': unknown parameters 'size', 'colour'; keyed() takes x, *rest, factor (called at {_site(line + 1)})"
    )
    assert (
        str(section_info.value)
        == f"section 'double': unknown parameter 'y'; double() takes x (called at {_site(line + 3)})"
    )


def test_a_missing_argument_keeps_pythons_message() -> None:
    with dx.Graph("missing"):
        line = _next_line()
        with pytest.raises(dx.CallError) as info:
            scale.map([1], factor=2, x=3)
    assert (
        str(info.value)
        == f"node 'scale': map: multiple values for argument 'x' (called at {_site(line + 1)})"
    )


# -- map items known at compile time ------------------------------------------------------------


def test_constant_map_items_are_type_checked_at_compile() -> None:
    with dx.Graph("items") as graph:
        line = _next_line()
        scale.map([1, "a", 3], factor=2)
    with pytest.raises(dx.GraphError) as info:
        graph.compile()
    assert (
        str(info.value)
        == f"node 'scale': parameter 'x' of item 1 expects int but got str 'a' (called at {_site(line)})"
    )
    assert (info.value.key, info.value.param, info.value.call_site) == ("scale", "x", _site(line))


def test_many_bad_items_make_one_line_naming_the_first_and_counting_the_rest() -> None:
    with dx.Graph("items") as graph:
        line = _next_line()
        scale.map([0, 1.5, *["b"] * 9, 2])
    with pytest.raises(dx.GraphError) as info:
        graph.compile()
    assert str(info.value) == (
        "node 'scale': parameter 'x' of item 1 expects int but got float 1.5; 9 more items do not match "
        f"either (2, 3, 4, 5, 6, ...) (called at {_site(line)})"
    )


def test_node_items_are_checked_as_edges_and_section_items_as_constants() -> None:
    @dx.section
    def scaled(xs: list[int]) -> list[int]:
        return scale.map(xs)

    body = scaled.fn.__code__.co_firstlineno + 2

    with dx.Graph("items") as graph:
        line = _next_line()
        scale.map([1, label(), inc(2)])
        scaled([1, "z"])
    with pytest.raises(dx.GraphError) as info:
        graph.compile()
    assert str(info.value) == (
        "2 problems in graph 'items':\n"  # sorted by call site: the section's body comes first
        f"- node 'scaled/scale': parameter 'x' of item 1 expects int but got str 'z' (called at {_site(body)})\n"
        f"- node 'scale': parameter 'x' of item 1 expects int but 'label' returns str (called at {_site(line)})"
    )


def test_good_items_and_unchecked_tasks_compile() -> None:
    with dx.Graph("items") as graph:
        scale.map([1, True, 3])
        scale.options(typecheck=False).map(["a"])
        echo.map([1, "a"])
    plan = graph.compile()
    assert plan.run(executor="serial").outputs == {"scale": [1, 1, 3], "scale-1": ["a"], "echo": [1, "a"]}


# -- cycles made by after() ---------------------------------------------------------------------


def test_a_cycle_points_at_the_after_call_that_closed_it() -> None:
    with dx.Graph("cyclic") as graph:
        a = inc(1)
        b = inc(a)
        c = inc(b)
        line = _next_line()
        a.after(c)
    with pytest.raises(dx.GraphError) as info:
        graph.compile()
    assert str(info.value) == (
        f"cycle: 'inc' -> 'inc-1' -> 'inc-2' -> 'inc' (closed by 'inc'.after('inc-2') called at {_site(line)})"
    )
    assert (info.value.key, info.value.call_site) == ("inc", _site(line))


def test_a_cycle_through_a_section_names_the_section_and_every_after_call() -> None:
    @dx.section
    def twice(x: int) -> int:
        return inc(inc(x))

    with dx.Graph("cyclic") as graph:
        a = inc(1)
        b = inc(2)
        s = twice(a)
        line = _next_line()
        b.after(s)
        a.after(b)
    with pytest.raises(dx.GraphError) as info:
        graph.compile()
    assert str(info.value) == (
        "cycle: 'inc' -> 'twice/inc' -> 'inc-1' -> 'inc' (closed by 'inc-1'.after('twice') called at "
        f"{_site(line)}, 'inc'.after('inc-1') called at {_site(line + 1)})"
    )


def test_after_calls_of_a_failed_section_call_are_forgotten() -> None:
    @dx.section
    def broken(x: int) -> int:
        y = inc(x)
        y.after(x)
        raise RuntimeError("boom")

    with dx.Graph("rolled") as graph:
        a = inc(1)
        with pytest.raises(RuntimeError):
            broken(a)
        inc(a)
    assert graph._after_sites == {}
    assert graph.compile().run(executor="serial").outputs == {"inc-1": 3}


# -- what does not pickle (DESIGN §12 Picklability) -------------------------------------------

LOCK = threading.Lock()


def _uses_lock() -> int:
    with LOCK:
        return 1


def _closing_task() -> dx.Task:
    lock = threading.Lock()

    @dx.task
    def guarded(x: int) -> int:
        with lock:
            return x

    return guarded


@dx.task
def helper_user(x: int) -> int:
    return x + _uses_lock()


def test_the_part_that_does_not_pickle_is_named() -> None:
    guarded = _closing_task()

    @dx.task
    def global_user(x: int) -> int:
        with LOCK:
            return x

    @dx.task
    def default_user(x: int, lock: Any = threading.Lock()) -> int:  # noqa: B008
        return x

    def uses_lock() -> int:
        with LOCK:
            return 1

    @dx.task
    def calls_helper(x: int) -> int:
        return x + uses_lock()

    with dx.Graph("local") as graph:
        line = _next_line()
        guarded(1)
        global_user(1)
        default_user(1)
        calls_helper(1)
    plan = graph.compile()
    error = "TypeError: cannot pickle '_thread.lock' object"
    where = f"{__name__}:test_the_part_that_does_not_pickle_is_named.<locals>"
    assert [p.message for p in plan.pickle_problems] == [
        f"node 'guarded': task function {__name__}:_closing_task.<locals>.guarded cannot be pickled because of "
        f"its closure variable 'lock' (a _thread.lock): {error} (called at {_site(line)})",
        f"node 'global_user': task function {where}.global_user cannot be pickled because of its global "
        f"'LOCK' (a _thread.lock): {error} (called at {_site(line + 1)})",
        f"node 'default_user': task function {where}.default_user cannot be pickled because of its default "
        f"of parameter 'lock' (a _thread.lock): {error} (called at {_site(line + 2)})",
        f"node 'calls_helper': task function {where}.calls_helper cannot be pickled because of its closure "
        f"variable 'uses_lock': its global 'LOCK' (a _thread.lock): {error} (called at {_site(line + 3)})",
    ]
    # a module-level task of an importable module travels by reference: nothing to name
    with dx.Graph("portable") as portable:
        helper_user(1)
    assert portable.compile().portable


def test_a_run_in_processes_names_the_closure_variable_and_suggests_threads() -> None:
    guarded = _closing_task()
    with dx.Graph("local") as graph:
        line = _next_line()
        guarded(1)
    plan = graph.compile()
    with pytest.raises(dx.GraphError) as info:
        plan.run(executor="loky", max_workers=1)
    assert str(info.value) == (
        f"node 'guarded': task function {__name__}:_closing_task.<locals>.guarded cannot be pickled because of "
        "its closure variable 'lock' (a _thread.lock): TypeError: cannot pickle '_thread.lock' object "
        f'(called at {_site(line)}); executor="threads" or "serial" runs in this process, where nothing is pickled'
    )
    assert plan.run(executor="threads").output == 1


def test_several_problems_carry_the_suggestion_in_their_heading() -> None:
    guarded = _closing_task()
    with dx.Graph("local") as graph:
        guarded(1)
        echo(threading.Lock())
    with pytest.raises(dx.GraphError) as info:
        graph.compile().run(executor="loky", max_workers=1)
    assert str(info.value).splitlines()[0] == (
        "2 problems in graph 'local' (running in processes needs every task and constant to pickle; "
        'executor="threads" or "serial" runs in this process, where nothing is pickled):'
    )
