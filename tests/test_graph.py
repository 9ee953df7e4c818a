"""``Graph`` and ``Node``: recording calls, keys, inputs, outputs, misuse (DESIGN §2, §12)."""

from __future__ import annotations

import collections
import contextvars
import os
import pickle
import sys
import threading
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

import dagexec as dx


def _site(line: int) -> str:
    """The call site dagexec reports for ``line`` of this file (DESIGN §12)."""
    rel = os.path.relpath(__file__)
    return f"{__file__ if rel.startswith('..') else rel}:{line}"


def _next_line() -> int:
    return sys._getframe(1).f_lineno + 1


@dx.task
def add(x: int, y: int = 0) -> int:
    return x + y


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def total(values: Any) -> int:
    """Sum every int found in nested lists, tuples and dict values."""
    if isinstance(values, dict):
        return sum(total.fn(v) for v in values.values())
    if isinstance(values, (list, tuple)):
        return sum(total.fn(v) for v in values)
    return int(values)


@dx.task
def echo(value: Any) -> Any:
    return value


@dx.task(nout=2)
def split(x: int):  # type: ignore[no-untyped-def]
    return x, -x


@dx.task
def divmod_(a: int, b: int) -> tuple[int, int]:
    return divmod(a, b)


@dx.task
def pair_list(x: int) -> list[int]:
    return [x, x * 10]


def run(graph: dx.Graph, **inputs: Any) -> dict[str, Any]:
    return dict(graph.compile().run(inputs, executor="serial").outputs)


# -- the current graph --------------------------------------------------------------------


def test_graph_is_a_context_manager_setting_the_current_graph() -> None:
    assert dx.current_graph() is None
    graph = dx.Graph("ctx")
    with graph as entered:
        assert entered is graph
        assert dx.current_graph() is graph
        node = add(1, 2)
    assert dx.current_graph() is None
    assert isinstance(node, dx.Node)
    assert add(1, 2) == 3


def test_nested_graphs_restore_the_outer_graph() -> None:
    with dx.Graph("outer") as outer:
        a = add(1)
        with dx.Graph("inner") as inner:
            assert dx.current_graph() is inner
            b = add(2)
        assert dx.current_graph() is outer
        c = add(3)
    assert (a.graph, b.graph, c.graph) == (outer, inner, outer)
    assert outer.compile().keys == ("add", "add-1")
    assert inner.compile().keys == ("add",)


def test_reentering_a_graph_adds_to_it() -> None:
    graph = dx.Graph("again")
    with graph:
        add(1)
    with graph:
        with graph:
            add(2)
        assert dx.current_graph() is graph
        add(3)
    assert dx.current_graph() is None
    assert graph.compile().keys == ("add", "add-1", "add-2")


def test_an_exception_in_the_block_leaves_no_current_graph() -> None:
    with pytest.raises(RuntimeError), dx.Graph("boom"):
        raise RuntimeError("boom")
    assert dx.current_graph() is None


def test_a_thread_does_not_see_the_graph_of_another_thread() -> None:
    seen: list[Any] = []

    def worker() -> None:
        seen.append(dx.current_graph())
        seen.append(add(1, 2))  # no graph here: the plain function runs

    with dx.Graph("main-thread") as graph:
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        inc(1)
    assert seen == [None, 3]
    assert graph.compile().keys == ("inc",)


def test_a_graph_can_be_built_in_another_thread() -> None:
    graph = dx.Graph("built-in-thread")
    seen_in_main: list[Any] = []
    entered = threading.Event()
    release = threading.Event()

    def worker() -> None:
        with graph:
            inc(add(1, 2))
            entered.set()
            release.wait(timeout=30)
            inc(5)

    t = threading.Thread(target=worker)
    t.start()
    assert entered.wait(timeout=30)
    seen_in_main.append(dx.current_graph())
    seen_in_main.append(inc(1))  # the main thread is outside any graph
    release.set()
    t.join()
    assert seen_in_main == [None, 2]
    assert graph.compile().keys == ("add", "inc", "inc-1")
    assert run(graph) == {"inc": 4, "inc-1": 6}


