"""The run's assembly: what ``plan.run()`` calls.

:func:`run_plan` checks the run's arguments, resolves the executors, opens the cache
and its journal, adds the progress bar, trial log capture and SIGTERM handling, and
hands the loop (:class:`dagexec._engine._Run`) its ready-made parts.  It sits in the
surface layer because it reaches every layer below: the plan, the cache, the loop,
the executors and the progress bar.  The loop itself imports none of these extras.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._capture import install as install_capture
from ._capture import uninstall as uninstall_capture
from ._engine import _Callbacks, _Run, _run_failed
from ._errors import InputError, Problem
from ._interrupts import sigterm_interrupts
from ._prepare import as_list, bind_inputs, kept_slots, require_portable, resolve_executors, select
from ._state import State, Trial

if TYPE_CHECKING:
    from ._plan import CompiledGraph
    from ._result import RunResult
    from .cache.decide import CacheDecision
    from .cache.store import CacheStore
    from .run.protocol import Executor

__all__ = ["run_plan"]

logger = logging.getLogger("dagexec.engine")


def run_plan(
    plan: CompiledGraph,
    given: dict[str, Any],
    *,
    executor: Any,
    max_workers: int | None,
    only: Sequence[str] | str | None,
    skip: Sequence[str] | str | None,
    fail_fast: bool,
    keep: Sequence[str] | str | None,
    callbacks: Sequence[Any],
    progress: bool,
    raise_on_failure: bool,
    scheduler: str | None = None,
    cache: Any = None,
    resume: bool = False,
    check_mutation: bool = False,
) -> RunResult:
    """Run ``plan``; see :meth:`dagexec.CompiledGraph.run`."""
    problems: list[Problem] = []
    if resume and cache is None:
        problems.append(Problem("resume=True needs cache=: the folder whose journal the run continues"))
    selected = select(plan, as_list(only), as_list(skip), problems)
    input_values = bind_inputs(plan, given, selected, problems)
    kept = kept_slots(plan, keep, problems)
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    ):
        problems.append(Problem(f"max_workers must be an int >= 1, got {max_workers!r}"))
    execs, route_idx, owned = resolve_executors(plan, executor, max_workers, selected, problems, scheduler)
    if problems:
        for ex in owned:
            ex.shutdown()
        raise InputError(problems, what=f"run of graph {plan.name!r}")
    if plan._pickle_problems:
        require_portable(plan, execs, route_idx, selected, owned)
    store = None
    if cache is not None:  # opened once nothing else can stop the run: it makes the folder
        from .cache.decide import open_store

        try:
            store = open_store(cache)
        except (TypeError, OSError) as exc:
            for ex in owned:
                ex.shutdown()
            raise InputError(Problem(str(exc)), what=f"run of graph {plan.name!r}") from None
    decision = None
    cbs = list(callbacks)
    earlier: dict[int, list[Trial]] = {}
    if store is not None:
        try:
            decision, earlier, writer = _plan_cache(plan, store, input_values, selected, kept, resume)
        except BaseException:
            for ex in owned:
                ex.shutdown()
            raise
        if writer is not None:
            cbs.insert(0, writer)
    bar = None
    if progress:
        from ._progress import ProgressBar

        bar = ProgressBar(sum(decision.runs) if decision is not None else sum(selected))
        cbs.append(bar)
    specs = None
    if check_mutation:
        from ._mutation import checked_specs

        specs = checked_specs(plan)
    run = _Run(plan, input_values, selected, kept, execs, route_idx, fail_fast, _Callbacks(cbs), specs)
    if decision is not None:
        assert store is not None
        run.use_cache(store, decision, earlier)
    install_capture()  # trial logs: for the length of the run (again: sys.stdout may be another)
    try:
        with sigterm_interrupts():
            result = run.execute()
    finally:
        uninstall_capture()
        _end_executors(execs, owned, run.interrupted)
    if raise_on_failure and run.failed_order:
        raise _run_failed(result, run)
    return result


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

    from ._fingerprint import NoToken
    from .cache.decide import decide
    from .cache.journal import JournalWriter, earlier_trials, journal_name
    from .cache.keys import log_uncached, node_keys

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


def _end_executors(execs: list[Executor], owned: list[Executor], interrupted: bool) -> None:
    """Tell every executor the run ended and shut down those the run made; an
    executor that raises is logged, so the run's result is never lost to it."""
    for ex in execs:
        try:
            ex.run_ended()
        except Exception:
            logger.warning("executor %r raised in run_ended", ex, exc_info=True)
    for ex in owned:
        try:
            ex.shutdown(cancel=interrupted)
        except Exception:
            logger.warning("executor %r raised in shutdown", ex, exc_info=True)
