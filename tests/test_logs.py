"""Trial logs: what a task printed and logged, its own lines only, on every executor
(DESIGN §10b; docs/running.md "Logs")."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec._capture import LOG_LIMIT
from dagexec.executors import ThreadExecutor

GUARD = 30.0  # seconds before a wait is a failure (never a timing assertion)


@dx.task
def chatty(x: int) -> int:
    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    logging.getLogger("user.chatty").warning("careful with %d", x)
    return x + 1


@dx.task
def quiet(x: int) -> int:
    return 2 * x


CHATTY_LOG = "out 1\nerr 1\nWARNING user.chatty: careful with 1\n"


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_trial_s_log_holds_exactly_what_its_task_printed_and_logged(executor: str) -> None:
    with dx.Graph("chat") as g:
        g.output(quiet(chatty(1)), "y")
    result = g.compile().run(executor=executor)
    assert result.output == 4
    assert [t.log for t in result.trials["chatty"]] == [CHATTY_LOG]
    assert [t.log for t in result.trials["quiet"]] == [""]


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_task_that_prints_nothing_has_an_empty_log(executor: str) -> None:
    with dx.Graph("silent") as g:
        g.output(quiet(quiet(3)), "y")
    result = g.compile().run(executor=executor)
    assert {key: [t.log for t in trials] for key, trials in result.trials.items()} == {
        "quiet": [""],
        "quiet-1": [""],
    }


@dx.task(retries=1)
def flaky(path: str) -> int:
    first = not os.path.exists(path)
    print(f"attempt {'one' if first else 'two'}")
    if first:
        open(path, "w").close()
        raise ValueError("first attempt fails")
    return 1


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_each_attempt_keeps_its_own_log_and_a_failed_one_keeps_it_too(executor: str, tmp_path: Path) -> None:
    with dx.Graph("retry") as g:
        g.output(flaky(str(tmp_path / "seen")), "y")
    result = g.compile().run(executor=executor)
    trials = result.trials["flaky"]
    assert [(t.state, t.log) for t in trials] == [
        (State.FAILED, "attempt one\n"),
        (State.SUCCEEDED, "attempt two\n"),
    ]


# -- its own lines only --------------------------------------------------------------------
_barrier = threading.Barrier(8)


@dx.task
def numbered(n: int) -> int:
    _barrier.wait(GUARD)  # all 8 run at once, or this fails
    log = logging.getLogger("user.numbered")
    for k in range(50):
        print(f"task {n} print {k}")
        log.warning("task %d log %d", n, k)
    return n


def own_lines(n: int) -> str:
    return "".join(f"task {n} print {k}\nWARNING user.numbered: task {n} log {k}\n" for k in range(50))


def test_concurrent_thread_trials_keep_only_their_own_lines() -> None:
    _barrier.reset()
    with dx.Graph("many") as g:
        for n in range(8):
            g.output(numbered(n), f"n{n}")
    result = g.compile().run(executor=ThreadExecutor(max_workers=8))
    assert result.outputs == {f"n{n}": n for n in range(8)}
    logs = {key: [t.log for t in trials] for key, trials in result.trials.items()}
    assert logs == {("numbered" if n == 0 else f"numbered-{n}"): [own_lines(n)] for n in range(8)}
    workers = {trials[0].worker for trials in result.trials.values()}
    assert len(workers) == 8


_started: set[str] = set()


@dx.task
async def talk(name: str) -> str:
    _started.add(name)
    deadline = asyncio.get_running_loop().time() + GUARD
    while len(_started) < 2:  # both coroutines are running on the loop
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.001)
    for k in range(20):
        print(f"{name} {k}")
        logging.getLogger("user.talk").warning("%s says %d", name, k)
        await asyncio.sleep(0)
    return name


def test_concurrent_async_trials_on_one_loop_keep_only_their_own_lines() -> None:
    _started.clear()
    with dx.Graph("talks") as g:
        g.output(talk("ann"), "a")
        g.output(talk("bob"), "b")
    result = g.compile().run(executor="threads")
    assert result.outputs == {"a": "ann", "b": "bob"}
    for key, name in (("talk", "ann"), ("talk-1", "bob")):
        (trial,) = result.trials[key]
        assert trial.log == "".join(f"{name} {k}\nWARNING user.talk: {name} says {k}\n" for k in range(20))


# -- what is and is not captured -------------------------------------------------------------
@dx.task
def mixed() -> int:
    logging.getLogger("dagexec").warning("the library's own")
    logging.getLogger("dagexec.engine").error("the library's own too")
    logging.getLogger("dagexecutor").warning("a user's logger with a similar name")
    strict = logging.getLogger("user.strict")
    strict.setLevel(logging.ERROR)
    strict.warning("below the logger's level")
    logging.getLogger("user.info").info("below the root's level")
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("user.exc").exception("caught")
    return 0


def test_dagexec_s_own_records_and_filtered_records_are_not_captured() -> None:
    with dx.Graph("mixed") as g:
        g.output(mixed(), "y")
    result = g.compile().run(executor="serial")
    log = result.trials["mixed"][0].log
    head = "WARNING dagexecutor: a user's logger with a similar name\nERROR user.exc: caught\n"
    assert log.startswith(head + "Traceback (most recent call last):\n")
    assert log.endswith("    raise KeyError(\"k\")\nKeyError: 'k'\n")
    assert "library" not in log and "below" not in log


@dx.task
def flood(how: str) -> int:
    if how == "lines":
        for k in range(1_000_000):
            print(f"{k:09d}")  # 10 characters a line: 10,000,000 in all
    else:
        sys.stdout.write("".join(f"{k:09d}\n" for k in range(1_000_000)))
    return 0


@pytest.mark.parametrize("how", ["lines", "one write"])
def test_a_long_log_keeps_its_last_64_kib_after_a_line_saying_how_much_was_cut(
    how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with dx.Graph("flood") as g:
        g.output(flood(how), "y")
    result = g.compile().run(executor="serial")
    capsys.readouterr()  # the 10 MB passed through: not kept in the report
    full_tail = "".join(f"{k:09d}\n" for k in range(1_000_000 - 6554, 1_000_000))[-LOG_LIMIT:]
    dropped = 10_000_000 - 65536
    assert LOG_LIMIT == 65536
    assert result.trials["flood"][0].log == (
        f"[log cut: the first {dropped} bytes were dropped; the last 65536 are kept]\n" + full_tail
    )


def test_prints_still_reach_the_original_streams(capsys: pytest.CaptureFixture[str]) -> None:
    with dx.Graph("pass") as g:
        g.output(chatty(1), "y")
    g.compile().run(executor="threads")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("out 1\n", "err 1\n")


# -- dask: best effort -------------------------------------------------------------------------
def test_a_dask_trial_keeps_what_its_worker_thread_printed_and_logged() -> None:
    from distributed import Client, LocalCluster

    from dagexec.executors import DaskExecutor

    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        with dx.Graph("chat-dask") as g:
            g.output(quiet(chatty(1)), "y")
        result = g.compile().run(executor=DaskExecutor(client))
    assert result.output == 4
    assert [t.log for t in result.trials["chatty"]] == [CHATTY_LOG]
    assert [t.log for t in result.trials["quiet"]] == [""]


# -- where logs are shown: --json, the failure report, the page ---------------------------------
PIPELINE = textwrap.dedent(
    """
    import logging

    import dagexec as dx


    @dx.task
    def prepare() -> int:
        print("prepared")
        return 25


    @dx.task
    def boom(n: int) -> int:
        for k in range(n):
            print(f"step {k}")
        logging.getLogger("pipe.boom").warning("giving up after %d steps", n)
        raise ValueError("bad input")


    with dx.Graph("logs") as graph:
        graph.output(boom(prepare()), "y")
    """
)

BOOM_LOG = "".join(f"step {k}\n" for k in range(25)) + "WARNING pipe.boom: giving up after 25 steps\n"


@pytest.mark.parametrize("executor", ["serial", "loky"])
def test_the_cli_reports_a_failed_trial_s_log_in_json_and_its_tail_on_stderr(
    tmp_path: Path, executor: str
) -> None:
    (tmp_path / "pipe.py").write_text(PIPELINE)
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    env["COLUMNS"] = "200"
    cmd = [sys.executable, "-m", "dagexec", "run", "pipe:graph", "--json", str(out), "--executor", executor]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(out.read_text())
    assert data["trials"]["prepare"][0]["log"] == "prepared\n"
    (trial,) = data["trials"]["boom"]
    assert (trial["state"], trial["error"], trial["log"]) == ("failed", "ValueError: bad input", BOOM_LOG)
    tail = BOOM_LOG.splitlines()[-20:]
    assert tail[0] == "step 6"
    report = "boom: log (last lines)\n" + "".join(f"  {line}\n" for line in tail)
    assert report in proc.stderr
    assert "  step 5\n" not in proc.stderr
    assert "prepared\n" in proc.stdout  # the prints still went out


@dx.task
def shouty() -> int:
    print("<script>alert('no')</script> & done")
    raise RuntimeError("stop")


def test_the_page_shows_each_trial_s_log_escaped(tmp_path: Path, dot_program: str) -> None:
    with dx.Graph("page") as g:
        g.output(shouty(), "y")
    result = g.compile().run(executor="serial", raise_on_failure=False)
    out = tmp_path / "run.html"
    result.to_html(out)
    page = out.read_text()
    assert "<script>alert" not in page
    m = re.search(r'<script type="application/json" id="dagexec-data">(.*?)</script>', page, re.S)
    assert m is not None
    data: Any = json.loads(m.group(1))
    rows = [i for i, row in enumerate(data["trials"]) if row[0] == "shouty"]
    assert [data["texts"][str(i)]["log"] for i in rows] == ["<script>alert('no')</script> & done\n"]
    assert data["texts"][str(rows[0])]["error"] == "RuntimeError: stop"
    assert 'log.className = "error-log"' in page  # the error list shows it too


def test_after_a_run_the_root_logger_and_the_streams_are_as_they_were():
    import logging
    import sys

    import dagexec as dx

    handlers = list(logging.getLogger().handlers)
    out, err = sys.stdout, sys.stderr

    @dx.task
    def noisy() -> int:
        print("hello")
        return 1

    with dx.Graph("g") as g:
        noisy()
    assert g.compile().run(executor="threads").trials["noisy"][0].log == "hello\n"
    assert logging.getLogger().handlers == handlers  # basicConfig() after a run works as ever
    assert (sys.stdout, sys.stderr) == (out, err)


# -- a thread the task leaves behind ----------------------------------------------------------
def _line_count(path: str) -> int:
    try:
        with open(path) as f:
            return f.read().count("\n")
    except FileNotFoundError:
        return 0


@dx.task
def start_ticker(folder: str) -> int:
    """Start a thread, in a copy of this trial's context, that prints until told to stop."""
    ticks, stop = os.path.join(folder, "ticks"), os.path.join(folder, "stop")
    first = threading.Event()

    def tick() -> None:
        k = 0
        while not os.path.exists(stop) and k < 100_000:
            print(f"tick {k}")
            with open(ticks, "a") as f:
                f.write(f"{k}\n")
            first.set()
            k += 1
            threading.Event().wait(0.002)

    threading.Thread(target=contextvars.copy_context().run, args=(tick,), daemon=True).start()
    assert first.wait(GUARD)
    print("started")
    return 1


@dx.task
def while_it_ticks(x: int, folder: str) -> int:
    """Run (in the same thread or worker as start_ticker) while its thread prints 3 more lines."""
    ticks = os.path.join(folder, "ticks")
    seen = _line_count(ticks)
    deadline = time.monotonic() + GUARD
    while _line_count(ticks) < seen + 3:
        assert time.monotonic() < deadline, "the thread stopped printing"
        time.sleep(0.002)
    print("second")
    open(os.path.join(folder, "stop"), "w").close()
    return x + 1


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_thread_that_outlives_its_trial_writes_into_no_later_trial_s_log(
    executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with dx.Graph("ticker") as g:
        g.output(while_it_ticks(start_ticker(str(tmp_path)), str(tmp_path)), "y")
    result = g.compile().run(executor=executor, max_workers=1)
    assert result.output == 2
    (first,), (second,) = result.trials["start_ticker"], result.trials["while_it_ticks"]
    assert first.worker == second.worker  # the same thread or process: the one whose slot was shared
    assert second.log == "second\n"
    lines = first.log.splitlines()
    assert "started" in lines
    ticks = [line for line in lines if line != "started"]
    assert ticks == [f"tick {k}" for k in range(len(ticks))] and ticks  # its thread's lines while it ran