def test_a_copied_context_carries_the_graph_into_a_thread() -> None:
    with dx.Graph("copied") as graph:
        ctx = contextvars.copy_context()
        nodes: list[Any] = []
        t = threading.Thread(target=lambda: nodes.append(ctx.run(add, 1, 2)))
        t.start()
        t.join()
    assert [n.key for n in nodes] == ["add"]
    assert nodes[0].graph is graph


# -- calls and keys --------------------------------------------------------------------------


def test_calling_a_task_records_a_node_and_runs_nothing() -> None:
    calls: list[int] = []

    @dx.task
    def record(x: int) -> int:
        calls.append(x)
        return x

    with dx.Graph("lazy") as graph:
        node = record(1)
    assert calls == []
    assert type(node) is dx.Node
    assert node.key == "record"
    assert node.graph is graph
    assert repr(node) == "<Node 'record'>"
    assert len(graph) == 1
    assert repr(graph) == "<Graph 'lazy' with 1 nodes>"
    assert run(graph) == {"record": 1}
    assert calls == [1]


def test_repeated_calls_get_numbered_keys() -> None:
    with dx.Graph("repeats") as graph:
        a = add(1)
        b = add(a)
        c = inc(b)
        d = add(c)
        e = inc(d)
    assert [n.key for n in (a, b, c, d, e)] == ["add", "add-1", "inc", "add-2", "inc-1"]
    assert graph.compile().keys == ("add", "add-1", "inc", "add-2", "inc-1")


def test_keys_are_the_same_each_time_the_same_code_builds_the_graph() -> None:
    def build() -> tuple[str, ...]:
        with dx.Graph("same") as graph:
            x = graph.input("x", int)
            a, b = split(add(x, 1))
            total([inc(a), inc(b), divmod_(a, 3)[0]])
        return graph.compile().keys

    first = build()
    assert first == ("add", "split", "split.0", "split.1", "inc", "inc-1", "divmod_", "divmod_.0", "total")
    assert build() == first


def test_keys_skip_names_already_taken_by_inputs() -> None:
    with dx.Graph("taken") as graph:
        graph.input("add-1", int, default=0)
        a = add(1)
        b = add(2)
    assert (a.key, b.key) == ("add", "add-2")


def test_nodes_as_positional_and_keyword_arguments_are_dependencies() -> None:
    with dx.Graph("deps") as graph:
        a = inc(1)
        b = inc(2)
        add(a, y=b)
    plan = graph.compile()
    assert plan.node("add").deps == ("inc", "inc-1")
    assert run(graph) == {"add": 5}


def test_nodes_inside_containers_nested_to_any_depth_are_dependencies() -> None:
    with dx.Graph("nested") as graph:
        a = inc(0)
        b = inc(1)
        c = inc(2)
        d = inc(3)
        total([a, (b, {"deep": [c, {"deeper": (d,)}]}), 100])
    plan = graph.compile()
    assert plan.node("total").deps == ("inc", "inc-1", "inc-2", "inc-3")
    assert run(graph) == {"total": 1 + 2 + 3 + 4 + 100}


def test_nodes_inside_a_namedtuple_are_dependencies() -> None:
    Pair = namedtuple("Pair", ["left", "right"])

    with dx.Graph("named") as graph:
        echo(Pair(inc(1), 5))
    plan = graph.compile()
    assert plan.node("echo").deps == ("inc",)
    assert run(graph) == {"echo": Pair(2, 5)}


def test_containers_are_copied_when_the_task_is_called() -> None:
    with dx.Graph("copied") as graph:
        a = inc(1)
        b = inc(2)
        items = [a, 10]
        inner = {"x": [a]}
        mapping = {"items": items, "inner": inner}
        listed = echo(items)
        mapped = echo(mapping)
        items.append(b)
        items[1] = 20
        inner["x"].append(1000)
        mapping["late"] = b
    plan = graph.compile()
    assert plan.node(listed.key).deps == ("inc",)
    assert plan.node(mapped.key).deps == ("inc",)
    assert plan.run(executor="serial").outputs == {
        "echo": [2, 10],
        "echo-1": {"items": [2, 10], "inner": {"x": [2]}},
        "inc-1": 3,
    }


