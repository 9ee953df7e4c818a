"""Runners of other ways to run a DAG: Hamilton's driver, a bare ThreadPoolExecutor
and Ray's own ``ray.remote`` tasks.

DESIGN §9b sets dagexec's figures against the first two, measured in the same run:
serial overhead against Hamilton's synchronous driver, threads overhead against a
``concurrent.futures.ThreadPoolExecutor`` that a user drives by hand, and
build + compile against Hamilton's build of the same graph.  ``ray-remote`` is the
graph a Ray user writes by hand, beside ``dagexec-ray`` (docs/ray.md).
"""

from __future__ import annotations

import itertools
import sys
import types
from queue import SimpleQueue
from typing import Any

from runner_base import Runner
from shapes import Dag, Ref

__all__ = ["HamiltonRunner", "RayRemoteRunner", "ThreadPoolRunner", "local_ray"]

_modules = itertools.count()


def hamilton_module(dag: Dag) -> types.ModuleType:
    """A module with one function per node of ``dag``, as Hamilton reads graphs.

    Node ``i`` is ``def n{i}(n{j}: int, ...) -> int: return _f(n{j}, ...)``: its
    parameters name the nodes it reads, ``_f`` is the undecorated task the plain
    loop calls, and constant arguments are module globals.  The module is put in
    ``sys.modules`` (Hamilton looks functions' modules up there).
    """
    name = f"hamilton_bench_{dag.name}_{len(dag)}_{next(_modules)}"
    module = types.ModuleType(name)
    scope = module.__dict__
    tasks: dict[int, str] = {}
    lines = []
    for i, (fn, args) in enumerate(zip(dag.fns, dag.args, strict=True)):
        task = tasks.get(id(fn))
        if task is None:
            task = tasks[id(fn)] = f"_f{len(tasks)}"
            scope[task] = fn.__wrapped__
        params: dict[str, None] = {}
        call = []
        for a in args:
            if type(a) is Ref:
                params[f"n{a.i}"] = None
                call.append(f"n{a.i}")
            else:
                const = f"_c{i}_{len(call)}"
                scope[const] = a
                call.append(const)
        signature = ", ".join(f"{p}: int" for p in params)
        lines.append(f"def n{i}({signature}) -> int:\n    return {task}({', '.join(call)})\n")
    exec(compile("".join(lines), name, "exec"), scope)
    sys.modules[name] = module
    return module


class HamiltonRunner(Runner):
    """Hamilton's synchronous driver on a module of one function per node.

    :meth:`source` writes the module (:func:`hamilton_module`, untimed: it stands for
    the code a Hamilton user writes); :meth:`build` is
    ``driver.Builder().with_modules(module).build()``, where Hamilton makes and
    checks its graph (it has no separate compile step), timed at most
    ``max_build_reps`` times; a run is
    ``dr.execute([sink names])``, which returns a dict of the sinks' values
    (Builder's default result).  Each node is one call more than the plain loop's
    (the generated function calling the task), about 0.05 µs.

    Hamilton computes a node's dependencies recursively, so a chain of 10,000
    nodes needs more than Python's default recursion limit of 1,000 (it runs with
    one level per node): :meth:`prepare` raises the limit to
    ``RECURSION_PER_NODE`` levels per node, plus 1,000.
    """

    name = "hamilton"
    family = "hamilton"
    mode = "serial"
    requires = ("hamilton",)
    install_hint = "pip install -e '.[bench]', or pip install sf-hamilton"
    RECURSION_PER_NODE = 2
    #: one build of 100,000 nodes takes 10 s or more: a warm-up and 2 timed builds
    max_build_reps = 2

    def source(self, dag: Dag) -> Any:
        return hamilton_module(dag)

    def build(self, source: Any) -> Any:
        from hamilton import driver

        return driver.Builder().with_modules(source).build()

    def prepare(self, dag: Dag) -> Any:
        limit = self.RECURSION_PER_NODE * len(dag) + 1_000
        if sys.getrecursionlimit() < limit:
            sys.setrecursionlimit(limit)
        return self.build(self.source(dag)), [f"n{s}" for s in dag.sinks]

    def run(self, prepared: Any) -> Any:
        dr, sinks = prepared
        return sum(dr.execute(sinks).values())

    def versions(self) -> dict[str, str]:
        from hamilton import version

        return {"sf-hamilton": ".".join(map(str, version.VERSION))}


