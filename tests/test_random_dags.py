"""Random DAGs of small arithmetic tasks: every executor agrees with a plain evaluation.

A DAG is drawn as a list of node descriptions in topological order.  Each node calls
one task with argument templates: ints, references to earlier nodes, and lists,
tuples and dicts nesting both.  The reference evaluation calls the same functions in
list order; the run must give the same value for every node, and with failing nodes
(``fail_fast=False``) the same states.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagexec as dx
from dagexec import State
from dagexec.executors import FuturesExecutor

MOD = 1_000_003


def leaves(x: Any) -> list[int]:
    if isinstance(x, dict):
        return [v for item in x.values() for v in leaves(item)]
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in leaves(item)]
    return [x]


@dx.task
def t_sum(x: Any) -> int:
    return sum(leaves(x)) % MOD


@dx.task
def t_mix(x: Any, k: int) -> int:
    return (sum(leaves(x)) * k + 1) % MOD


@dx.task
def t_max(x: Any) -> int:
    return max(leaves(x), default=0)


@dx.task
def t_pair(a: Any, b: Any = 0) -> int:
    return (sum(leaves(a)) - 2 * sum(leaves(b))) % MOD


@dx.task
def t_boom(x: Any) -> int:
    raise ArithmeticError(f"boom on {len(leaves(x))} leaves")


TASKS = {"sum": t_sum, "mix": t_mix, "max": t_max, "pair": t_pair, "boom": t_boom}


@dataclass(frozen=True)
class Ref:
    """A reference to an earlier node; ``n`` is taken modulo the node's position."""

    n: int


@dataclass
class NodeDesc:
    task: str
    args: tuple[Any, ...]  # argument templates
    after: tuple[int, ...]  # ordering-only dependencies (raw, taken modulo the position)


leaf = st.one_of(st.integers(-20, 20), st.builds(Ref, st.integers(0, 50)))
template = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from("abc"), children, max_size=3),
    ),
    max_leaves=6,
)


@st.composite
def node_desc(draw: st.DrawFn, failing: bool) -> NodeDesc:
    names = ["sum", "mix", "max", "pair"] + (["boom"] if failing else [])
    name = draw(st.sampled_from(names))
    if name == "mix":
        args: tuple[Any, ...] = (draw(template), draw(leaf))
    elif name == "pair":
        args = tuple(draw(st.lists(template, min_size=1, max_size=2)))
    else:
        args = (draw(template),)
    after = tuple(draw(st.lists(st.integers(0, 50), max_size=1)))
    return NodeDesc(name, args, after)


def dags(failing: bool = False) -> st.SearchStrategy[list[NodeDesc]]:
    return st.lists(node_desc(failing), min_size=1, max_size=10)


def resolve(value: Any, i: int, get: Any) -> Any:
    """The template ``value`` of node ``i`` with each reference replaced by ``get(j)``."""
    if isinstance(value, Ref):
        return get(value.n % i) if i else value.n
    if isinstance(value, list):
        return [resolve(v, i, get) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve(v, i, get) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v, i, get) for k, v in value.items()}
    return value


def refs(value: Any, i: int) -> set[int]:
    if isinstance(value, Ref):
        return {value.n % i} if i else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(refs(v, i) for v in value))
    if isinstance(value, dict):
        return set().union(*(refs(v, i) for v in value.values()))
    return set()


def build(dag: list[NodeDesc], all_outputs: bool = True) -> tuple[dx.CompiledGraph, dict[str, str]]:
    """The plan, and node key -> output name (every node, or only the last, is an output)."""
    with dx.Graph("random") as g:
        nodes: list[dx.Node] = []
        for i, desc in enumerate(dag):
            node = TASKS[desc.task](*resolve(desc.args, i, nodes.__getitem__))
            if i:
                node.after(*(nodes[a % i] for a in desc.after))
            nodes.append(node)
            if all_outputs or i == len(dag) - 1:
                g.output(node, name=f"n{i}")
    return g.compile(), {node.key: f"n{i}" for i, node in enumerate(nodes)}


def evaluate(dag: list[NodeDesc]) -> tuple[dict[str, Any], dict[str, State]]:
    """Plain evaluation in list order: (values of the nodes that succeed, state of every node)."""
    values: dict[int, Any] = {}
    states: list[State] = []
    for i, desc in enumerate(dag):
        deps = refs(desc.args, i) | ({a % i for a in desc.after} if i else set())
        if any(states[d] is not State.SUCCEEDED for d in deps):
            states.append(State.UPSTREAM_FAILED)
            continue
        try:
            values[i] = TASKS[desc.task].fn(*resolve(desc.args, i, values.__getitem__))
        except ArithmeticError:
            states.append(State.FAILED)
        else:
            states.append(State.SUCCEEDED)
    return {f"n{i}": v for i, v in values.items()}, {f"n{i}": s for i, s in enumerate(states)}


@pytest.fixture(scope="module")
def pools():
    spawn = multiprocessing.get_context("spawn")
    with ThreadPoolExecutor(max_workers=3) as threads, ProcessPoolExecutor(2, mp_context=spawn) as processes:
        yield {"futures-threads": threads, "futures-processes": processes}


def executor_for(kind: str, pools: dict[str, Any]) -> Any:
    if kind.startswith("futures-"):
        return FuturesExecutor(pools[kind])
    return kind


KINDS = ["serial", "threads", "futures-threads", "futures-processes"]
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(dag=dags(), all_outputs=st.booleans())
def test_random_dag_outputs_match_a_plain_evaluation(kind, pools, dag, all_outputs):
    values, states = evaluate(dag)
    plan, keys = build(dag, all_outputs)
    result = plan.run(executor=executor_for(kind, pools), max_workers=2 if kind == "threads" else None)
    assert {keys[k]: s for k, s in result.states.items()} == states
    last = f"n{len(dag) - 1}"
    assert result.outputs == (values if all_outputs else {last: values[last]})


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(dag=dags(failing=True))
def test_random_dag_failures_match_a_plain_evaluation(kind, pools, dag):
    values, states = evaluate(dag)
    plan, keys = build(dag)
    result = plan.run(executor=executor_for(kind, pools), fail_fast=False, raise_on_failure=False)
    assert {keys[k]: s for k, s in result.states.items()} == states
    assert result.outputs == values
    failed = [keys[k] for k in result.failed]
    assert sorted(failed) == sorted(name for name, s in states.items() if s is State.FAILED)
    for key in result.failed:
        assert [(t.attempt, t.state) for t in result.trials[key]] == [(1, State.FAILED)]
        assert isinstance(result.trials[key][0].error, ArithmeticError)