def test_constant_containers_are_copied_too() -> None:
    rows = [1, 2]
    with dx.Graph("constants") as graph:
        echo(rows)
    rows.append(3)
    assert run(graph) == {"echo": [1, 2]}


class Row(list):  # type: ignore[type-arg]
    """A list subclass: dagexec does not look inside it."""


class Pair(tuple):  # type: ignore[type-arg]
    """A tuple subclass that is not a namedtuple."""


class Tags(frozenset):  # type: ignore[type-arg]
    """A frozenset subclass."""


def _hidden(key: str, what: str, container: str, line: int) -> str:
    return (
        f"node {key!r}: {what} holds a Node inside a {container}, which dagexec does not look into; "
        f"pass a dict, list, tuple, set or namedtuple, or build it inside a task (called at {_site(line)})"
    )


def test_a_node_inside_a_subclassed_container_is_a_graph_error_at_the_call() -> None:
    here = f"{__name__}"
    with dx.Graph("hidden") as graph:
        a = inc(1)
        line = _next_line()
        with pytest.raises(dx.GraphError) as ordered:
            echo(collections.OrderedDict(k=a))
        with pytest.raises(dx.GraphError) as inner:
            echo(value=[1, {"d": collections.defaultdict(list, k=[a])}])
        with pytest.raises(dx.GraphError) as row:
            add(1, Row([a]))  # type: ignore[arg-type]
        with pytest.raises(dx.GraphError) as pair:
            echo((Pair((a, 2)),))
        with pytest.raises(dx.GraphError) as tags:
            echo({Tags({a})})
        with pytest.raises(dx.GraphError) as deeper:
            echo(Row([Row([{"k": a}])]))
    assert str(ordered.value) == _hidden("echo", "parameter 'value'", "collections.OrderedDict", line + 1)
    assert str(inner.value) == _hidden("echo-1", "parameter 'value'", "collections.defaultdict", line + 3)
    assert str(row.value) == _hidden("add", "parameter 'y'", f"{here}.Row", line + 5)
    assert str(pair.value) == _hidden("echo-2", "parameter 'value'", f"{here}.Pair", line + 7)
    assert str(tags.value) == _hidden("echo-3", "parameter 'value'", f"{here}.Tags", line + 9)
    assert str(deeper.value) == _hidden("echo-4", "parameter 'value'", f"{here}.Row", line + 11)
    err = ordered.value
    assert (err.problems[0].key, err.problems[0].call_site) == ("echo", _site(line + 1))
    assert len(graph) == 1  # no node recorded for a refused call
    assert graph.compile().run(executor="serial").outputs == {"inc": 2}


def test_a_node_inside_a_subclassed_container_given_to_cond_or_a_section_is_a_graph_error() -> None:
    @dx.section
    def wrap(box: Any) -> Any:
        return echo(box)

    with dx.Graph("hidden-elsewhere"):
        a = inc(1)
        line = _next_line()
        with pytest.raises(dx.GraphError) as by_section:
            wrap(collections.OrderedDict(k=a))
        with pytest.raises(dx.GraphError) as by_cond:
            dx.cond(a, lambda: collections.OrderedDict(k=a), lambda: 0)  # type: ignore[arg-type]
    assert str(by_section.value) == _hidden(
        "wrap:box", "parameter 'box'", "collections.OrderedDict", line + 1
    )
    assert str(by_cond.value) == _hidden("cond", "an argument", "collections.OrderedDict", line + 3)


def test_subclassed_containers_without_nodes_stay_constants() -> None:
    ordered = collections.OrderedDict(b=1, a=2)
    counts: collections.defaultdict[str, int] = collections.defaultdict(int, k=3)
    with dx.Graph("subclassed") as graph:
        echo(ordered)
        echo([counts, Row([1, 2]), Pair((3, 4)), Tags({5})])
    outputs = graph.compile().run(executor="serial").outputs
    assert outputs["echo"] == ordered and type(outputs["echo"]) is collections.OrderedDict
    assert list(outputs["echo"]) == ["b", "a"]
    got = outputs["echo-1"]
    assert [type(v) for v in got] == [collections.defaultdict, Row, Pair, Tags]
    assert got == [counts, [1, 2], (3, 4), {5}]


