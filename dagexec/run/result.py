"""What a run gives back: its :class:`~dagexec.RunResult`, and when it failed, the
:class:`~dagexec.RunFailed` that names what failed.

The loop keeps states as small ints and a node's first successful trial as a compact
tuple; :func:`run_result` turns them into the public states and (lazily, on first use
of ``result.trials``) Trials, puts each map's items after their map, fetches the values
kept on workers, and picks the outputs and the kept values.  ``RunResult`` itself stays
in :mod:`dagexec._result`.
"""

from __future__ import annotations

from itertools import compress
from typing import TYPE_CHECKING, Any

from .._errors import RunFailed
from .state import HAS_VALUE, RELEASED, STATES
from .trials import as_trials
from .values import fetch_results

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .._result import RunResult
    from .loop import Loop


def run_result(loop: Loop, duration: float) -> RunResult:
    """The result of the run ``loop`` (which took ``duration`` seconds); the loop lets
    go of its values and calls."""
    from .._result import RunResult

    plan = loop.plan
    keys = plan._keys
    about = _about(loop)  # before the loop lets go of the values
    states = dict(zip(keys, map(STATES.__getitem__, loop.state), strict=False))  # nodes: the first slots
    # made into Trial lists on first use of result.trials; the nodes' rows come first
    trials: Any = loop.rows if len(loop.rows) == len(keys) else loop.rows[: len(keys)]
    rows = loop.rows
    if loop.earlier:  # a resumed run: the trials of the run it resumes come first
        trials = list(trials)
        for i, before in loop.earlier.items():
            trials[i] = before + as_trials(keys[i], trials[i], loop.trials.ends[i])
        rows = trials + rows[len(keys) :]  # the map items' rows after the nodes'
    if loop.map_runs:
        states, trials = loop.maps.with_items(keys, states, rows)
    del loop.vals[loop.n_slots :]  # the map items' values: in their maps' lists
    if loop.remote:
        fetch_results(loop.vals, loop.kept, loop.state, loop.n)
    outputs, values = _kept_values(plan, loop.vals, loop.kept, loop.state)
    loop.vals = []
    loop.calls = {}
    items = {keys[m]: [f"{keys[m]}[{j}]" for j in range(len(run.units))] for m, run in loop.map_runs.items()}
    result = RunResult(plan, states, trials, outputs, values, loop.start, duration, items, loop.trials.ends)
    result._about = about
    return result


def _about(loop: Loop) -> dict[str, Any]:
    """What a report says of the run besides its states: the executors it used (by
    name), each graph input's repr, bounded, and the cache's decision."""
    from .._typecheck import short_repr

    specs = loop.plan._inputs
    cache = loop.cache
    return {
        "executors": sorted({ex.name for ex in loop.execs}),
        "inputs": {spec.name: short_repr(value, 200) for spec, value in zip(specs, loop.inputs, strict=True)},
        # what the cache served and what ran: (store, decision without values, selected), or None
        "cache": None if cache is None else (cache.store, cache.decision, list(loop.selected)),
    }


def _kept_values(
    plan: CompiledGraph, vals: list[Any], kept: list[bool], state: list[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outputs that have a value, and the kept values under their names (a node's
    key, an input's name, an alias)."""
    keys = plan._keys
    n = len(keys)
    outputs: dict[str, Any] = {}
    for name, slot in plan._outputs:
        v = vals[slot]
        if v is not RELEASED and (slot >= n or state[slot] in HAS_VALUE):
            outputs[name] = v
    n_slots = len(kept)
    values: dict[str, Any] = {}
    for slot in compress(range(n_slots), kept):
        v = vals[slot]
        if v is RELEASED or (slot < n and state[slot] not in HAS_VALUE):
            continue
        values[keys[slot] if slot < n else plan._inputs[slot - n].name] = v
    for alias, slot in plan._aliases.items():
        if slot >= n_slots:
            values[alias] = vals[slot]
        elif (keys[slot] if slot < n else plan._inputs[slot - n].name) in values:
            values[alias] = values[keys[slot] if slot < n else plan._inputs[slot - n].name]
    return outputs, values


def run_failed(result: RunResult, loop: Loop) -> RunFailed:
    """The run's RunFailed: the failed nodes in the order they failed, each map's
    failed items (``inv[2]``) before the map itself, the first few with their errors."""
    keys = loop.plan._keys
    failed: list[str] = []
    parts: list[str] = []
    errors: list[BaseException | None] = []
    n_items = 0
    for k, i in enumerate(loop.failed_order):
        mapped = loop.map_runs.get(i)
        items = [] if mapped is None else [mapped.item_key(j) for j in mapped.failed_items]
        n_items += len(items)
        failed += items
        failed.append(keys[i])
        if k >= 3:
            continue
        for item in items[:3]:
            errors.append(_last_error(result, item))
            parts.append(_named(item, errors[-1]))
        if mapped is not None and items:
            parts.append(f"{keys[i]!r} ({len(items)} of {len(mapped.units)} items failed)")
        else:
            errors.append(_last_error(result, keys[i]))
            parts.append(_named(keys[i], errors[-1]))
    nodes = len(loop.failed_order)
    more = f" and {nodes - 3} more" if nodes > 3 else ""
    what = f"{nodes} node{'' if nodes == 1 else 's'}"
    if n_items:
        what += f" and {n_items} map item{'' if n_items == 1 else 's'}"
    exc = RunFailed(f"{what} of graph {loop.plan.name!r} failed: {', '.join(parts)}{more}", result, failed)
    exc.__cause__ = errors[0] if errors else None
    return exc


def _last_error(result: RunResult, key: str) -> BaseException | None:
    trials = result.trials.get(key)
    return trials[-1].error if trials else None


def _named(key: str, err: BaseException | None) -> str:
    return f"{key!r} ({type(err).__name__}: {err})" if err is not None else repr(key)
