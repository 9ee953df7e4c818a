"""Trigger rules in the plan: which nodes are *gated* (DESIGN §17).

A node is gated when its task has a trigger rule other than ``all_succeeded``
(``all_done``: it runs once every upstream node has ended, whatever its state;
``none_failed``: unless one failed), or when a parameter is annotated ``dx.Outcome``
(or a container of them): such a parameter receives how each upstream node it is
given ended, not its value.  Compile records each gated node in the plan
(``CompiledGraph._gates``: node -> (rule, the positions and names of its arguments
that receive Outcomes), found with the annotations at hand, so that a loaded plan
needs none); the engine runs them (:mod:`dagexec.run.triggers`).

What compile checks here: a map cannot be gated (its items run from a list that was
made), and a parameter of a node with a trigger rule that is given a node directly
must admit ``None`` (what it receives for an upstream without a value) or be an
``Outcome``: else the run-time type check would fail the clean-up task exactly when
it is needed.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Union, get_args, get_origin

from .._errors import Problem
from .._state import Outcome
from .._typecheck import format_type

__all__ = ["ALL_SUCCEEDED", "gate_of", "map_gate_problem", "none_problem", "wants_outcome"]

ALL_SUCCEEDED = "all_succeeded"


def wants_outcome(hint: Any) -> bool:
    """``hint`` is ``dx.Outcome``, ``dx.Outcome[T]`` or holds one (``list[dx.Outcome]``)."""
    if hint is Outcome or get_origin(hint) is Outcome:
        return True
    return any(wants_outcome(a) for a in get_args(hint))


def gate_of(meta: Any, opts: Any) -> str | None:
    """The rule of a node of a task with ``meta`` and resolved options ``opts``, or
    None where it is not gated."""
    if opts.trigger != ALL_SUCCEEDED:
        return str(opts.trigger)
    if any(wants_outcome(h) for name, h in meta.hints.items() if name != "return"):
        return ALL_SUCCEEDED
    return None


def admits_none(hint: Any) -> bool:
    """A parameter annotated ``hint`` may receive None (or receives Outcomes)."""
    if hint is None or hint is Any or hint is object or hint is type(None) or wants_outcome(hint):
        return True
    if get_origin(hint) in (Union, UnionType):
        return any(admits_none(a) for a in get_args(hint))
    return False


def none_problem(key: str, pname: str, hint: Any, rule: str, source: str, where: str) -> Problem | None:
    """The problem of node ``key``'s parameter ``pname`` (annotated ``hint``, given
    the node ``source``) under trigger ``rule``, or None where it admits None."""
    if rule == ALL_SUCCEEDED or admits_none(hint):
        return None
    ann = format_type(hint)
    return Problem(
        f"node {key!r}: parameter {pname!r} is annotated {ann}, but with trigger={rule!r} it receives None "
        f"where {source!r} ends without a value; annotate it '{ann} | None' or 'dx.Outcome' (called at {where})",
        key=key,
        param=pname,
        call_site=where,
    )


def map_gate_problem(key: str, rule: str, where: str) -> Problem:
    """Node ``key`` is a map of a gated task."""
    what = f"trigger={rule!r}" if rule != ALL_SUCCEEDED else "a dx.Outcome parameter"
    return Problem(
        f"node {key!r}: a map cannot have {what}: its items run from a list that was made; "
        f"give it to a task that reads the map (called at {where})",
        key=key,
        call_site=where,
    )
