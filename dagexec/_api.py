"""The run's entry: what ``plan.run()`` and ``dagexec run`` call.

:func:`run` takes a plan, its graph inputs and a :class:`~dagexec.run.config.RunConfig`.
It checks the options (their types, then their values against the plan), resolves the
executors, opens the cache and its journal, adds the progress bar, trial log capture
and SIGTERM handling, and hands the loop (:class:`dagexec.run.loop.Loop`) its
ready-made parts.  The executors the run makes belong to one
:class:`~dagexec.executors._resolve.OwnedExecutors`, which shuts them down whatever
way the run leaves.  It sits in the surface layer because it reaches every layer
below: the plan, the cache, the loop, the executors and the progress bar.  The loop
itself imports none of these extras.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._capture import install as install_capture
from ._capture import uninstall as uninstall_capture
from ._errors import InputError, Problem
from ._interrupts import sigterm_interrupts
from ._state import State, Trial
from .executors._resolve import require_portable, resolve_executors
from .run.config import RunConfig
from .run.loop import Loop
from .run.result import run_failed
from .run.tracing import tracing_wanted
from .run.trials import Callbacks

if TYPE_CHECKING:
    from ._plan import CompiledGraph
    from ._result import RunResult
    from .cache.decide import CacheDecision
    from .cache.store import CacheStore

__all__ = ["RunConfig", "run"]

logger = logging.getLogger("dagexec.engine")


def run(
    plan: CompiledGraph, values: Any, config: RunConfig, *, named: Mapping[str, Any] | None = None
) -> RunResult:
    """Run ``plan`` with the graph inputs ``values`` (a mapping of names to values, as
    ``run(inputs=...)``) and ``named`` (as ``run(**input_values)``, which win over
    ``values``) under ``config``; see :meth:`dagexec.CompiledGraph.run`.

    Raises:
        InputError: for any bad argument, before anything is made or runs.
        GraphError: for a plan that does not pickle going to processes.
        RunFailed: when a node failed and ``config.raise_on_failure``.
    """
    given = config.check(plan, values, named)
    problems: list[Problem] = []
    arguments = config.validate(plan, given, problems)
    input_values, selected, kept = arguments
    lanes = resolve_executors(plan, config.executor, config.max_workers, selected, problems, config.scheduler)
    if tracing_wanted(config.trace) and importlib.util.find_spec("opentelemetry") is None:
        problems.append(Problem("trace=True needs opentelemetry-api: pip install 'dagexec[otel]'"))
    with lanes.owned as owned:  # shuts down what the run made, however it leaves
        if problems:
            raise InputError(problems, what=f"run of graph {plan.name!r}")
        if plan._pickle_problems:
            require_portable(plan, lanes, selected)
        store = None
        if config.cache is not None:  # opened once nothing else can stop the run: it makes the folder
            from .cache.decide import open_store

            try:
                store = open_store(config.cache)
            except (TypeError, OSError) as exc:
                raise InputError(Problem(str(exc)), what=f"run of graph {plan.name!r}") from None
        decision = None
        cbs = list(config.callbacks)
        earlier: dict[int, list[Trial]] = {}
        if store is not None:
            decision, earlier, writer = _plan_cache(plan, store, input_values, selected, kept, config.resume)
            if writer is not None:
                cbs.insert(0, writer)
        executor_of = _executor_namer(plan, lanes)
        if config.events is not None:
            from .run.events import EventsWriter

            cbs.append(EventsWriter(config.events, executor_of, [ex.name for ex in lanes.execs]))
        tracer = None
        if tracing_wanted(config.trace):
            from .run.tracing import TraceWriter

            tracer = TraceWriter(executor_of)
            cbs.append(tracer)
        if config.progress:
            from ._progress import ProgressBar

            cbs.append(ProgressBar(sum(decision.runs) if decision is not None else sum(selected)))
        specs = None
        if config.check_mutation:
            from ._mutation import checked_specs

            specs = checked_specs(plan)
        loop = Loop(plan, arguments, lanes.execs, lanes.route_idx, config.fail_fast, Callbacks(cbs), specs)
        loop.tracer = tracer
        if config.bundles is not None:
            from .run.bundles import BundleWriter

            loop.bundles = BundleWriter(config.bundles, config.bundle_personal)
        if decision is not None:
            assert store is not None
            loop.use_cache(store, decision, earlier)
        install_capture()  # trial logs: for the length of the run (again: sys.stdout may be another)
        try:
            with sigterm_interrupts():
                result = loop.execute()
        finally:
            uninstall_capture()
            owned.end(lanes.execs, interrupted=loop.interrupted)
    if config.raise_on_failure and loop.failed_order:
        raise run_failed(result, loop)
    return result


def _executor_namer(plan: CompiledGraph, lanes: Any) -> Any:
    """``executor_of(key)``: the name of the executor a node's (a map item's: its map's)
    trials run on, by the node's route."""
    names = [ex.name for ex in lanes.execs]
    index, route = plan._index, lanes.route_idx

    def executor_of(key: str) -> str:
        i = index.get(key)
        if i is None:  # a map item, "map[k]"
            i = index.get(key.rpartition("[")[0])
        return names[route[i]] if i is not None else ""

    return executor_of


def _plan_cache(
    plan: CompiledGraph,
    store: CacheStore,
    input_values: list[Any],
    selected: list[bool],
    kept: list[bool],
    resume: bool,
) -> tuple[CacheDecision, dict[int, list[Trial]], Any]:
    """What the cache serves and what runs, the trials of the run being resumed, and
    the callback that writes this run's journal (None when a graph input does not
    pickle: such runs cannot be told apart, so they keep no journal).

    Raises:
        InputError: for ``resume`` with a graph input that does not pickle.
    """
    import uuid

    from .cache.decide import decide
    from .cache.journal import JournalWriter, earlier_trials, journal_name
    from .cache.keys import log_uncached, node_keys
    from .plan.tokens import NoToken

    keys = node_keys(plan, input_values)  # first: it forgets the code digests of earlier runs
    earlier: dict[int, list[Trial]] = {}
    done: frozenset[int] = frozenset()
    writer = None
    try:
        journal = store.journal(journal_name(plan, input_values))
    except NoToken as exc:
        if resume:
            problem = f"resume=True needs graph inputs that pickle, to find the run it continues: {exc}"
            raise InputError([Problem(problem)], what=f"run of graph {plan.name!r}") from None
    else:
        writer = JournalWriter(journal, uuid.uuid4().hex)
        if resume:
            earlier = earlier_trials(journal.read(), plan._index)
            done = frozenset(i for i, ts in earlier.items() if ts[-1].state == State.SUCCEEDED)
    log_uncached(plan, keys, selected)
    return decide(plan, store, keys, selected, kept, done=done), earlier, writer
