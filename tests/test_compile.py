"""``graph.compile()``: validation, ordering, the plan's description and pickling (DESIGN §4, §12)."""

from __future__ import annotations

import copyreg
import inspect
import json
import os
import pickle
import sys
import threading
from collections.abc import Sequence
from typing import Any, Literal, Optional, Protocol, Union

import cloudpickle
import pytest

import dagexec as dx


def _site(line: int) -> str:
    """The call site dagexec reports for ``line`` of this file (DESIGN §12)."""
    rel = os.path.relpath(__file__)
    return f"{__file__ if rel.startswith('..') else rel}:{line}"


def _next_line() -> int:
    return sys._getframe(1).f_lineno + 1


def _def_line(fn: Any, offset: int) -> int:
    """The line ``offset`` lines below the ``def`` of ``fn``."""
    return int(inspect.unwrap(fn).__code__.co_firstlineno) + offset


class Animal:
    pass


class Dog(Animal):
    pass


class Stone:
    pass


class Speaker(Protocol):
    def speak(self) -> str: ...


@dx.task
def make_int() -> int:
    return 1


@dx.task
def make_dog() -> Dog:
    return Dog()


@dx.task
def make_stone() -> Stone:
    return Stone()


@dx.task
def make_ints() -> list[int]:
    return [1]


@dx.task
def make_nothing() -> None:
    return None


@dx.task
def untyped():  # type: ignore[no-untyped-def]
    return "anything"


@dx.task
def want_float(x: float) -> float:
    return x


@dx.task
def want_complex(x: complex) -> complex:
    return x


@dx.task
def want_animal(a: Animal) -> str:
    return type(a).__name__


@dx.task
def want_str(s: str) -> str:
    return s


@dx.task
def want_int(n: int) -> int:
    return n


@dx.task
def want_optional(s: Optional[str]) -> str:  # noqa: UP045
    return str(s)


@dx.task
def want_union(v: Union[str, float]) -> str:  # noqa: UP007
    return str(v)


@dx.task
def want_pipe_union(v: str | Animal) -> str:
    return str(v)


@dx.task
def want_strs(v: list[str]) -> int:
    return len(v)


@dx.task
def want_sequence(v: Sequence[int]) -> int:
    return len(v)


@dx.task
def want_speaker(v: Speaker) -> int:
    return 0


@dx.task
def want_any(v: Any) -> Any:
    return v


@dx.task
def want_mode(mode: Literal["fast", "slow"]) -> str:
    return mode


@dx.task
def want_mapping(m: dict[str, int]) -> int:
    return len(m)


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(x: int, y: int) -> int:
    return x + y


@dx.task
def total(values: list[int]) -> int:
    return sum(values)


@dx.task(nout=2)
def split(x: int):  # type: ignore[no-untyped-def]
    return x, -x


@dx.section
def sectioned(path: str) -> str:
    return want_str(path)


# -- problems --------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_sorted_by_call_site() -> None:
    with dx.Graph("nightly") as graph:
        line = _next_line()
        want_animal(make_stone())
        want_str(s=3)
        n = graph.input("n", int)
        want_str(n)
        sectioned(4)  # the problem is in the section body, above in this file
        want_float("x")
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    err = exc_info.value
    assert isinstance(err, ValueError)
    body = _def_line(sectioned, 2)
    assert str(err) == (
        "5 problems in graph 'nightly':\n"
        f"- node 'sectioned/want_str': parameter 's' expects str but got int 4 (called at {_site(body)})\n"
        f"- node 'want_animal': parameter 'a' expects {__name__}.Animal but 'make_stone' returns "
        f"{__name__}.Stone (called at {_site(line)})\n"
        f"- node 'want_str': parameter 's' expects str but got int 3 (called at {_site(line + 1)})\n"
        f"- node 'want_str-1': parameter 's' expects str but input 'n' is int (called at {_site(line + 3)})\n"
        f"- node 'want_float': parameter 'x' expects float but got str 'x' (str is neither float or int) "
        f"(called at {_site(line + 5)})"
    )
    assert [(p.key, p.param, p.call_site) for p in err.problems] == [
        ("sectioned/want_str", "s", _site(body)),
        ("want_animal", "a", _site(line)),
        ("want_str", "s", _site(line + 1)),
        ("want_str-1", "s", _site(line + 3)),
        ("want_float", "x", _site(line + 5)),
    ]
    assert (err.key, err.param, err.call_site) == ("sectioned/want_str", "s", _site(body))
    assert isinstance(err.problems[0], dx.Problem)
    assert str(err.problems[1]) == err.problems[1].message