class ThreadPoolRunner(Runner):
    """A bare ``concurrent.futures.ThreadPoolExecutor`` of ``workers`` threads.

    The loop a user writes without a DAG library: the main thread submits the nodes
    that read no other node, then takes each finished future from a queue (its done
    callback puts it there), keeps its value, and submits every node whose last
    missing input that was.  Each run starts and stops its pool, as
    ``plan.run(executor="threads")`` does.  Nothing is released or recorded.
    """

    family = "threadpool"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.name = "threadpool"
        self.mode = f"threads-{workers}"

    def prepare(self, dag: Dag) -> Any:
        n = len(dag)
        consts: list[Any] = []
        calls = []
        readers: list[list[int]] = [[] for _ in range(n)]
        waiting = [0] * n
        for i, (fn, args) in enumerate(zip(dag.fns, dag.args, strict=True)):
            slots = []
            for a in args:
                if type(a) is Ref:
                    slots.append(a.i)
                    readers[a.i].append(i)
                    waiting[i] += 1
                else:
                    slots.append(n + len(consts))
                    consts.append(a)
            calls.append((fn.__wrapped__, tuple(slots)))
        return calls, readers, waiting, consts, dag.sinks

    def run(self, prepared: Any) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        calls, readers, waiting_at_start, consts, sinks = prepared
        n = len(calls)
        vals: list[Any] = [None] * n + consts
        get = vals.__getitem__
        waiting = list(waiting_at_start)
        finished: SimpleQueue[Any] = SimpleQueue()
        node_of: dict[Any, int] = {}
        with ThreadPoolExecutor(self.workers) as pool:

            def submit(i: int) -> None:
                fn, slots = calls[i]
                future = pool.submit(fn, *map(get, slots))
                node_of[future] = i
                future.add_done_callback(finished.put)

            for i in range(n):
                if not waiting[i]:
                    submit(i)
            for _ in range(n):
                future = finished.get()
                i = node_of.pop(future)
                vals[i] = future.result()
                for r in readers[i]:
                    waiting[r] -= 1
                    if not waiting[r]:
                        submit(r)
        return sum(vals[s] for s in sinks)


def local_ray(cpus: int) -> None:
    """A local Ray of ``cpus`` CPUs on 127.0.0.1, started once per process (the
    measurement's): never timed."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")


class RayRemoteRunner(Runner):
    """The same graph as Ray tasks written by hand: each node's function as a
    ``ray.remote`` task (Ray's retries off, as dagexec's executor has them), called
    with the object refs of the nodes it reads, then ``ray.get`` of the sinks.  Ray
    submits as the graph is written, so the timed run builds and runs it."""

    family = "ray"
    requires = ("ray",)

    def __init__(self, cpus: int) -> None:
        self.cpus = cpus
        self.name = "ray-remote"
        self.mode = "ray"

    def prepare(self, dag: Dag) -> Any:
        import ray

        local_ray(self.cpus)
        remote = {id(fn): ray.remote(max_retries=0)(fn.__wrapped__) for fn in set(dag.fns)}
        return dag, remote

    def run(self, prepared: Any) -> Any:
        import ray

        dag, remote = prepared
        refs: list[Any] = []
        for fn, args in zip(dag.fns, dag.args, strict=True):
            refs.append(remote[id(fn)].remote(*[refs[a.i] if type(a) is Ref else a for a in args]))
        return sum(ray.get([refs[s] for s in dag.sinks]))

    def versions(self) -> dict[str, str]:
        import ray

        return {"ray": ray.__version__}
