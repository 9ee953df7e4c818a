"""``run(events=...)`` and ``dagexec run --events`` (DESIGN §15, docs/observability.md):
one JSON object a line, each flushed, for the run and every trial, on every executor."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from observed_tasks import dies_once, double, flaky, hangs, small

import dagexec as dx


@dx.task
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def events_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def trial_events(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(event, key, attempt, state) of each trial event, sorted (executors interleave)."""
    rows = [(e["event"], e["key"], e["attempt"], e.get("state")) for e in events if e["event"].startswith("trial")]
    return sorted(rows, key=lambda r: (r[1], r[2], r[0] == "trial_end"))


@pytest.fixture
def executor(every_executor: Any) -> Any:
    return every_executor


def test_the_events_of_retries_a_map_a_stream_and_a_skipped_branch(executor, tmp_path):
    with dx.Graph("g") as g:
        flaky(str(tmp_path))
        double.map([1, 2])
        g.output(numbers(3), name="items")
        dx.cond(small(20), then=lambda: double(1), otherwise=lambda: double(2))
    out = io.StringIO()
    result = g.compile().run(executor=executor, events=out)
    events = events_of(out)
    assert [e["schema"] for e in events] == [1] * len(events)
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "run_end"
    name = "dask" if not isinstance(executor, str) else executor
    assert events[0]["executors"] == [name] and events[0]["graph"] == "g" and events[0]["nodes"] == 7
    # small(20) is False: the cond's otherwise branch (double-2) runs, double-1 is skipped
    assert trial_events(events) == [
        ("trial_start", "cond", 1, None), ("trial_end", "cond", 1, "succeeded"),
        ("trial_start", "double-2", 1, None), ("trial_end", "double-2", 1, "succeeded"),
        ("trial_start", "double[0]", 1, None), ("trial_end", "double[0]", 1, "succeeded"),
        ("trial_start", "double[1]", 1, None), ("trial_end", "double[1]", 1, "succeeded"),
        ("trial_start", "flaky", 1, None), ("trial_end", "flaky", 1, "failed"),
        ("trial_start", "flaky", 2, None), ("trial_end", "flaky", 2, "succeeded"),
        ("trial_start", "numbers", 1, None), ("trial_end", "numbers", 1, "succeeded"),
        ("trial_start", "small", 1, None), ("trial_end", "small", 1, "succeeded"),
    ]  # fmt: skip
    ends = {(e["key"], e["attempt"]): e for e in events if e["event"] == "trial_end"}
    assert (ends["flaky", 1]["error_type"], ends["flaky", 1]["error"]) == ("ValueError", "first attempt")
    assert ends["flaky", 2]["error_type"] is None and ends["numbers", 1]["items"] == 3
    assert {e["executor"] for e in ends.values()} == {name}
    assert all(e["start"] <= e["end"] for e in ends.values())
    run_end = events[-1]
    assert run_end["ok"] is True and result.ok
    assert run_end["states"] == {"succeeded": 6, "skipped": 1}  # the branch not taken
    assert (run_end["items"], run_end["maps"]) == ({"succeeded": 2}, {"double": {"succeeded": 2}})


def test_the_events_of_a_crash_on_loky_and_a_timeout(tmp_path):
    with dx.Graph("g") as g:
        dies_once(str(tmp_path))
        hangs()
    out = io.StringIO()
    g.compile().run(executor="loky", events=out, fail_fast=False, raise_on_failure=False)
    events = events_of(out)
    assert trial_events(events) == [
        ("trial_start", "dies_once", 1, None), ("trial_end", "dies_once", 1, "crashed"),
        ("trial_start", "dies_once", 2, None), ("trial_end", "dies_once", 2, "succeeded"),
        ("trial_start", "hangs", 1, None), ("trial_end", "hangs", 1, "timed_out"),
    ]  # fmt: skip
    ends = {(e["key"], e["attempt"]): e for e in events if e["event"] == "trial_end"}
    assert ends["dies_once", 1]["error_type"] == "WorkerCrashed"
    assert ends["hangs", 1]["error"] == "node 'hangs' timed out after 0.3 s"
    assert events[-1]["states"] == {"succeeded": 1, "failed": 1} and events[-1]["ok"] is False


def test_events_go_to_a_file_made_anew(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("an earlier run's\n")
    with dx.Graph("g") as g:
        double(1)
    g.compile().run(executor="serial", events=path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["run_start", "trial_start", "trial_end", "run_end"]


def test_bad_events_arguments_are_input_errors():
    with dx.Graph("g") as g:
        double(1)
    with pytest.raises(dx.InputError, match="events must be a file's path or a stream, got int 3"):
        g.compile().run(events=3)


KILLED = textwrap.dedent(
    """
    import os, sys, time
    import dagexec as dx

    @dx.task
    def quick(x: int) -> int:
        return x

    @dx.task
    def stuck(x: int) -> int:
        open(sys.argv[2], "w").close()
        time.sleep(120)
        return x

    with dx.Graph("g") as g:
        stuck(1)
        [quick(k) for k in range(20)]
    g.compile().run(executor="threads", events=sys.argv[1])
    """
)


def test_a_run_killed_with_sigkill_leaves_whole_lines(tmp_path):
    script, events, started = tmp_path / "run.py", tmp_path / "events.jsonl", tmp_path / "started"
    script.write_text(KILLED)
    proc = subprocess.Popen([sys.executable, str(script), str(events), str(started)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60  # a guard, not a timing assertion
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = events.read_text()
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]  # every line parses
    assert lines[0]["event"] == "run_start"
    assert ("trial_start", "stuck") in {(e["event"], e.get("key")) for e in lines}
    assert "run_end" not in {e["event"] for e in lines}


def test_the_cli_writes_events_to_stdout_and_the_rest_to_stderr(tmp_path):
    (tmp_path / "pipe.py").write_text(
        "import dagexec as dx\n\n@dx.task\ndef double(x: int) -> int:\n    return 2 * x\n\n"
        "with dx.Graph('g') as graph:\n    graph.output(double(graph.input('n', int)), name='out')\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "dagexec", "run", "pipe.py:graph", "-i", "n=4", "--events", "-", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events] == ["run_start", "trial_start", "trial_end", "run_end"]
    assert "out = 8" in done.stderr.splitlines()
    both = subprocess.run(
        [sys.executable, "-m", "dagexec", "run", "pipe.py:graph", "-i", "n=4", "--events", "-", "--json", "-"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert both.returncode == 2
    assert both.stderr == "dagexec: error: --json - and --events - would share standard output: give one a file\n"


def test_the_schema_is_documented():
    page = (Path(__file__).resolve().parent.parent / "docs" / "observability.md").read_text()
    for field in ("run_start", "trial_start", "trial_end", "run_end", "error_type", "items", "maps", "schema"):
        assert f"`{field}`" in page


@dx.task
def says(text: str) -> int:
    raise ValueError(text)


def test_a_line_holds_any_text_as_json(tmp_path):
    text = 'a "quoted" word,\na second line, a tab\t, \\ and \u00e9\u4e2d </script>'
    with dx.Graph("g") as g:
        says.options(name="says-\u00e9")(text)
    out = io.StringIO()
    g.compile().run(executor="threads", events=out, raise_on_failure=False)
    (end,) = [e for e in events_of(out) if e["event"] == "trial_end"]
    assert (end["key"], end["error_type"], end["error"]) == ("says-\u00e9", "ValueError", text)
