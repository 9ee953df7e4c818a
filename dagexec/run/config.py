"""``RunConfig``: the options of one run, declared once.

``CompiledGraph.run`` takes them as keyword arguments and the command line from its
flags; both build a :class:`RunConfig` and hand it, with the graph inputs, to the
run's entry (``dagexec._api.run``), so the list of options is written down here and
nowhere else (``tests/test_run_config.py`` holds ``CompiledGraph.run``'s keywords to
the fields).

The checks come in two rounds, each collecting every problem it finds before it
raises them as one :class:`~dagexec.InputError` (DESIGN §12 Errors), both before
anything is made (a cache folder, an executor) or run:

1. :meth:`RunConfig.check` (:func:`check_run_arguments`): every argument has the type
   it needs (a mapping of inputs, keys, callbacks, True/False flags, a cache folder or
   store), so the second round always gets values it can read; a graph input nested
   more than ``MAX_NESTING`` deep is refused here when a cache would hash it.
2. :meth:`RunConfig.validate`: the values against the plan: ``only``/``skip`` and
   ``keep`` keys, the graph inputs (missing, unknown, of the wrong type), ``resume``
   without ``cache``, ``max_workers``.  The executors are checked as they are made
   (``dagexec.executors._resolve``).

This module imports neither the loop nor the executors: ``import dagexec`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import InputError, Problem
from .._graph import MAX_NESTING, nesting_exceeds
from ..plan.arguments import Arguments, as_list, bind_inputs, kept_slots, select

if TYPE_CHECKING:
    from os import PathLike

    from ..plan.compiled import CompiledGraph

__all__ = ["FLAGS", "RunConfig", "check_run_arguments"]

#: the options that must be True or False, in the order their problems are found
FLAGS = ("fail_fast", "resume", "progress", "raise_on_failure", "check_mutation", "bundle_personal")


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The options of one run: every keyword argument of
    :meth:`dagexec.CompiledGraph.run` but the graph inputs, with the same defaults and
    meanings (see there).  The values are kept as given; :meth:`check` and
    :meth:`validate` say what is wrong with them."""

    executor: Any = "threads"
    max_workers: int | None = None
    scheduler: str | None = None
    only: Sequence[str] | str | None = None
    skip: Sequence[str] | str | None = None
    fail_fast: bool = True
    cache: Any = None
    resume: bool = False
    keep: Sequence[str] | str | None = None
    callbacks: Sequence[Any] = ()
    progress: bool = False
    raise_on_failure: bool = True
    check_mutation: bool = False
    bundles: str | PathLike[str] | None = None
    bundle_personal: bool = False
    events: Any = None
    trace: bool | None = None

    def check(
        self, plan: CompiledGraph, inputs: Any, input_values: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The graph input values that ``inputs`` and ``input_values`` give together
        (as ``run(inputs, **input_values)``), once every option has the type it needs.

        Raises:
            InputError: naming each argument of the wrong type.
        """
        return check_run_arguments(
            plan,
            inputs,
            dict(input_values or {}),
            only=self.only,
            skip=self.skip,
            keep=self.keep,
            callbacks=self.callbacks,
            cache=self.cache,
            flags={name: getattr(self, name) for name in FLAGS},
            bundles=self.bundles,
            events=self.events,
            trace=self.trace,
        )

    def validate(self, plan: CompiledGraph, given: dict[str, Any], problems: list[Problem]) -> Arguments:
        """The run's :class:`~dagexec.plan.arguments.Arguments` for the graph inputs ``given`` (what :meth:`check`
        returns); what is wrong with the options' values is added to ``problems``."""
        if self.resume and self.cache is None:
            problems.append(Problem("resume=True needs cache=: the folder whose journal the run continues"))
        selected = select(plan, as_list(self.only), as_list(self.skip), problems)
        input_values = bind_inputs(plan, given, selected, problems)
        kept = kept_slots(plan, self.keep, problems)
        workers = self.max_workers
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            problems.append(Problem(f"max_workers must be an int >= 1, got {workers!r}"))
        return Arguments(input_values, selected, kept)


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
    bundles: Any = None,
    events: Any = None,
    trace: Any = None,
) -> dict[str, Any]:
    """The graph input values ``run(inputs, **input_values)`` gives, once every argument
    of ``run()`` has the type it needs; the checks of their values (keys, inputs,
    executors) follow.

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
    _check_bundles(bundles, problems)
    if events is not None and not (isinstance(events, (str, os.PathLike)) and os.fspath(events)):
        if not callable(getattr(events, "write", None)):
            problems.append(Problem(f"events must be a file's path or a stream, got {_got(events)}"))
    if trace is not None and not isinstance(trace, bool):
        problems.append(Problem(f"trace must be True, False or None, got {_got(trace)}"))
    if problems:
        raise InputError(problems, what=f"run of graph {plan.name!r}")
    return given


def _got(value: Any) -> str:
    from .._typecheck import short_repr

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


def _check_bundles(bundles: Any, problems: list[Problem]) -> None:
    import os

    from .._envelope import SigningKeyError, resolve_key

    if bundles is None:
        return
    if not isinstance(bundles, (str, os.PathLike)) or not os.fspath(bundles):
        problems.append(Problem(f"bundles must be a folder (a non-empty path), got {_got(bundles)}"))
        return
    try:
        resolve_key(None)  # the key bundles are signed with, checked before anything runs
    except SigningKeyError as exc:
        problems.append(Problem(f"bundles: {exc}"))


def _check_cache(cache: Any, given: dict[str, Any], problems: list[Problem]) -> None:
    import os

    from ..cache.store import CacheStore, key_problem

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