def test_a_wrong_call_raises_call_error_naming_key_and_call_site() -> None:
    with dx.Graph("wrong") as graph:
        add(1)
        line = _next_line()
        with pytest.raises(dx.CallError) as exc_info:
            add(1, 2, 3)
        # the rejected call used no key
        assert add(2).key == "add-1"
    err = exc_info.value
    assert isinstance(err, TypeError)
    assert str(err) == f"node 'add-1': too many positional arguments (called at {_site(line + 1)})"
    assert err.key == "add-1"
    assert err.call_site == _site(line + 1)
    assert graph.compile().keys == ("add", "add-1")


@pytest.mark.parametrize(
    ("args", "kwargs", "detail"),
    [
        ((), {}, "missing a required argument: 'x'"),
        ((1,), {"z": 2}, "unknown parameter 'z'; add() takes x, y"),
        ((1,), {"x": 2}, "multiple values for argument 'x'"),
    ],
)
def test_wrong_calls_are_rejected_at_the_users_line(
    args: tuple[Any, ...], kwargs: dict[str, Any], detail: str
) -> None:
    with dx.Graph("wrong"):
        line = _next_line()
        with pytest.raises(dx.CallError) as exc_info:
            add(*args, **kwargs)
    assert str(exc_info.value) == f"node 'add': {detail} (called at {_site(line + 1)})"


def test_call_site_is_relative_to_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent.parent)
    with dx.Graph("relative"):
        line = _next_line()
        with pytest.raises(dx.CallError) as exc_info:
            inc()
        node = inc(1)
    assert str(exc_info.value) == (
        f"node 'inc': missing a required argument: 'x' (called at tests/test_graph.py:{line + 1})"
    )
    assert node.call_site == f"tests/test_graph.py:{line + 2}"


def test_call_site_outside_the_working_directory_is_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with dx.Graph("absolute"):
        line = _next_line()
        node = inc(1)
    assert node.call_site == f"{__file__}:{line}"


# -- node[k] and unpacking ------------------------------------------------------------------


def test_getitem_makes_a_node_keyed_by_the_index() -> None:
    with dx.Graph("items") as graph:
        pl = pair_list(3)
        first = pl[0]
        second = pl[1]
        again = pl[0]
        d = echo({"a": 1, "b": 2})
        a = d["a"]
        total([first, second, again, a])
    assert [n.key for n in (first, second, again, a)] == [
        "pair_list.0",
        "pair_list.1",
        "pair_list.0-1",
        "echo.a",
    ]
    assert graph.compile().node("pair_list.1").deps == ("pair_list",)
    assert run(graph) == {"total": 3 + 30 + 3 + 1}


def test_getitem_with_a_node_as_index_is_a_call_error() -> None:
    with dx.Graph("bad-index"):
        pl = pair_list(3)
        i = inc(0)
        line = _next_line()
        with pytest.raises(dx.CallError) as exc_info:
            pl[i]
    assert str(exc_info.value) == (
        f"node 'pair_list': an index must be a constant, not node 'inc' (called at {_site(line + 1)})"
    )


def test_unpacking_with_nout() -> None:
    with dx.Graph("nout") as graph:
        pos, neg = split(5)
        graph.output(pos, "pos")
        graph.output(neg, "neg")
    assert (pos.key, neg.key) == ("split.0", "split.1")
    assert split(5) == (5, -5)
    assert run(graph) == {"pos": 5, "neg": -5}


def test_unpacking_with_a_tuple_annotation() -> None:
    with dx.Graph("tuple") as graph:
        q, r = divmod_(17, 5)
        graph.output(q, "q")
        graph.output(r, "r")
    assert (q.key, r.key) == ("divmod_.0", "divmod_.1")
    assert run(graph) == {"q": 3, "r": 2}


def test_nout_option_overrides_the_annotation() -> None:
    @dx.task
    def three() -> tuple[int, ...]:
        return (1, 2, 3)

    with dx.Graph("override") as graph:
        a, b, c = three.options(nout=3)()
    assert [n.key for n in (a, b, c)] == ["three.0", "three.1", "three.2"]
    assert graph.compile().keys == ("three", "three.0", "three.1", "three.2")