def test_a_single_problem_is_its_own_message() -> None:
    with dx.Graph("single") as graph:
        line = _next_line()
        want_int("3")
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert str(exc_info.value) == (
        f"node 'want_int': parameter 'n' expects int but got str '3' (called at {_site(line)})"
    )
    assert len(exc_info.value.problems) == 1


def test_an_empty_graph_is_a_graph_error() -> None:
    with pytest.raises(dx.GraphError) as exc_info:
        dx.Graph("empty").compile()
    assert str(exc_info.value) == "graph 'empty' is empty: call tasks inside 'with graph:' before compile()"


def test_a_graph_with_only_inputs_is_empty() -> None:
    with dx.Graph("inputs-only") as graph:
        graph.input("n", int)
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert (
        str(exc_info.value)
        == "graph 'inputs-only' is empty: call tasks inside 'with graph:' before compile()"
    )


# -- cycles and order --------------------------------------------------------------------------


def test_a_cycle_through_after_is_reported_as_its_path() -> None:
    with dx.Graph("cyclic") as graph:
        a = make_int()
        b = inc(a)
        c = inc(b)
        line = _next_line()
        a.after(c)
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert str(exc_info.value) == (
        "cycle: 'make_int' -> 'inc' -> 'inc-1' -> 'make_int' "
        f"(closed by 'make_int'.after('inc-1') called at {_site(line)})"
    )
    assert (exc_info.value.key, exc_info.value.call_site) == ("make_int", _site(line))


def test_a_node_after_itself_is_a_cycle() -> None:
    with dx.Graph("self") as graph:
        a = make_int()
        line = _next_line()
        a.after(a)
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert str(exc_info.value) == (
        f"cycle: 'make_int' -> 'make_int' (closed by 'make_int'.after('make_int') called at {_site(line)})"
    )


def test_a_cycle_between_two_nodes() -> None:
    with dx.Graph("two") as graph:
        a = make_int()
        b = inc(a)
        line = _next_line()
        a.after(b)
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert str(exc_info.value) == (
        f"cycle: 'make_int' -> 'inc' -> 'make_int' (closed by 'make_int'.after('inc') called at {_site(line)})"
    )


def test_after_pointing_forward_reorders_the_plan_topologically() -> None:
    with dx.Graph("reordered") as graph:
        first = make_int()
        second = make_int()
        third = make_int()
        inc(first)
        first.after(third)
    plan = graph.compile()
    assert plan.keys == ("make_int-1", "make_int-2", "make_int", "inc")
    assert [n.idx for n in plan.nodes] == [0, 1, 2, 3]
    assert [(n.key, n.deps) for n in plan.nodes] == [
        ("make_int-1", ()),
        ("make_int-2", ()),
        ("make_int", ("make_int-2",)),
        ("inc", ("make_int",)),
    ]
    assert (second.key, third.key) == ("make_int-1", "make_int-2")


def test_plan_keys_are_in_creation_order_when_that_is_topological() -> None:
    with dx.Graph("diamond") as graph:
        top = make_int()
        left = inc(top)
        right = inc(top)
        add(left, right)
    plan = graph.compile()
    assert plan.keys == ("make_int", "inc", "inc-1", "add")
    assert [n.deps for n in plan.nodes] == [(), ("make_int",), ("make_int",), ("inc", "inc-1")]
    assert len(plan) == 4


