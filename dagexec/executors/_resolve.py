"""The executors of one run: which executor each node goes to, and who shuts them down.

:func:`resolve_executors` turns ``run(executor=...)`` (a name, an executor object, a
``concurrent.futures.Executor``, or a mapping from route names to those) into the
run's :class:`Lanes`: the executors, the index of each node's executor, and the
:class:`OwnedExecutors` that the run made from names.  :func:`require_portable`
refuses, before anything runs, a plan whose unpicklable nodes would go to processes.

``OwnedExecutors`` is the one place that shuts down what a run made, whatever way the
run leaves: refused arguments, a cache folder that cannot be opened, an error while
the run is assembled, the end of the loop (with ``cancel`` after Ctrl-C).  An executor
the user passed in is told the run ended but is never shut down (DESIGN §12 Results).
An executor that raises in ``run_ended`` or ``shutdown`` is logged, never lets its
error replace the run's result or error, and does not keep the others from shutting
down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from .._errors import GraphError, Problem

if TYPE_CHECKING:
    from types import TracebackType

    from ..plan.compiled import CompiledGraph
    from ..run.protocol import Executor

__all__ = ["Lanes", "OwnedExecutors", "require_portable", "resolve_executors"]

logger = logging.getLogger("dagexec.engine")


class OwnedExecutors:
    """The executors a run made; a context manager that shuts them down on the way out.

    ``with owned:`` around the run's assembly and loop: leaving the block by an
    exception shuts down what the run made (with ``cancel`` on ``KeyboardInterrupt``),
    and :meth:`end` does it once the loop is over.  Shutting down happens once.
    """

    __slots__ = ("_closed", "executors")

    def __init__(self, executors: list[Executor] | None = None) -> None:
        self.executors: list[Executor] = executors if executors is not None else []
        self._closed = False

    def add(self, executor: Executor) -> None:
        """Own ``executor``: the run made it, so the run shuts it down."""
        self.executors.append(executor)

    def __enter__(self) -> OwnedExecutors:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown(cancel=kind is not None and issubclass(kind, KeyboardInterrupt))

    def end(self, used: list[Executor], *, interrupted: bool) -> None:
        """The run is over: tell each executor it ``used`` (owned or not), then shut
        down the owned ones, without waiting for running work when ``interrupted``."""
        for ex in used:
            try:
                ex.run_ended()
            except Exception:
                logger.warning("executor %r raised in run_ended", ex, exc_info=True)
        self.shutdown(cancel=interrupted)

    def shutdown(self, *, cancel: bool = False) -> None:
        """Shut down every owned executor, once; one that raises is logged."""
        if self._closed:
            return
        self._closed = True
        for ex in self.executors:
            try:
                ex.shutdown(cancel=cancel)
            except Exception:
                logger.warning("executor %r raised in shutdown", ex, exc_info=True)


class Lanes(NamedTuple):
    """Where a run's trials go: the executors, per node the index of its executor
    (by its route), and the executors the run made and must shut down."""

    execs: list[Executor]
    route_idx: list[int]
    owned: OwnedExecutors


def resolve_executors(
    plan: CompiledGraph,
    executor: Any,
    max_workers: int | None,
    selected: list[bool],
    problems: list[Problem],
    scheduler: str | None = None,
) -> Lanes:
    """The run's :class:`Lanes`; bad names are problems, and so is a ``scheduler``
    address that no ``"dask"`` executor takes.  Should making an executor raise
    anything else, those already made are shut down before it propagates."""
    from . import make_executor

    owned = OwnedExecutors()
    made: dict[Any, Executor] = {}

    def get(spec: Any, route: str) -> Executor | None:
        key = spec if isinstance(spec, str) else id(spec)
        ex = made.get(key)
        if ex is None:
            try:
                ex, own = make_executor(spec, max_workers, scheduler)
            except ValueError as exc:
                problems.append(Problem(f"{exc} (for route {route!r})" if route != "default" else str(exc)))
                return None
            made[key] = ex
            if own:
                owned.add(ex)
        return ex

    try:
        routes = plan._routes
        if all(selected):
            used = sorted(set(routes))
        else:
            used = sorted({routes[i] for i in range(len(routes)) if selected[i]})
        execs: list[Executor] = []
        by_route: dict[str, int] = {}
        if isinstance(executor, Mapping):
            for route in used:
                if route not in executor:
                    _missing_route(plan, executor, route, selected, problems)
                    continue
                ex = get(executor[route], route)
                if ex is not None:
                    if ex not in execs:
                        execs.append(ex)
                    by_route[route] = execs.index(ex)
        else:
            ex = get(executor, "default")
            if ex is not None:
                execs.append(ex)
                by_route = {route: 0 for route in used}
    except BaseException as exc:
        owned.shutdown(cancel=isinstance(exc, KeyboardInterrupt))
        raise
    _check_scheduler(executor, scheduler, problems)
    if len(execs) == 1:  # one lane: every node's is 0 (a list made at C speed)
        return Lanes(execs, [0] * len(routes), owned)
    return Lanes(execs, [by_route.get(r, 0) for r in routes], owned)


def _missing_route(
    plan: CompiledGraph,
    executor: Mapping[Any, Any],
    route: str,
    selected: list[bool],
    problems: list[Problem],
) -> None:
    routes = plan._routes
    keys = [plan._keys[i] for i in range(len(routes)) if routes[i] == route and selected[i]]
    have = ", ".join(repr(k) for k in executor) or "nothing"
    problems.append(
        Problem(
            f"node {keys[0]!r} is routed to executor {route!r}, but the executor mapping has only {have}",
            key=keys[0],
        )
    )


def _check_scheduler(executor: Any, scheduler: Any, problems: list[Problem]) -> None:
    if scheduler is not None and not isinstance(scheduler, str):
        problems.append(Problem(f"scheduler must be an address such as 'tcp://host:8786', got {scheduler!r}"))
    elif scheduler is not None and not _names_dask(executor):
        problems.append(
            Problem(
                f"scheduler={scheduler!r} is used only with executor='dask' (or a route mapped to "
                f"'dask'), but the run's executor is {_describe(executor)}"
            )
        )


def _names_dask(executor: Any) -> bool:
    if isinstance(executor, Mapping):
        return any(isinstance(v, str) and v == "dask" for v in executor.values())
    return isinstance(executor, str) and executor == "dask"


def _describe(executor: Any) -> str:
    if isinstance(executor, str):
        return repr(executor)
    if isinstance(executor, Mapping):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in executor.items()) + "}"
    return type(executor).__name__


def require_portable(plan: CompiledGraph, lanes: Lanes, selected: list[bool]) -> None:
    """Raise GraphError when a node that does not pickle would run on a process executor.

    The caller's ``with lanes.owned:`` shuts down what the run made.
    """
    execs, route_idx = lanes.execs, lanes.route_idx
    keys = {plan._keys[i] for i in range(len(plan._keys)) if selected[i] and execs[route_idx[i]].needs_pickle}
    problems = [p for p in plan._pickle_problems if p.key is None or p.key in keys]
    if keys and problems:
        if len(problems) == 1:  # the message is the problem's own: the advice goes there
            problems = [replace(problems[0], message=f"{problems[0].message}; {_IN_PROCESS}")]
        raise GraphError(
            problems,
            what=f"graph {plan.name!r} (running in processes needs every task and constant to pickle; "
            f"{_IN_PROCESS})",
        )


_IN_PROCESS = 'executor="threads" or "serial" runs in this process, where nothing is pickled'
