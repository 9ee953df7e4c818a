"""Deep nesting never ends in a raw RecursionError: sections nest as deep as the
user's own recursion may, and values nested past ``MAX_NESTING`` are a GraphError
(an InputError for a graph input hashed into cache keys)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import dagexec as dx
from dagexec._graph import MAX_NESTING


def _site(line: int) -> str:
    rel = os.path.relpath(__file__)
    return f"{__file__ if rel.startswith('..') else rel}:{line}"


def _next_line() -> int:
    return sys._getframe(1).f_lineno + 1


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def echo(value: Any) -> Any:
    return value


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def sections(depth: int) -> dx.Section:
    """A chain of ``depth`` sections, each calling the next inside its body."""

    @dx.section(name=f"s{depth}")
    def body(x: int) -> int:
        return inc(x) if depth == 1 else sections(depth - 1)(x)

    return body


# -- sections ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["main thread", "other thread"])
def test_sections_300_deep_build_compile_and_run(where: str) -> None:
    limit = sys.getrecursionlimit()
    found: dict[str, Any] = {}

    def build() -> None:
        with dx.Graph("deep") as graph:
            sections(300)(graph.input("x", int, default=1))
        found["result"] = graph.compile().run(executor="serial")

    if where == "main thread":
        build()
    else:
        thread = threading.Thread(target=build)
        thread.start()
        thread.join()
    result = found["result"]
    key = "/".join(f"s{d}" for d in range(300, 0, -1)) + "/inc"
    assert result.outputs == {key: 2}
    assert sys.getrecursionlimit() == limit


def test_sections_nested_past_the_recursion_limit_are_a_graph_error_naming_the_depth() -> None:
    limit = sys.getrecursionlimit()
    with dx.Graph("deeper") as graph:
        a = inc(1)
        line = _next_line()
        with pytest.raises(dx.GraphError) as info:
            sections(2 * limit)(a)
    deepest = int(str(info.value).split("nested ")[1].split(" ")[0])
    assert limit // 2 < deepest < 2 * limit
    assert str(info.value) == (
        f"section 's{2 * limit}': sections nested {deepest} deep, with what their bodies call, exceed "
        f"Python's recursion limit ({limit}); nest less, or raise the limit with sys.setrecursionlimit() "
        f"(called at {_site(line + 1)})"
    )
    assert sys.getrecursionlimit() == limit
    assert (len(graph), graph._sections, graph._scope) == (1, [], None)  # rolled back whole
    assert graph.compile().run(executor="serial").outputs == {"inc": 2}


def test_a_recursion_error_of_the_users_own_code_is_left_alone() -> None:
    def forever(n: int) -> int:
        return forever(n + 1)

    @dx.section
    def runaway(x: int) -> int:
        forever(0)
        return inc(x)

    with dx.Graph("own"), pytest.raises(RecursionError):
        runaway(1)


# -- values nested too deep ---------------------------------------------------------------------


def test_a_constant_nested_past_the_limit_is_a_graph_error_at_the_call() -> None:
    with dx.Graph("constants") as graph:
        line = _next_line()
        with pytest.raises(dx.GraphError) as positional:
            echo(nested(5000))
        with pytest.raises(dx.GraphError) as keyword:
            echo(value={"k": nested(MAX_NESTING)})
        echo(nested(MAX_NESTING))
    walks = "the most dagexec walks to find Nodes and to check, pickle and hash constants"
    assert str(positional.value) == (
        f"node 'echo': parameter 'value' holds containers nested more than {MAX_NESTING} deep, {walks}; "
        f"build such a value inside a task (called at {_site(line + 1)})"
    )
    assert str(keyword.value) == (  # a failed call uses up its key's number
        f"node 'echo-1': parameter 'value' holds containers nested more than {MAX_NESTING} deep, {walks}; "
        f"build such a value inside a task (called at {_site(line + 3)})"
    )
    assert graph.compile().run(executor="serial").output == nested(MAX_NESTING)


def test_a_section_argument_and_an_input_default_nested_too_deep_are_graph_errors() -> None:
    @dx.section
    def wrap(value: Any) -> Any:
        return echo(value)

    with dx.Graph("more") as graph:
        line = _next_line()
        with pytest.raises(dx.GraphError) as argument:
            wrap(nested(5000))
        with pytest.raises(dx.GraphError) as default:
            graph.input("deep", default=nested(5000))
    assert str(argument.value).startswith(
        f"node 'wrap:value': parameter 'value' holds containers nested more than {MAX_NESTING} deep"
    )
    assert str(default.value) == (
        f"input 'deep': the default holds containers nested more than {MAX_NESTING} deep, the most dagexec "
        f"walks to check, pickle and hash constants (declared at {_site(line + 3)})"
    )
    assert len(graph) == 0


def test_a_graph_input_nested_too_deep_is_an_input_error_with_a_cache_only(tmp_path: Path) -> None:
    with dx.Graph("inputs") as graph:
        echo(graph.input("value"))
    plan = graph.compile()
    store = tmp_path / "store"
    with pytest.raises(dx.InputError) as info:
        plan.run(value=nested(5000), executor="serial", cache=str(store))
    assert str(info.value) == (
        f"input 'value' holds containers nested more than {MAX_NESTING} deep, the most dagexec hashes into "
        "cache keys; run without cache=, or make the value inside a task"
    )
    assert not store.exists()
    # without a cache nothing walks the value: it goes to the task as it is
    deep = nested(5000)
    assert plan.run(value=deep, executor="serial").output is deep
    assert plan.run(value=nested(MAX_NESTING), executor="serial", cache=str(store)).ok
