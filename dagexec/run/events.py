"""``run(events=...)``: the run as JSON lines, one object a line (DESIGN §15).

:class:`EventsWriter` is a run callback (the loop's one way of telling what happens:
``on_run_start``, ``on_trial_start``, ``on_trial_end``, ``on_run_end``), so it sees
every trial of every executor, a map's items included.  Each line is one object,
written and flushed at once, so a file cut short by a crash holds whole lines up to
it::

    {"schema": 1, "event": "run_start", "time", "graph", "fingerprint", "nodes", "executors"}
    {"schema": 1, "event": "trial_start", "time", "key", "attempt", "executor"}
    {"schema": 1, "event": "trial_end", "time", "key", "attempt", "state", "worker",
     "executor", "start", "end", "error_type", "error"[, "items"][, "bundle"]}
    {"schema": 1, "event": "run_end", "time", "graph", "ok", "duration", "states",
     "items", "maps"}

``docs/observability.md`` documents each field.  Values are never written.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from typing import IO, TYPE_CHECKING, Any

from .._state import Trial

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .._result import RunResult

__all__ = ["SCHEMA", "EventsWriter"]

#: the version of the lines' schema: it changes when a field changes meaning or goes
SCHEMA = 1

#: one encoder for every line (``json.dumps`` with options makes one a call)
_encode = json.JSONEncoder(default=str).encode
_str = json.encoder.encode_basestring  # a JSON string, quoted


def _num(value: float | None) -> str:
    """A JSON number, or null (a float's repr is JSON's, but for inf and nan)."""
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return "null"
    return repr(value)


class EventsWriter:
    """Writes a run's events to ``to``: a path (the file is made anew) or an open
    stream (text or binary), flushed after each line; ``executor_of(key)`` names the
    executor a node's (or a map item's) trials run on."""

    def __init__(self, to: Any, executor_of: Any, executors: list[str]) -> None:
        self._own = isinstance(to, (str, os.PathLike))
        self._out: IO[Any] = open(to, "w", encoding="utf-8") if self._own else to
        self._binary = not self._own and "b" in getattr(to, "mode", "")
        self._executor_of = executor_of
        self._executors = executors
        self._lock = threading.Lock()  # lines are whole even if a callback comes from a thread

    def _line(self, event: str, fields: dict[str, Any]) -> None:
        self._write(_encode({"schema": SCHEMA, "event": event, "time": time.time(), **fields}) + "\n")

    def on_run_start(self, plan: CompiledGraph) -> None:
        self._line(
            "run_start",
            {"graph": plan.name, "fingerprint": plan.fingerprint, "nodes": len(plan), "executors": self._executors},
        )

    def _write(self, text: str) -> None:
        with self._lock:
            self._out.write(text.encode("utf-8") if self._binary else text)
            self._out.flush()

    # the two lines each trial writes are made by hand: json.dumps costs a few µs more
    def on_trial_start(self, trial: Trial) -> None:
        self._write(
            f'{{"schema": {SCHEMA}, "event": "trial_start", "time": {time.time()!r}, "key": {_str(trial.key)}, '
            f'"attempt": {trial.attempt}, "executor": {_str(self._executor_of(trial.key))}}}\n'
        )

    def on_trial_end(self, trial: Trial) -> None:
        err = trial.error
        text = (
            f'{{"schema": {SCHEMA}, "event": "trial_end", "time": {time.time()!r}, "key": {_str(trial.key)}, '
            f'"attempt": {trial.attempt}, "state": "{trial.state.value}", "worker": {_str(trial.worker)}, '
            f'"executor": {_str(self._executor_of(trial.key))}, "start": {_num(trial.start)}, '
            f'"end": {_num(trial.end)}, "error_type": {"null" if err is None else _str(type(err).__qualname__)}, '
            f'"error": {"null" if err is None else _str(str(err))}'
        )
        if trial.items is not None:
            text += f', "items": {trial.items}'
        if trial.bundle is not None:
            text += f', "bundle": {_str(trial.bundle)}'
        self._write(text + "}\n")

    def on_run_end(self, result: RunResult) -> None:
        items = result._items
        in_items = {k for keys in items.values() for k in keys}
        self._line(
            "run_end",
            {
                "graph": result.graph,
                "ok": result.ok,
                "duration": result.duration,
                "states": dict(Counter(s.value for k, s in result.states.items() if k not in in_items)),
                "items": dict(Counter(result.states[k].value for k in in_items)),
                "maps": {m: dict(Counter(result.states[k].value for k in keys)) for m, keys in items.items()},
            },
        )
        if self._own:
            self._out.close()
