"""Runners: one way each of executing a :class:`~shapes.Dag`.

A runner turns a Dag into whatever it runs (:meth:`Runner.prepare`, untimed) and
offers one or more timed *phases* over it (:meth:`Runner.phases`), each a
callable returning the checksum (the sum of the sinks' values).  Runners that
can take part in the build workload also implement :meth:`Runner.build` and,
when they have a separate compile step, :meth:`Runner.compile`; what ``build``
starts from is :meth:`Runner.source` of the Dag, made untimed (the Dag itself,
except for Hamilton, whose graph is a module of functions).

To add a runner, subclass :class:`Runner` and add an instance to ``RUNNERS``.
``family`` groups runners of one library; ``mode`` pairs a dagexec runner with
the dask runner it is compared to (same mode, family ``dask``).  ``requires``
names the modules a runner imports beyond dagexec: when one is missing, run.py
reports the runner's rows as not measured instead of running them.

The runners of libraries other than dagexec and dask (Hamilton, a bare
``ThreadPoolExecutor``) are in ``others.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from others import HamiltonRunner, RayRemoteRunner, ThreadPoolRunner, local_ray
from runner_base import Runner
from shapes import Dag, Ref

__all__ = [
    "RUNNERS",
    "DagexecDaskRunner",
    "DagexecRayRunner",
    "DagexecRunner",
    "DaskClusterRunner",
    "DaskProcessesRunner",
    "DaskRunner",
    "HamiltonRunner",
    "PlainRunner",
    "RayRemoteRunner",
    "Runner",
    "ThreadPoolRunner",
    "local_cluster_client",
]


class PlainRunner(Runner):
    """The floor: a plain loop calling the same functions in topological order.

    Values live in one list (nodes first, then constants); each step is
    ``vals[i] = fn(*map(vals.__getitem__, slots))``: the least any DAG
    interpreter must do.  Nothing is released or recorded.
    """

    name = "plain"
    family = "plain"
    mode = "serial"

    def prepare(self, dag: Dag) -> Any:
        n = len(dag)
        consts: list[Any] = []
        prog = []
        for i, (fn, args) in enumerate(zip(dag.fns, dag.args, strict=True)):
            slots = []
            for a in args:
                if type(a) is Ref:
                    slots.append(a.i)
                else:
                    slots.append(n + len(consts))
                    consts.append(a)
            prog.append((i, fn.__wrapped__, tuple(slots)))
        return prog, consts, n, dag.sinks

    def run(self, prepared: Any) -> Any:
        prog, consts, n, sinks = prepared
        vals: list[Any] = [None] * n + consts
        get = vals.__getitem__
        for i, fn, slots in prog:
            vals[i] = fn(*map(get, slots))
        return sum(vals[s] for s in sinks)

    def chain_loop(self, dag: Dag) -> Callable[[], Any]:
        """The floor for a chain: ``x = fn(x)``, keeping only the current value.

        The generic loop keeps every node's value until it ends: for a chain of big
        values that is the whole chain, far more than a plain program holds.

        Raises:
            ValueError: when a node of ``dag`` reads a node other than the one
                before it.
        """
        steps = []
        for i, (fn, args) in enumerate(zip(dag.fns, dag.args, strict=True)):
            for a in args:
                if type(a) is Ref and a.i != i - 1:
                    raise ValueError(f"{dag!r} is not a chain: node {i} reads node {a.i}")
            steps.append((fn.__wrapped__, args))

        def loop() -> Any:
            x = None
            for fn, args in steps:
                x = fn(*[x if type(a) is Ref else a for a in args])
            return x  # the last node: a chain's one sink

        return loop


class DagexecRunner(Runner):
    """``graph.compile()`` then ``plan.run(executor=..., max_workers=...)``.

    The executor is given by name, as users do, so each run makes its own.  For
    ``"loky"`` that is cheap: the runs share loky's reusable pool, whose workers
    start in the untimed warm-up run and stay for the timed ones.
    """

    family = "dagexec"

    def __init__(
        self, executor: str, max_workers: int | None = None, mode: str | None = None, name: str | None = None
    ) -> None:
        self.executor = executor
        self.max_workers = max_workers
        self.name = name or f"dagexec-{executor}"
        self.mode = mode or executor

    def build(self, dag: Dag) -> Any:
        import dagexec as dx

        nodes: list[Any] = []
        append = nodes.append
        with dx.Graph(dag.name) as graph:
            for fn, args in zip(dag.fns, dag.args, strict=True):
                append(fn(*[nodes[a.i] if type(a) is Ref else a for a in args]))
        return graph  # no outputs marked: the sinks are the outputs

    def compile(self, built: Any) -> Any:
        return built.compile()

    def prepare(self, dag: Dag) -> Any:
        return self.compile(self.build(dag))

    def run(self, prepared: Any) -> Any:
        result = prepared.run(executor=self.executor, max_workers=self.max_workers)
        return sum(result.outputs.values())

    def versions(self) -> dict[str, str]:
        import dagexec

        return {"dagexec": dagexec.__version__}


class DaskRunner(Runner):
    """``dask.delayed`` of the same functions, ``dask.compute(*sinks, scheduler=...)``.

    Phase ``run`` is ``dask.compute`` as users call it (graph optimisation on, the
    default); phase ``run, optimize_graph=False`` skips dask's optimisation
    (culling), which dominates some shapes, to show the scheduler alone.
    """

    family = "dask"
    requires = ("dask",)
    #: building delayed graphs grows quadratically: 100,000 nodes take minutes
    max_build_nodes = 10_000

    def __init__(self, scheduler: str, num_workers: int | None = None, mode: str | None = None) -> None:
        self.scheduler = scheduler
        self.num_workers = num_workers
        self.name = f"dask-{scheduler}"
        self.mode = mode or scheduler

    def build(self, dag: Dag) -> Any:
        from dask import delayed

        wrapped = {id(fn): delayed(fn.__wrapped__, pure=False) for fn in set(dag.fns)}
        nodes: list[Any] = []
        append = nodes.append
        for fn, args in zip(dag.fns, dag.args, strict=True):
            append(wrapped[id(fn)](*[nodes[a.i] if type(a) is Ref else a for a in args]))
        return [nodes[s] for s in dag.sinks]

    def prepare(self, dag: Dag) -> Any:
        """``(sinks, extra keyword arguments for dask.compute)``."""
        return self.build(dag), {}

    def _compute(self, sinks: list[Any], optimize: bool, extra: dict[str, Any]) -> Any:
        import dask

        kw: dict[str, Any] = {"scheduler": self.scheduler, "optimize_graph": optimize, **extra}
        if self.num_workers is not None:
            kw["num_workers"] = self.num_workers
        return sum(dask.compute(*sinks, **kw))

    def phases(self, prepared: Any) -> dict[str, Callable[[], Any]]:
        sinks, extra = prepared
        return {
            "run": lambda: self._compute(sinks, True, extra),
            "run, optimize_graph=False": lambda: self._compute(sinks, False, extra),
        }

    def versions(self) -> dict[str, str]:
        import dask

        return {"dask": dask.__version__}


class DaskProcessesRunner(DaskRunner):
    """``dask.compute(*sinks, scheduler="processes", pool=pool)``.

    Left to itself, dask's process scheduler starts a pool of ``num_workers``
    processes in every ``compute`` and stops it at the end.  This runner makes that
    same pool once, in :meth:`prepare` (the same start method and worker
    initializer as dask's), and passes it as ``pool=``: its workers start in the
    untimed warm-up run, as loky's do for ``dagexec-loky``, and only running the
    graph is timed.  Dask batches up to ``chunksize`` (6) ready tasks per
    submission; that default is kept.
    """

    def __init__(self, num_workers: int) -> None:
        super().__init__("processes", num_workers)

    def prepare(self, dag: Dag) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        from dask.multiprocessing import get_context, initialize_worker_process

        pool = ProcessPoolExecutor(
            self.num_workers, mp_context=get_context(), initializer=initialize_worker_process
        )
        return self.build(dag), {"pool": pool}


_client: Any = None
#: the ``update_graph`` messages the local cluster's scheduler has received
_graphs = [0]


def local_cluster_client(workers: int) -> Any:
    """A client of a ``distributed.LocalCluster`` of ``workers`` single-threaded
    worker processes on 127.0.0.1, made once per process (the cluster lives as long
    as the process, which is one measurement).  Starting it is never timed.  Its
    scheduler (in this process) counts the graph messages it receives in ``_graphs``."""
    global _client
    if _client is None:
        from distributed import Client, LocalCluster
        from distributed.diagnostics.plugin import SchedulerPlugin

        class CountGraphs(SchedulerPlugin):
            def update_graph(self, scheduler: Any, **kwargs: Any) -> None:
                _graphs[0] += 1

        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        cluster.scheduler.add_plugin(CountGraphs(), name="bench-count-graphs")
        _client = Client(cluster)
        _client.wait_for_workers(workers)
    return _client


class CountsGraphs:
    """A cluster runner that records how many graph messages each run sent
    (``info()["graph_messages"]``: the distinct counts over its runs)."""

    graphs: list[int]

    def counted(self, run: Callable[[], Any]) -> Any:
        before = _graphs[0]
        out = run()
        self.graphs = [*getattr(self, "graphs", []), _graphs[0] - before]
        return out

    def info(self) -> dict[str, Any]:
        return {"graph_messages": sorted(set(getattr(self, "graphs", [])))}


class DagexecDaskRunner(CountsGraphs, DagexecRunner):
    """``plan.run(executor="dask")`` on a LocalCluster's client (the current one).

    Trials go to the cluster one dask task each, sent ahead in one graph per pass of
    the loop; only the sinks are gathered.  The cluster starts in :meth:`prepare`,
    untimed.
    """

    requires = ("dask", "distributed")

    def __init__(self, workers: int) -> None:
        super().__init__("dask", None, mode="distributed")
        self.workers = workers

    def prepare(self, dag: Dag) -> Any:
        local_cluster_client(self.workers)
        return super().prepare(dag)

    def run(self, prepared: Any) -> Any:
        return self.counted(lambda: DagexecRunner.run(self, prepared))

    def versions(self) -> dict[str, str]:
        import distributed

        return {**super().versions(), "distributed": distributed.__version__}


class DaskClusterRunner(CountsGraphs, DaskRunner):
    """``dask.compute(*sinks, scheduler=client)`` on a LocalCluster of the same size
    as :class:`DagexecDaskRunner`'s: the same delayed graph, run by dask's
    distributed scheduler."""

    requires = ("dask", "distributed")

    def __init__(self, workers: int) -> None:
        super().__init__("distributed")
        self.workers = workers

    def prepare(self, dag: Dag) -> Any:
        return self.build(dag), {"scheduler": local_cluster_client(self.workers)}

    def phases(self, prepared: Any) -> dict[str, Callable[[], Any]]:
        return {name: (lambda fn=fn: self.counted(fn)) for name, fn in super().phases(prepared).items()}

    def versions(self) -> dict[str, str]:
        import distributed

        return {**super().versions(), "distributed": distributed.__version__}


class DagexecRayRunner(DagexecRunner):
    """``plan.run(executor="ray")`` on a local Ray of ``cpus`` CPUs, started in
    :meth:`prepare`, untimed (the one :class:`~others.RayRemoteRunner` uses)."""

    requires = ("ray",)

    def __init__(self, cpus: int) -> None:
        super().__init__("ray", None, mode="ray")
        self.cpus = cpus

    def prepare(self, dag: Dag) -> Any:
        local_ray(self.cpus)
        return super().prepare(dag)

    def versions(self) -> dict[str, str]:
        import ray

        return {**super().versions(), "ray": ray.__version__}


#: every runner by name, in table order
RUNNERS: dict[str, Runner] = {
    r.name: r
    for r in [
        PlainRunner(),
        DagexecRunner("serial"),
        DagexecRunner("threads", 4),
        DagexecRunner("threads", 2, mode="threads-2", name="dagexec-threads-2"),
        DaskRunner("sync", mode="serial"),
        DaskRunner("threads", 4),
        HamiltonRunner(),
        ThreadPoolRunner(2),
        DagexecRunner("loky", 2, mode="processes"),
        DaskProcessesRunner(2),
        DagexecDaskRunner(2),
        DaskClusterRunner(2),
        DagexecRayRunner(2),
        RayRemoteRunner(2),
    ]
}
