"""``@section``: keys, nesting, option defaults, returned containers, ``.graph()`` (DESIGN §3, §12)."""

from __future__ import annotations

import inspect
import os
import pickle
import sys
from typing import Any

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


@dx.task
def load(path: str) -> list[int]:
    return [len(path), 1]


@dx.task(retries=5)
def clean(rows: list[int]) -> list[int]:
    return [r for r in rows if r > 1]


@dx.task
def total(rows: list[int]) -> int:
    return sum(rows)


@dx.task
def report(a: int, b: int) -> str:
    return f"{a}+{b}"


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.section
def etl(path: str, scale: int = 1) -> int:
    """Load, clean and sum one file."""
    return total(clean(load(path)))


@dx.section(retries=2, timeout=30, tags=("etl",))
def guarded(path: str) -> int:
    return total(clean(load(path)))


@dx.section
def inner(x: int) -> int:
    return inc(x)


@dx.section(retries=1, executor="cpu")
def outer(x: int) -> int:
    return inner(inc(x))


@dx.section
def halves(path: str) -> tuple[list[int], int]:
    rows = load(path)
    return rows, total(rows)


@dx.section(nout=2)
def halves_nout(path: str):  # type: ignore[no-untyped-def]
    rows = load(path)
    return rows, total(rows)


@dx.section
def named(path: str) -> dict[str, Any]:
    rows = load(path)
    return {"rows": rows, "total": total(rows), "label": "fixed"}


@dx.section
def passthrough(x: Any) -> Any:
    return x


