"""Everything a run checks before any task runs (DESIGN §12): which nodes run
(``only``/``skip``), the graph inputs, ``keep``, the executors and their routes,
and that a plan going to other processes pickles.  Each collects every problem it
finds; the engine raises them together as one :class:`~dagexec.InputError`.  The
checks that read only the plan (``as_list``, ``select``, ``bind_inputs``,
``kept_slots``) live in ``dagexec.plan.arguments`` and are re-exported here.

First of all, :func:`check_run_arguments` checks that every argument of ``run()``
has the type it needs (a mapping of inputs, keys, callbacks, True/False flags, a
cache folder or store) and raises its own InputError, so the checks above always
get values they can read; a graph input nested more than ``MAX_NESTING`` deep is
refused there when a cache would hash it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._errors import GraphError, InputError, Problem
from ._graph import MAX_NESTING, nesting_exceeds
from ._interrupts import sigterm_interrupts  # re-exported for code that imports it from here
from .plan.arguments import as_list, bind_inputs, kept_slots, select  # re-exported, as above

if TYPE_CHECKING:
    from ._engine import Executor
    from .plan.compiled import CompiledGraph

__all__ = [
    "as_list",
    "bind_inputs",
    "check_run_arguments",
    "kept_slots",
    "require_portable",
    "resolve_executors",
    "select",
    "sigterm_interrupts",
]


def resolve_executors(
    plan: CompiledGraph,
    executor: Any,
    max_workers: int | None,
    selected: list[bool],
    problems: list[Problem],
    scheduler: str | None = None,
) -> tuple[list[Executor], list[int], list[Executor]]:
    """(executors, route index per node, the executors the run owns); bad names are
    problems, and so is a ``scheduler`` address that no ``"dask"`` executor takes."""
    from .executors import make_executor

    owned: list[Executor] = []
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
                owned.append(ex)
        return ex

    routes = plan._routes
    used = sorted({routes[i] for i in range(len(routes)) if selected[i]})
    execs: list[Executor] = []
    by_route: dict[str, int] = {}
    if isinstance(executor, Mapping):
        for route in used:
            if route not in executor:
                keys = [plan._keys[i] for i in range(len(routes)) if routes[i] == route and selected[i]]
                have = ", ".join(repr(k) for k in executor) or "nothing"
                problems.append(
                    Problem(
                        f"node {keys[0]!r} is routed to executor {route!r}, but the executor mapping "
                        f"has only {have}",
                        key=keys[0],
                    )
                )
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
    if scheduler is not None and not isinstance(scheduler, str):
        problems.append(Problem(f"scheduler must be an address such as 'tcp://host:8786', got {scheduler!r}"))
    elif scheduler is not None and not _names_dask(executor):
        problems.append(
            Problem(
                f"scheduler={scheduler!r} is used only with executor='dask' (or a route mapped to "
                f"'dask'), but the run's executor is {_describe(executor)}"
            )
        )
    route_idx = [by_route.get(r, 0) for r in routes]
    return execs, route_idx, owned


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


# -- the run ---------------------------------------------------------------------------


def require_portable(
    plan: CompiledGraph,
    execs: list[Executor],
    route_idx: list[int],
    selected: list[bool],
    owned: list[Executor],
) -> None:
    """Raise GraphError when a node that does not pickle would run on a process executor."""
    keys = {plan._keys[i] for i in range(len(plan._keys)) if selected[i] and execs[route_idx[i]].needs_pickle}
    problems = [p for p in plan._pickle_problems if p.key is None or p.key in keys]
    if keys and problems:
        for ex in owned:
            ex.shutdown()
        if len(problems) == 1:  # the message is the problem's own: the advice goes there
            problems = [replace(problems[0], message=f"{problems[0].message}; {_IN_PROCESS}")]
        raise GraphError(
            problems,
            what=f"graph {plan.name!r} (running in processes needs every task and constant to pickle; "
            f"{_IN_PROCESS})",
        )


_IN_PROCESS = 'executor="threads" or "serial" runs in this process, where nothing is pickled'


# -- the types of run()'s arguments ----------------------------------------------------

_HOOKS = ("on_run_start", "on_trial_start", "on_trial_end", "on_run_end")
_ANY_HOOK = "an on_run_start, on_trial_start, on_trial_end or on_run_end method"


def check_run_arguments(
    plan: CompiledGraph,
    inputs: Any,
    input_values: dict[str, Any],
    *,
    only: Any,
    skip: Any,
    keep: Any,
    callbacks: Any,
    cache: Any,
    flags: dict[str, Any],
) -> dict[str, Any]:
    """The graph input values ``run(inputs, **input_values)`` gives, once every argument
    of ``run()`` has the type it needs; the checks of their values (keys, inputs,
    executors) follow in the engine.

    Raises:
        InputError: naming each argument of the wrong type, before anything is made
            (a cache folder, an executor) or run.
    """
    problems: list[Problem] = []
    given = dict(input_values)
    if inputs is not None:
        if isinstance(inputs, Mapping) and all(isinstance(k, str) for k in inputs):
            given = {**inputs, **input_values}
        else:
            problems.append(
                Problem(f"inputs must be a mapping of input names (str) to values, got {_got(inputs)}")
            )
    for name, value in (("only", only), ("skip", skip)):
        _check_keys(name, value, "a key, a section path or a list of them", problems)
    if keep != "all":
        _check_keys("keep", keep, "a key, a list of keys or 'all'", problems)
    _check_callbacks(callbacks, problems)
    for name, value in flags.items():
        if not isinstance(value, bool):
            problems.append(Problem(f"{name} must be True or False, got {_got(value)}"))
    _check_cache(cache, given, problems)
    if problems:
        raise InputError(problems, what=f"run of graph {plan.name!r}")
    return given


def _got(value: Any) -> str:
    from ._typecheck import short_repr

    return "None" if value is None else f"{type(value).__qualname__} {short_repr(value)}"


def _check_keys(name: str, value: Any, what: str, problems: list[Problem]) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, (Sequence, set, frozenset)) or isinstance(value, (bytes, bytearray)):
        problems.append(Problem(f"{name} must be {what}, got {_got(value)}"))
        return
    for i, k in enumerate(value):
        if not isinstance(k, str):
            problems.append(Problem(f"{name}[{i}] must be a key (str), got {_got(k)}"))


def _check_callbacks(callbacks: Any, problems: list[Problem]) -> None:
    if not isinstance(callbacks, Sequence) or isinstance(callbacks, (str, bytes, bytearray)):
        problems.append(
            Problem(f"callbacks must be a list of objects, each with {_ANY_HOOK}, got {_got(callbacks)}")
        )
        return
    for i, cb in enumerate(callbacks):
        if not any(callable(getattr(cb, hook, None)) for hook in _HOOKS):
            problems.append(Problem(f"callbacks[{i}] must have {_ANY_HOOK}, got {_got(cb)}"))


def _check_cache(cache: Any, given: dict[str, Any], problems: list[Problem]) -> None:
    import os

    from .cache.store import CacheStore, key_problem

    if cache is None:
        return
    if isinstance(cache, CacheStore):
        pass
    elif not isinstance(cache, (str, os.PathLike)) or not os.fspath(cache):
        got = (
            "'' (an empty path: the working directory would become the store)"
            if cache == ""
            else type(cache).__name__
        )
        problems.append(Problem(f"cache must be a folder or a dagexec.CacheStore, got {got}"))
        return
    elif (why := key_problem()) is not None:
        problems.append(Problem(f"cache: {why}"))
    # a cache key hashes every graph input's value, walking it recursively
    for name in sorted(given):
        if nesting_exceeds(given[name]):
            problems.append(
                Problem(
                    f"input {name!r} holds containers nested more than {MAX_NESTING} deep, the most "
                    "dagexec hashes into cache keys; run without cache=, or make the value inside a task",
                    key=name,
                )
            )
