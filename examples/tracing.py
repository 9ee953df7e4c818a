"""Tracing: a run's OpenTelemetry spans, printed as a tree.

Run it with ``python examples/tracing.py`` where ``opentelemetry-sdk`` is installed
(``pip install "dagexec[otel]" opentelemetry-sdk``; the test extra has both). The
application sets up the SDK as it would for Jaeger, Tempo or Honeycomb, with the SDK's
console exporter here; ``run(trace=True)`` then makes a span for the run, under the
caller's current span, and one for each trial, with the trial's key, attempt, state,
worker and executor as attributes, and a failed attempt's exception recorded.
"""

from __future__ import annotations

import io
import json
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import dagexec as dx

attempts: dict[str, int] = {}


@dx.task(retries=1)
def fetch(n: int) -> list[int]:
    attempts["fetch"] = attempts.get("fetch", 0) + 1
    if attempts["fetch"] == 1:
        raise ConnectionError("service unavailable, try again")
    return list(range(n))


@dx.task
def square(x: int) -> int:
    return x * x


@dx.task
def total(xs: list[int]) -> int:
    return sum(xs)


def one_line(span: ReadableSpan) -> str:
    """The console exporter's format here: one JSON line a span, with what the tree needs."""
    parent = span.parent.span_id if span.parent is not None else None
    return json.dumps({"name": span.name, "id": span.context.span_id, "parent": parent,
                       "start": span.start_time, "attributes": dict(span.attributes or {}),
                       "status": span.status.status_code.name}) + "\n"  # fmt: skip


def print_tree(lines: list[dict[str, Any]]) -> None:
    children: dict[Any, list[dict[str, Any]]] = {}
    for span in lines:
        children.setdefault(span["parent"], []).append(span)

    def show(span: dict[str, Any], depth: int) -> None:
        attrs = span["attributes"]
        what = ""
        if "dagexec.state" in attrs:
            what = f"  attempt {attrs['dagexec.attempt']}: {attrs['dagexec.state']} on {attrs['dagexec.executor']}"
        print(f"{'  ' * depth}{span['name']}{what}{'  [ERROR]' if span['status'] == 'ERROR' else ''}")
        for child in sorted(children.get(span["id"], []), key=lambda s: (s["start"], s["name"])):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)


def main() -> None:
    out = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=one_line)))
    trace.set_tracer_provider(provider)

    with dx.Graph("nightly") as g:
        g.output(total(square.map(fetch(3))), name="total")

    tracer = trace.get_tracer("my-app")
    with tracer.start_as_current_span("nightly job"):
        result = g.compile().run(executor="serial", trace=True)
    provider.shutdown()

    print(f"total: {result['total']}")
    print_tree([json.loads(line) for line in out.getvalue().splitlines()])


if __name__ == "__main__":
    main()
