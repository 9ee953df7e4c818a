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
        text = json.dumps({"schema": SCHEMA, "event": event, "time": time.time(), **fields}, default=str) + "\n"
        with self._lock:
            self._out.write(text.encode("utf-8") if self._binary else text)
            self._out.flush()

    def on_run_start(self, plan: CompiledGraph) -> None:
        self._line(
            "run_start",
            {"graph": plan.name, "fingerprint": plan.fingerprint, "nodes": len(plan), "executors": self._executors},
        )

    def on_trial_start(self, trial: Trial) -> None:
        self._line(
            "trial_start", {"key": trial.key, "attempt": trial.attempt, "executor": self._executor_of(trial.key)}
        )

    def on_trial_end(self, trial: Trial) -> None:
        err = trial.error
        fields: dict[str, Any] = {
            "key": trial.key,
            "attempt": trial.attempt,
            "state": trial.state.value,
            "worker": trial.worker,
            "executor": self._executor_of(trial.key),
            "start": trial.start,
            "end": trial.end,
            "error_type": None if err is None else type(err).__qualname__,
            "error": None if err is None else str(err),
        }
        if trial.items is not None:
            fields["items"] = trial.items
        if trial.bundle is not None:
            fields["bundle"] = trial.bundle
        self._line("trial_end", fields)

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
