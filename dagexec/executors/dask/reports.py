"""What a trial's task reports, read in the master.

A worker (:mod:`.worker`) reports a trial's end as a small event: ``{"k": dask key,
"t": [start, end], "w": worker, "l": log}`` for a success, ``{"k", "e": pickled
outcome}`` for a failure, ``{"k", "b": [one entry per member], "w"}`` for a chain or a
group (a success's entry ``[idx, attempt, start, end, log]``, a failure's ``[idx,
attempt, pickled outcome]``; a pipe's with ``"i"``, ``[idx, items]`` per producer),
``{"k", "split": 1}`` for a batch the worker could not load.  These functions turn them into the engine's outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...run.protocol import LINK, Batch, BatchDone, Call, Outcome, Remote, failed_outcome
from .._transport import load_outcome, unpickling_error

__all__ = ["batch_outcomes", "trial_outcome"]


def trial_outcome(call: Call, msg: dict[str, Any], start: float) -> Outcome:
    """The outcome ``msg`` reports of ``call`` (its value, kept on the worker, is for
    the caller to put in); ``start`` is used where the report cannot be read."""
    if "t" in msg:
        began, end = msg["t"]
        return (call.idx, call.attempt, True, None, None, "", began, end, msg.get("w", "dask"), msg.get("l", ""))
    try:
        out: Outcome = load_outcome(msg["e"])
    except Exception as exc:
        error = unpickling_error(call.key, "its exception", exc)
        out = failed_outcome(call, error, start, "dask")
    return out


def batch_outcomes(
    batch: Batch, msg: dict[str, Any], value_of: Callable[[int], Remote | None], start: float
) -> BatchDone:
    """The members' outcomes a batch's "ended" event reports (those that ran, in
    order), each success with ``value_of(its unit)`` (``LINK`` for a chain's member
    whose value stayed in its task)."""
    if "split" in msg:  # the worker could not load the members: each goes alone
        return BatchDone(batch, [], split=True)
    w = msg.get("w", "dask")
    by_idx = {call.idx: call for call in batch.calls}
    outs: list[Outcome] = []
    for entry in msg["b"]:
        call = by_idx[entry[0]]
        if len(entry) == 5:
            _, attempt, began, end, log = entry
            value = value_of(call.idx)  # None: a chain's member before its last, whose value stayed there
            outs.append((call.idx, attempt, True, LINK if value is None else value, None, "", began, end, w, log))
            continue
        try:
            outs.append(load_outcome(entry[2]))
        except Exception as exc:
            error = unpickling_error(call.key, "its exception", exc)
            outs.append(failed_outcome(call, error, start, "dask"))
    items = msg.get("i")  # a pipe's: what each producer yielded
    return BatchDone(batch, outs, items=dict(items) if items else None)
