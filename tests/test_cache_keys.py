"""Values without a stable token (they do not pickle) never share a cache key: the node
that needs one is not cached, nor what depends on it, and explain says why (DESIGN §7)."""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import dagexec as dx
from dagexec.cache.store import CacheStore


class Conn:
    """A connection-like object: it holds a lock, so it does not pickle."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lock = threading.Lock()


@dx.task
def ask(conn: Conn) -> int:
    return conn.n * 10


@dx.task
def plus_one(x: int) -> int:
    return x + 1


def conn_plan() -> dx.CompiledGraph:
    with dx.Graph("g") as g:
        asked = ask(g.input("conn", Conn))
        g.output(plus_one(asked), name="v")
        g.output(plus_one.options(name="other")(g.input("n", int)), name="other")
    return g.compile()


def test_runs_with_different_unpicklable_inputs_return_their_own_results(tmp_path, caplog):
    plan = conn_plan()
    with caplog.at_level(logging.WARNING, logger="dagexec.cache"):
        first = plan.run(conn=Conn(1), n=1, cache=tmp_path, executor="serial")
        warned = [r.getMessage() for r in caplog.records]
    second = plan.run(conn=Conn(2), n=1, cache=tmp_path, executor="serial")
    assert (first.outputs, second.outputs) == ({"v": 11, "other": 2}, {"v": 21, "other": 2})
    assert {k: s.value for k, s in second.states.items()} == {
        "ask": "succeeded",
        "plus_one": "succeeded",
        "other": "cached",  # a node that does not read the input is cached as always
    }
    assert plan.cache_keys(conn=Conn(3), n=1) == {
        "ask": None,
        "plus_one": None,
        "other": plan.cache_keys(conn=Conn(4), n=1)["other"],
    }
    assert [e.meta["node"] for e in CacheStore(tmp_path).entries()] == ["other"]
    assert warned == [
        "node 'ask' is not cached: it has no cache key: input conn: test_cache_keys.Conn does not pickle"
    ]


def test_explain_names_the_input_and_its_type(tmp_path):
    plan = conn_plan()
    plan.run(conn=Conn(1), n=1, cache=tmp_path, executor="serial")
    assert [(e.key, e.action, e.reasons) for e in plan.explain(cache=tmp_path, conn=Conn(1), n=1)] == [
        ("ask", "run", ("no cache key: input conn: test_cache_keys.Conn does not pickle",)),
        ("plus_one", "run", ("upstream not cacheable: ask",)),
        ("other", "cached", ("in the store",)),
    ]


def test_a_list_of_unpicklable_values_names_the_inner_type(tmp_path):
    @dx.task
    def ask_all(conns: list[Any]) -> list[int]:
        return [c if type(c) is int else c.n for c in conns]

    with dx.Graph("g") as g:
        g.output(ask_all(g.input("conns", list)), name="v")
    plan = g.compile()
    assert plan.run(conns=[1, Conn(2)], cache=tmp_path, executor="serial").output == [1, 2]
    assert plan.run(conns=[1, Conn(3)], cache=tmp_path, executor="serial").output == [1, 3]
    (e,) = plan.explain(cache=tmp_path, conns=[1, Conn(4)])
    assert e.reasons == ("no cache key: input conns: test_cache_keys.Conn does not pickle",)


def test_unpicklable_constants_and_closures_do_not_share_a_key(tmp_path):
    def make(conn: Conn) -> dx.Task:
        @dx.task(name="bound")
        def bound() -> int:
            return conn.n

        return bound

    results = []
    for n in (1, 2):
        with dx.Graph("g") as g:
            g.output(ask(Conn(n)), name="constant")
            g.output(make(Conn(n))(), name="closure")
        plan = g.compile()
        results.append(plan.run(cache=tmp_path, executor="serial").outputs)
    assert results == [{"constant": 10, "closure": 1}, {"constant": 20, "closure": 2}]
    reasons = {e.key: e.reasons for e in plan.explain(cache=tmp_path)}
    assert reasons["ask"] == ("no cache key: a constant argument: test_cache_keys.Conn does not pickle",)
    (why,) = reasons["bound"]
    assert why == (
        "no cache key: test_cache_keys:test_unpicklable_constants_and_closures_do_not_share_a_key.<locals>"
        ".make.<locals>.bound closes over conn: _thread.lock does not pickle"
    )
    assert CacheStore(tmp_path).entries() == []


def test_map_items_that_do_not_pickle_are_not_cached(tmp_path):
    with dx.Graph("g") as g:
        g.output(ask.map(g.input("conns", list)), name="v")
    plan = g.compile()
    assert plan.run(conns=[Conn(1), Conn(2)], cache=tmp_path, executor="serial").output == [10, 20]
    result = plan.run(conns=[Conn(3), Conn(4)], cache=tmp_path, executor="serial")
    assert result.output == [30, 40]
    assert [result.states[k].value for k in ("ask[0]", "ask[1]")] == ["succeeded", "succeeded"]


def test_resume_with_an_unpicklable_input_is_an_input_error(tmp_path):
    with pytest.raises(dx.InputError) as info:
        conn_plan().run(conn=Conn(1), n=1, cache=tmp_path, resume=True)
    assert str(info.value) == (
        "resume=True needs graph inputs that pickle, to find the run it continues: "
        "input conn: test_cache_keys.Conn does not pickle"
    )


Pair = collections.namedtuple("Pair", ["left", "right"])


@dx.task
def first_of(pair: Pair) -> int:
    return pair.left


@dx.task
def source(n: int) -> int:
    return n


def test_a_namedtuple_holding_a_node_keys_on_that_node(tmp_path):
    def plan_of(offset: int) -> dx.CompiledGraph:
        with dx.Graph("g") as g:
            g.output(first_of(Pair(source(g.input("n", int)), offset)), name="v")
        return g.compile()

    a, b = plan_of(0), plan_of(0)
    assert a.run(n=1, cache=tmp_path, executor="serial").output == 1
    assert b.run(n=2, cache=tmp_path, executor="serial").output == 2  # source's key changed
    assert a.cache_keys(n=1)["first_of"] != a.cache_keys(n=2)["first_of"]
    assert a.cache_keys(n=1)["first_of"] != plan_of(5).cache_keys(n=1)["first_of"]


PIPELINE = textwrap.dedent(
    """
    import threading

    import dagexec as dx

    LOCK = threading.Lock()

    @dx.task
    def load(n: int) -> list[int]:
        return list(range(n))

    @dx.task
    def guarded(xs: list[int]) -> int:
        with LOCK:
            return sum(xs)

    with dx.Graph("pipe") as pipe:
        pipe.output(guarded(load(pipe.input("n", int))), name="total")
    """
)


def test_dry_run_says_why_a_node_has_no_key(tmp_path):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    base = [sys.executable, "-m", "dagexec", "run", "pipe:pipe", "-i", "n=4", "--cache", "c"]
    run = subprocess.run(
        [*base, "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert (run.returncode, run.stdout) == (0, "total = 6\n"), run.stderr
    dry = subprocess.run(
        [*base, "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert (dry.returncode, dry.stdout.splitlines()) == (
        0,
        [
            "cached   load     in the store",
            "run      guarded  no cache key: pipe:guarded reads global LOCK: _thread.lock does not pickle",
            "2 nodes: 1 would run, 1 cached",
        ],
    ), dry.stderr