# -- constants against annotations --------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "value", "detail"),
    [
        (want_int, "3", "parameter 'n' expects int but got str '3'"),
        (want_int, 1.5, "parameter 'n' expects int but got float 1.5"),
        (
            total,
            [1, "a"],
            "parameter 'values' expects list[int] but got list [1, 'a'] (item 1 of list is not an instance of int)",
        ),
        (
            want_mapping,
            {"a": "b"},
            "parameter 'm' expects dict[str, int] but got dict {'a': 'b'} (value of key 'a' of dict is not an instance of int)",
        ),
        (want_optional, 3, "parameter 's' expects Optional[str] but got int 3"),
        (want_mode, "medium", "parameter 'mode' expects Literal['fast', 'slow'] but got str 'medium'"),
        (
            want_int,
            "x" * 100,
            "parameter 'n' expects int but got str '" + "x" * 76 + "...",
        ),
    ],
)
def test_constants_not_matching_annotations_are_graph_errors(task: Any, value: Any, detail: str) -> None:
    with dx.Graph("constants") as graph:
        line = _next_line()
        task(value)
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert str(exc_info.value) == f"node {task.__name__!r}: {detail} (called at {_site(line)})"


@pytest.mark.parametrize(
    ("task", "value"),
    [
        (want_int, 3),
        (want_float, 3),  # int is accepted for float
        (want_complex, 2.5),
        (want_optional, None),
        (want_union, 1),
        (want_strs, ["a", "b"]),
        (want_mode, "fast"),
        (want_any, object()),
        (want_animal, Dog()),
    ],
)
def test_constants_matching_annotations_compile(task: Any, value: Any) -> None:
    with dx.Graph("constants") as graph:
        task(value)
    assert graph.compile().keys == (task.__name__,)


def test_constants_given_by_keyword_are_checked() -> None:
    with dx.Graph("keywords") as graph:
        line = _next_line()
        add(1, y="2")
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert str(exc_info.value) == (
        f"node 'add': parameter 'y' expects int but got str '2' (called at {_site(line)})"
    )


def test_containers_holding_nodes_are_left_to_the_run_time_check() -> None:
    with dx.Graph("mixed") as graph:
        total([inc(1), "not an int"])
    plan = graph.compile()
    with pytest.raises(dx.RunFailed):
        plan.run(executor="serial")


def test_typecheck_false_turns_off_the_compile_time_checks_too() -> None:
    loose = want_int.options(typecheck=False)
    with dx.Graph("loose") as graph:
        loose("3")
    result = graph.compile().run(executor="serial")
    assert result.output == "3"
    assert result.states == {"want_int": dx.State.SUCCEEDED}


# -- edges between annotated producers and consumers ----------------------------------------------


@pytest.mark.parametrize(
    ("producer", "consumer"),
    [
        (make_int, want_float),  # int is accepted for float ...
        (make_int, want_complex),  # ... and for complex
        (make_dog, want_animal),  # a subclass
        (make_int, want_union),  # a Union consumer accepts any member
        (make_dog, want_pipe_union),
        (make_nothing, want_optional),  # None for Optional
        (make_ints, want_strs),  # generics are left to the run-time check
        (make_ints, want_sequence),  # so are ABCs ...
        (make_dog, want_speaker),  # ... and protocols
        (make_stone, want_any),
        (untyped, want_int),  # an unannotated producer
    ],
)
def test_compatible_or_unjudged_edges_compile(producer: Any, consumer: Any) -> None:
    with dx.Graph("edges") as graph:
        consumer(producer())
    assert graph.compile().keys == (producer.__name__, consumer.__name__)


@pytest.mark.parametrize(
    ("producer", "consumer", "detail"),
    [
        (
            make_stone,
            want_animal,
            f"parameter 'a' expects {__name__}.Animal but 'make_stone' returns {__name__}.Stone",
        ),
        (make_int, want_str, "parameter 's' expects str but 'make_int' returns int"),
        (make_nothing, want_int, "parameter 'n' expects int but 'make_nothing' returns None"),
        (make_int, want_optional, "parameter 's' expects Optional[str] but 'make_int' returns int"),
        (
            make_stone,
            want_pipe_union,
            f"parameter 'v' expects str | {__name__}.Animal but 'make_stone' returns {__name__}.Stone",
        ),
    ],
)
def test_mismatching_plain_classes_are_graph_errors(producer: Any, consumer: Any, detail: str) -> None:
    with dx.Graph("edges") as graph:
        line = _next_line()
        consumer(producer())
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert str(exc_info.value) == f"node {consumer.__name__!r}: {detail} (called at {_site(line)})"
    assert exc_info.value.param == detail.split("'")[1]