def test_iterating_a_node_without_nout_is_a_call_error() -> None:
    with dx.Graph("no-nout"):
        node = pair_list(1)  # list[int] says nothing about length
        with pytest.raises(dx.CallError) as exc_info:
            _a, _b = node
    assert str(exc_info.value) == (
        "cannot unpack node 'pair_list': its number of outputs is unknown; "
        "give the task nout=N or a tuple[A, B] return annotation"
    )
    assert exc_info.value.key == "pair_list"
    assert isinstance(exc_info.value, TypeError)


# -- after() --------------------------------------------------------------------------------


def test_after_adds_an_ordering_only_dependency() -> None:
    order: list[str] = []

    @dx.task
    def write(name: str) -> str:
        order.append(name)
        return name

    with dx.Graph("after") as graph:
        late = write("late")
        early = write("early")
        assert late.after(early) is late
    plan = graph.compile()
    assert plan.keys == ("write-1", "write")
    assert plan.node("write").deps == ("write-1",)
    assert plan.run(executor="serial").outputs == {"write": "late"}
    assert order == ["early", "late"]


def test_after_with_something_else_than_a_node_is_a_call_error() -> None:
    with dx.Graph("after-bad"):
        node = inc(1)
        line = _next_line()
        with pytest.raises(dx.CallError) as exc_info:
            node.after(inc(2), "inc")  # type: ignore[arg-type]
    assert str(exc_info.value) == (
        f"node 'inc': after() takes Nodes, got 'inc' (called at {_site(line + 1)})"
    )


def test_after_with_a_node_of_another_graph_is_a_graph_error() -> None:
    with dx.Graph("first"):
        foreign = inc(1)
    with dx.Graph("second"):
        node = inc(2)
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            node.after(foreign)
    assert str(exc_info.value) == (
        f"node 'inc': argument 'inc' belongs to graph 'first', not to graph 'second' (called at {_site(line + 1)})"
    )


# -- node misuse ----------------------------------------------------------------------------


def test_bool_of_a_node_is_a_call_error() -> None:
    with dx.Graph("misuse"):
        node = inc(1)
        with pytest.raises(dx.CallError) as exc_info:
            if node:
                pass
    assert str(exc_info.value) == "node 'inc' has no truth value: a Node has no value until the plan runs"
    assert exc_info.value.key == "inc"
    assert isinstance(exc_info.value, TypeError)


def test_in_on_a_node_is_a_call_error() -> None:
    with dx.Graph("misuse"):
        node = inc(1)
        with pytest.raises(dx.CallError) as exc_info:
            _ = 1 in node
    assert (
        str(exc_info.value) == "'in' is not supported on node 'inc': a Node has no value until the plan runs"
    )


def test_setting_an_attribute_on_a_node_is_a_call_error() -> None:
    with dx.Graph("misuse"):
        node = inc(1)
        with pytest.raises(dx.CallError) as exc_info:
            node.value = 3
    assert str(exc_info.value) == (
        "cannot set attribute 'value' on node 'inc': a Node has no value until the plan runs"
    )


def test_pickling_a_node_is_a_call_error() -> None:
    with dx.Graph("misuse"):
        node = inc(1)
    with pytest.raises(dx.CallError) as exc_info:
        pickle.dumps(node)
    assert str(exc_info.value) == "node 'inc' cannot be pickled: compile the graph and pickle the plan"


def test_a_node_offers_no_arithmetic_and_no_lazy_attributes() -> None:
    with dx.Graph("misuse"):
        node = inc(1)
        with pytest.raises(dx.CallError) as type_info:
            node + 1  # type: ignore[operator]
        with pytest.raises(dx.NodeAttributeError) as attr_info:
            node.upper  # type: ignore[attr-defined]  # noqa: B018
    assert isinstance(type_info.value, TypeError)
    assert str(type_info.value) == (
        "'+' is not supported on node 'inc': a Node has no value until the plan runs; "
        "compute it inside a task, which receives the value itself"
    )
    assert isinstance(attr_info.value, AttributeError)
    assert (attr_info.value.key, attr_info.value.name) == ("inc", "upper")


