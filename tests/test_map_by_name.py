"""``task.map`` by name, zipped or crossed, and ``task.partial`` (DESIGN §17)."""

from __future__ import annotations

from typing import Any

import pytest

import dagexec as dx
from dagexec import State


@dx.task
def power(base: int, exp: int, scale: int = 1) -> int:
    return scale * base**exp


@dx.task
def bases() -> list[int]:
    return [1, 2, 3]


@dx.task
def greet(person: str, greeting: str = "hello") -> str:
    return f"{greeting}, {person}"


@pytest.fixture
def executor(every_executor: Any) -> Any:
    return every_executor


def test_keywords_are_mapped_zipped_crossed_and_fixed_by_partial(executor):
    with dx.Graph("g") as g:
        g.output(power.map(exp=[2, 2, 3], base=bases()), name="zipped")
        g.output(power.map(base=[1, 2], exp=[1, 2, 3], product=True), name="crossed")
        g.output(power.partial(scale=10).map(exp=[1, 2], base=[3, 3]), name="partial")
        g.output(greet.map(person=["ann", "bo"]), name="by_name")  # not the first parameter's order
        g.output(power.map([2, 3], exp=2), name="classic")
    result = g.compile().run(executor=executor)
    assert result.outputs == {
        "zipped": [1, 4, 27],
        "crossed": [1, 1, 1, 2, 4, 8],  # base varies slowest: (1,1) (1,2) (1,3) (2,1) (2,2) (2,3)
        "partial": [30, 90],
        "by_name": ["hello, ann", "hello, bo"],
        "classic": [4, 9],
    }
    assert [k for k in result.states if k.startswith("power[")] == ["power[0]", "power[1]", "power[2]"]


def test_a_mapped_keyword_of_another_parameter_than_the_first(executor):
    with dx.Graph("g") as g:
        g.output(greet.partial(person="cy").map(greeting=["hi", "yo"]), name="out")
    assert g.compile().run(executor=executor).output == ["hi, cy", "yo, cy"]


def test_outside_a_graph_it_is_the_list_comprehension():
    assert power.map(base=[1, 2], exp=[3, 3]) == [1, 8]
    assert power.map(base=[1, 2], exp=[1, 2], product=True) == [1, 1, 2, 4]
    assert power.partial(exp=2).map(base=[4, 5]) == [16, 25]
    assert power.map([2, 3], exp=2) == [4, 9]
    assert power.map(items=[2, 3], exp=2) == [4, 9]  # as before: items= is the first parameter


def test_lists_of_different_lengths_fail_the_map_naming_both():
    with dx.Graph("g") as g:
        power.map(base=bases(), exp=[1, 2])
    result = g.compile().run(executor="serial", raise_on_failure=False)
    assert result.states == {"bases": State.SUCCEEDED, "power": State.FAILED}
    (trial,) = result.trials["power"]
    assert type(trial.error) is ValueError
    assert str(trial.error) == (
        "node 'power': map: the mapped lists differ in length (base= has 3, exp= has 2 items); "
        "give product=True to cross them"
    )


def test_a_typo_in_a_mapped_or_fixed_keyword_names_it_and_the_parameters():
    with dx.Graph("g"), pytest.raises(dx.CallError) as info:
        power.map(base=[1], expo=[2])
    assert str(info.value).startswith("node 'power': map: unknown parameter 'expo' (did you mean 'exp'?); ")
    assert "power() takes base, exp, scale" in str(info.value)
    with dx.Graph("g"), pytest.raises(dx.CallError) as info:
        power.partial(scael=2).map(base=[1], exp=[2])
    assert "unknown parameter 'scael' (did you mean 'scale'?)" in str(info.value)


def test_a_mapped_value_that_is_not_a_list_is_a_call_error():
    with dx.Graph("g"), pytest.raises(dx.CallError) as info:
        power.map(base=3, exp=[2])
    assert str(info.value).startswith("node 'power': map takes a Node or a list of items for base=, got 3 ")


def test_each_items_mapped_values_are_type_checked():
    with dx.Graph("g") as g:
        power.map(base=[1, "two"], exp=[2, 2])
    result = g.compile().run(executor="serial", fail_fast=False, raise_on_failure=False)
    assert result.states["power[0]"] == State.SUCCEEDED
    error = result.trials["power[1]"][0].error
    assert isinstance(error, dx.TypeCheckError)
    assert str(error).startswith("node 'power[1]': parameter 'base' ")


def test_bad_uses_are_type_errors():
    with pytest.raises(TypeError, match="give the items, or the mapped keywords"):
        power.map()
    with pytest.raises(TypeError, match="give one list of items for the first parameter"):
        power.map([1], product=True)


def test_the_cache_keys_an_item_by_all_its_mapped_values(tmp_path):
    def plan(exps: list[int]) -> dx.CompiledGraph:
        with dx.Graph("g") as g:
            g.output(power.map(base=[2, 3], exp=exps), name="out")
        return g.compile()

    first = plan([1, 2]).run(executor="serial", cache=tmp_path)
    again = plan([1, 2]).run(executor="serial", cache=tmp_path)
    changed = plan([1, 3]).run(executor="serial", cache=tmp_path)
    assert (first.output, again.output, changed.output) == ([2, 9], [2, 9], [2, 27])
    assert again.states["power"] == State.CACHED
    # the map's list changed: item 0 (base=2, exp=1) comes from the cache, item 1 runs
    assert (changed.states["power[0]"], changed.states["power[1]"]) == (State.CACHED, State.SUCCEEDED)


def test_a_picture_names_the_mapped_parameters():
    with dx.Graph("g") as g:
        power.map(base=bases(), exp=[1, 2])
        power.map(base=[1, 2], exp=[1, 2], product=True)
        power.map([1, 2], exp=2)
    source = g.compile().to_dot().source
    assert 'map: power over base, exp"' in source
    assert "map: power over base, exp (product)" in source
    assert source.count("map: power") == 3
