"""``run(trace=True)`` (or ``DAGEXEC_TRACE=1``): OpenTelemetry spans of the run (DESIGN §15).

:class:`TraceWriter` is a run callback, like the events writer, and uses
``opentelemetry-api`` only, through the caller's tracer provider (whatever SDK and
exporter the application set up; none: the API's no-op).  Spans::

    run <graph>                  a child of the caller's current span
      trial <key>                one per trial (map items included), from its start
        attributes: dagexec.key, dagexec.attempt, dagexec.state, dagexec.worker,
                    dagexec.executor; a failed trial's exception recorded, status ERROR

A trial's span starts when the trial is handed to its executor (``on_trial_start``,
at the trial's start time) and ends at its end time, whatever ran it: spans are
recorded in the master.  Values are never recorded.  This module is imported only
when a run is traced: with tracing off nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from .._state import State, Trial
from .._tracectx import traceparent_of
from .._version import __version__

if TYPE_CHECKING:
    from .._plan import CompiledGraph
    from .._result import RunResult

__all__ = ["TRACE_ENV", "TraceWriter", "tracing_wanted"]

#: the environment variable that traces every run (``1``) where ``trace=`` is not given
TRACE_ENV = "DAGEXEC_TRACE"


def tracing_wanted(trace: bool | None) -> bool:
    """Whether a run traces: ``trace``, or where it is None, ``DAGEXEC_TRACE=1``."""
    if trace is not None:
        return trace
    return os.environ.get(TRACE_ENV, "").strip().lower() in ("1", "true", "yes")


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


class TraceWriter:
    """Makes the run's spans; ``executor_of(key)`` names a trial's executor."""

    def __init__(self, executor_of: Any) -> None:
        from opentelemetry import context, trace

        self._trace = trace
        self._tracer = trace.get_tracer("dagexec", __version__)
        self._parent = context.get_current()  # the caller's: the run span's parent
        self._executor_of = executor_of
        self._run: Any = None
        self._run_ctx: Any = None
        self._open: dict[tuple[str, int], Any] = {}

    def on_run_start(self, plan: CompiledGraph) -> None:
        self._run = self._tracer.start_span(
            f"run {plan.name}",
            context=self._parent,
            attributes={"dagexec.graph": plan.name, "dagexec.fingerprint": plan.fingerprint},
        )
        self._run_ctx = self._trace.set_span_in_context(self._run)

    def _start(self, key: str, attempt: int, start: float | None) -> Any:
        return self._tracer.start_span(
            f"trial {key}",
            context=self._run_ctx,
            start_time=_ns(start) if start else None,
            attributes={"dagexec.key": key, "dagexec.attempt": attempt, "dagexec.executor": self._executor_of(key)},
        )

    def on_trial_start(self, trial: Trial) -> None:
        if (trial.key, trial.attempt) not in self._open:  # (a chain's member: opened at its submission)
            self._open[trial.key, trial.attempt] = self._start(trial.key, trial.attempt, trial.start)

    def traceparent(self, key: str, attempt: int) -> str:
        """The W3C traceparent of trial ``attempt`` of ``key``, its span opened if it is
        not yet (a chain's member, announced when the chain's outcome comes)."""
        span = self._open.get((key, attempt))
        if span is None:
            span = self._open[key, attempt] = self._start(key, attempt, time.time())
        return traceparent_of(span.get_span_context())

    def on_trial_end(self, trial: Trial) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self._open.pop((trial.key, trial.attempt), None) or self._start(trial.key, trial.attempt, trial.start)
        span.set_attribute("dagexec.state", trial.state.value)
        span.set_attribute("dagexec.worker", trial.worker)
        if trial.state is not State.SUCCEEDED:
            err = trial.error
            if err is not None:
                span.record_exception(err)
            what = f"{type(err).__name__}: {err}" if err is not None else trial.state.value
            span.set_status(Status(StatusCode.ERROR, what))
        span.end(end_time=_ns(trial.end))

    def on_run_end(self, result: RunResult) -> None:
        from opentelemetry.trace import Status, StatusCode

        for span in self._open.values():  # trials the run's end cut short
            span.set_attribute("dagexec.state", State.CANCELLED.value)
            span.end()
        self._open.clear()
        if self._run is None:
            return
        self._run.set_attribute("dagexec.ok", result.ok)
        if not result.ok:
            self._run.set_status(Status(StatusCode.ERROR, f"{len(result.failed)} failed: {', '.join(result.failed[:5])}"))
        self._run.end()