def test_node_of_another_graph_is_a_graph_error_naming_both_graphs() -> None:
    with dx.Graph("first"):
        foreign = inc(1)
    with dx.Graph("second") as second:
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            add(foreign, 1)
        with pytest.raises(dx.GraphError) as nested_info:
            total([1, {"k": foreign}])
    err = exc_info.value
    assert isinstance(err, ValueError)
    assert str(err) == (
        f"node 'add': argument 'inc' belongs to graph 'first', not to graph 'second' (called at {_site(line + 1)})"
    )
    assert (err.key, err.call_site) == ("add", _site(line + 1))
    assert str(nested_info.value) == (
        f"node 'total': argument 'inc' belongs to graph 'first', not to graph 'second' (called at {_site(line + 3)})"
    )
    assert len(second) == 0


def test_node_passed_to_a_task_outside_any_graph_is_a_graph_error() -> None:
    with dx.Graph("built"):
        node = inc(1)
    line = _next_line()
    with pytest.raises(dx.GraphError) as exc_info:
        add(node, y=1)
    assert str(exc_info.value) == (
        f"add() was called outside any graph with node 'inc' of graph 'built' (called at {_site(line + 1)}); "
        "call it inside 'with graph:'"
    )
    assert exc_info.value.key == "inc"
    with pytest.raises(dx.GraphError):
        add(1, y=node)


# -- inputs ---------------------------------------------------------------------------------


def test_inputs_are_nodes_keyed_by_name() -> None:
    with dx.Graph("inputs") as graph:
        path = graph.input("path", str, default="data.csv")
        n = graph.input("n", int)
        anything = graph.input("anything")
        echo([path, n, anything])
    assert (path.key, n.key, anything.key) == ("path", "n", "anything")
    plan = graph.compile()
    assert [(i.name, i.type, i.default, i.required, i.readers) for i in plan.inputs] == [
        ("path", str, "data.csv", False, ("echo",)),
        ("n", int, dx.MISSING, True, ("echo",)),
        ("anything", Any, dx.MISSING, True, ("echo",)),
    ]
    assert plan.run(n=1, anything=None, executor="serial").output == ["data.csv", 1, None]


def test_duplicate_input_name_is_a_graph_error() -> None:
    with dx.Graph("dup-input") as graph:
        graph.input("n", int)
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            graph.input("n", int, default=1)
    assert str(exc_info.value) == f"input 'n' is declared twice (declared again at {_site(line + 1)})"
    assert exc_info.value.key == "n"
    assert exc_info.value.call_site == _site(line + 1)


def test_input_named_like_a_node_key_is_a_graph_error() -> None:
    with dx.Graph("taken") as graph:
        inc(1)
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            graph.input("inc")
    assert str(exc_info.value) == (
        f"input 'inc': the name is already the key of a node (declared at {_site(line + 1)})"
    )


@pytest.mark.parametrize("name", ["", "a/b", 3])
def test_bad_input_name_is_a_graph_error(name: Any) -> None:
    with dx.Graph("bad-name") as graph:
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            graph.input(name)
    assert str(exc_info.value) == (
        f"input name must be a non-empty str without '/', got {name!r} (declared at {_site(line + 1)})"
    )


def test_input_default_not_matching_its_type_is_a_graph_error() -> None:
    with dx.Graph("bad-default") as graph:
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            graph.input("n", int, default="3")
        with pytest.raises(dx.GraphError) as nested_info:
            graph.input("rows", list[int], default=[1, "2"])
    assert (
        str(exc_info.value)
        == f"input 'n': default expects int but got str '3' (declared at {_site(line + 1)})"
    )
    assert str(nested_info.value) == (
        "input 'rows': default expects list[int] but got list [1, '2'] "
        f"(item 1 of list is not an instance of int) (declared at {_site(line + 3)})"
    )
    assert len(graph) == 0