def test_typed_graph_inputs_are_checked_against_consumers() -> None:
    with dx.Graph("typed-inputs") as graph:
        n = graph.input("n", int)
        name = graph.input("name", str)
        untyped_input = graph.input("any")
        want_float(n)
        want_str(name)
        want_str(untyped_input)
        line = _next_line()
        want_int(name)
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile()
    assert str(exc_info.value) == (
        f"node 'want_int': parameter 'n' expects int but input 'name' is str (called at {_site(line)})"
    )


# -- picklability ---------------------------------------------------------------------------------


def _locked_task() -> tuple[dx.Task, threading.Lock]:
    lock = threading.Lock()

    @dx.task
    def guarded(x: int) -> int:
        with lock:
            return x * 2

    return guarded, lock


def test_a_task_closing_over_a_lock_makes_the_plan_not_portable() -> None:
    guarded, lock = _locked_task()
    with dx.Graph("local") as graph:
        line = _next_line()
        a = guarded(1)
        guarded(a)
        want_any(lock)
        inc(2)
    plan = graph.compile()
    assert plan.portable is False
    fn = f"{__name__}:_locked_task.<locals>.guarded"
    assert [(p.key, p.param, p.call_site, p.message) for p in plan.pickle_problems] == [
        (
            "guarded",
            None,
            _site(line),
            f"node 'guarded': task function {fn} cannot be pickled because of its closure variable "
            f"'lock' (a _thread.lock): TypeError: cannot pickle '_thread.lock' object (called at {_site(line)})",
        ),
        (
            "guarded-1",
            None,
            _site(line + 1),
            f"node 'guarded-1': task function {fn} cannot be pickled because of its closure variable "
            f"'lock' (a _thread.lock) (called at {_site(line + 1)})",
        ),
        (
            "want_any",
            "v",
            _site(line + 2),
            f"node 'want_any': parameter 'v': constant {lock!r} cannot be pickled: "
            f"TypeError: cannot pickle '_thread.lock' object (called at {_site(line + 2)})",
        ),
    ]
    # serial runs need no pickling
    assert plan.run(executor="serial").outputs == {"guarded-1": 4, "want_any": lock, "inc": 3}


def test_compile_portable_raises_listing_what_does_not_pickle() -> None:
    guarded, lock = _locked_task()
    with dx.Graph("local") as graph:
        line = _next_line()
        guarded(1)
        want_any(v=[1, {"lock": lock}])
    with pytest.raises(dx.GraphError) as exc_info:
        graph.compile(portable=True)
    fn = f"{__name__}:_locked_task.<locals>.guarded"
    assert str(exc_info.value) == (
        "2 problems in graph 'local' (compile(portable=True) needs every task and constant to pickle):\n"
        f"- node 'guarded': task function {fn} cannot be pickled because of its closure variable 'lock' "
        f"(a _thread.lock): TypeError: cannot pickle '_thread.lock' object (called at {_site(line)})\n"
        f"- node 'want_any': parameter 'v': constant [1, {{'lock': {lock!r}}}] cannot be pickled: "
        f"TypeError: cannot pickle '_thread.lock' object (called at {_site(line + 1)})"
    )


def test_a_plan_of_module_level_tasks_is_portable() -> None:
    with dx.Graph("portable") as graph:
        a, b = split(3)
        total([inc(a), b])
    plan = graph.compile(portable=True)
    assert plan.portable is True
    assert plan.pickle_problems == ()


# -- what the plan describes ------------------------------------------------------------------------


def _small_graph() -> tuple[dx.Graph, int]:
    with dx.Graph("small") as graph:
        line = _next_line()
        n = graph.input("n", int)
        step = graph.input("step", int, default=2)
        a = inc(n)
        b = add(a, step)
        graph.output(b, "result")
    return graph, line


