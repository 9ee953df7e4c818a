"""``dx.shell`` commands end with their job: a master killed (SIGKILL, or a ``killpg``
of its group) takes its commands along, and a command that exits takes along what it
left running (docs/shell.md, "Stopping a command")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import dagexec as dx

GUARD = 30.0  # seconds before a wait is a failure (never a timing assertion)

MASTER = textwrap.dedent(
    """
    import os, sys
    import dagexec as dx

    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(20)]  # descriptors past 9 in use
    with dx.Graph("g") as g:
        dx.shell(sys.argv[2:], name="hang")
    g.compile().run(executor=sys.argv[1])
    """
)


def wait_until(predicate, what: str, guard: float = GUARD):
    deadline = time.monotonic() + guard
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"waited {guard:g} s for {what}"
        time.sleep(0.05)


def alive(proc: psutil.Process) -> bool:
    """True while ``proc`` runs: a zombie (an orphan no init reaps) has ended."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def running(argv: list[str], among: list[psutil.Process]) -> list[psutil.Process]:
    found = []
    for proc in among:
        try:
            if proc.cmdline() == argv and alive(proc):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def start_master(
    tmp_path, executor: str, argv: list[str]
) -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
    """A master process running a graph of one command, in a process group of its
    own; returns it once the command runs, with every descendant it has then."""
    script = tmp_path / "master.py"
    script.write_text(MASTER)
    errors = tmp_path / "stderr"
    with open(errors, "wb") as err:
        master = subprocess.Popen(
            [sys.executable, str(script), executor, *argv],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # a group of its own, for killpg
        )
    root = psutil.Process(master.pid)

    def command_running() -> list[psutil.Process] | None:
        assert master.poll() is None, f"the master ended early: {errors.read_text()}"
        family = root.children(recursive=True)
        return family if running(argv, family) else None

    return master, wait_until(command_running, "the command to start")


@pytest.mark.parametrize("ending", ["SIGKILL", "killpg"])
@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_killed_master_takes_its_command_along(tmp_path, executor, ending):
    argv = ["sleep", "300"]
    master, family = start_master(tmp_path, executor, argv)
    try:
        [command] = running(argv, family)
        if ending == "SIGKILL":
            master.kill()
        else:
            os.killpg(master.pid, signal.SIGKILL)
        master.wait()
        wait_until(lambda: not alive(command), "the command to end with its master", guard=10.0)
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
        kill_all(family)  # a loky worker outlives its master: not the command's matter


def test_what_a_command_started_ends_with_the_master_too(tmp_path):
    argv = ["sh", "-c", "sleep 301 & sleep 302; :"]
    master, family = start_master(tmp_path, "threads", argv)
    try:
        background = wait_until(
            lambda: running(["sleep", "301"], psutil.Process(master.pid).children(recursive=True)),
            "the background sleep",
        )
        master.kill()
        master.wait()
        wait_until(lambda: not any(alive(p) for p in background), "the background sleep to end", guard=10.0)
        # the command's shell ends once the sleep it waits for is killed: a moment later
        wait_until(lambda: running(argv, family) == [], "the command to end", guard=10.0)
    finally:
        kill_all(family)


def test_a_command_that_leaves_a_child_holding_its_stdout_ends_when_it_exits():
    marker = f"DAGEXEC_SHELL_TEST_{os.getpid()}_{time.monotonic_ns()}"
    with dx.Graph("g") as g:
        dx.shell(["sh", "-c", "sleep 300 & echo started"], name="daemonish", env={marker: "1"})
    result = g.compile().run(executor="threads")  # no timeout: it would hang for 300 s
    assert result.output == "started\n"
    left = [p for p in psutil.process_iter() if _has_marker(p, marker) and alive(p)]
    assert left == []  # the background sleep was stopped with the command's group


def test_a_command_that_closes_its_outputs_early_is_still_waited_for(tmp_path):
    done = tmp_path / "done"
    result = dx.shell(
        ["sh", "-c", f"exec >&- 2>&-; sleep 0.3; touch {done}; exit 3"], check=False, output="result"
    )
    assert result == dx.CommandResult(3, "", "")
    assert done.exists()


def test_no_guard_is_left_after_commands():
    for _ in range(3):
        assert dx.shell(["echo", "x"]) == "x\n"
    children = [p.cmdline() for p in psutil.Process().children(recursive=True)]
    assert [c for c in children if "dagexec-guard" in c] == []


def _has_marker(proc: psutil.Process, marker: str) -> bool:
    try:
        return marker in proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
