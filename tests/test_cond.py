"""``dx.cond``: both branches traced and checked, one run (DESIGN §10; docs/dynamic.md)."""

from __future__ import annotations

import pytest

import dagexec as dx
from dagexec import State

SUCCEEDED, SKIPPED, FAILED, UPSTREAM_FAILED = (
    State.SUCCEEDED,
    State.SKIPPED,
    State.FAILED,
    State.UPSTREAM_FAILED,
)


@dx.task
def is_big(n: int) -> bool:
    return n > 10


@dx.task
def heavy(n: int) -> int:
    return n * 100


@dx.task
def light(n: int) -> int:
    return n + 1


@dx.task
def label(x: int) -> str:
    return f"x={x}"


@dx.task
def shout(text: str) -> str:
    return text.upper()


@dx.task
def explode(n: int) -> bool:
    raise ValueError("no predicate")


def branching() -> tuple[dx.CompiledGraph, dict[str, dx.Node]]:
    made: dict[str, dx.Node] = {}

    def then() -> dx.Node:
        made["heavy"] = heavy(n)
        return made["heavy"]

    with dx.Graph("b") as g:
        n = g.input("n", int)
        value = dx.cond(is_big(n), then=then, otherwise=lambda: light(n))
        g.output(label(value), name="label")
        g.output(label.options(name="only_heavy")(made["heavy"]), name="only_heavy")
    return g.compile(), made


def states(result: dx.RunResult) -> dict[str, State]:
    return dict(result.states)


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_only_the_taken_branch_runs_and_the_other_is_skipped(executor):
    plan, _ = branching()
    assert plan.keys == ("is_big", "heavy", "light", "cond", "label", "only_heavy")
    small = plan.run(n=5, executor=executor, max_workers=2)
    assert small.ok and small.outputs == {"label": "x=6"}
    assert states(small) == {
        "is_big": SUCCEEDED,
        "heavy": SKIPPED,
        "light": SUCCEEDED,
        "cond": SUCCEEDED,
        "label": SUCCEEDED,
        "only_heavy": SKIPPED,  # downstream of the untaken branch only
    }
    assert small.trials["heavy"] == [] and small.trials["only_heavy"] == []
    big = plan.run(n=50, executor=executor, max_workers=2)
    assert big.outputs == {"label": "x=5000", "only_heavy": "x=5000"}
    assert (big.states["heavy"], big.states["light"]) == (SUCCEEDED, SKIPPED)


def test_a_graph_input_chooses_before_anything_runs():
    with dx.Graph("g") as g:
        flag = g.input("flag", bool)
        g.output(dx.cond(flag, then=lambda: light(1), otherwise=lambda: heavy(1)), name="v")
    plan = g.compile()
    on = plan.run(flag=True, executor="serial")
    assert (on.output, on.states["heavy"]) == (2, SKIPPED)
    off = plan.run(flag=False, executor="serial")
    assert (off.output, off.states["light"]) == (100, SKIPPED)


def test_without_otherwise_a_false_predicate_gives_none():
    with dx.Graph("g") as g:
        g.output(dx.cond(is_big(g.input("n", int)), then=lambda: heavy(3)), name="v")
    plan = g.compile()
    assert plan.run(n=1, executor="serial").outputs == {"v": None}
    assert plan.run(n=11, executor="serial").outputs == {"v": 300}


def test_a_failed_predicate_leaves_both_branches_upstream_failed():
    with dx.Graph("g") as g:
        dx.cond(explode(1), then=lambda: heavy(1), otherwise=lambda: light(1))
    result = g.compile().run(executor="serial", raise_on_failure=False)
    assert states(result) == {
        "explode": FAILED,
        "heavy": UPSTREAM_FAILED,
        "light": UPSTREAM_FAILED,
        "cond": UPSTREAM_FAILED,
    }


def test_branches_of_different_annotated_types_are_a_graph_error():
    with dx.Graph("g") as g:
        n = g.input("n", int)
        with pytest.raises(dx.GraphError) as info:
            dx.cond(is_big(n), then=lambda: heavy(n), otherwise=lambda: label(n))
        assert len(g) == 2  # the input and is_big: the branches were rolled back
    (problem,) = info.value.problems
    assert problem.message.startswith(
        "cond: the branches return different types: then int ('heavy'), otherwise str ('label') (called at "
    )
    assert "test_cond.py:" in problem.message


def test_compile_checks_both_branches():
    with dx.Graph("g") as g:
        n = g.input("n", int)
        dx.cond(is_big(n), then=lambda: heavy(n), otherwise=lambda: light(label(n)))
    with pytest.raises(dx.GraphError) as info:
        g.compile()  # light takes an int, and label returns a str: in the branch not taken, too
    assert "node 'light': parameter 'n' expects int but 'label' returns str" in str(info.value)


def test_cond_outside_a_graph_or_on_a_value_is_a_call_error():
    with pytest.raises(dx.CallError, match=r"cond\(\) is called inside 'with dx.Graph\(...\)'"):
        dx.cond(True, then=lambda: 1)  # type: ignore[arg-type]
    with (
        dx.Graph("g"),
        pytest.raises(dx.CallError, match=r"cond\(\): pred must be a Node of graph 'g', got True"),
    ):
        dx.cond(True, then=lambda: 1)  # type: ignore[arg-type]


