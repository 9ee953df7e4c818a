"""The trace context a trial runs in: its span's W3C ``traceparent`` (DESIGN §15).

When a run is traced, each trial's call carries its span's ``traceparent``
(``Call.trace``); where the trial runs (a thread, a loky or dask worker, the master)
:func:`entered` makes it the current trace context for the trial's length: in
:data:`TRACEPARENT`, which ``dx.shell`` passes to its commands as the ``TRACEPARENT``
environment variable, and, where ``opentelemetry-api`` is installed there, as
OpenTelemetry's current context (spans the task makes are children of its trial's).
Untraced trials carry None and cost one test.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

__all__ = ["TRACEPARENT", "entered", "traceparent_of"]

#: the running trial's span as a W3C traceparent, or None
TRACEPARENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("dagexec_traceparent", default=None)


def traceparent_of(span_context: Any) -> str:
    """The W3C ``traceparent`` of an OpenTelemetry span context."""
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


@contextlib.contextmanager
def entered(traceparent: str) -> Iterator[None]:
    """Within the block, ``traceparent`` is the current trace context."""
    token = TRACEPARENT.set(traceparent)
    otel_token = _attach(traceparent)
    try:
        yield
    finally:
        if otel_token is not None:
            from opentelemetry import context

            context.detach(otel_token)
        TRACEPARENT.reset(token)


def _attach(traceparent: str) -> Any:
    try:
        from opentelemetry import context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:  # no OpenTelemetry where the trial runs: TRACEPARENT alone
        return None
    return context.attach(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