DEFAULT_OPTIONS = {
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


def run(graph: dx.Graph, **inputs: Any) -> dict[str, Any]:
    return dict(graph.compile().run(inputs, executor="serial").outputs)


# -- the wrapper ------------------------------------------------------------------------------


def test_section_keeps_name_doc_and_signature() -> None:
    assert isinstance(etl, dx.Section)
    assert etl.__name__ == "etl"
    assert etl.__doc__ == "Load, clean and sum one file."
    assert str(inspect.signature(etl)) == "(path: 'str', scale: 'int' = 1) -> 'int'"
    assert etl.section_name == "etl"
    assert etl.fn is inspect.unwrap(etl)
    assert repr(etl) == "<Section 'etl'>"


def test_section_called_outside_a_graph_runs_the_function() -> None:
    assert etl("abc.csv") == 7
    assert outer(1) == 3
    assert halves("ab") == ([2, 1], 3)


def test_section_options_are_checked() -> None:
    with pytest.raises(TypeError) as type_info:
        dx.section(retry=1)
    assert str(type_info.value).startswith("unknown task option 'retry'; valid options: buffer, cache, ")
    with pytest.raises(ValueError) as value_info:
        dx.section(timeout=-1)
    assert str(value_info.value) == "task option 'timeout' must be a number > 0 or None, got -1"


def test_sections_pickle_by_reference_and_by_value() -> None:
    assert pickle.loads(pickle.dumps(guarded)) is guarded
    assert cloudpickle.loads(cloudpickle.dumps(guarded)) is guarded

    @dx.section(retries=3, nout=2)
    def local(x: int) -> tuple[int, int]:
        return inc(x), inc(x)

    back = cloudpickle.loads(cloudpickle.dumps(local))
    assert isinstance(back, dx.Section)
    assert (back.section_name, back.nout, back.default_options) == ("local", 2, {"retries": 3})
    with dx.Graph("unpickled") as graph:
        back(1)
    assert graph.compile().keys == ("local/inc", "local/inc-1", "local")


# -- keys -----------------------------------------------------------------------------------


def test_section_nodes_are_keyed_by_section_path() -> None:
    with dx.Graph("nightly") as graph:
        a = etl("eu.csv")
        b = etl("us.csv")
        report(a, b)
    assert type(a) is dx.SectionNode
    assert (a.key, b.key) == ("etl", "etl-1")
    assert repr(a) == "<SectionNode 'etl'>"
    plan = graph.compile()
    assert plan.keys == (
        "etl/load",
        "etl/clean",
        "etl/total",
        "etl-1/load",
        "etl-1/clean",
        "etl-1/total",
        "report",
    )
    assert plan.node("report").deps == ("etl/total", "etl-1/total")
    assert plan.run(executor="serial").outputs == {"report": "6+6"}


def test_repeated_tasks_inside_a_section_are_numbered_within_it() -> None:
    @dx.section
    def twice(x: int) -> int:
        return inc(inc(x))

    with dx.Graph("numbered") as graph:
        inc(0)
        twice(1)
        twice(2)
        inc(3)
    assert graph.compile().keys == (
        "inc",
        "twice/inc",
        "twice/inc-1",
        "twice-1/inc",
        "twice-1/inc-1",
        "inc-1",
    )


def test_nested_sections_prefix_every_path() -> None:
    with dx.Graph("nested") as graph:
        outer(1)
        outer(2)
    plan = graph.compile()
    assert plan.keys == ("outer/inc", "outer/inner/inc", "outer-1/inc", "outer-1/inner/inc")
    assert [n.section for n in plan.nodes] == ["outer", "outer/inner", "outer-1", "outer-1/inner"]
    assert plan.run(executor="serial").outputs == {"outer/inner/inc": 3, "outer-1/inner/inc": 4}


def test_section_name_option_changes_its_path() -> None:
    renamed = dx.section(name="extract")(etl.fn)
    with dx.Graph("renamed") as graph:
        renamed("x")
    assert graph.compile().keys == ("extract/load", "extract/clean", "extract/total")


# -- options ---------------------------------------------------------------------------------


def test_section_options_are_defaults_and_task_options_win() -> None:
    with dx.Graph("options") as graph:
        guarded("a.csv")
        load("b.csv")
    plan = graph.compile()
    section_defaults = {"retries": 2, "timeout": 30, "tags": ("etl",)}
    assert plan.node("guarded/load").options is not None
    assert plan.node("guarded/load").options.to_dict() == {
        **DEFAULT_OPTIONS,
        **section_defaults,
        "name": "load",
    }
    assert plan.node("guarded/clean").options is not None
    assert plan.node("guarded/clean").options.to_dict() == {
        **DEFAULT_OPTIONS,
        **section_defaults,
        "name": "clean",
        "retries": 5,  # the task's own option wins
    }
    assert plan.node("load").options is not None
    assert plan.node("load").options.to_dict() == {**DEFAULT_OPTIONS, "name": "load"}


def test_inner_section_options_win_over_outer_ones() -> None:
    @dx.section(retries=3, tags=("inner",))
    def deep(x: int) -> int:
        return inc(x)

    @dx.section(retries=1, timeout=9)
    def shell(x: int) -> int:
        return deep(inc(x))

    with dx.Graph("layers") as graph:
        shell(0)
    plan = graph.compile()
    assert plan.node("shell/inc").options is not None
    assert plan.node("shell/inc").options.to_dict() == {
        **DEFAULT_OPTIONS,
        "name": "inc",
        "retries": 1,
        "timeout": 9,
    }
    assert plan.node("shell/deep/inc").options is not None
    assert plan.node("shell/deep/inc").options.to_dict() == {
        **DEFAULT_OPTIONS,
        "name": "inc",
        "retries": 3,
        "timeout": 9,
        "tags": ("inner",),
    }


def test_section_options_never_leak_between_graphs() -> None:
    # options of a section call must not be confused with those of an earlier,
    # since collected, section call
    seen = []
    for retries in range(40):

        @dx.section(retries=retries)
        def varying(x: int) -> int:
            return inc(x)

        with dx.Graph("leak") as graph:
            varying(1)
        opts = graph.compile().node("varying/inc").options
        assert opts is not None
        seen.append(opts.retries)
        del graph
    assert seen == list(range(40))


def test_section_name_option_does_not_rename_its_tasks() -> None:
    @dx.section(name="renamed", retries=1)
    def body(x: int) -> int:
        return inc(x)

    with dx.Graph("names") as graph:
        body(1)
    plan = graph.compile()
    assert plan.keys == ("renamed/inc",)
    assert plan.node("renamed/inc").options is not None
    assert plan.node("renamed/inc").options.name == "inc"


# -- parameters and returned values -----------------------------------------------------------


def test_parameters_inside_the_body_are_nodes_even_for_constants() -> None:
    seen: list[Any] = []

    @dx.section
    def spy(a: int, b: list[int], *, c: str = "c") -> int:
        seen.extend([a, b, c])
        return inc(a)

    with dx.Graph("params") as graph:
        x = inc(0)
        spy(x, [1, 2])
    assert [type(v) for v in seen] == [dx.Node, dx.Node, dx.Node]
    assert [v.key for v in seen] == ["spy:a", "spy:b", "spy:c"]
    assert run(graph) == {"spy/inc": 2}


def test_constants_passed_to_a_section_reach_its_tasks() -> None:
    with dx.Graph("constants") as graph:
        graph.output(etl("abcd.csv"), "eu")
        graph.output(etl(path="ab.csv", scale=2), "us")
    plan = graph.compile()
    assert plan.node("etl/load").deps == ()
    assert plan.run(executor="serial").outputs == {"eu": 8, "us": 6}


def test_graph_inputs_passed_to_a_section_are_read_by_its_tasks() -> None:
    with dx.Graph("inputs") as graph:
        path = graph.input("path", str)
        etl(path)
    plan = graph.compile()
    assert [(i.name, i.readers) for i in plan.inputs] == [("path", ("etl/load",))]
    assert plan.run(path="abc", executor="serial").output == 3


def test_section_returning_a_tuple_unpacks_by_annotation() -> None:
    with dx.Graph("tuple") as graph:
        rows, n = halves("abc")
        graph.output(rows, "rows")
        graph.output(n, "n")
    assert (rows.key, n.key) == ("halves.0", "halves.1")
    plan = graph.compile()
    assert plan.keys == ("halves/load", "halves/total", "halves", "halves.0", "halves.1")
    assert plan.run(executor="serial").outputs == {"rows": [3, 1], "n": 4}


def test_section_returning_a_tuple_unpacks_with_nout() -> None:
    with dx.Graph("nout") as graph:
        rows, n = halves_nout("ab")
        graph.output(n, "n")
    assert rows.key == "halves_nout.0"
    assert run(graph) == {"n": 3}


def test_section_returning_a_dict_is_indexed() -> None:
    with dx.Graph("dict") as graph:
        d = named("abc")
        graph.output(d["total"], "total")
        graph.output(d["label"], "label")
        graph.output(d, "all")
    plan = graph.compile()
    assert plan.keys == ("named/load", "named/total", "named", "named.total", "named.label")
    assert plan.run(executor="serial").outputs == {
        "total": 4,
        "label": "fixed",
        "all": {"rows": [3, 1], "total": 4, "label": "fixed"},
    }


def test_section_without_nout_cannot_be_unpacked() -> None:
    with dx.Graph("no-nout"):
        node = etl("x")
        with pytest.raises(dx.CallError) as exc_info:
            _a, _b = node
    assert str(exc_info.value) == (
        "cannot unpack node 'etl': its number of outputs is unknown; "
        "give the task nout=N or a tuple[A, B] return annotation"
    )


def test_section_returning_its_parameter_stands_for_the_argument() -> None:
    with dx.Graph("passthrough") as graph:
        a = passthrough(5)
        b = passthrough(inc(1))
        graph.output(inc(a), "from_constant")
        graph.output(inc(b), "from_node")
        graph.output(a, "constant")
    plan = graph.compile()
    # markers cost nothing: only real tasks are plan nodes
    assert plan.keys == ("inc", "inc-1", "inc-2")
    assert plan.node("inc-2").deps == ("inc",)
    assert plan.run(executor="serial").outputs == {"from_constant": 6, "from_node": 3, "constant": 5}


def test_section_node_as_output_is_named_after_its_path() -> None:
    with dx.Graph("section-output") as graph:
        graph.output(etl("abc"))
        graph.output(outer(1))
    plan = graph.compile()
    assert plan.outputs == ("etl", "outer")
    assert plan.run(executor="serial").outputs == {"etl": 3, "outer": 3}


def test_after_a_section_waits_for_every_node_inside_it() -> None:
    with dx.Graph("after-section") as graph:
        section_node = outer(1)
        last = inc(0).after(section_node)
    plan = graph.compile()
    assert plan.keys == ("outer/inc", "outer/inner/inc", "inc")
    assert plan.node(last.key).deps == ("outer/inc", "outer/inner/inc")


# -- plan.sections ----------------------------------------------------------------------------


def test_plan_sections_describe_every_section_call() -> None:
    with dx.Graph("described") as graph:
        line = _next_line()
        first = outer(inc(0))
        etl("x.csv", scale=3)
        passthrough(first)
    sections = graph.compile().sections
    assert [(s.path, s.name, s.parent, s.inputs, s.output, s.nodes, s.call_site) for s in sections] == [
        (
            "outer",
            "outer",
            "",
            {"x": "inc"},
            "outer/inner/inc",
            ("outer/inc", "outer/inner/inc"),
            _site(line),
        ),
        (
            "outer/inner",
            "inner",
            "outer",
            {"x": "outer/inc"},
            "outer/inner/inc",
            ("outer/inner/inc",),
            _site(_def_line(outer, 2)),
        ),
        (
            "etl",
            "etl",
            "",
            {"path": "'x.csv'", "scale": "3"},
            "etl/total",
            ("etl/load", "etl/clean", "etl/total"),
            _site(line + 1),
        ),
        ("passthrough", "passthrough", "", {"x": "outer/inner/inc"}, "outer/inner/inc", (), _site(line + 2)),
    ]
    assert repr(sections[0]) == "<SectionInfo 'outer' with 2 nodes>"


def test_nodes_inside_a_section_have_the_call_site_of_the_body() -> None:
    with dx.Graph("sites") as graph:
        etl("x")
    plan = graph.compile()
    body = _site(_def_line(etl, 3))
    assert [n.call_site for n in plan.nodes] == [body, body, body]


# -- section.graph() --------------------------------------------------------------------------


def test_section_graph_has_the_parameters_as_inputs() -> None:
    standalone = etl.graph()
    assert standalone.name == "etl"
    plan = standalone.compile()
    assert [(i.name, i.type, i.default, i.required, i.readers) for i in plan.inputs] == [
        ("path", str, dx.MISSING, True, ("etl/load",)),
        ("scale", int, 1, False, ()),
    ]
    assert plan.outputs == ("etl",)
    assert plan.keys == ("etl/load", "etl/clean", "etl/total")
    assert plan.run(path="abcde", executor="serial").outputs == {"etl": 5}


def test_section_graph_takes_a_name_and_keyword_only_parameters() -> None:
    @dx.section
    def scaled(x: int, *, factor: int = 2) -> int:
        return inc(x)

    plan = scaled.graph("custom").compile()
    assert plan.name == "custom"
    assert [(i.name, i.type, i.default) for i in plan.inputs] == [("x", int, dx.MISSING), ("factor", int, 2)]
    assert plan.run(x=1, executor="serial").output == 2


def test_section_graph_of_a_section_returning_a_tuple() -> None:
    plan = halves.graph().compile()
    assert plan.outputs == ("halves",)
    assert plan.run(path="ab", executor="serial").output == ([2, 1], 3)


def test_section_graph_with_var_args_is_a_graph_error() -> None:
    @dx.section
    def star(*xs: int) -> int:
        return inc(xs[0])

    with pytest.raises(dx.GraphError) as exc_info:
        star.graph()
    assert str(exc_info.value) == (
        "section 'star': parameter 'xs' is *args/**kwargs and cannot become a graph input"
    )


def test_var_args_of_a_section_become_numbered_markers() -> None:
    @dx.section
    def star(*xs: int, **kw: int) -> int:
        return total([xs[0], xs[1], kw["k"]])

    with dx.Graph("star") as graph:
        star(1, inc(1), k=3)
    plan = graph.compile()
    assert plan.sections[0].inputs == {"xs[0]": "1", "xs[1]": "inc", "kw[k]": "3"}
    assert plan.run(executor="serial").outputs == {"star/total": 6}


# -- failures ---------------------------------------------------------------------------------


def test_wrong_section_call_is_a_call_error() -> None:
    with dx.Graph("wrong") as graph:
        line = _next_line()
        with pytest.raises(dx.CallError) as exc_info:
            etl("x", 1, 2)
        etl("y")
    assert (
        str(exc_info.value) == f"section 'etl': too many positional arguments (called at {_site(line + 1)})"
    )
    assert exc_info.value.key == "etl"
    assert graph.compile().keys == ("etl/load", "etl/clean", "etl/total")


def test_section_returning_none_is_a_graph_error_and_leaves_nothing_behind() -> None:
    @dx.section
    def forgetful(x: int) -> None:
        inc(x)

    with dx.Graph("none") as graph:
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            forgetful(1)
        inc(2)
    assert str(exc_info.value) == (
        f"section 'forgetful' returned None; a section must return its Node(s) (called at {_site(line + 1)})"
    )
    plan = graph.compile()
    assert plan.keys == ("inc",)
    assert plan.sections == ()


def test_an_error_inside_a_section_body_leaves_nothing_behind() -> None:
    @dx.section
    def broken(x: int) -> int:
        inc(x)
        etl("nested")
        return inc()  # type: ignore[call-arg]

    with dx.Graph("broken") as graph:
        graph.output(inc(1), "first")
        with pytest.raises(dx.CallError) as exc_info:
            broken(1)
        graph.output(etl("later"), "later")
    assert str(exc_info.value) == (
        f"node 'broken/inc-1': missing a required argument: 'x' (called at {_site(_def_line(broken, 4))})"
    )
    plan = graph.compile()
    assert plan.keys == ("inc", "etl/load", "etl/clean", "etl/total")
    assert [s.path for s in plan.sections] == ["etl"]
    assert plan.run(executor="serial").outputs == {"first": 2, "later": 5}


def test_node_of_another_graph_passed_to_a_section_is_a_graph_error() -> None:
    with dx.Graph("first"):
        foreign = inc(1)
    with dx.Graph("second") as graph:
        line = _next_line()
        with pytest.raises(dx.GraphError) as exc_info:
            etl(foreign)
        inc(2)
    assert str(exc_info.value) == (
        "node 'etl:path': argument 'inc' belongs to graph 'first', not to graph 'second' "
        f"(called at {_site(line + 1)})"
    )
    plan = graph.compile()
    assert plan.keys == ("inc",)
    assert plan.sections == ()


# -- a parameter given a container of Nodes ------------------------------------------------------


@dx.task
def _sum_all(xs: list[int]) -> int:
    return sum(xs)


@dx.task
def _plus_one(x: int) -> int:
    return x + 1


@dx.section
def _many(xs: list[int], k: int) -> tuple[int, int]:
    return _sum_all(xs), _plus_one(k)


@dx.section
def _wraps_many(xs: list[int]) -> tuple[int, int]:
    return _many(xs, 3)


def test_a_container_argument_is_rebuilt_by_its_readers_not_a_plan_node() -> None:
    with dx.Graph("containers") as graph:
        a = _plus_one(1)
        total, more = _wraps_many([a, 5])
        graph.output(total, "total")
        graph.output(more, "more")
        graph.output(_many([total, a], 1), "again")
    plan = graph.compile()
    assert plan.keys == (
        "_plus_one",
        "_wraps_many/_many/_sum_all",
        "_wraps_many/_many/_plus_one",
        "_wraps_many/_many",
        "_wraps_many.0",
        "_wraps_many.1",
        "_many/_sum_all",
        "_many/_plus_one",
        "_many",
    )
    assert plan.node("_wraps_many/_many/_sum_all").deps == ("_plus_one",)
    assert plan.node("_many/_sum_all").deps == ("_wraps_many.0", "_plus_one")
    result = plan.run(executor="serial")
    assert result.outputs == {"total": 7, "more": 4, "again": (9, 2)}
