"""No process outlives a run, however its master ends (DESIGN §5, §10b, §12).

A master in a subprocess runs a plan on serial, threads or loky whose tasks start
processes that would sleep for minutes: processes a task starts itself
(``subprocess.Popen`` of a shell that starts a ``sleep``), or ``dx.shell`` commands
doing the same.  Each process writes its pid to a file.  Then the master is ended:
Ctrl-C (``SIGINT``), ``SIGTERM``, ``SIGHUP``, ``SIGKILL``, or ``SIGKILL`` to its whole
process group.  Every process it had below it, and every process a task started,
must be gone within ``GUARD`` seconds (minutes before the sleeps would end: a
process that is gone was stopped).  psutil counts them; a zombie counts as gone.

On serial and threads a process a task started itself outlives a ``SIGKILL`` of the
master only through the run's guard, which learns of the master's new children
every ``WATCH_S``: there the task waits until the guard knows of its process
(``_proctree.guarded``) before the master is ended.  Beyond the matrix: a forked copy
of the master, and a child in a session of its own (which a ``SIGKILL`` of the
master's group misses), die with the master too.  The guard itself is checked on its
own: it kills what it was told of, with all below it and the groups they lead, and
nothing whose start time is not the one it was told; it stands down when the run
ends, and it is never told of a ``dx.shell`` command's guard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import dagexec as dx
from dagexec import _proctree

GUARD = 30.0  # seconds: a cap on waiting for what must happen, never a check of speed

MASTER = textwrap.dedent(
    """
    import os
    import subprocess
    import sys
    import time

    import dagexec as dx
    from dagexec import _proctree

    executor, kind, folder = sys.argv[1], sys.argv[2], sys.argv[3]

    # a shell that starts a sleep below it, and writes: its parent, itself, the sleep
    SCRIPT = 'sleep 300 & echo "$PPID $$ $!" > {0}.tmp && mv {0}.tmp {0}; wait'

    @dx.task
    def hold(n: int) -> int:
        ready = os.path.join(folder, f"ready-{n}")
        # kind "session": the shell leaves the master's session and process group
        proc = subprocess.Popen(["sh", "-c", SCRIPT.format(ready)], start_new_session=kind == "session")
        if executor != "loky":  # in the master: once the run's guard knows of the shell
            while not _proctree.guarded(proc.pid):
                time.sleep(0.01)
            open(os.path.join(folder, f"guarded-{n}"), "w").close()
        proc.wait()
        return n

    @dx.task
    def fork(n: int) -> int:
        first = subprocess.Popen(["sleep", "300"])  # the guard starts: the copy below is made after
        while not _proctree.guarded(first.pid):
            time.sleep(0.01)
        pid = os.fork()
        if pid == 0:  # a copy of the master, which never execs
            time.sleep(300)
            os._exit(0)
        while not _proctree.guarded(pid):
            time.sleep(0.01)
        ready = os.path.join(folder, f"ready-{n}")
        with open(ready + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {first.pid} {pid}")
        os.rename(ready + ".tmp", ready)
        open(os.path.join(folder, f"guarded-{n}"), "w").close()
        os.waitpid(pid, 0)
        return n

    with dx.Graph("orphans") as g:
        for n in range(2):
            if kind in ("popen", "session"):
                hold(n)
            elif kind == "fork":
                fork(n)
            else:
                dx.shell(["sh", "-c", SCRIPT.format(os.path.join(folder, f"ready-{n}"))], name=f"cmd{n}")
    g.compile().run(executor=executor, max_workers=2)
    """
)

ENDINGS = ["sigint", "sigterm", "sighup", "sigkill", "group"]


def cells() -> list[tuple[str, str, str]]:
    return [
        (executor, ending, kind)
        for executor in ("serial", "threads", "loky")
        for ending in ENDINGS
        for kind in ("popen", "shell")
    ]


def start_master(tmp_path: Path, executor: str, kind: str) -> tuple[subprocess.Popen[bytes], Path]:
    folder = tmp_path / kind
    folder.mkdir()
    script = tmp_path / "master.py"
    script.write_text(MASTER)
    env = {k: v for k, v in os.environ.items() if k != "DAGEXEC_KEY"}
    with open(folder / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), executor, kind, str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
            env=env,
            start_new_session=True,  # a group of its own: killing it reaches nothing else
        )
    return proc, folder


def processes_of(
    proc: subprocess.Popen[bytes], folder: Path, expected: int, guarded: bool
) -> list[psutil.Process]:
    """Once ``expected`` tasks hold their processes (and, with ``guarded``, the run's
    guard knows of them): every process below the master, and every process a task's
    shell reported."""
    deadline = time.monotonic() + GUARD
    marks = ["ready-?", "guarded-?"] if guarded else ["ready-?"]
    while any(len(list(folder.glob(mark))) < expected for mark in marks):
        assert proc.poll() is None, (folder / "stderr").read_text()
        assert time.monotonic() < deadline, "the tasks never started their processes"
        time.sleep(0.02)
    pids = set()
    for path in folder.glob("ready-?"):
        pids.update(int(p) for p in path.read_text().split())
    pids.discard(proc.pid)
    found = {p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)}
    for pid in pids - set(found):
        found[pid] = psutil.Process(pid)  # a command in a session of its own is below the master too
    assert len(found) >= 2 * expected
    return list(found.values())


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
        except psutil.NoSuchProcess:
            continue
    return left


def end(proc: subprocess.Popen[bytes], ending: str) -> None:
    if ending == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(getattr(signal, ending.upper()))


@pytest.mark.slow
@pytest.mark.parametrize(("executor", "ending", "kind"), cells())
def test_no_process_outlives_its_master(executor: str, ending: str, kind: str, tmp_path: Path) -> None:
    proc, folder = start_master(tmp_path, executor, kind)
    processes: list[psutil.Process] = []
    try:
        guarded = kind == "popen" and executor != "loky"
        processes = processes_of(proc, folder, 1 if executor == "serial" else 2, guarded)
        end(proc, ending)
        proc.wait(GUARD)
        deadline = time.monotonic() + GUARD
        while alive(processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [(p.pid, p.cmdline()) for p in alive(processes)]
        assert left == [], (folder / "stderr").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in alive(processes):
            p.kill()


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "threads"])
@pytest.mark.parametrize(
    ("kind", "how"),
    [("fork", "sigkill"), ("session", "group")],
    ids=["a-forked-copy-of-the-master", "a-child-that-left-the-group"],
)
def test_what_a_killed_master_leaves_dies_with_it(executor: str, kind: str, how: str, tmp_path: Path) -> None:
    """A copy of the master forked once the guard runs holds none of the guard's pipe:
    the guard sees the master's death and kills it.  ``SIGKILL`` to the master's group
    misses a child in a session of its own; the run's guard, in a session of its own
    too, kills it with its group."""
    proc, folder = start_master(tmp_path, executor, kind)
    processes: list[psutil.Process] = []
    try:
        processes = processes_of(proc, folder, 1 if executor == "serial" else 2, guarded=True)
        end(proc, how)
        proc.wait(GUARD)
        deadline = time.monotonic() + GUARD
        while alive(processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p.pid for p in alive(processes)] == [], (folder / "stderr").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in alive(processes):
            p.kill()


def group_of(leader: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == leader:
                found.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def wait_for(what: str, predicate) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + GUARD
    while not predicate():
        assert time.monotonic() < deadline, f"waited {GUARD:g} s for {what}"
        time.sleep(0.02)


def test_the_guard_kills_what_it_was_told_of_with_all_below_it_and_nothing_else() -> None:
    """The guard alone: told of processes as the watching thread tells it, then the end
    of its pipe (what the master's death makes)."""
    told = subprocess.Popen(["sh", "-c", "sleep 300 & wait"])
    # leads a group of its own, one of whose members left its tree
    leader = subprocess.Popen(["sh", "-c", "(sleep 300 &); exec sleep 300"], start_new_session=True)
    reused = subprocess.Popen(["sleep", "300"])  # told of with another start time: a pid used again
    forgotten = subprocess.Popen(["sleep", "300"])  # told of, then forgotten
    own = [told, leader, reused, forgotten]
    watch = _proctree._Watch()
    killed: list[psutil.Process] = []
    try:
        wait_for("the shell's sleep", lambda: len(psutil.Process(told.pid).children()) == 1)
        wait_for("the group's two sleeps", lambda: len(group_of(leader.pid)) == 2)
        killed = [psutil.Process(told.pid), *psutil.Process(told.pid).children(), *group_of(leader.pid)]
        start = {p.pid: _proctree._parent_and_start(p.pid)[1] for p in own}
        lines = [
            f"+ {told.pid} {start[told.pid]}",
            f"+ {leader.pid} {start[leader.pid]}",
            f"+ {reused.pid} {start[reused.pid] + 1}",
            f"+ {forgotten.pid} {start[forgotten.pid]}",
            f"- {forgotten.pid} {start[forgotten.pid]}",
        ]
        assert watch.start_guard()
        _proctree._write_all(watch.pipe, "".join(f"{line}\n" for line in lines).encode())
        watch.drop_guard()  # the end of the pipe, then the guard is reaped
        assert watch.guard is None
        deadline = time.monotonic() + GUARD
        while alive(killed) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p.pid for p in alive(killed)] == []
        assert [p.pid for p in alive([psutil.Process(reused.pid), psutil.Process(forgotten.pid)])] == [
            reused.pid,
            forgotten.pid,
        ]
    finally:
        for p in [*killed, *(psutil.Process(q.pid) for q in own if q.poll() is None)]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        for q in own:
            q.wait()


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_run_that_ends_stands_its_guard_down(executor: str) -> None:
    """A process a task leaves running outlives the run: the guard exits without
    killing it, and is reaped."""
    started: list[subprocess.Popen[bytes]] = []

    @dx.task
    def leave_running() -> int:
        proc = subprocess.Popen(["sleep", "300"])
        started.append(proc)
        wait_for("the guard to know of the sleep", lambda: _proctree.guarded(proc.pid))
        return proc.pid

    with dx.Graph("leave") as g:
        leave_running()
    try:
        g.compile().run(executor=executor)
        guards = [p.pid for p in psutil.Process().children() if "dagexec-childguard" in p.cmdline()]
        assert guards == []
        assert [p.pid for p in alive([psutil.Process(started[0].pid)])] == [started[0].pid]
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def test_a_run_whose_tasks_start_no_process_starts_no_guard() -> None:
    @dx.task
    def wait_a_while() -> list[int]:
        time.sleep(3 * _proctree.WATCH_S)  # the watching thread looks meanwhile
        return [p.pid for p in psutil.Process().children() if "dagexec-childguard" in p.cmdline()]

    with dx.Graph("quiet") as g:
        g.output(wait_a_while(), name="guards")
    assert g.compile().run(executor="threads").output == []


def test_dx_shell_guards_are_not_told_to_the_guard(tmp_path: Path) -> None:
    """A command's guard must outlive its master to kill the command's group: the run's
    guard is never told of it."""
    done = tmp_path / "done"

    @dx.task
    def look() -> tuple[bool, bool]:
        def shell_guards() -> list[int]:
            return [p.pid for p in psutil.Process().children() if "dagexec-guard" in p.cmdline()]

        proc = None
        try:
            wait_for("the command's guard", shell_guards)
            # started after the command's guard: told of in the same look as it, or a later one
            proc = subprocess.Popen(["sleep", "300"])
            wait_for("the guard to know of the sleep", lambda: _proctree.guarded(proc.pid))
            return _proctree.guarded(shell_guards()[0]), _proctree.guarded(proc.pid)
        finally:
            done.touch()  # the command ends
            if proc is not None:
                proc.kill()
                proc.wait()

    with dx.Graph("shell") as g:
        dx.shell(["sh", "-c", f"while [ ! -e {done} ]; do sleep 0.02; done"], name="cmd")
        g.output(look(), name="told")
    assert g.compile().run(executor="threads", max_workers=2).outputs["told"] == (False, True)
