"""``run(trace=True)`` (DESIGN §15, docs/observability.md): OpenTelemetry spans of a
run and its trials, read back from the SDK's in-memory exporter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest
from observed_tasks import dies_once, double, flaky, hangs, small

import dagexec as dx

try:  # the test extra installs the SDK; without it the tests that read spans fail, the rest run
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode
except ImportError as exc:
    MISSING: ImportError | None = exc
else:
    MISSING = None
    EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Any:
    if MISSING is not None:
        pytest.fail(f"opentelemetry-sdk is not installed ({MISSING}): the test extra has it (bash scripts/test)")
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the process's provider is set once
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_dagexec_test", False):
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        provider._dagexec_test = True  # type: ignore[attr-defined]
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def tree(exporter: InMemorySpanExporter) -> tuple[Any, list[tuple[Any, ...]]]:
    """The run span, and each trial span as (key, attempt, state, status) sorted."""
    finished = exporter.get_finished_spans()
    (run,) = [s for s in finished if s.name.startswith("run ")]
    trials = [s for s in finished if s.name.startswith("trial ")]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in trials)
    assert all(s.context.trace_id == run.context.trace_id for s in trials)
    rows = [
        (s.attributes["dagexec.key"], s.attributes["dagexec.attempt"], s.attributes["dagexec.state"], s.status.status_code)
        for s in trials
    ]
    return run, sorted(rows)


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_spans_of_retries_a_map_and_a_skipped_branch_under_the_callers_span(spans, executor, tmp_path):
    with dx.Graph("g") as g:
        flaky(str(tmp_path))
        double.map([1, 2])
        dx.cond(small(20), then=lambda: double(1), otherwise=lambda: double(2))
    tracer = trace.get_tracer("a-test")
    with tracer.start_as_current_span("caller") as caller:
        g.compile().run(executor=executor, trace=True)
    run, rows = tree(spans)
    assert run.name == "run g" and run.parent.span_id == caller.get_span_context().span_id
    assert run.attributes["dagexec.graph"] == "g" and run.attributes["dagexec.ok"] is True
    ok, error = StatusCode.UNSET, StatusCode.ERROR
    assert rows == [
        ("cond", 1, "succeeded", ok),
        ("double-2", 1, "succeeded", ok),  # double-1, the branch not taken, has no span
        ("double[0]", 1, "succeeded", ok),
        ("double[1]", 1, "succeeded", ok),
        ("flaky", 1, "failed", error),
        ("flaky", 2, "succeeded", ok),
        ("small", 1, "succeeded", ok),
    ]
    failed = next(s for s in spans.get_finished_spans() if s.name == "trial flaky" and s.attributes["dagexec.attempt"] == 1)
    assert failed.status.description == "ValueError: first attempt"
    (event,) = failed.events
    assert event.name == "exception" and event.attributes["exception.type"] == "ValueError"
    assert all(s.attributes["dagexec.executor"] == executor for s in spans.get_finished_spans() if s.name.startswith("trial"))


def test_spans_of_a_crash_on_loky_and_a_timeout(spans, tmp_path):
    with dx.Graph("g") as g:
        dies_once(str(tmp_path))
        hangs()
    g.compile().run(executor="loky", trace=True, fail_fast=False, raise_on_failure=False)
    run, rows = tree(spans)
    error, ok = StatusCode.ERROR, StatusCode.UNSET
    assert rows == [
        ("dies_once", 1, "crashed", error),
        ("dies_once", 2, "succeeded", ok),
        ("hangs", 1, "timed_out", error),
    ]
    assert run.status.status_code == error and run.status.description == "1 failed: hangs"
    worker = {s.attributes["dagexec.worker"] for s in spans.get_finished_spans() if s.name == "trial dies_once"}
    assert all(w.startswith("pid:") for w in worker)


def test_trial_spans_last_as_their_trials(spans):
    @dx.task
    def naps() -> int:
        time.sleep(0.05)
        return 1

    with dx.Graph("g") as g:
        naps()
    result = g.compile().run(executor="threads", trace=True)
    (trial,) = result.trials["naps"]
    (span,) = [s for s in spans.get_finished_spans() if s.name == "trial naps"]
    assert span.end_time == int(trial.end * 1e9)
    assert span.end_time - span.start_time >= 50_000_000


def test_dagexec_trace_traces_and_false_wins(spans, monkeypatch):
    with dx.Graph("g") as g:
        double(1)
    monkeypatch.setenv("DAGEXEC_TRACE", "1")
    g.compile().run(executor="serial")
    assert [s.name for s in spans.get_finished_spans()] == ["trial double", "run g"]
    spans.clear()
    g.compile().run(executor="serial", trace=False)
    assert spans.get_finished_spans() == ()


def test_without_tracing_nothing_of_opentelemetry_is_imported():
    code = (
        "import sys, dagexec as dx\n"
        "@dx.task\ndef f(x: int) -> int:\n    return x\n"
        "with dx.Graph('g') as g:\n    f(1)\n"
        "g.compile().run(executor='threads', events=sys.stderr)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DAGEXEC_TRACE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_trace_must_be_a_bool():
    with dx.Graph("g") as g:
        double(1)
    with pytest.raises(dx.InputError, match="trace must be True, False or None, got str 'yes'"):
        g.compile().run(trace="yes")  # type: ignore[arg-type]


@dx.task
def current_span_ids() -> tuple[int, int]:
    """Where the trial runs: the current OpenTelemetry span's trace and span ids."""
    ctx = trace.get_current_span().get_span_context()
    return ctx.trace_id, ctx.span_id


@dx.task
def makes_a_span() -> int:
    with trace.get_tracer("a-task").start_as_current_span("inside the task"):
        return 1


def span_named(exporter: InMemorySpanExporter, name: str) -> Any:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


@pytest.fixture
def executor(every_executor: Any) -> Any:
    return every_executor


def test_a_trial_runs_in_its_spans_context_wherever_it_runs(spans, executor):
    with dx.Graph("g") as g:
        g.output(current_span_ids(), name="ids")
    result = g.compile().run(executor=executor, trace=True)
    trial = span_named(spans, "trial current_span_ids").context
    assert result.output == (trial.trace_id, trial.span_id)


def test_a_tasks_own_spans_are_children_of_its_trials(spans):
    with dx.Graph("g") as g:
        makes_a_span()
    g.compile().run(executor="threads", trace=True)
    inner, trial = span_named(spans, "inside the task"), span_named(spans, "trial makes_a_span")
    assert inner.parent.span_id == trial.context.span_id


@pytest.mark.parametrize("executor", ["threads", "loky"])
def test_a_shell_command_gets_its_trials_traceparent(spans, executor):
    with dx.Graph("g") as g:
        g.output(dx.shell(["sh", "-c", 'printf %s "$TRACEPARENT"'], name="tp"), name="tp")
    result = g.compile().run(executor=executor, trace=True)
    ctx = span_named(spans, "trial tp").context
    assert result.output == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_an_untraced_commands_environment_has_no_traceparent(monkeypatch):
    monkeypatch.delenv("TRACEPARENT", raising=False)
    with dx.Graph("g") as g:
        g.output(dx.shell(["sh", "-c", 'printf %s "${TRACEPARENT-unset}"'], name="tp"), name="tp")
    assert g.compile().run(executor="threads").output == "unset"
