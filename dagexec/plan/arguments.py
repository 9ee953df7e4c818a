"""The arguments of a run that pick what it reads and keeps, checked against the plan:
``only``/``skip`` (which nodes run), the graph inputs, and ``keep`` (which values the
result holds).  Each function collects every problem it finds, so a run or
``plan.cache_keys()`` raises them together as one :class:`~dagexec.InputError`;
:func:`bind_arguments` makes the three checks and raises, for what reads a plan's
arguments without running it (``cache_keys()``, ``explain()``, ``dagexec run --dry-run``).

They read only the plan, which is why they sit in the plan layer: ``CompiledGraph``
binds inputs with them for ``cache_keys()`` and ``explain()`` without reaching up into
the run layer, and the run calls them before anything is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .._errors import Problem
from .._graph import MISSING

if TYPE_CHECKING:
    from .compiled import CompiledGraph

__all__ = ["Arguments", "as_list", "bind_arguments", "bind_inputs", "kept_slots", "select"]


def as_list(value: Sequence[str] | str | None) -> list[str]:
    """``None`` -> ``[]``, ``"k"`` -> ``["k"]``, a sequence -> a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _targets(plan: CompiledGraph, names: list[str], what: str, problems: list[Problem]) -> set[int]:
    """Node idxs named by ``names`` (keys or section paths); unknown names are problems."""
    out: set[int] = set()
    sections = {s.path: s for s in plan._sections}
    for name in names:
        idx = plan._index.get(name)
        if idx is not None:
            out.add(idx)
        elif name in sections:
            out.update(plan._index[k] for k in sections[name].nodes)
            alias = plan._aliases.get(name)
            if alias is not None and alias < len(plan._keys):
                out.add(alias)
        elif name in plan._aliases and plan._aliases[name] < len(plan._keys):
            out.add(plan._aliases[name])
        else:
            problems.append(
                Problem(
                    f"{what}: unknown key {name!r}: not a node or section of graph {plan.name!r}", key=name
                )
            )
    return out


def select(plan: CompiledGraph, only: list[str], skip: list[str], problems: list[Problem]) -> list[bool]:
    """Which nodes run: ``only`` and their ancestors, minus ``skip`` and their descendants."""
    n = len(plan._keys)
    only_idx = _targets(plan, only, "only", problems)
    skip_idx = _targets(plan, skip, "skip", problems)
    if only:
        selected = [False] * n
        stack = list(only_idx)
        while stack:
            i = stack.pop()
            if not selected[i]:
                selected[i] = True
                stack.extend(plan._deps[i])
    else:
        selected = [True] * n
    stack = list(skip_idx)
    seen = [False] * n
    while stack:
        i = stack.pop()
        if not seen[i]:
            seen[i] = True
            selected[i] = False
            stack.extend(plan._dependents[i])
    return selected


def bind_inputs(
    plan: CompiledGraph, given: dict[str, Any], selected: list[bool], problems: list[Problem]
) -> list[Any]:
    """The value of every graph input, checked against its type; missing and unknown inputs are problems."""
    from .._typecheck import describe_mismatch

    known = {i.name for i in plan._inputs}
    for name in sorted(set(given) - known):
        valid = ", ".join(repr(k) for k in sorted(known)) or "none"
        problems.append(Problem(f"unknown input {name!r}; the graph's inputs are: {valid}", key=name))
    values: list[Any] = []
    index = plan._index
    for spec in plan._inputs:
        if spec.name in given:
            value = given[spec.name]
            msg = describe_mismatch(value, spec.type)
            if msg is not None:
                problems.append(Problem(f"input {spec.name!r} {msg}", key=spec.name))
        elif not spec.required:
            value = spec.default
        else:
            readers = [k for k in spec.readers if selected[index[k]]]
            if readers:
                needed = ", ".join(repr(k) for k in readers[:5]) + (" ..." if len(readers) > 5 else "")
                problems.append(Problem(f"missing input {spec.name!r}, needed by {needed}", key=spec.name))
            value = MISSING
        values.append(value)
    return values


def kept_slots(plan: CompiledGraph, keep: Sequence[str] | str | None, problems: list[Problem]) -> list[bool]:
    """Which value slots the run keeps: outputs, and what ``keep`` names."""
    n_slots = len(plan._keys) + len(plan._inputs)
    kept = [False] * n_slots
    for _, slot in plan._outputs:
        if slot < n_slots:
            kept[slot] = True
    if keep == "all":
        return [True] * n_slots
    for key in as_list(keep):
        idx = plan._index.get(key)
        if idx is None:
            idx = plan._aliases.get(key)
        if idx is None:
            names = {i.name: i.slot for i in plan._inputs}
            idx = names.get(key)
        if idx is None:
            problems.append(Problem(f"keep: unknown key {key!r}: not a node of graph {plan.name!r}", key=key))
        elif idx < n_slots:
            kept[idx] = True
    return kept


class Arguments(NamedTuple):
    """A plan's graph input values in slot order, which nodes run, which slots are kept."""

    input_values: list[Any]
    selected: list[bool]
    kept: list[bool]


def bind_arguments(
    plan: CompiledGraph,
    inputs: Mapping[str, Any] | None,
    input_values: Mapping[str, Any],
    only: Sequence[str] | str | None,
    skip: Sequence[str] | str | None,
    keep: Sequence[str] | str | None = None,
) -> Arguments:
    """The graph inputs, ``only``/``skip`` and ``keep`` checked against the plan, as
    ``cache_keys()``, ``explain()`` and ``dagexec run --dry-run`` need them.

    Raises:
        InputError: listing every missing, unknown or wrongly typed input and every
            unknown key.
    """
    from .._errors import InputError

    problems: list[Problem] = []
    given = {**(inputs or {}), **input_values}
    selected = select(plan, as_list(only), as_list(skip), problems)
    values = bind_inputs(plan, given, selected, problems)
    kept = kept_slots(plan, keep, problems)
    if problems:
        raise InputError(problems, what=f"graph {plan.name!r}")
    return Arguments(values, selected, kept)