def test_a_branch_that_raises_leaves_the_graph_as_it_was():
    with dx.Graph("g") as g:
        n = g.input("n", int)
        pred = is_big(n)

        def broken() -> dx.Node:
            heavy(n)
            raise RuntimeError("bad branch")

        with pytest.raises(RuntimeError, match="bad branch"):
            dx.cond(pred, then=broken)
        g.output(light(n), name="v")
    plan = g.compile()
    assert plan.keys == ("is_big", "light")
    assert plan.run(n=1, executor="serial").outputs == {"v": 2}


@dx.section
def pick(n: int) -> int:
    return dx.cond(is_big(n), then=lambda: heavy(n), otherwise=lambda: light(n))


def test_cond_in_a_section_and_nested_conds():
    with dx.Graph("g") as g:
        n = g.input("n", int)
        inner = pick(n)
        g.output(
            dx.cond(
                is_big.options(name="outer_pred")(inner),
                then=lambda: heavy(inner),
                otherwise=lambda: light(inner),
            ),
            name="v",
        )
    plan = g.compile()
    assert plan.keys == (
        "pick/is_big",
        "pick/heavy",
        "pick/light",
        "pick/cond",
        "outer_pred",
        "heavy",
        "light",
        "cond",
    )
    big = plan.run(n=20, executor="threads")
    assert big.output == 200_000
    assert [k for k, s in big.states.items() if s == SKIPPED] == ["pick/light", "light"]
    small = plan.run(n=2, executor="threads")
    assert small.output == 4
    assert [k for k, s in small.states.items() if s == SKIPPED] == ["pick/heavy", "heavy"]


def test_a_saved_plan_with_a_cond_runs_the_same(tmp_path):
    plan, _ = branching()
    plan.save(tmp_path / "b.dagx")
    loaded = dx.load(tmp_path / "b.dagx")
    assert loaded.fingerprint == plan.fingerprint
    assert loaded.run(n=5, executor="serial").outputs == {"label": "x=6"}


def test_cond_with_a_cache_reruns_only_the_branch_that_changes(tmp_path):
    plan, _ = branching()
    first = plan.run(n=50, executor="serial", cache=tmp_path)
    again = plan.run(n=50, executor="serial", cache=tmp_path)
    assert again.outputs == first.outputs
    assert set(again.states.values()) == {State.CACHED}  # light: only cached nodes need it
    other = plan.run(n=5, executor="serial", cache=tmp_path)
    assert other.outputs == {"label": "x=6"} and other.states["heavy"] == SKIPPED


def test_a_cached_predicate_still_skips_the_branch_not_taken(tmp_path):
    with dx.Graph("g") as g:
        g.output(dx.cond(is_big(g.input("n", int)), then=lambda: heavy(1), otherwise=lambda: light(1)), name="v")
    plan = g.compile()
    plan.run(n=50, executor="serial", cache=tmp_path)
    again = plan.run(n=50, executor="serial", cache=tmp_path)
    assert again.output == 100
    assert dict(again.states) == {"is_big": State.CACHED, "heavy": State.CACHED, "light": SKIPPED, "cond": SUCCEEDED}
    assert again.trials["light"] == []


def test_a_map_in_the_branch_not_taken_never_expands():
    @dx.task
    def numbers() -> list[int]:
        return [1, 2]

    with dx.Graph("g") as g:
        listed = numbers()
        g.output(dx.cond(is_big(g.input("n", int)), then=lambda: heavy.map(listed), otherwise=lambda: []), name="v")
    plan = g.compile()
    small = plan.run(n=1, executor="threads")
    assert small.output == [] and small.states["heavy"] == SKIPPED
    assert plan.run(n=11, executor="threads").output == [100, 200]


def test_a_run_picture_colours_the_skipped_branch():
    plan, _ = branching()
    result = plan.run(n=5, executor="serial")
    source = result.to_dot().source
    assert '"node:heavy"' in source and '"node:cond"' in source
    assert "skipped" in source


def test_a_pictures_cond_edges_are_named_for_the_predicate_and_each_branch():
    @dx.task
    def below(x: int) -> bool:
        return x < 10

    @dx.task
    def twice(x: int) -> int:
        return 2 * x

    with dx.Graph("g") as g:
        dx.cond(below(g.input("n", int)), then=lambda: twice(1), otherwise=lambda: twice(2))
        dx.cond(below(3), then=lambda: twice(5))
    edges = [line.strip() for line in g.compile().to_dot().source.splitlines() if "->" in line]
    assert edges == [
        "in0 -> n0 [label=x]",
        "n0 -> n1 [style=dashed]",
        "n0 -> n2 [style=dashed]",
        "n0 -> n3 [label=if]",
        "n1 -> n3 [label=then]",
        "n2 -> n3 [label=otherwise]",
        "n4 -> n5 [style=dashed]",
        "n4 -> n6 [label=if]",
        "n5 -> n6 [label=then]",
        "n3 -> out0",
        "n6 -> out1",
    ]