def test_plan_describes_nodes_inputs_and_outputs() -> None:
    graph, line = _small_graph()
    plan = graph.compile()
    assert plan.name == "small"
    assert plan.keys == ("inc", "add")
    assert [(n.key, n.idx, n.task, n.function, n.call_site, n.section, n.deps) for n in plan.nodes] == [
        ("inc", 0, "inc", f"{__name__}:inc", _site(line + 2), "", ()),
        ("add", 1, "add", f"{__name__}:add", _site(line + 3), "", ("inc",)),
    ]
    assert repr(plan.nodes[0]) == "<NodeInfo 'inc' task='inc'>"
    assert [(i.name, i.type, i.default, i.required, i.readers) for i in plan.inputs] == [
        ("n", int, dx.MISSING, True, ("inc",)),
        ("step", int, 2, False, ("add",)),
    ]
    assert [repr(i) for i in plan.inputs] == ["<Input n: int>", "<Input step: int = 2>"]
    assert plan.outputs == ("result",)
    assert plan.sections == ()
    assert plan.node("add").idx == 1
    assert plan.run(n=1, executor="serial").outputs == {"result": 4}


def test_plan_node_of_an_unknown_key_is_a_key_error() -> None:
    graph, _ = _small_graph()
    with pytest.raises(KeyError) as exc_info:
        graph.compile().node("nope")
    assert exc_info.value.args == ("plan 'small' has no node 'nope'",)


def test_plan_is_immutable() -> None:
    graph, _ = _small_graph()
    plan = graph.compile()
    with pytest.raises(AttributeError) as exc_info:
        plan.name = "other"  # type: ignore[misc]
    assert str(exc_info.value) == "a CompiledGraph is immutable"


def test_plan_does_not_change_when_the_graph_grows() -> None:
    graph, _ = _small_graph()
    plan = graph.compile()
    with graph:
        inc(5)
    assert plan.keys == ("inc", "add")
    assert graph.compile().keys == ("inc", "add", "inc-1")


def test_to_dict_is_a_json_manifest() -> None:
    graph, line = _small_graph()
    plan = graph.compile()
    manifest = plan.to_dict()
    assert manifest == {
        "name": "small",
        "fingerprint": plan.fingerprint,
        "inputs": [
            {"name": "n", "type": "int", "required": True},
            {"name": "step", "type": "int", "required": False, "default": "2"},
        ],
        "outputs": [{"name": "result", "key": "add"}],
        "nodes": [
            {
                "key": "inc",
                "task": "inc",
                "function": f"{__name__}:inc",
                "deps": [],
                "section": "",
                "call_site": _site(line + 2),
            },
            {
                "key": "add",
                "task": "add",
                "function": f"{__name__}:add",
                "deps": ["inc"],
                "section": "",
                "call_site": _site(line + 3),
            },
        ],
        "sections": [],
        "portable": True,
    }
    assert json.loads(json.dumps(manifest)) == manifest
    assert len(plan.fingerprint) == 64


def test_to_dict_of_a_plan_with_sections_and_items() -> None:
    with dx.Graph("shaped") as graph:
        line = _next_line()
        a, _b = split(1)
        sectioned("p")
    manifest = graph.compile().to_dict()
    assert json.loads(json.dumps(manifest)) == manifest
    # the unused items of an unpacking are not outputs while another sink is
    assert manifest["outputs"] == [{"name": "sectioned/want_str", "key": "sectioned/want_str"}]
    assert [(n["key"], n["task"], n["function"], n["deps"], n["section"]) for n in manifest["nodes"]] == [
        ("split", "split", f"{__name__}:split", [], ""),
        ("split.0", "getitem", "dagexec._compile:getitem", ["split"], ""),
        ("split.1", "getitem", "dagexec._compile:getitem", ["split"], ""),
        ("sectioned/want_str", "want_str", f"{__name__}:want_str", [], "sectioned"),
    ]
    assert manifest["sections"] == [
        {
            "path": "sectioned",
            "name": "sectioned",
            "parent": "",
            "inputs": {"path": "'p'"},
            "output": "sectioned/want_str",
            "nodes": ["sectioned/want_str"],
            "call_site": _site(line + 1),
        }
    ]
    assert a.key == "split.0"