def test_input_default_of_its_type_is_accepted() -> None:
    with dx.Graph("good-default") as graph:
        x = graph.input("x", float, default=1)
        rows = graph.input("rows", list[int], default=[1, 2])
        none = graph.input("none", int | None, default=None)
        echo([x, rows, none])
    assert run(graph) == {"echo": [1, [1, 2], None]}


# -- outputs --------------------------------------------------------------------------------


def test_output_marks_named_outputs() -> None:
    with dx.Graph("outputs") as graph:
        a = inc(1)
        assert graph.output(a, name="first") is a
        b = graph.output(inc(a))
        inc(b)  # not an output once some are marked
    plan = graph.compile()
    assert plan.outputs == ("first", "inc-1")
    assert plan.run(executor="serial").outputs == {"first": 2, "inc-1": 3}


def test_outputs_default_to_the_nodes_nobody_consumes() -> None:
    with dx.Graph("sinks") as graph:
        a = inc(1)
        inc(a)
        add(a, 1)
        q, _r = divmod_(7, 2)
        inc(q)  # the unused half of an unpacking is not an output
    assert graph.compile().outputs == ("inc-1", "add", "inc-2")


def test_outputs_default_to_unpacked_items_when_nothing_else_is_a_sink() -> None:
    with dx.Graph("unpacked") as graph:
        _q, _r = divmod_(7, 2)
    assert graph.compile().outputs == ("divmod_.0", "divmod_.1")
    assert run(graph) == {"divmod_.0": 3, "divmod_.1": 1}


def test_duplicate_output_name_is_a_graph_error() -> None:
    with dx.Graph("dup-output") as graph:
        a = inc(1)
        graph.output(a, "result")
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            graph.output(inc(2), "result")
        graph.output(a)
        with pytest.raises(dx.GraphError) as by_key_info:
            graph.output(a)
    assert str(exc_info.value) == f"output 'result' is declared twice (declared again at {_site(line + 1)})"
    assert str(by_key_info.value) == f"output 'inc' is declared twice (declared again at {_site(line + 4)})"


def test_output_of_a_node_of_another_graph_is_a_graph_error() -> None:
    with dx.Graph("first"):
        foreign = inc(1)
    with dx.Graph("second") as second:
        inc(2)
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            second.output(foreign, "out")
    assert str(exc_info.value) == (
        f"node 'out': argument 'inc' belongs to graph 'first', not to graph 'second' (called at {_site(line + 1)})"
    )
    assert second.compile().outputs == ("inc",)


def test_output_of_something_else_than_a_node_is_a_graph_error() -> None:
    with dx.Graph("not-a-node") as graph:
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            graph.output(42, "answer")  # type: ignore[arg-type]
    assert str(exc_info.value) == f"output 'answer': expected a Node, got 42 (called at {_site(line + 1)})"


def test_a_subclassed_container_that_holds_itself_stays_a_constant() -> None:
    looped = Row([1])
    looped.append(looped)
    with dx.Graph("looped") as graph:
        a = inc(1)
        echo([looped, a])
    got = graph.compile().run(executor="serial").outputs["echo"]
    assert got[1] == 2 and type(got[0]) is Row and got[0][1] is got[0]


@pytest.mark.parametrize(
    ("error", "fields"),
    [
        (dx.TypeCheckError("m", "k", "p"), {"key": "k", "param": "p"}),
        (dx.MutationError("m", "k", "p", "node 'a'"), {"key": "k", "param": "p", "producer": "node 'a'"}),
        (dx.TaskTimeout("m", "k", 1.5), {"key": "k", "timeout": 1.5}),
        (
            dx.WorkerCrashed("m", "k", 7, "{SIGKILL(-9)}", "tcp://h:1"),
            {"key": "k", "pid": 7, "exitcodes": "{SIGKILL(-9)}", "worker": "tcp://h:1"},
        ),
        (dx.ArtifactError("m", "truncated", "a.dagx"), {"reason": "truncated", "path": "a.dagx"}),
        (dx.CommandFailed("m", -9, "boom"), {"returncode": -9, "stderr": "boom"}),
    ],
)
def test_errors_come_back_whole_from_a_pickle(error: dx.DagexecError, fields: dict[str, Any]) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert back.args == ("m",)
    assert {name: getattr(back, name) for name in fields} == fields
