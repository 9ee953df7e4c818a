"""Ctrl-C (DESIGN §5, §12): a real SIGINT to a process running a plan, and a task
that raises KeyboardInterrupt itself."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec.executors import FuturesExecutor

CANCELLED = State.CANCELLED

SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    import threading

    import dagexec as dx

    executor, started = sys.argv[1], sys.argv[2]

    @dx.task
    def block() -> int:
        open(started, "w").close()
        threading.Event().wait(120)  # far longer than the test waits for this process
        return 1

    @dx.task
    def inc(x: int) -> int:
        return x + 1

    class Record:
        results = []

        def on_run_end(self, result):
            self.results.append(result)

    with dx.Graph("g") as g:
        inc(block())
        inc(1)

    report = {}
    try:
        g.compile().run(executor=executor, max_workers=1, callbacks=[Record()])
    except KeyboardInterrupt as exc:
        report["raised"] = "KeyboardInterrupt"
        report["message"] = str(exc)
    (result,) = Record.results
    report["states"] = {k: s.value for k, s in result.states.items()}
    report["trials"] = {k: [[t.attempt, t.state.value, t.end is not None] for t in ts]
                        for k, ts in result.trials.items()}
    print(json.dumps(report))
    """
)


def wait_for_file(path: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60  # a guard against a hung child, not a timing assertion
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.01)


def run_until_signalled(executor: str, sig: int, tmp_path: Any) -> tuple[int, str, str]:
    """Run SCRIPT in a subprocess, send it ``sig`` once its task runs; its exit code and output."""
    script = tmp_path / "plan.py"
    script.write_text(SCRIPT)
    started = str(tmp_path / "started")
    proc = subprocess.Popen(
        [sys.executable, str(script), executor, started],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        wait_for_file(started, proc)
        proc.send_signal(sig)
        # the task would block for 120 s: ending within 60 s means the signal stopped it
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


CANCELLED_RUN = {
    "raised": "KeyboardInterrupt",
    "states": {"block": "cancelled", "inc": "cancelled", "inc-1": "cancelled"},
    "trials": {"block": [[1, "cancelled", True]], "inc": [], "inc-1": []},
}


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_sigint_cancels_the_run_and_reraises_keyboard_interrupt(executor, tmp_path):
    code, out, err = run_until_signalled(executor, signal.SIGINT, tmp_path)
    assert code == 0, err
    assert json.loads(out) == {**CANCELLED_RUN, "message": ""}


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_sighup_stops_the_run_as_ctrl_c_does(executor, tmp_path):
    # a closed terminal or a dropped ssh session: the master cleans up instead of dying at once
    code, out, err = run_until_signalled(executor, signal.SIGHUP, tmp_path)
    assert code == 0, err
    assert json.loads(out) == {**CANCELLED_RUN, "message": "the run received SIGHUP"}


def test_sighup_and_sigterm_get_their_handlers_back_and_an_ignored_sighup_stays_ignored():
    seen: list[Any] = []

    @dx.task
    def look() -> int:
        seen.append((signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)))
        return 1

    with dx.Graph("g") as g:
        look()
    plan = g.compile()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == (
        signal.SIG_DFL,
        signal.SIG_DFL,
    )
    plan.run(executor="serial")
    during_term, during_hup = seen.pop()
    assert during_term is during_hup and callable(during_term)  # dagexec's, while the run lasts
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == (
        signal.SIG_DFL,
        signal.SIG_DFL,
    )
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        plan.run(executor="serial")
        assert seen.pop()[1] is signal.SIG_IGN
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


@dx.task
def stop(x: int) -> int:
    raise KeyboardInterrupt("stop now")


@dx.task
def inc(x: int) -> int:
    return x + 1


@pytest.fixture(scope="module")
def pools():
    spawn = multiprocessing.get_context("spawn")
    with ThreadPoolExecutor(max_workers=1) as threads, ProcessPoolExecutor(1, mp_context=spawn) as processes:
        yield {"futures-threads": threads, "futures-processes": processes}


@pytest.mark.parametrize("kind", ["serial", "threads", "futures-threads", "futures-processes", "loky"])
def test_a_task_raising_keyboard_interrupt_stops_the_run(kind, pools):
    ended: list[dx.RunResult] = []
    ran: list[int] = []

    class Record:
        def on_run_end(self, result: dx.RunResult) -> None:
            ended.append(result)

    @dx.task
    def after(x: int) -> int:
        ran.append(x)
        return x

    with dx.Graph("g") as g:
        after(inc(stop(1)))
        after(inc(2))
    plan = g.compile()
    assert plan.keys == ("stop", "inc", "after", "inc-1", "after-1")
    executor: Any = FuturesExecutor(pools[kind]) if kind.startswith("futures-") else kind
    with pytest.raises(KeyboardInterrupt):
        plan.run(executor=executor, max_workers=1, callbacks=[Record()])
    (result,) = ended
    assert result.states == {
        "stop": CANCELLED,
        "inc": CANCELLED,
        "after": CANCELLED,
        "inc-1": CANCELLED,
        "after-1": CANCELLED,
    }
    assert {k: [(t.attempt, t.state) for t in ts] for k, ts in result.trials.items()} == {
        "stop": [(1, CANCELLED)],
        "inc": [],
        "after": [],
        "inc-1": [],
        "after-1": [],
    }
    assert all(t.end is not None for ts in result.trials.values() for t in ts)
    assert ran == []
    assert not result.ok


FORKED_POOL_SCRIPT = textwrap.dedent(
    """
    import json
    import multiprocessing
    import os
    import sys
    import threading
    import time
    from concurrent.futures import ProcessPoolExecutor

    import dagexec as dx
    from dagexec.executors import FuturesExecutor

    started, ready = sys.argv[1], sys.argv[2]

    @dx.task
    def block() -> int:
        with open(started + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(started + ".tmp", started)
        threading.Event().wait(120)  # far longer than the test waits for this process
        return 1

    workers = []

    def note_workers():
        # once the task runs, every worker of the pool is forked: keep their Process objects
        while not os.path.exists(started):
            time.sleep(0.01)
        workers.extend(multiprocessing.active_children())
        open(ready, "w").close()

    with dx.Graph("g") as g:
        block()

    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    threading.Thread(target=note_workers, daemon=True).start()
    result = g.compile().run(executor=FuturesExecutor(pool), raise_on_failure=False)
    pool.shutdown()
    print(json.dumps({
        "trials": [[t.attempt, t.state.value] for t in result.trials["block"]],
        "error": type(result.trials["block"][-1].error).__name__,
        "exit codes": sorted(p.exitcode for p in workers),
    }))
    """
)


def test_a_forked_pool_worker_dies_of_sigterm_without_a_keyboard_interrupt(tmp_path):
    # the run's SIGTERM handler is inherited by workers forked while it lasts: there it
    # must end the process, as SIGTERM did before, not raise KeyboardInterrupt
    script = tmp_path / "plan.py"
    script.write_text(FORKED_POOL_SCRIPT)
    started, ready = str(tmp_path / "started"), str(tmp_path / "ready")
    proc = subprocess.Popen(
        [sys.executable, str(script), started, ready],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        wait_for_file(ready, proc)
        with open(started) as f:
            worker = int(f.read())
        os.kill(worker, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    # the killed worker died of its signal; the pool then terminated the other one, which did too
    assert json.loads(out) == {
        "trials": [[1, "crashed"]],
        "error": "WorkerCrashed",
        "exit codes": [-signal.SIGTERM, -signal.SIGTERM],
    }
    assert "KeyboardInterrupt" not in err
    assert "Traceback" not in err