# -- pickling the plan ----------------------------------------------------------------------------


def test_plan_round_trips_through_cloudpickle_and_runs() -> None:
    offset = 100

    @dx.task(retries=1)
    def shifted(x: int) -> int:  # a closure: travels by value
        return x + offset

    with dx.Graph("shipped") as graph:
        n = graph.input("n", int)
        a, b = split(n)
        d = sectioned("x")
        graph.output(total([inc(a), b, 10]), "sum")
        graph.output(d, "label")
        graph.output(shifted(n), "shifted")
    plan = graph.compile()
    back = cloudpickle.loads(cloudpickle.dumps(plan))
    assert back is not plan
    assert back.keys == plan.keys
    assert back.outputs == ("sum", "label", "shifted")
    assert [(i.name, i.required) for i in back.inputs] == [("n", True)]
    assert back.fingerprint == plan.fingerprint
    assert back.to_dict() == plan.to_dict()
    options = back.node("shifted").options
    assert options is not None
    assert (options.name, options.retries) == ("shifted", 1)
    assert back.run(n=4, executor="serial").outputs == {"sum": 11, "label": "x", "shifted": 104}
    with pytest.raises(dx.InputError):
        back.run(executor="serial")


def test_compiling_twice_gives_equal_plans() -> None:
    graph, _ = _small_graph()
    first = graph.compile()
    second = graph.compile()
    assert first is not second
    assert first.fingerprint == second.fingerprint
    assert first.to_dict() == second.to_dict()


# -- argument templates ----------------------------------------------------------------


@dx.task
def _grow(box: Any) -> Any:
    """Change the argument in place, then hand it back."""
    box["rows"].append(len(box["rows"]))
    box["fixed"].append("x")
    return box


@dx.task
def _seven() -> int:
    return 7


def test_each_trial_gets_its_own_copy_of_every_container_in_a_nested_argument() -> None:
    with dx.Graph("templates") as graph:
        _grow({"rows": [_seven()], "fixed": [1]})
    plan = graph.compile()
    for _ in range(2):  # the template is filled afresh, unchanged by the previous run
        assert plan.run(executor="serial").outputs == {"_grow": {"rows": [7, 1], "fixed": [1, "x"]}}


def test_node_types_holds_every_node_class() -> None:
    from dagexec import _graph as G

    def subclasses(t: type) -> set[type]:
        return {t}.union(*(subclasses(s) for s in t.__subclasses__()))

    assert subclasses(G.Node) == G.NODE_TYPES


def test_plan_records_pickle_their_slots_by_name() -> None:
    """Saved plans hold InputSpec and SectionInfo as ``(None, {slot: value})``: files
    written by any version load into these classes."""
    from dagexec._plan import InputSpec, SectionInfo
    from dagexec._state import State, Trial

    spec = InputSpec("n", int, 3, 5, ("double",))
    assert spec.__reduce_ex__(2)[2] == (
        None,
        {"name": "n", "type": int, "default": 3, "slot": 5, "readers": ("double",)},
    )
    info = SectionInfo("etl-1", "etl", "", {"x": "n"}, "etl-1/total", ("etl-1/total",), "a.py:3")
    assert info.__reduce_ex__(2)[2][1]["inputs"] == {"x": "n"}
    trial = Trial("k", 1)
    assert trial.__reduce_ex__(2)[2][1] == {
        "key": "k", "attempt": 1, "state": State.RUNNING, "start": 0.0, "end": None,
        "worker": "", "error": None, "traceback": "", "log": "", "items": None, "bundle": None,
    }  # fmt: skip
    # a Trial pickled before it had items (or a bundle) loads with none
    earlier = {k: v for k, v in trial.__reduce_ex__(2)[2][1].items() if k not in ("items", "bundle")}
    old = copyreg.__newobj__, (Trial,), (None, earlier)
    loaded = old[0](*old[1])
    loaded.__setstate__(old[2])
    assert (loaded.key, loaded.items, loaded.bundle) == ("k", None, None)
    back = pickle.loads(pickle.dumps(spec))
    assert (back.name, back.type, back.default, back.slot, back.readers) == ("n", int, 3, 5, ("double",))
